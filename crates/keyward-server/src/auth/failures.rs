//! Failed authentications, counted in memory and written to the audit log in batches, like
//! last use: a flood of bad keys adds to a counter per organization, credential, client
//! address and reason, never a write per request. Between two writes one address flooding
//! made-up keys is one count; beyond [`MAX_ENTRIES`] distinct counts the rest are folded into
//! one count per reason, so memory stays bounded too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use keyward_core::{CredentialId, OrganizationId, Timestamp};
use keyward_store::{AuthFailureCount, Store, StoreError};

/// Distinct counts kept between two writes.
pub const MAX_ENTRIES: usize = 10_000;

/// Why an authentication failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    Unknown,
    Malformed,
    Revoked,
    Expired,
    RateLimited,
    InsufficientScope,
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

    /// Counts one failure.
    pub fn record(
        &self,
        organization: Option<OrganizationId>,
        credential: Option<CredentialId>,
        client_ip: Option<IpAddr>,
        reason: FailureReason,
        at: Timestamp,
    ) {
        let mut key = Key {
            organization,
            credential,
            client_ip,
            reason,
        };
        let mut pending = self.pending();
        if pending.len() >= MAX_ENTRIES && !pending.contains_key(&key) {
            key = Key {
                organization: None,
                credential: None,
                client_ip: None,
                reason,
            };
        }
        pending
            .entry(key)
            .and_modify(|count| {
                count.count += 1;
                count.last_at = count.last_at.max(at);
            })
            .or_insert(Count {
                count: 1,
                first_at: at,
                last_at: at,
            });
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
                let mut pending = self.pending();
                for (key, count) in taken {
                    pending
                        .entry(key)
                        .and_modify(|kept| {
                            kept.count += count.count;
                            kept.first_at = kept.first_at.min(count.first_at);
                        })
                        .or_insert(count);
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
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            recorder.record(None, None, Some(ip), FailureReason::Unknown, at);
        }
        assert_eq!(recorder.pending_counts(), 1);
        for n in 0..MAX_ENTRIES as u32 + 50 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(n));
            recorder.record(None, None, Some(ip), FailureReason::Malformed, at);
        }
        // The cap, plus the one folded count of the overflow.
        assert_eq!(recorder.pending_counts(), MAX_ENTRIES + 1);
    }
}
