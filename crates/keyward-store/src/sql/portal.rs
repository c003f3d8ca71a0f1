//! Portal links: one-time codes that open a confined dashboard session, and the person the
//! platform names by its own id.

use keyward_core::{Email, KeyDigest, Name, OrganizationId, Role, Timestamp, UserId};

use super::{Query, Write, locking, organizations};
use crate::{NewPortalLink, PortalConfinement, PortalPerson, PortalRedemption, StoreError};

/// The person the platform's id names: found by it; else the account with the email, if the
/// installation vouches for it and it has no external id yet; else a new person without a
/// password. Concurrent calls for one new id make one person.
///
/// Without the installation's word (an organization's own key), an existing person must
/// already belong to `organization`, and their email is left alone: an organization's key
/// can neither pull in nor change a person of another organization.
pub(crate) async fn person(
    tx: &mut impl Write,
    organization: OrganizationId,
    person: &PortalPerson,
    at: Timestamp,
) -> Result<UserId, StoreError> {
    let by_external_id = || {
        locking!(
            "FOR UPDATE",
            "SELECT id, email FROM users WHERE external_id = $1"
        )
        .bind(person.external_id.as_str())
    };
    let found = |row: &dyn super::Columns| {
        Ok((
            UserId::from_uuid(row.uuid("id")?),
            Email::from_trusted(row.text("email")?),
        ))
    };
    if let Some((id, email)) = tx.optional(by_external_id(), found).await? {
        if !person.vouched {
            let query = Query::new(
                "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2",
            )
            .bind(organization.as_uuid())
            .bind(id.as_uuid());
            if tx.optional(query, |row| row.text("role")).await?.is_none() {
                return Err(StoreError::Conflict("person elsewhere"));
            }
            return Ok(id);
        }
        // The platform's email for them moves with them, unless another account has it.
        if email != person.email {
            // Never for a person with a password of their own: their address is theirs.
            let query = Query::new(
                "UPDATE users SET email = $2 WHERE id = $1 AND password_hash IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM users WHERE email = $2)",
            )
            .bind(id.as_uuid())
            .bind(person.email.as_str());
            tx.execute(query).await?;
        }
        return Ok(id);
    }
    if person.vouched {
        let query = Query::new(
            "UPDATE users SET external_id = $2, name = COALESCE(name, $3) \
             WHERE email = $1 AND external_id IS NULL",
        )
        .bind(person.email.as_str())
        .bind(person.external_id.as_str())
        .bind(person.name.as_ref().map(Name::as_str));
        tx.execute(query).await?;
    }
    // A new person, unless the id (made by a concurrent call, or just linked) or the email
    // is taken.
    insert_unless_taken(
        tx,
        &person.email,
        &person.external_id,
        person.name.as_ref(),
        at,
    )
    .await?;
    if let Some((id, _)) = tx.optional(by_external_id(), found).await? {
        return Ok(id);
    }
    // Another account has the email, under another external id (or none, and the caller
    // may not vouch for it).
    Err(StoreError::Conflict("person email"))
}

/// The condition on `c` (a credential) and `$2` (now) that it still works: not revoked,
/// not expired, not past its rotation.
macro_rules! usable_credential {
    () => {
        "c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > $2) \
         AND (c.rotation_ends_at IS NULL OR c.rotation_ends_at > $2)"
    };
}

/// Creates a person without a password, with the platform's id for them, unless an account
/// has the id or the email already (made meanwhile by a concurrent call, say).
pub(crate) async fn insert_unless_taken(
    tx: &mut impl Write,
    email: &Email,
    external_id: &keyward_core::ExternalId,
    name: Option<&Name>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let query = Query::new(
        "INSERT INTO users (id, email, password_hash, created_at, external_id, name) \
         VALUES ($1, $2, NULL, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(UserId::generate().as_uuid())
    .bind(email.as_str())
    .bind(at.unix_seconds())
    .bind(external_id.as_str())
    .bind(name.map(Name::as_str));
    tx.execute(query).await?;
    Ok(())
}

/// Makes `user` a member of `organization` with `role`: added if new, moved if their role
/// differs, never leaving the organization without an owner.
pub(crate) async fn set_role(
    tx: &mut impl Write,
    organization: OrganizationId,
    user: UserId,
    role: Role,
    at: Timestamp,
) -> Result<Option<Role>, StoreError> {
    let query = Query::new(
        "INSERT INTO memberships (organization_id, user_id, role, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, user_id) DO NOTHING",
    )
    .bind(organization.as_uuid())
    .bind(user.as_uuid())
    .bind(role.as_str())
    .bind(at.unix_seconds());
    if tx.execute(query).await? == 1 {
        return Ok(None);
    }
    let query =
        Query::new("SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2")
            .bind(organization.as_uuid())
            .bind(user.as_uuid());
    let current = tx
        .optional(query, |row| crate::decode::role(&row.text("role")?))
        .await?
        .ok_or(StoreError::NotFound("member"))?;
    if current == role {
        return Ok(Some(current));
    }
    match organizations::change_role(tx, organization, user, current, Some(role)).await? {
        crate::MembershipChange::Done => Ok(Some(current)),
        crate::MembershipChange::LastOwner => Err(StoreError::Conflict("last owner")),
        crate::MembershipChange::Stale | crate::MembershipChange::NotFound => {
            Err(StoreError::Conflict("stale role"))
        }
    }
}

pub(crate) async fn insert(
    tx: &mut impl Write,
    link: &NewPortalLink,
    user: UserId,
) -> Result<(), StoreError> {
    // Links are of no use once expired: drop them while writing anyway.
    let expired = Query::new("DELETE FROM portal_links WHERE expires_at <= $1")
        .bind(link.created_at.unix_seconds());
    tx.execute(expired).await?;
    let query = Query::new(
        "INSERT INTO portal_links (code_sha256, organization_id, user_id, pages, return_url, \
         session_seconds, created_at, expires_at, credential_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&link.code_digest)
    .bind(link.organization.as_uuid())
    .bind(user.as_uuid())
    .bind(link.confinement.pages.as_str())
    .bind(link.confinement.return_url.as_str())
    .bind(link.session_seconds)
    .bind(link.created_at.unix_seconds())
    .bind(link.expires_at.unix_seconds())
    .bind(link.credential.as_uuid());
    tx.execute(query).await?;
    Ok(())
}

/// Marks the link redeemed if it is unused and unexpired, and its organization still live:
/// what it opens, once.
pub(crate) async fn redeem(
    tx: &mut impl Write,
    code_digest: &KeyDigest,
    now: Timestamp,
) -> Result<Option<PortalRedemption>, StoreError> {
    let query = Query::new(concat!(
        "UPDATE portal_links SET redeemed_at = $2 \
             WHERE code_sha256 = $1 AND redeemed_at IS NULL AND expires_at > $2 \
             AND EXISTS (SELECT 1 FROM credentials c WHERE c.id = portal_links.credential_id \
             AND ",
        usable_credential!(),
        ") RETURNING organization_id, user_id, pages, return_url, session_seconds, \
             credential_id"
    ))
    .bind(code_digest)
    .bind(now.unix_seconds());
    let Some(link) = tx
        .optional(query, |row| {
            Ok((
                OrganizationId::from_uuid(row.uuid("organization_id")?),
                UserId::from_uuid(row.uuid("user_id")?),
                PortalConfinement {
                    pages: row.text("pages")?,
                    return_url: row.text("return_url")?,
                },
                row.int("session_seconds")?,
                row.uuid("credential_id")?,
            ))
        })
        .await?
    else {
        return Ok(None);
    };
    let (organization, user_id, confinement, session_seconds, credential) = link;
    let query = Query::new(
        "SELECT u.email FROM users u \
         JOIN memberships m ON m.user_id = u.id AND m.organization_id = $2 \
         JOIN organizations o ON o.id = m.organization_id AND o.deleted_at IS NULL \
         WHERE u.id = $1",
    )
    .bind(user_id.as_uuid())
    .bind(organization.as_uuid());
    let email = tx
        .optional(query, |row| Ok(Email::from_trusted(row.text("email")?)))
        .await?;
    Ok(email.map(|email| PortalRedemption {
        organization,
        credential,
        user_id,
        email,
        confinement,
        session_seconds,
    }))
}
