//! Credits: each credential's balance, which nodes take from in leases and give back to, and
//! which is refilled lazily, by whichever statement first reads it in a new period.

use keyward_core::webhook::EventType;
use keyward_core::{CredentialId, CredentialKind, CreditSettings, Every, Refill, Timestamp};
use serde_json::Value;

use super::{Columns, Query, Write, locking};
use crate::decode::corrupt;
use crate::{CreditLease, CreditOwner, StoreError, StoredCredits};

/// A balance row.
struct Balance {
    remaining: i64,
    refill: Option<Refill>,
    period: i64,
    generation: i64,
    base: i64,
    low_sent: Option<i64>,
    exhausted_sent: Option<i64>,
}

impl Balance {
    fn settings(&self) -> CreditSettings {
        CreditSettings {
            remaining: self.remaining,
            refill: self.refill,
        }
    }

    /// Refilled if `now` is past the end of its period.
    fn refilled(mut self, now: Timestamp) -> Self {
        if let Some((start, refill)) = self.settings().refill_due(self.period, now) {
            self.remaining = refill.amount;
            self.base = refill.amount;
            self.period = start;
        }
        self
    }
}

/// The refill columns of a row (`refill_amount`, `refill_every`, `refill_on_day`, with
/// `prefix`), or `None`.
pub(crate) fn refill(row: &dyn Columns, prefix: &str) -> Result<Option<Refill>, StoreError> {
    let column = |name: &str| format!("{prefix}{name}");
    match row.opt_int(&column("refill_amount"))? {
        None => Ok(None),
        Some(amount) => {
            let every = row
                .opt_text(&column("refill_every"))?
                .and_then(|text| Every::from_storage(&text))
                .ok_or_else(|| corrupt("refill interval"))?;
            let on_day = row
                .opt_int(&column("refill_on_day"))?
                .map(|day| u8::try_from(day).map_err(|_| corrupt("refill day")))
                .transpose()?;
            Refill::new(amount, every, on_day)
                .map(Some)
                .map_err(|_| corrupt("refill"))
        }
    }
}

/// The credits columns of a row read with a balance joined, named with `prefix`
/// (`credits_remaining`, …).
pub(crate) fn stored(row: &dyn Columns, prefix: &str) -> Result<Option<StoredCredits>, StoreError> {
    let column = |name: &str| format!("{prefix}{name}");
    let Some(remaining) = row.opt_int(&column("remaining"))? else {
        return Ok(None);
    };
    Ok(Some(StoredCredits {
        settings: CreditSettings {
            remaining,
            refill: refill(row, prefix)?,
        },
        generation: row.int(&column("generation"))?,
        period: row.int(&column("period"))?,
    }))
}

/// A balance row, `None` for one whose credits were removed.
fn balance(row: &dyn Columns) -> Result<Option<Balance>, StoreError> {
    let Some(remaining) = row.opt_int("remaining")? else {
        return Ok(None);
    };
    Ok(Some(Balance {
        remaining,
        refill: refill(row, "")?,
        period: row.int("period")?,
        generation: row.int("generation")?,
        base: row.int("base")?,
        low_sent: row.opt_int("low_sent_period")?,
        exhausted_sent: row.opt_int("exhausted_sent_period")?,
    }))
}

/// The credential's balance, locked until the transaction ends (PostgreSQL; SQLite has one
/// writer), refilled if its period has passed.
async fn locked(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
) -> Result<Option<Balance>, StoreError> {
    let owner = owner.into();
    let query = locking!(
        "FOR UPDATE",
        "SELECT remaining, refill_amount, refill_every, refill_on_day, period, generation, base, \
         low_sent_period, exhausted_sent_period FROM credit_balances WHERE credential_id = $1"
    )
    .bind(owner.as_uuid());
    let now = tx.now();
    Ok(tx
        .optional(query, balance)
        .await?
        .flatten()
        .map(|found| found.refilled(now)))
}

async fn save(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
    balance: &Balance,
) -> Result<(), StoreError> {
    let owner = owner.into();
    let query = Query::new(
        "UPDATE credit_balances SET remaining = $2, period = $3, base = $4, \
         low_sent_period = $5, exhausted_sent_period = $6 WHERE credential_id = $1",
    )
    .bind(owner.as_uuid())
    .bind(balance.remaining)
    .bind(balance.period)
    .bind(balance.base)
    .bind(balance.low_sent)
    .bind(balance.exhausted_sent);
    tx.execute(query).await?;
    Ok(())
}

/// Refuses a change of credits (or a new credential, member or portal link) made by a
/// credential that has credits itself, or whose identity has limits: whatever it gave would
/// be calls it does not have.
pub(crate) async fn refuse_if_limited(
    tx: &mut impl Write,
    by: Option<CredentialId>,
) -> Result<(), StoreError> {
    let Some(by) = by else {
        return Ok(());
    };
    let query = locking!(
        "FOR SHARE",
        "SELECT 1 FROM credentials c WHERE c.id = $1 AND (EXISTS (SELECT 1 FROM credit_balances b \
         WHERE b.credential_id = c.id AND b.remaining IS NOT NULL) \
         OR EXISTS (SELECT 1 FROM identity_limits \
         WHERE identity_organization_id = c.organization_id \
         AND identity_external_id = c.external_id))"
    )
    .bind(by.as_uuid());
    if tx.optional(query, super::exists).await?.is_some() {
        return Err(StoreError::Invalid {
            field: "credits",
            message: "a credential with credits or identity limits cannot create credentials, \
                      change credits or external ids, add members or open portal sessions: it \
                      would hand on calls it does not have",
        });
    }
    Ok(())
}

/// Sets the credential's credits, or removes them (`None`), in a new generation: what leases
/// taken before hold no longer counts. The row is changed in place, never deleted, so that
/// its generation only grows (a lease of a removed generation can never count again), and so
/// that a statement waiting on its lock finds it.
pub(crate) async fn set(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
    credits: Option<CreditSettings>,
) -> Result<(), StoreError> {
    let owner = owner.into();
    set_with(tx, owner, credits, None).await
}

/// Empties a rotated credential's credits (they moved to its successor), as spent this period
/// with nothing to warn about.
pub(crate) async fn drain(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
) -> Result<(), StoreError> {
    let owner = owner.into();
    let spent = CreditSettings {
        remaining: 0,
        refill: None,
    };
    set_with(tx, owner, Some(spent), Some(0)).await
}

async fn set_with(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
    credits: Option<CreditSettings>,
    sent: Option<i64>,
) -> Result<(), StoreError> {
    let owner = owner.into();
    let lock = locking!(
        "FOR UPDATE",
        "SELECT generation FROM credit_balances WHERE credential_id = $1"
    )
    .bind(owner.as_uuid());
    let generation = tx.optional(lock, |row| row.int("generation")).await?;
    let period = credits.map_or(0, |credits| credits.period(tx.now()).0);
    let refill = credits.and_then(|credits| credits.refill);
    let remaining = credits.map(|credits| credits.remaining);
    let query = match generation {
        Some(_) => Query::new(
            "UPDATE credit_balances SET remaining = $2, refill_amount = $3, refill_every = $4, \
             refill_on_day = $5, period = $6, generation = generation + 1, base = COALESCE($2, 0), \
             low_sent_period = $7, exhausted_sent_period = $7 WHERE credential_id = $1",
        ),
        None => Query::new(
            "INSERT INTO credit_balances (credential_id, remaining, refill_amount, refill_every, \
             refill_on_day, period, generation, base, low_sent_period, exhausted_sent_period) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, COALESCE($2, 0), $7, $7)",
        ),
    }
    .bind(owner.as_uuid())
    .bind(remaining)
    .bind(refill.map(|r| r.amount))
    .bind(refill.map(|r| r.every.as_str()))
    .bind(refill.and_then(|r| r.on_day).map(i64::from))
    .bind(period)
    .bind(sent);
    tx.execute(query).await?;
    Ok(())
}

/// Adds `amount` to what is left; `false` when the credential has no credits.
pub(crate) async fn add(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
    amount: i64,
) -> Result<bool, StoreError> {
    let owner = owner.into();
    let Some(mut balance) = locked(tx, owner).await? else {
        return Ok(false);
    };
    balance.remaining = balance
        .remaining
        .saturating_add(amount)
        .clamp(0, keyward_core::credits::MAX_CREDITS);
    // What was added counts towards the warning's tenth.
    balance.base = balance.base.max(balance.remaining);
    if balance.remaining * 10 > balance.base {
        balance.low_sent = None;
    }
    if balance.remaining > 0 {
        balance.exhausted_sent = None;
    }
    save(tx, owner, &balance).await?;
    Ok(true)
}

/// The credential's credits, as stored now (refilled if due), for showing.
pub(crate) async fn current(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
) -> Result<Option<StoredCredits>, StoreError> {
    let owner = owner.into();
    Ok(locked(tx, owner).await?.map(|balance| StoredCredits {
        settings: balance.settings(),
        generation: balance.generation,
        period: balance.period,
    }))
}

/// What a take did besides taking, for the webhooks it sends.
fn events(kind: CredentialKind) -> (EventType, EventType) {
    match kind {
        CredentialKind::ProjectToken => (
            EventType::ProjectTokenCreditsLow,
            EventType::ProjectTokenCreditsExhausted,
        ),
        _ => (
            EventType::ApiKeyCreditsLow,
            EventType::ApiKeyCreditsExhausted,
        ),
    }
}

/// Takes up to `want` credits for a node to spend from memory; `needed` is what the node must
/// have to allow the request it is taking them for (what it holds already taken away), so a
/// take that gets less refuses it. Returns the lease and the events to send: `credits_low`
/// once what is left falls to a tenth of what was last set or refilled, `credits_exhausted`
/// when a take refuses, each once a period, with what their payload adds. `None` when the
/// credential has no credits.
pub(crate) async fn take(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
    want: i64,
    needed: i64,
) -> Result<Option<(CreditLease, Vec<(EventType, Vec<(&'static str, Value)>)>)>, StoreError> {
    let owner = owner.into();
    let now = tx.now();
    let Some(mut balance) = locked(tx, owner).await? else {
        return Ok(None);
    };
    let taken = want.clamp(0, balance.remaining);
    balance.remaining -= taken;
    let mut send = Vec::new();
    // An identity's credits send no webhooks (no credential's events fit them).
    if let CreditOwner::Credential(credential) = owner {
        let (low, exhausted) = events(credential.kind());
        if balance.remaining * 10 <= balance.base && balance.low_sent != Some(balance.period) {
            balance.low_sent = Some(balance.period);
            send.push(low);
        }
        if taken < needed && balance.exhausted_sent != Some(balance.period) {
            balance.exhausted_sent = Some(balance.period);
            send.push(exhausted);
        }
    }
    save(tx, owner, &balance).await?;
    let extra = || {
        vec![
            ("credits_remaining", Value::from(balance.remaining)),
            ("credits_base", Value::from(balance.base)),
        ]
    };
    let events = send.into_iter().map(|event| (event, extra())).collect();
    // The period of what was taken: the balance's own (its refill applied above), not that
    // of the time the transaction began, which may be before a boundary it waited across.
    let period_start = balance.period;
    let period_end = match balance.refill {
        Some(refill) => {
            refill
                .period(Timestamp::from_unix_seconds(
                    balance.period.max(now.unix_seconds()),
                ))
                .1
        }
        None => i64::MAX,
    };
    let lease = CreditLease {
        taken,
        remaining: balance.remaining,
        generation: balance.generation,
        period_start,
        period_end,
    };
    Ok(Some((lease, events)))
}

/// Gives back `amount` credits a node did not spend, to the generation and period it took
/// them in; `false` (and nothing changes) when the credits were set since, or the period is
/// over.
pub(crate) async fn give_back(
    tx: &mut impl Write,
    owner: impl Into<CreditOwner>,
    amount: i64,
    generation: i64,
    period: i64,
) -> Result<bool, StoreError> {
    let owner = owner.into();
    let Some(mut balance) = locked(tx, owner).await? else {
        return Ok(false);
    };
    if balance.generation != generation || balance.period != period || amount <= 0 {
        return Ok(false);
    }
    balance.remaining = balance
        .remaining
        .saturating_add(amount)
        .min(keyward_core::credits::MAX_CREDITS);
    save(tx, owner, &balance).await?;
    Ok(true)
}
