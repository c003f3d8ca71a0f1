//! `Idempotency-Key`: who claimed which key for which request, and the first answer.

use keyward_core::Timestamp;

use super::{Columns, Query, Write, locking};
use crate::{IdempotencyClaim, IdempotentAnswer, StoreError};

/// What one row says.
struct Claimed {
    fingerprint: Vec<u8>,
    created_at: i64,
    locked_until: Option<i64>,
    answer: Option<IdempotentAnswer>,
}

fn decode(row: &dyn Columns) -> Result<Claimed, StoreError> {
    let answer = match row.opt_int("status")? {
        None => None,
        Some(status) => Some(IdempotentAnswer {
            status: u16::try_from(status)
                .map_err(|_| crate::decode::corrupt("idempotent answer status"))?,
            location: row.opt_text("location")?,
            body: row.opt_text("body")?,
            secret: row.opt_text("secret")?,
        }),
    };
    Ok(Claimed {
        fingerprint: row.bytes("fingerprint")?,
        created_at: row.int("created_at")?,
        locked_until: row.opt_int("locked_until")?,
        answer,
    })
}

/// Claims `key` for `caller`'s request with `fingerprint` until `lease_until` (see
/// [`IdempotencyClaim`]). A claim made before `expired_before` counts as none; so does one
/// whose request never finished and whose lease has run out (its node died).
pub(crate) async fn claim(
    tx: &mut impl Write,
    caller: &str,
    key: &str,
    fingerprint: &[u8],
    lease_until: Timestamp,
    expired_before: Timestamp,
) -> Result<IdempotencyClaim, StoreError> {
    let now = tx.now();
    // On PostgreSQL a concurrent claim of the same key waits here for the first to commit.
    let inserted = tx
        .execute(
            Query::new(
                "INSERT INTO idempotency_keys (caller, idempotency_key, fingerprint, \
                 created_at, locked_until) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (caller, idempotency_key) DO NOTHING",
            )
            .bind(caller)
            .bind(key)
            .bind(fingerprint)
            .bind(now.unix_seconds())
            .bind(lease_until.unix_seconds()),
        )
        .await?;
    if inserted == 1 {
        return Ok(IdempotencyClaim::Claimed);
    }
    let lock = locking!(
        "FOR UPDATE",
        "SELECT fingerprint, created_at, locked_until, status, location, body, secret \
         FROM idempotency_keys WHERE caller = $1 AND idempotency_key = $2"
    )
    .bind(caller)
    .bind(key);
    let Some(found) = tx.optional(lock, decode).await? else {
        // Pruned between the two statements (it was a day old): a retry claims it afresh.
        return Ok(IdempotencyClaim::InFlight);
    };
    let expired = found.created_at < expired_before.unix_seconds();
    let abandoned =
        found.answer.is_none() && found.locked_until.is_none_or(|at| at <= now.unix_seconds());
    if expired || (abandoned && found.fingerprint == fingerprint) {
        let query = Query::new(
            "UPDATE idempotency_keys SET fingerprint = $3, created_at = $4, locked_until = $5, \
             status = NULL, location = NULL, body = NULL, secret = NULL \
             WHERE caller = $1 AND idempotency_key = $2",
        )
        .bind(caller)
        .bind(key)
        .bind(fingerprint)
        .bind(now.unix_seconds())
        .bind(lease_until.unix_seconds());
        tx.execute(query).await?;
        return Ok(IdempotencyClaim::Claimed);
    }
    if found.fingerprint != fingerprint {
        return Ok(IdempotencyClaim::Reused);
    }
    Ok(match found.answer {
        Some(answer) => IdempotencyClaim::Answered(answer),
        None => IdempotencyClaim::InFlight,
    })
}

/// Keeps the answer of the request that claimed `key`.
pub(crate) async fn finish(
    tx: &mut impl Write,
    caller: &str,
    key: &str,
    answer: &IdempotentAnswer,
) -> Result<(), StoreError> {
    let query = Query::new(
        "UPDATE idempotency_keys SET status = $3, location = $4, body = $5, secret = $6, \
         locked_until = NULL WHERE caller = $1 AND idempotency_key = $2",
    )
    .bind(caller)
    .bind(key)
    .bind(i64::from(answer.status))
    .bind(answer.location.as_deref())
    .bind(answer.body.as_deref())
    .bind(answer.secret.as_deref());
    tx.execute(query).await?;
    Ok(())
}

/// Gives `key` back, unanswered, so that a retry runs again (the request failed).
pub(crate) async fn release(
    tx: &mut impl Write,
    caller: &str,
    key: &str,
) -> Result<(), StoreError> {
    let query = Query::new(
        "DELETE FROM idempotency_keys WHERE caller = $1 AND idempotency_key = $2 \
         AND status IS NULL",
    )
    .bind(caller)
    .bind(key);
    tx.execute(query).await?;
    Ok(())
}

/// Deletes up to `limit` claims made before `before`.
pub(crate) async fn prune(
    tx: &mut impl Write,
    before: Timestamp,
    limit: i64,
) -> Result<u64, StoreError> {
    let query = Query::new(
        "DELETE FROM idempotency_keys WHERE (caller, idempotency_key) IN \
         (SELECT caller, idempotency_key FROM idempotency_keys WHERE created_at < $1 \
         ORDER BY created_at LIMIT $2)",
    )
    .bind(before.unix_seconds())
    .bind(limit);
    Ok(tx.execute(query).await?)
}
