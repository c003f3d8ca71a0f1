//! Rate limits shared by every node: a bucket's GCRA state, which nodes take requests from
//! in leases and give back what they did not allow.

use keyward_core::RateLimit;
use keyward_core::rate_limit::Take;

use super::{Query, Write};
use crate::{RateBucket, StoreError};

/// Gives back `unspent_nanos` (requests a node did not allow, times the interval they were
/// taken at), then takes up to `want` requests of `limit` at `now` (Unix nanoseconds). The
/// row is locked from the first statement to the commit, so concurrent takes on any number of
/// nodes never take more than GCRA allows.
pub(crate) async fn take(
    tx: &mut impl Write,
    bucket: &RateBucket,
    limit: RateLimit,
    want: u32,
    unspent_nanos: i64,
    now: i64,
) -> Result<Take, StoreError> {
    // An upsert that changes nothing locks the row (PostgreSQL; SQLite has one writer) and
    // reads it, or makes it whole.
    let lock = Query::new(
        "INSERT INTO rate_buckets (bucket, tat) VALUES ($1, 0) \
         ON CONFLICT (bucket) DO UPDATE SET tat = rate_buckets.tat RETURNING tat",
    )
    .bind(bucket.as_str());
    let tat = tx.optional(lock, |row| row.int("tat")).await?.unwrap_or(0);
    let take = limit.take(tat.saturating_sub(unspent_nanos.max(0)), now, want);
    if take.new_tat != tat {
        let save = Query::new("UPDATE rate_buckets SET tat = $2 WHERE bucket = $1")
            .bind(bucket.as_str())
            .bind(take.new_tat);
        tx.execute(save).await?;
    }
    Ok(take)
}
