//! Usage counts: every verification of a known credential, counted in memory by hour and
//! outcome (`allowed`, or the refusal's code), and added to the database's hourly rows with
//! the last-use batch. Several nodes' counts add up; nothing is written per request.
//!
//! An allowed verification, the hot path, costs an atomic load and an atomic add on the
//! credential's [`UsageCell`], which every cache entry of the credential shares (so a reload
//! of the entry loses nothing); the cell's hour turns over under a lock, once an hour. A
//! refusal, and an allowed verification found afterwards to lack a scope (counted again as
//! `insufficient_scope`), go through a map under a lock. A verification at the very turn of
//! an hour may be counted in the hour before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use keyward_core::{CredentialId, Timestamp};
use keyward_store::{Store, StoreError, UsageCount};

/// The allowed verifications of one credential in its current hour, not yet written.
#[derive(Debug, Default)]
pub struct UsageCell {
    /// The hour `allowed` counts for (its first second).
    hour: AtomicI64,
    allowed: AtomicI64,
}

/// What one count is of: a credential, an hour, an outcome and the named route rule the
/// request matched (forward authentication's, when the rule has a `name`).
type CountKey = (CredentialId, i64, &'static str, Option<Arc<str>>);

/// Counts waiting to be written, as deltas (an allowed verification that then lacked a scope
/// is `allowed - 1`, `insufficient_scope + 1`).
type Pending = HashMap<CountKey, i64>;

/// Distinct counts kept between two writes, beyond which refusals are no longer counted
/// (allowed ones always are: they are bounded by the credentials in the cache).
const MAX_PENDING: usize = 100_000;

fn hour_of(at: Timestamp) -> i64 {
    let seconds = at.unix_seconds();
    seconds - seconds.rem_euclid(3_600)
}

/// On a response refusing a request for lacking a scope: the named route rule it matched,
/// for its usage count (see `every_request`).
#[derive(Clone, Debug)]
pub struct CountedRoute(pub Arc<str>);

#[derive(Default)]
pub struct UsageCounts {
    cells: Mutex<HashMap<CredentialId, Arc<UsageCell>>>,
    pending: Mutex<Pending>,
}

impl UsageCounts {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent: keep using it.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cells(&self) -> std::sync::MutexGuard<'_, HashMap<CredentialId, Arc<UsageCell>>> {
        self.cells
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cell every cache entry of `credential` counts in, made on first use.
    pub fn cell(&self, credential: CredentialId) -> Arc<UsageCell> {
        self.cells().entry(credential).or_default().clone()
    }

    /// One allowed verification of `credential` at `at`.
    pub fn allowed(&self, credential: CredentialId, cell: &UsageCell, at: Timestamp) {
        let hour = hour_of(at);
        if cell.hour.load(Ordering::Relaxed) != hour {
            // The first use in a new hour: what the cell holds belongs to the hour before.
            let mut pending = self.pending();
            let before = cell.hour.swap(hour, Ordering::Relaxed);
            if before != hour {
                let counted = cell.allowed.swap(0, Ordering::Relaxed);
                if counted != 0 {
                    *pending
                        .entry((credential, before, "allowed", None))
                        .or_default() += counted;
                }
            }
        }
        cell.allowed.fetch_add(1, Ordering::Relaxed);
    }

    /// One refused verification of `credential`, with the refusal's code.
    pub fn refused(&self, credential: CredentialId, outcome: &'static str, at: Timestamp) {
        let mut pending = self.pending();
        let key = (credential, hour_of(at), outcome, None);
        if pending.len() < MAX_PENDING || pending.contains_key(&key) {
            *pending.entry(key).or_default() += 1;
        }
    }

    /// A verification counted as allowed (with no route) that turned out to be `outcome`,
    /// for the route rule `route`: found after the key was verified (a scope it lacks, the
    /// rule forward authentication matched).
    pub fn reclassify(
        &self,
        credential: CredentialId,
        outcome: &'static str,
        route: Option<&Arc<str>>,
        at: Timestamp,
    ) {
        let hour = hour_of(at);
        let mut pending = self.pending();
        *pending
            .entry((credential, hour, "allowed", None))
            .or_default() -= 1;
        *pending
            .entry((credential, hour, outcome, route.cloned()))
            .or_default() += 1;
    }

    /// Everything counted so far, taken out of memory: cells emptied, and the cells no entry
    /// holds any more forgotten.
    fn take(&self) -> Pending {
        let mut taken = std::mem::take(&mut *self.pending());
        self.cells().retain(|credential, cell| {
            let hour = cell.hour.load(Ordering::Relaxed);
            let counted = cell.allowed.swap(0, Ordering::Relaxed);
            if counted != 0 {
                *taken
                    .entry((*credential, hour, "allowed", None))
                    .or_default() += counted;
            }
            // Held by the map alone: no cache entry counts in it any more.
            Arc::strong_count(cell) > 1
        });
        taken
    }

    /// Counts not yet written, of `credential`.
    #[cfg(test)]
    fn pending_of(&self, credential: CredentialId) -> i64 {
        let in_cell = self
            .cells()
            .get(&credential)
            .map_or(0, |cell| cell.allowed.load(Ordering::Relaxed));
        in_cell
            + self
                .pending()
                .iter()
                .filter(|((id, _, _, _), _)| *id == credential)
                .map(|(_, count)| *count)
                .sum::<i64>()
    }

    /// Writes the counts in one transaction and returns how many there were (`None` when
    /// there was nothing to write). On failure they are kept for the next write.
    pub async fn flush(&self, store: &dyn Store) -> Result<Option<usize>, StoreError> {
        let taken = self.take();
        let mut batch: Vec<UsageCount> = taken
            .iter()
            .filter(|(_, count)| **count != 0)
            .map(|((credential, hour, outcome, route), &count)| UsageCount {
                credential: *credential,
                hour: Timestamp::from_unix_seconds(*hour),
                outcome,
                route: route.as_deref().map(str::to_owned),
                count,
            })
            .collect();
        if batch.is_empty() {
            return Ok(None);
        }
        // One order on every node, so that two nodes' batches never wait on each other's rows.
        batch.sort_by(|a, b| {
            (a.credential.as_uuid(), a.hour, a.outcome, &a.route).cmp(&(
                b.credential.as_uuid(),
                b.hour,
                b.outcome,
                &b.route,
            ))
        });
        match store.add_usage_counts(&batch).await {
            Ok(()) => Ok(Some(batch.len())),
            Err(error) => {
                let mut pending = self.pending();
                for (key, count) in taken {
                    *pending.entry(key).or_default() += count;
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
    fn counts_follow_the_hour_and_fold_reclassified_verifications() {
        let counts = UsageCounts::default();
        let key = CredentialId::generate(keyward_core::CredentialKind::ApiKey);
        let cell = counts.cell(key);
        let at = Timestamp::from_unix_seconds(1_800_000_000);
        for _ in 0..3 {
            counts.allowed(key, &cell, at);
        }
        counts.reclassify(key, "insufficient_scope", None, at);
        let route: Arc<str> = Arc::from("databases");
        counts.allowed(key, &cell, at);
        counts.reclassify(key, "allowed", Some(&route), at);
        counts.refused(key, "revoked", at);
        // The next hour: what the cell held moves to the pending counts of its hour.
        let next = at.plus_seconds(3_600);
        counts.allowed(key, &cell, next);
        let taken = counts.take();
        let hour = hour_of(at);
        assert_eq!(taken[&(key, hour, "allowed", None)], 2);
        assert_eq!(taken[&(key, hour, "allowed", Some(route))], 1);
        assert_eq!(taken[&(key, hour, "insufficient_scope", None)], 1);
        assert_eq!(taken[&(key, hour, "revoked", None)], 1);
        assert_eq!(taken[&(key, hour_of(next), "allowed", None)], 1);
        // The cell is still held (by `cell`), and empty now.
        assert_eq!(counts.pending_of(key), 0);
        drop(cell);
        counts.take();
        assert!(
            counts.cells().is_empty(),
            "a cell no entry holds is forgotten"
        );
    }
}
