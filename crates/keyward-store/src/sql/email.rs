//! The email outbox, and password resets.

use keyward_core::{Email, KeyDigest, Timestamp, UserId};
use uuid::Uuid;

use super::{Columns, Query, Write, locking};
use crate::{ClaimedEmail, EmailOutcome, NewEmail, ResetRequest, StoreError};

pub(crate) async fn enqueue(tx: &mut impl Write, email: &NewEmail) -> Result<(), StoreError> {
    let query = Query::new(
        "INSERT INTO email_outbox (id, recipient, template, params, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(email.id)
    .bind(email.recipient.as_str())
    .bind(email.template.as_str())
    .bind(email.params.to_string())
    .bind(email.created_at.unix_seconds());
    tx.execute(query).await?;
    Ok(())
}

fn claimed(row: &dyn Columns) -> Result<ClaimedEmail, StoreError> {
    Ok(ClaimedEmail {
        id: row.uuid("id")?,
        recipient: Email::from_trusted(row.text("recipient")?),
        template: row.text("template")?,
        params: serde_json::from_str(&row.text("params")?)
            .map_err(|e| crate::decode::corrupt(&format!("email params: {e}")))?,
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
    })
}

/// Takes up to `limit` due messages for `lease_seconds`: no other node sends them meanwhile.
pub(crate) async fn claim(
    tx: &mut impl Write,
    now: Timestamp,
    lease_seconds: i64,
    limit: i64,
) -> Result<Vec<ClaimedEmail>, StoreError> {
    let due = locking!(
        "FOR UPDATE SKIP LOCKED",
        "SELECT id, recipient, template, params, attempts FROM email_outbox \
         WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
         AND locked_until <= $1 ORDER BY next_attempt_at LIMIT $2"
    )
    .bind(now.unix_seconds())
    .bind(limit);
    let emails = tx.all(due, claimed).await?;
    for email in &emails {
        let lease = Query::new("UPDATE email_outbox SET locked_until = $2 WHERE id = $1")
            .bind(email.id)
            .bind(now.plus_seconds(lease_seconds).unix_seconds());
        tx.execute(lease).await?;
    }
    Ok(emails)
}

pub(crate) async fn finish(
    tx: &mut impl Write,
    id: Uuid,
    outcome: &EmailOutcome,
    now: Timestamp,
) -> Result<(), StoreError> {
    let query = match outcome {
        EmailOutcome::Sent => Query::new(
            "UPDATE email_outbox SET sent_at = $2, attempts = attempts + 1, locked_until = 0 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(now.unix_seconds()),
        EmailOutcome::Retry { at, error } => Query::new(
            "UPDATE email_outbox SET next_attempt_at = $2, attempts = attempts + 1, \
             locked_until = 0, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(at.unix_seconds())
        .bind(error.as_str()),
        EmailOutcome::GiveUp { error } => Query::new(
            "UPDATE email_outbox SET failed_at = $2, attempts = attempts + 1, locked_until = 0, \
             last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(now.unix_seconds())
        .bind(error.as_str()),
    };
    tx.execute(query).await?;
    Ok(())
}

/// Queues a reset link for the account with `email`, unless there is none or it asked for
/// `max_per_hour` already; the person's row is locked, so concurrent requests count right.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn request_reset(
    tx: &mut impl Write,
    email: &Email,
    message: &NewEmail,
    token_digest: &KeyDigest,
    expires_at: Timestamp,
    max_per_hour: i64,
) -> Result<(ResetRequest, Option<UserId>), StoreError> {
    // Only an account with a password has one to reset: people the platform provisioned
    // sign in through it.
    let query = locking!(
        "FOR UPDATE",
        "SELECT id FROM users WHERE email = $1 AND password_hash IS NOT NULL"
    )
    .bind(email.as_str());
    let Some(user) = tx
        .optional(query, |row| Ok(UserId::from_uuid(row.uuid("id")?)))
        .await?
    else {
        return Ok((ResetRequest::NoAccount, None));
    };
    let now = message.created_at;
    let recent = Query::new(
        "SELECT COUNT(*) AS n FROM password_resets WHERE user_id = $1 AND created_at > $2",
    )
    .bind(user.as_uuid())
    .bind(now.plus_seconds(-3600).unix_seconds());
    let count = tx.optional(recent, |row| row.int("n")).await?.unwrap_or(0);
    if count >= max_per_hour {
        return Ok((ResetRequest::TooMany, Some(user)));
    }
    let insert = Query::new(
        "INSERT INTO password_resets (token_sha256, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_digest)
    .bind(user.as_uuid())
    .bind(now.unix_seconds())
    .bind(expires_at.unix_seconds());
    tx.execute(insert).await?;
    enqueue(tx, message).await?;
    Ok((ResetRequest::Queued, Some(user)))
}

/// Uses a reset link, once: the person's new password, every other link of theirs spent,
/// every session of theirs ended. The person, if the link was good.
pub(crate) async fn reset_password(
    tx: &mut impl Write,
    token_digest: &KeyDigest,
    password_hash: &str,
    now: Timestamp,
) -> Result<Option<(UserId, Email)>, StoreError> {
    let query = Query::new(
        "UPDATE password_resets SET used_at = $2 \
         WHERE token_sha256 = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
    )
    .bind(token_digest)
    .bind(now.unix_seconds());
    let Some(user) = tx
        .optional(query, |row| Ok(UserId::from_uuid(row.uuid("user_id")?)))
        .await?
    else {
        return Ok(None);
    };
    let spend = Query::new(
        "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user.as_uuid())
    .bind(now.unix_seconds());
    tx.execute(spend).await?;
    let set = Query::new("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user.as_uuid())
        .bind(password_hash);
    tx.execute(set).await?;
    let end = Query::new("DELETE FROM sessions WHERE user_id = $1").bind(user.as_uuid());
    tx.execute(end).await?;
    let query = Query::new("SELECT email FROM users WHERE id = $1").bind(user.as_uuid());
    let email = tx
        .optional(query, |row| Ok(Email::from_trusted(row.text("email")?)))
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    Ok(Some((user, email)))
}

/// The email of the account a live (unused, unexpired) reset link is for.
pub(crate) async fn reset_email(
    db: &mut impl super::Read,
    token_digest: &KeyDigest,
    now: Timestamp,
) -> Result<Option<Email>, StoreError> {
    let query = Query::new(
        "SELECT u.email FROM password_resets r JOIN users u ON u.id = r.user_id \
         WHERE r.token_sha256 = $1 AND r.used_at IS NULL AND r.expires_at > $2",
    )
    .bind(token_digest)
    .bind(now.unix_seconds());
    db.optional(query, |row| Ok(Email::from_trusted(row.text("email")?)))
        .await
}

/// Who hears of a credential: the person who made it while they belong to its organization,
/// else its owners.
async fn recipients_of(
    tx: &mut impl Write,
    record: &crate::CredentialRecord,
) -> Result<Vec<Email>, StoreError> {
    let email = |row: &dyn Columns| Ok(Email::from_trusted(row.text("email")?));
    if let Some(creator) = record.created_by_user {
        let query = Query::new(
            "SELECT u.email FROM users u JOIN memberships m ON m.user_id = u.id \
             WHERE m.organization_id = $1 AND u.id = $2",
        )
        .bind(record.organization_id.as_uuid())
        .bind(creator.as_uuid());
        if let Some(found) = tx.optional(query, email).await? {
            return Ok(vec![found]);
        }
    }
    let owners = Query::new(
        "SELECT u.email FROM users u JOIN memberships m ON m.user_id = u.id \
         WHERE m.organization_id = $1 AND m.role = 'owner' ORDER BY u.email",
    )
    .bind(record.organization_id.as_uuid());
    tx.all(owners, email).await
}

/// Queues `template` about `record` for the people who hear of it, with `extra` besides the
/// credential's own values (never its secret: it has none to give).
pub(crate) async fn notify_about(
    tx: &mut impl Write,
    record: &crate::CredentialRecord,
    template: &str,
    extra: serde_json::Map<String, serde_json::Value>,
    now: Timestamp,
) -> Result<(), StoreError> {
    if record.organization_id.is_installation() {
        return Ok(());
    }
    let query = Query::new("SELECT name FROM organizations WHERE id = $1")
        .bind(record.organization_id.as_uuid());
    let organization = tx
        .optional(query, |row| row.text("name"))
        .await?
        .unwrap_or_default();
    let path = match record.project_id {
        Some(project) => format!("/settings/projects/{project}/tokens"),
        None => "/settings/api-keys".to_owned(),
    };
    let mut params = serde_json::json!({
        "credential_id": record.id.to_string(),
        "kind_label": capitalized(record.id.kind().label()),
        "name": record.name.as_str(),
        "hint": record.hint,
        "organization": organization,
        "path": path,
    });
    if let Some(object) = params.as_object_mut() {
        object.extend(extra);
    }
    for recipient in recipients_of(tx, record).await? {
        let message = NewEmail {
            id: Uuid::now_v7(),
            recipient,
            template: template.to_owned(),
            params: params.clone(),
            created_at: now,
        };
        enqueue(tx, &message).await?;
    }
    Ok(())
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
