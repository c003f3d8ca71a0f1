//! Dashboard sessions and the failed-login throttle.

use keyward_core::{Email, KeyDigest, OrganizationId, Timestamp, UserId};

use super::{Columns, Query, Read, Write, locking};
use crate::decode::timestamp;
use crate::{
    LoginAttempt, LoginFailures, NewSession, PortalConfinement, SessionRecord, StoreError,
};

pub(crate) async fn create(tx: &mut impl Write, session: &NewSession) -> Result<(), StoreError> {
    let query = Query::new(
        "INSERT INTO sessions (token_sha256, user_id, organization_id, csrf_token, created_at, \
         expires_at, portal_pages, return_url, single_sign_on, opened_by_credential) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&session.token_digest)
    .bind(session.user_id.as_uuid())
    .bind(session.organization_id.map(|o| o.as_uuid()))
    .bind(session.csrf_token.as_str())
    .bind(session.created_at.unix_seconds())
    .bind(session.expires_at.unix_seconds())
    .bind(session.portal.as_ref().map(|p| p.pages.as_str()))
    .bind(session.portal.as_ref().map(|p| p.return_url.as_str()))
    .bind(i64::from(session.single_sign_on))
    .bind(session.opened_by);
    tx.execute(query).await?;
    // Expired sessions are of no use to anyone: drop them while we are writing anyway.
    let expired = Query::new("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(session.created_at.unix_seconds());
    tx.execute(expired).await?;
    Ok(())
}

/// A session joined with its user and, if the person still belongs to it, the session's
/// organization.
fn session(row: &dyn Columns) -> Result<SessionRecord, StoreError> {
    let membership = match row.opt_text("role")? {
        Some(_) => Some(super::organizations::membership(row)?),
        None => None,
    };
    Ok(SessionRecord {
        user_id: UserId::from_uuid(row.uuid("user_id")?),
        email: Email::from_trusted(row.text("email")?),
        membership,
        csrf_token: row.text("csrf_token")?,
        expires_at: timestamp(row.int("expires_at")?),
        portal: match (row.opt_text("portal_pages")?, row.opt_text("return_url")?) {
            (Some(pages), Some(return_url)) => Some(PortalConfinement { pages, return_url }),
            _ => None,
        },
        single_sign_on: row.int("single_sign_on")? == 1,
    })
}

pub(crate) async fn find(
    db: &mut impl Read,
    token_digest: &KeyDigest,
    now: Timestamp,
) -> Result<Option<SessionRecord>, StoreError> {
    let query = Query::new(
        "SELECT s.user_id, u.email, s.csrf_token, s.expires_at, s.portal_pages, s.return_url, \
         s.single_sign_on, \
         m.role, o.id AS organization_id, o.name AS organization_name \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN memberships m ON m.organization_id = s.organization_id AND m.user_id = s.user_id \
         LEFT JOIN organizations o ON o.id = m.organization_id \
         WHERE s.token_sha256 = $1 AND s.expires_at > $2 \
         AND (s.opened_by_credential IS NULL OR EXISTS (SELECT 1 FROM credentials c \
         WHERE c.id = s.opened_by_credential AND c.revoked_at IS NULL \
         AND (c.expires_at IS NULL OR c.expires_at > $2) \
         AND (c.rotation_ends_at IS NULL OR c.rotation_ends_at > $2)))",
    )
    .bind(token_digest)
    .bind(now.unix_seconds());
    db.optional(query, session).await
}

pub(crate) async fn set_organization(
    tx: &mut impl Write,
    token_digest: &KeyDigest,
    organization: OrganizationId,
) -> Result<(), StoreError> {
    let query = Query::new("UPDATE sessions SET organization_id = $1 WHERE token_sha256 = $2")
        .bind(organization.as_uuid())
        .bind(token_digest);
    tx.execute(query).await?;
    Ok(())
}

/// Deletes the session; returns its person and organization if it existed.
pub(crate) async fn delete(
    tx: &mut impl Write,
    token_digest: &KeyDigest,
) -> Result<Option<(UserId, Option<OrganizationId>)>, StoreError> {
    // Locked, so that two log-outs of one session record one event.
    let query = locking!(
        "FOR UPDATE",
        "SELECT user_id, organization_id FROM sessions WHERE token_sha256 = $1"
    )
    .bind(token_digest);
    let owner = tx
        .optional(query, |row| {
            Ok((
                UserId::from_uuid(row.uuid("user_id")?),
                row.opt_uuid("organization_id")?
                    .map(OrganizationId::from_uuid),
            ))
        })
        .await?;
    let query = Query::new("DELETE FROM sessions WHERE token_sha256 = $1").bind(token_digest);
    tx.execute(query).await?;
    Ok(owner)
}

fn failures(row: &dyn Columns) -> Result<LoginFailures, StoreError> {
    Ok(LoginFailures {
        failures: u32::try_from(row.int("failures")?).unwrap_or(u32::MAX),
        last_failure_at: timestamp(row.int("last_failure_at")?),
    })
}

pub(crate) async fn login_failures(
    db: &mut impl Read,
    email: &Email,
    client_ip: &str,
) -> Result<Option<LoginFailures>, StoreError> {
    let query = Query::new(
        "SELECT failures, last_failure_at FROM login_failures WHERE email = $1 AND client_ip = $2",
    )
    .bind(email.as_str())
    .bind(client_ip);
    db.optional(query, failures).await
}

/// The row is created if missing, then locked, so concurrent attempts from several nodes
/// queue on it and each sees the count the previous one left.
pub(crate) async fn begin_login_attempt(
    tx: &mut impl Write,
    email: &Email,
    client_ip: &str,
    at: Timestamp,
    max_failures: u32,
    lockout_seconds: i64,
) -> Result<LoginAttempt, StoreError> {
    let create = Query::new(
        "INSERT INTO login_failures (email, client_ip, failures, last_failure_at) \
         VALUES ($1, $2, 0, 0) ON CONFLICT (email, client_ip) DO NOTHING",
    )
    .bind(email.as_str())
    .bind(client_ip);
    tx.execute(create).await?;
    let read = locking!(
        "FOR UPDATE",
        "SELECT failures, last_failure_at FROM login_failures WHERE email = $1 AND client_ip = $2"
    )
    .bind(email.as_str())
    .bind(client_ip);
    let so_far = tx
        .optional(read, failures)
        .await?
        .ok_or_else(|| crate::decode::corrupt("login failures"))?;
    let wait = so_far.last_failure_at.unix_seconds() + lockout_seconds - at.unix_seconds();
    if so_far.failures >= max_failures && wait > 0 {
        return Ok(LoginAttempt::Locked {
            retry_after_seconds: wait,
        });
    }
    let count = Query::new(
        "UPDATE login_failures SET failures = failures + 1, last_failure_at = $3 \
         WHERE email = $1 AND client_ip = $2",
    )
    .bind(email.as_str())
    .bind(client_ip)
    .bind(at.unix_seconds());
    tx.execute(count).await?;
    Ok(LoginAttempt::Allowed)
}

pub(crate) async fn clear_login_failures(
    tx: &mut impl Write,
    email: &Email,
    client_ip: &str,
) -> Result<(), StoreError> {
    let query = Query::new("DELETE FROM login_failures WHERE email = $1 AND client_ip = $2")
        .bind(email.as_str())
        .bind(client_ip);
    tx.execute(query).await?;
    Ok(())
}
