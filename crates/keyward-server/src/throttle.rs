//! How often one client address may try the anonymous forms and endpoints (sign-ups, log-in
//! attempts whatever the email, reports of exposed keys), in memory on each node, and the
//! limits of each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use keyward_core::RateLimit;

/// Sign-ups from one address: a burst of 10, then one every 6 minutes.
pub const SIGNUPS_PER_ADDRESS: RateLimit = RateLimit {
    requests: 10,
    per_seconds: 3_600,
};
/// Log-in attempts from one address, for any emails: 30 a minute.
pub const LOGINS_PER_ADDRESS: RateLimit = RateLimit {
    requests: 30,
    per_seconds: 60,
};
/// Password reset requests from one address, for any emails: a burst of 10, then one every
/// 6 minutes.
pub const RESETS_PER_ADDRESS: RateLimit = RateLimit {
    requests: 10,
    per_seconds: 3_600,
};
/// Password reset links one account is sent in an hour.
pub const RESETS_PER_EMAIL_PER_HOUR: i64 = 3;
/// Reports of exposed keys from one address (IPv6 by /64): 30 a minute (a burst of 30, then
/// one every 2 seconds), up to 30,000 keys.
pub const REPORTS_PER_ADDRESS: RateLimit = RateLimit {
    requests: 30,
    per_seconds: 60,
};

/// At most `limit` tries per client address, in memory (GCRA, as for keys). IPv6 clients
/// are counted per /64, the block one client usually has. Memory is bounded: at most
/// [`MAX_TRACKED_ADDRESSES`] are tracked, those whose allowance is whole again are forgotten
/// (at most once a second), and while the table is full of active addresses a new address
/// is let through untracked (the password workers still bound what it can cost).
pub struct AddressThrottle {
    limit: RateLimit,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    tats: HashMap<IpAddr, u64>,
    swept_at: u64,
}

pub const MAX_TRACKED_ADDRESSES: usize = 10_000;
const SWEEP_INTERVAL_NANOS: u64 = 1_000_000_000;

/// The address a throttle counts: IPv4 as it is, IPv6 by its /64.
pub(crate) fn client_block(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl AddressThrottle {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            table: Mutex::default(),
        }
    }

    /// Counts a try from `address`: `Err(seconds to wait)` when it is over the limit.
    pub fn try_once(&self, address: IpAddr) -> Result<(), u64> {
        let now = keyward_store::clock::monotonic_nanos();
        let address = client_block(address);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.tats.len() >= MAX_TRACKED_ADDRESSES
            && !table.tats.contains_key(&address)
            && now.saturating_sub(table.swept_at) >= SWEEP_INTERVAL_NANOS
        {
            table.swept_at = now;
            table.tats.retain(|_, tat| *tat > now);
        }
        if table.tats.len() >= MAX_TRACKED_ADDRESSES && !table.tats.contains_key(&address) {
            return Ok(());
        }
        let tat = table.tats.entry(address).or_insert(0);
        let decision = self.limit.decide(*tat, now);
        *tat = decision.new_tat;
        if decision.allowed {
            Ok(())
        } else {
            Err(decision.retry_after_nanos.div_ceil(1_000_000_000).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_allowance_and_then_waits() {
        let throttle = AddressThrottle::new(RateLimit::new(3, 60).unwrap());
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(throttle.try_once(one), Ok(()));
        }
        let wait = throttle.try_once(one).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(throttle.try_once(other), Ok(()));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_the_table_is_bounded() {
        let throttle = AddressThrottle::new(RateLimit::new(1, 3_600).unwrap());
        let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_block: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(throttle.try_once(first), Ok(()));
        assert!(
            throttle.try_once(same_block).is_err(),
            "one /64, one allowance"
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(throttle.try_once(mapped), Ok(()));
        assert!(
            throttle.try_once(v4).is_err(),
            "an IPv4-mapped address is the IPv4 one"
        );

        for n in 0..(MAX_TRACKED_ADDRESSES as u32 + 100) {
            let _ = throttle.try_once(IpAddr::V4(n.into()));
        }
        let table = throttle.table.lock().unwrap();
        assert!(table.tats.len() <= MAX_TRACKED_ADDRESSES);
    }
}
