//! Last use of credentials, kept in memory and written in batches.
//!
//! Authentication never writes to the database: when a credential's last use moves to a new
//! second, it notes the time and client address here, and a background task flushes the latest use of each credential every few seconds and once
//! more on graceful shutdown. The store never moves `last_used_at` backwards, so flushes from
//! several nodes merge correctly. Lists of credentials add what is still pending here, so a
//! node shows its own use at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use keyward_core::{CredentialId, Timestamp};
use keyward_store::{Store, StoreError, UsageUpdate};

/// The distinct client addresses kept per credential between two writes (the store keeps
/// as many).
const ADDRESSES: usize = 5;

/// A credential's uses since the last write: the latest use from each address (the newest
/// first is not kept in order; the newest overall is the last use).
type Uses = Vec<(Timestamp, Option<IpAddr>)>;

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<CredentialId, Uses>>,
}

impl UsageRecorder {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<CredentialId, Uses>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep using it.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes that `credential` was used at `at` from `ip`.
    pub fn record(&self, credential: CredentialId, at: Timestamp, ip: Option<IpAddr>) {
        let mut pending = self.pending();
        let uses = pending.entry(credential).or_default();
        if let Some(latest) = uses.iter_mut().find(|(_, seen)| *seen == ip) {
            latest.0 = latest.0.max(at);
        } else if uses.len() < ADDRESSES {
            uses.push((at, ip));
        } else if let Some(oldest) = uses.iter_mut().min_by_key(|(when, _)| *when)
            && oldest.0 < at
        {
            // Replace the address used least recently.
            *oldest = (at, ip);
        }
    }

    /// The latest use not yet written, if any.
    pub fn pending_use(&self, credential: CredentialId) -> Option<Timestamp> {
        self.pending()
            .get(&credential)
            .and_then(|uses| uses.iter().map(|(at, _)| *at).max())
    }

    /// Writes everything pending in one batch and returns the rows it moved forward (`None`
    /// when there was nothing to write). Entries stay visible (and pending) until their write
    /// has committed, so a list served meanwhile still shows them; on failure they are kept
    /// for the next flush.
    pub async fn flush(&self, store: &dyn Store) -> Result<Option<u64>, StoreError> {
        let mut batch: Vec<UsageUpdate> = self
            .pending()
            .iter()
            .flat_map(|(&credential, uses)| {
                uses.iter()
                    .map(move |&(at, ip)| UsageUpdate { credential, at, ip })
            })
            .collect();
        if batch.is_empty() {
            return Ok(None);
        }
        // One order on every node, so that two nodes' batches never wait on each other's rows.
        batch.sort_by_key(|update| (update.credential.as_uuid(), update.at));
        let changed = store.record_usage(&batch).await?;
        let mut pending = self.pending();
        for update in batch {
            // A newer use recorded during the write stays for the next flush.
            if let Some(uses) = pending.get_mut(&update.credential) {
                uses.retain(|&(at, ip)| !(ip == update.ip && at == update.at));
                if uses.is_empty() {
                    pending.remove(&update.credential);
                }
            }
        }
        Ok(Some(changed))
    }
}

#[cfg(test)]
mod tests {
    use keyward_core::CredentialKind;

    use super::*;

    #[test]
    fn keeps_the_latest_use_from_each_of_five_addresses() {
        let recorder = UsageRecorder::default();
        let id = CredentialId::generate(CredentialKind::ApiKey);
        for n in 0..7u8 {
            let ip = IpAddr::from([192, 0, 2, n]);
            recorder.record(
                id,
                Timestamp::from_unix_seconds(100 + i64::from(n)),
                Some(ip),
            );
        }
        let uses = recorder.pending().get(&id).cloned().unwrap();
        assert_eq!(uses.len(), 5);
        let mut kept: Vec<u8> = uses
            .iter()
            .map(|(_, ip)| match ip {
                Some(IpAddr::V4(v4)) => v4.octets()[3],
                _ => 255,
            })
            .collect();
        kept.sort();
        assert_eq!(kept, [2, 3, 4, 5, 6], "the two least recent went");
        assert_eq!(
            recorder.pending_use(id),
            Some(Timestamp::from_unix_seconds(106))
        );
    }

    #[test]
    fn keeps_only_the_latest_use() {
        let recorder = UsageRecorder::default();
        let id = CredentialId::generate(CredentialKind::ApiKey);
        let early = Timestamp::from_unix_seconds(100);
        let late = Timestamp::from_unix_seconds(200);
        assert_eq!(recorder.pending_use(id), None);
        recorder.record(id, late, None);
        recorder.record(id, early, None);
        assert_eq!(recorder.pending_use(id), Some(late));
    }
}
