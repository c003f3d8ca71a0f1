//! Failed authentications, counted in memory and written to the audit log in batches, like
//! last use: a flood of bad keys adds to a counter per organization, credential, client
//! address and reason, never a write per request.
//!
//! Only failures of a key that belongs to an organization are kept: an unknown or malformed
//! key belongs to nobody who could read its event (the verification metrics count those).
//! Memory and writes stay bounded whatever the traffic: IPv6 addresses count by /64, and
//! beyond [`MAX_ENTRIES`] distinct counts a failure is counted for its organization and
//! reason only (its credential and address dropped), and beyond twice that not at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use keyward_core::{CredentialId, OrganizationId, Timestamp};
use keyward_store::{AuthFailureCount, Store, StoreError};

/// Distinct counts kept between two writes before they are folded per organization.
pub const MAX_ENTRIES: usize = 1_000;
/// Distinct counts kept at all between two writes.
const HARD_LIMIT: usize = 2 * MAX_ENTRIES;

/// Why an authentication failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    Unknown,
    Malformed,
    Revoked,
    Expired,
    RateLimited,
    InsufficientScope,
    IpNotAllowed,
    Suspended,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Malformed => "malformed",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::RateLimited => "rate_limited",
            Self::InsufficientScope => "insufficient_scope",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::Suspended => "organization_suspended",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    organization: Option<OrganizationId>,
    credential: Option<CredentialId>,
    client_ip: Option<IpAddr>,
    reason: FailureReason,
}

#[derive(Clone, Copy)]
struct Count {
    count: u64,
    first_at: Timestamp,
    last_at: Timestamp,
}

/// Adds `count` under `key`, folding it per organization beyond [`MAX_ENTRIES`] distinct
/// counts and dropping it beyond [`HARD_LIMIT`].
fn add(pending: &mut HashMap<Key, Count>, mut key: Key, count: Count) {
    if !pending.contains_key(&key) && pending.len() >= MAX_ENTRIES {
        key = Key {
            credential: None,
            client_ip: None,
            ..key
        };
        if !pending.contains_key(&key) && pending.len() >= HARD_LIMIT {
            return;
        }
    }
    pending
        .entry(key)
        .and_modify(|kept| {
            kept.count += count.count;
            kept.first_at = kept.first_at.min(count.first_at);
            kept.last_at = kept.last_at.max(count.last_at);
        })
        .or_insert(count);
}

#[derive(Default)]
pub struct FailureRecorder {
    pending: Mutex<HashMap<Key, Count>>,
}

impl FailureRecorder {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Count>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep using it.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one failure of a key of `organization` (others are not kept: see the module).
    pub fn record(
        &self,
        organization: Option<OrganizationId>,
        credential: Option<CredentialId>,
        client_ip: Option<IpAddr>,
        reason: FailureReason,
        at: Timestamp,
    ) {
        if organization.is_none() {
            return;
        }
        let key = Key {
            organization,
            credential,
            // As the log-in throttle counts addresses: IPv6 by its /64.
            client_ip: client_ip.map(crate::throttle::client_block),
            reason,
        };
        let count = Count {
            count: 1,
            first_at: at,
            last_at: at,
        };
        add(&mut self.pending(), key, count);
    }

    /// Distinct counts waiting to be written.
    pub fn pending_counts(&self) -> usize {
        self.pending().len()
    }

    /// Writes the counts in one transaction and returns how many events that made (`None`
    /// when there was nothing to write). On failure the counts are kept for the next write.
    pub async fn flush(&self, store: &dyn Store) -> Result<Option<u64>, StoreError> {
        let taken: Vec<(Key, Count)> = self.pending().drain().collect();
        if taken.is_empty() {
            return Ok(None);
        }
        let batch: Vec<AuthFailureCount> = taken
            .iter()
            .map(|(key, count)| AuthFailureCount {
                organization: key.organization,
                credential: key.credential,
                client_ip: key.client_ip,
                reason: key.reason.as_str(),
                count: count.count,
                first_at: count.first_at,
                last_at: count.last_at,
            })
            .collect();
        match store.record_auth_failures(&batch).await {
            Ok(written) => Ok(Some(written)),
            Err(error) => {
                // Kept for the next write, within the same bounds as new counts.
                let mut pending = self.pending();
                for (key, count) in taken {
                    add(&mut pending, key, count);
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_per_key_and_folded_beyond_the_cap() {
        let recorder = FailureRecorder::default();
        let at = Timestamp::from_unix_seconds(1_800_000_000);
        let org = Some(OrganizationId::generate());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            recorder.record(org, None, Some(ip), FailureReason::Revoked, at);
        }
        assert_eq!(recorder.pending_counts(), 1);
        // Keys of no organization are not kept at all.
        recorder.record(None, None, Some(ip), FailureReason::Unknown, at);
        assert_eq!(recorder.pending_counts(), 1);
        // One IPv6 /64 is one address.
        for host in 0..100u128 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | host));
            recorder.record(org, None, Some(ip), FailureReason::Expired, at);
        }
        assert_eq!(recorder.pending_counts(), 2);
        // Many IPv4 addresses: capped, then one folded count for the organization.
        for n in 0..MAX_ENTRIES as u32 + 50 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(n));
            recorder.record(org, None, Some(ip), FailureReason::Malformed, at);
        }
        assert_eq!(recorder.pending_counts(), MAX_ENTRIES + 1);
        // Other organizations beyond the cap: folded per organization, up to the hard limit.
        for _ in 0..3 * MAX_ENTRIES {
            let other = Some(OrganizationId::generate());
            recorder.record(other, None, Some(ip), FailureReason::Revoked, at);
        }
        assert_eq!(recorder.pending_counts(), HARD_LIMIT);
    }
}
