//! Usage counts: every verification of a known credential, counted in memory by hour and
//! outcome (`allowed`, or the refusal's code), and added to the database's hourly rows with
//! the last-use batch. Several nodes' counts add up; nothing is written per request.
//!
//! An allowed verification, the hot path, costs an atomic load and an atomic add on the
//! [`UsageCell`] in the credential's cache entry: one word holding the hour and the count, so
//! that a million cached keys cost 8 bytes each for it. The hour turns over under a lock, once
//! an hour; what an entry counted moves to the pending counts when the entry leaves the cache
//! (reloaded, invalidated, swept) and at each flush, which reads every entry. A refusal, and an
//! allowed verification found afterwards to lack a scope (counted again as
//! `insufficient_scope`), go through a map under a lock. Around the turn of an hour a
//! verification may be counted in the neighbouring hour, and one racing its entry's removal
//! from the cache (nanoseconds) may go uncounted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use keyward_core::{CredentialId, Timestamp};
use keyward_store::{Store, StoreError, UsageCount};

/// The allowed verifications of one cache entry in its current hour, not yet written: the
/// hour (hours since 1970) in the high 32 bits, the count in the low 32.
#[derive(Debug, Default)]
pub struct UsageCell(AtomicU64);

const COUNT: u64 = 0xFFFF_FFFF;
/// A count beyond which the next verification spills the cell to the pending counts: far
/// below `COUNT`, so that concurrent additions past it cannot reach the hour's bits.
const FULL: u64 = COUNT - (1 << 24);

impl UsageCell {
    /// Takes what it counted out: `(hour's first second, count)`, the hour kept.
    fn drain(&self) -> (i64, i64) {
        let before = self.0.fetch_and(!COUNT, Ordering::Relaxed);
        let hours = i64::try_from(before >> 32).unwrap_or(0);
        let count = i64::try_from(before & COUNT).unwrap_or(0);
        (hours * 3_600, count)
    }
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
    pending: Mutex<Pending>,
}

impl UsageCounts {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent: keep using it.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One allowed verification of `credential`, counted in its entry's `cell`, at `at`.
    pub fn allowed(&self, credential: CredentialId, cell: &UsageCell, at: Timestamp) {
        let hour = u64::try_from(at.unix_seconds().div_euclid(3_600)).unwrap_or(0);
        let current = cell.0.load(Ordering::Relaxed);
        // This hour's, or a later one's (another thread's clock ran ahead): add to it.
        if current >> 32 >= hour && current & COUNT < FULL {
            cell.0.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The first use in a new hour (or a full cell): what it holds goes to the pending
        // counts of its hour, under the lock, and it starts again with this one.
        let mut pending = self.pending();
        let current = cell.0.load(Ordering::Relaxed);
        if current >> 32 >= hour && current & COUNT < FULL {
            cell.0.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = cell.0.swap(hour << 32 | 1, Ordering::Relaxed);
        let counted = i64::try_from(before & COUNT).unwrap_or(0);
        if counted != 0 {
            let start = i64::try_from(before >> 32).unwrap_or(0) * 3_600;
            *pending
                .entry((credential, start, "allowed", None))
                .or_default() += counted;
        }
    }

    /// Moves what `cell` (of `credential`'s entry) counted to the pending counts: its entry
    /// leaves the cache, or a flush reads it.
    pub fn absorb(&self, credential: CredentialId, cell: &UsageCell) {
        let (hour, counted) = cell.drain();
        if counted != 0 {
            *self
                .pending()
                .entry((credential, hour, "allowed", None))
                .or_default() += counted;
        }
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

    /// Everything pending, taken out of memory (the entries' cells absorbed first, by the
    /// cache).
    fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending())
    }

    /// Counts pending, of `credential`.
    #[cfg(test)]
    fn pending_of(&self, credential: CredentialId) -> i64 {
        self.pending()
            .iter()
            .filter(|((id, _, _, _), _)| *id == credential)
            .map(|(_, count)| *count)
            .sum::<i64>()
    }

    /// Writes the pending counts in one transaction and returns how many there were (`None`
    /// when there was nothing to write); the cache absorbs its entries' cells first. On
    /// failure they are kept for the next write.
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
        let cell = UsageCell::default();
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
        // An earlier clock's verification counts in the cell's later hour.
        counts.allowed(key, &cell, at);
        // Pending: the first hour's five (2 + 1 + 1 + 1); the next hour's two are in the cell.
        assert_eq!(counts.pending_of(key), 5);
        // A flush (or the entry leaving the cache) absorbs the cell, keeping its hour.
        counts.absorb(key, &cell);
        counts.allowed(key, &cell, next);
        let taken = counts.take();
        let hour = hour_of(at);
        assert_eq!(taken[&(key, hour, "allowed", None)], 2);
        assert_eq!(taken[&(key, hour, "allowed", Some(route))], 1);
        assert_eq!(taken[&(key, hour, "insufficient_scope", None)], 1);
        assert_eq!(taken[&(key, hour, "revoked", None)], 1);
        assert_eq!(taken[&(key, hour_of(next), "allowed", None)], 2);
        assert_eq!(counts.pending_of(key), 0);
        counts.absorb(key, &cell);
        assert_eq!(counts.pending_of(key), 1, "the one counted after the take");
    }
}
