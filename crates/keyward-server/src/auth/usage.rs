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

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<CredentialId, (Timestamp, Option<IpAddr>)>>,
}

impl UsageRecorder {
    fn pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CredentialId, (Timestamp, Option<IpAddr>)>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep using it.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes that `credential` was used at `at`.
    pub fn record(&self, credential: CredentialId, at: Timestamp, ip: Option<IpAddr>) {
        let mut pending = self.pending();
        match pending.get_mut(&credential) {
            Some(latest) if latest.0 > at => {}
            Some(latest) => *latest = (at, ip),
            None => {
                pending.insert(credential, (at, ip));
            }
        }
    }

    /// The latest use not yet written, if any.
    pub fn pending_use(&self, credential: CredentialId) -> Option<Timestamp> {
        self.pending().get(&credential).map(|&(at, _)| at)
    }

    /// Writes everything pending in one batch and returns the rows it moved forward (`None`
    /// when there was nothing to write). Entries stay visible (and pending) until their write
    /// has committed, so a list served meanwhile still shows them; on failure they are kept
    /// for the next flush.
    pub async fn flush(&self, store: &dyn Store) -> Result<Option<u64>, StoreError> {
        let batch: Vec<UsageUpdate> = self
            .pending()
            .iter()
            .map(|(&credential, &(at, ip))| UsageUpdate { credential, at, ip })
            .collect();
        if batch.is_empty() {
            return Ok(None);
        }
        let changed = store.record_usage(&batch).await?;
        let mut pending = self.pending();
        for update in batch {
            // A newer use recorded during the write stays for the next flush.
            if pending
                .get(&update.credential)
                .is_some_and(|&(at, _)| at == update.at)
            {
                pending.remove(&update.credential);
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
