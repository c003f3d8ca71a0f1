//! Dashboard sessions and the failed-login throttle.

use keyward_core::{Email, KeyDigest, Name, OrganizationId, Timestamp, UserId};
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::organizations::role;
use super::timestamp;
use crate::{LoginAttempt, LoginFailures, MembershipRecord, NewSession, SessionRecord, StoreError};

pub(super) async fn create(
    tx: &mut Transaction<'static, Postgres>,
    session: &NewSession,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (token_sha256, user_id, organization_id, csrf_token, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(session.token_digest.as_bytes().to_vec())
    .bind(session.user_id.as_uuid())
    .bind(session.organization_id.map(|o| o.as_uuid()))
    .bind(&session.csrf_token)
    .bind(session.created_at.unix_seconds())
    .bind(session.expires_at.unix_seconds())
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(session.created_at.unix_seconds())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn find(
    pool: &PgPool,
    token_digest: &KeyDigest,
    now: Timestamp,
) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT s.user_id, u.email, s.csrf_token, s.expires_at, m.role, o.id AS organization_id, \
         o.name AS organization_name \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN memberships m ON m.organization_id = s.organization_id AND m.user_id = s.user_id \
         LEFT JOIN organizations o ON o.id = m.organization_id \
         WHERE s.token_sha256 = $1 AND s.expires_at > $2",
    )
    .bind(token_digest.as_bytes().to_vec())
    .bind(now.unix_seconds())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let membership = match row.try_get::<Option<String>, _>("role")? {
        Some(stored_role) => Some(MembershipRecord {
            organization_id: OrganizationId::from_uuid(row.try_get::<Uuid, _>("organization_id")?),
            organization_name: Name::from_trusted(row.try_get("organization_name")?),
            role: role(&stored_role)?,
        }),
        None => None,
    };
    Ok(Some(SessionRecord {
        user_id: UserId::from_uuid(row.try_get("user_id")?),
        email: Email::from_trusted(row.try_get("email")?),
        membership,
        csrf_token: row.try_get("csrf_token")?,
        expires_at: timestamp(row.try_get("expires_at")?),
    }))
}

pub(super) async fn set_organization(
    tx: &mut Transaction<'static, Postgres>,
    token_digest: &KeyDigest,
    organization: OrganizationId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET organization_id = $1 WHERE token_sha256 = $2")
        .bind(organization.as_uuid())
        .bind(token_digest.as_bytes().to_vec())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn delete(
    tx: &mut Transaction<'static, Postgres>,
    token_digest: &KeyDigest,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
        .bind(token_digest.as_bytes().to_vec())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn login_failures(
    pool: &PgPool,
    email: &Email,
    client_ip: &str,
) -> Result<Option<LoginFailures>, StoreError> {
    let row = sqlx::query(
        "SELECT failures, last_failure_at FROM login_failures WHERE email = $1 AND client_ip = $2",
    )
    .bind(email.as_str())
    .bind(client_ip)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(LoginFailures {
            failures: u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
            last_failure_at: timestamp(row.try_get("last_failure_at")?),
        })
    })
    .transpose()
}

/// The row is created if missing, then locked, so concurrent attempts from several nodes
/// queue on it and each sees the count the previous one left.
pub(super) async fn begin_login_attempt(
    tx: &mut Transaction<'static, Postgres>,
    email: &Email,
    client_ip: &str,
    at: Timestamp,
    max_failures: u32,
    lockout_seconds: i64,
) -> Result<LoginAttempt, StoreError> {
    sqlx::query(
        "INSERT INTO login_failures (email, client_ip, failures, last_failure_at) \
         VALUES ($1, $2, 0, 0) ON CONFLICT (email, client_ip) DO NOTHING",
    )
    .bind(email.as_str())
    .bind(client_ip)
    .execute(&mut **tx)
    .await?;
    let (failures, last): (i64, i64) = sqlx::query_as(
        "SELECT failures, last_failure_at FROM login_failures \
         WHERE email = $1 AND client_ip = $2 FOR UPDATE",
    )
    .bind(email.as_str())
    .bind(client_ip)
    .fetch_one(&mut **tx)
    .await?;
    let wait = last + lockout_seconds - at.unix_seconds();
    if failures >= i64::from(max_failures) && wait > 0 {
        return Ok(LoginAttempt::Locked {
            retry_after_seconds: wait,
        });
    }
    sqlx::query(
        "UPDATE login_failures SET failures = failures + 1, last_failure_at = $3 \
         WHERE email = $1 AND client_ip = $2",
    )
    .bind(email.as_str())
    .bind(client_ip)
    .bind(at.unix_seconds())
    .execute(&mut **tx)
    .await?;
    Ok(LoginAttempt::Allowed)
}

pub(super) async fn clear_login_failures(
    tx: &mut Transaction<'static, Postgres>,
    email: &Email,
    client_ip: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM login_failures WHERE email = $1 AND client_ip = $2")
        .bind(email.as_str())
        .bind(client_ip)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
