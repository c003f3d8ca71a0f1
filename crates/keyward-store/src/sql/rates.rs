//! Rate limits shared by every node: a bucket's GCRA state, which nodes take requests from
//! in leases and give back what they did not allow.

use keyward_core::RateLimit;
use keyward_core::rate_limit::Take;

use super::{Query, Write};
use crate::{RateBucket, RateReturn, StoreError};

/// Deletes up to `limit` buckets whose state is more than a day before `now` (Unix
/// nanoseconds): whole, and as a missing row reads. Returns how many went.
pub(crate) async fn prune(tx: &mut impl Write, now: i64, limit: i64) -> Result<u64, StoreError> {
    // A day is the longest window: no limit's state that far back holds anything.
    let before = now.saturating_sub(86_400 * 1_000_000_000);
    let query = Query::new(
        "DELETE FROM rate_buckets WHERE bucket IN \
         (SELECT bucket FROM rate_buckets WHERE tat < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit);
    Ok(tx.execute(query).await?)
}

/// Gives back what a node's last lease did not allow (only if no take came since, see
/// [`RateReturn`]), then takes up to `want` requests of `limit` at `now` (Unix nanoseconds).
/// The row is locked from the first statement to the commit, so concurrent takes on any
/// number of nodes never take more than GCRA allows.
pub(crate) async fn take(
    tx: &mut impl Write,
    bucket: &RateBucket,
    limit: RateLimit,
    want: u32,
    give_back: Option<RateReturn>,
    now: i64,
) -> Result<Take, StoreError> {
    // An upsert that changes nothing locks the row (PostgreSQL; SQLite has one writer) and
    // reads it, or makes it whole.
    let lock = Query::new(
        "INSERT INTO rate_buckets (bucket, tat, requests, per_seconds) VALUES ($1, 0, $2, $3) \
         ON CONFLICT (bucket) DO UPDATE SET tat = rate_buckets.tat \
         RETURNING tat, requests, per_seconds",
    )
    .bind(bucket.as_str())
    .bind(i64::from(limit.requests))
    .bind(i64::from(limit.per_seconds));
    let read = tx
        .optional(lock, |row| {
            Ok((
                row.int("tat")?,
                row.int("requests")?,
                row.int("per_seconds")?,
            ))
        })
        .await?;
    let (stored, requests, per_seconds) = read.unwrap_or((0, 0, 0));
    let mut tat = stored;
    // Taking back what a lease did not allow is exact only while the state is where that
    // lease left it: after another take it would move that take's requests into the past.
    if let Some(back) = give_back
        && back.taken_to == stored
    {
        tat = stored.saturating_sub(back.unspent_nanos.max(0));
    }
    let same_limit =
        (requests, per_seconds) == (i64::from(limit.requests), i64::from(limit.per_seconds));
    let take = limit.take(tat, now, want);
    // A state more than a window ahead of this node's clock is brought back within the window
    // only when the limit changed (a looser one counts a stricter one's spending as one
    // window, no more). Under the same limit it is another node's whose clock runs ahead:
    // writing it back down would hand that node the difference again at each take.
    let new_tat = if take.taken > 0 || !same_limit {
        take.new_tat
    } else {
        tat
    };
    if new_tat != stored || !same_limit {
        let save = Query::new(
            "UPDATE rate_buckets SET tat = $2, requests = $3, per_seconds = $4 WHERE bucket = $1",
        )
        .bind(bucket.as_str())
        .bind(new_tat)
        .bind(i64::from(limit.requests))
        .bind(i64::from(limit.per_seconds));
        tx.execute(save).await?;
    }
    Ok(take)
}
