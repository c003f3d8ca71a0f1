//! Organizations, users and memberships.

use keyward_core::{Email, ExternalId, KeyDigest, Name, OrganizationId, Role, Timestamp, UserId};

use super::{Columns, Query, Read, Write, locking};
use crate::decode::{role, timestamp};
use crate::error::conflict_on_unique;
use crate::{
    KeyChange, KeyChangeKind, MemberRecord, MembershipChange, MembershipRecord, NewOrganization,
    NewOwner, OrganizationFilter, OrganizationPolicy, OrganizationRecord, Page, Paged, StoreError,
    UserRecord,
};

pub(crate) async fn create(
    tx: &mut impl Write,
    organization: &NewOrganization,
    owner: Option<&NewOwner>,
) -> Result<(), StoreError> {
    let name_key = organization.name.as_str().to_lowercase();
    if organization.unique_name {
        let taken = Query::new(
            "SELECT 1 FROM organizations WHERE name_key = $1 AND deleted_at IS NULL AND id != $2",
        )
        .bind(name_key.as_str())
        .bind(OrganizationId::INSTALLATION.as_uuid());
        if tx.optional(taken, super::exists).await?.is_some() {
            return Err(StoreError::Conflict("organization name"));
        }
    }
    let policy = &organization.policy;
    let query = Query::new(
        "INSERT INTO organizations (id, name, name_key, created_at, external_id, \
         max_lifetime_days, require_expiry, leak_action) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(organization.id.as_uuid())
    .bind(organization.name.as_str())
    .bind(name_key)
    .bind(organization.created_at.unix_seconds())
    .bind(organization.external_id.as_ref().map(ExternalId::as_str))
    .bind(policy.max_lifetime_days.map(i64::from))
    .bind(i64::from(policy.require_expiry))
    .bind(policy.leak_action.as_str());
    tx.execute(query)
        .await
        .map_err(conflict_on_unique("organization external id"))?;
    if let Some(owner) = owner {
        let owner_id = insert_person(tx, owner, organization.created_at).await?;
        add_member(
            tx,
            organization.id,
            owner_id,
            Role::Owner,
            organization.created_at,
        )
        .await?;
    }
    Ok(())
}

/// Creates the person `owner` names, if new; their id either way.
pub(crate) async fn insert_person(
    tx: &mut impl Write,
    owner: &NewOwner,
    at: Timestamp,
) -> Result<UserId, StoreError> {
    let (id, email, password_hash, external_id, name) = match owner {
        NewOwner::Create {
            id,
            email,
            password_hash,
        } => (id, email, Some(password_hash.as_str()), None, None),
        NewOwner::Provision {
            id,
            email,
            external_id,
            name,
        } => (id, email, None, external_id.as_ref(), name.as_ref()),
        NewOwner::Existing(id) => return Ok(*id),
    };
    let query = Query::new(
        "INSERT INTO users (id, email, password_hash, created_at, external_id, name) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_uuid())
    .bind(email.as_str())
    .bind(password_hash)
    .bind(at.unix_seconds())
    .bind(external_id.map(ExternalId::as_str))
    .bind(name.map(Name::as_str));
    tx.execute(query)
        .await
        .map_err(conflict_on_unique("user"))?;
    Ok(*id)
}

/// The columns [`organization`] reads.
macro_rules! select_organizations {
    ($($tail:expr),+) => {
        concat!(
            "SELECT id, name, created_at, max_lifetime_days, require_expiry, leak_action, \
             external_id, suspended_at FROM organizations ",
            $($tail),+
        )
    };
}

fn organization(row: &dyn Columns) -> Result<OrganizationRecord, StoreError> {
    Ok(OrganizationRecord {
        id: OrganizationId::from_uuid(row.uuid("id")?),
        name: Name::from_trusted(row.text("name")?),
        created_at: timestamp(row.int("created_at")?),
        policy: policy(row)?,
        external_id: row.opt_text("external_id")?.map(ExternalId::from_trusted),
        suspended_at: row.opt_int("suspended_at")?.map(timestamp),
    })
}

fn policy(row: &dyn Columns) -> Result<OrganizationPolicy, StoreError> {
    Ok(OrganizationPolicy {
        max_lifetime_days: row
            .opt_int("max_lifetime_days")?
            .and_then(|days| u32::try_from(days).ok()),
        require_expiry: row.int("require_expiry")? != 0,
        leak_action: crate::LeakAction::parse(&row.text("leak_action")?)
            .ok_or_else(|| crate::decode::corrupt("leak action"))?,
    })
}

/// A live (not deleted) organization, the installation included (the API never asks for it).
pub(crate) async fn get(
    db: &mut impl Read,
    id: OrganizationId,
) -> Result<Option<OrganizationRecord>, StoreError> {
    let query = Query::new(select_organizations!(
        "WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id.as_uuid());
    db.optional(query, organization).await
}

/// The live organization the platform knows by `external_id`.
pub(crate) async fn find_by_external_id(
    db: &mut impl Read,
    external_id: &ExternalId,
) -> Result<Option<OrganizationRecord>, StoreError> {
    let query = Query::new(select_organizations!(
        "WHERE external_id = $1 AND deleted_at IS NULL"
    ))
    .bind(external_id.as_str());
    db.optional(query, organization).await
}

/// A page of live organizations (never the installation) that pass `filter`, newest first.
pub(crate) async fn list(
    db: &mut impl Read,
    filter: &OrganizationFilter,
    page: Page,
) -> Result<Paged<OrganizationRecord>, StoreError> {
    let prefix = filter.name_prefix.as_deref().map(str::to_lowercase);
    let query = Query::new(select_organizations!(
        "WHERE deleted_at IS NULL AND id != $1 AND ($2 IS NULL OR external_id = $2) \
         AND ($3 IS NULL OR substr(name_key, 1, length($3)) = $3) \
         AND ($4 IS NULL OR $4 = (CASE WHEN suspended_at IS NULL THEN 0 ELSE 1 END)) \
         AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
    ))
    .bind(OrganizationId::INSTALLATION.as_uuid())
    .bind(filter.external_id.as_ref().map(ExternalId::as_str))
    .bind(prefix)
    .bind(filter.suspended.map(i64::from));
    super::page(db, query, organization, page).await
}

/// The organization's policy, share-locked until the transaction ends (PostgreSQL), so that
/// a policy change waits for the credential being checked against the old one, or it sees
/// the new one.
pub(crate) async fn policy_for_insert(
    tx: &mut impl Write,
    id: OrganizationId,
) -> Result<OrganizationPolicy, StoreError> {
    let query = locking!(
        "FOR SHARE",
        "SELECT max_lifetime_days, require_expiry, leak_action FROM organizations WHERE id = $1"
    )
    .bind(id.as_uuid());
    Ok(tx.optional(query, policy).await?.unwrap_or_default())
}

/// As [`policy_for_insert`], for something about to be created in the organization: refused
/// while it is suspended (`Suspended`) or once deleted (`NotFound`). The share lock makes a
/// suspension or deletion wait for the creation, or the creation see it.
pub(crate) async fn active_policy(
    tx: &mut impl Write,
    id: OrganizationId,
) -> Result<OrganizationPolicy, StoreError> {
    let query = locking!(
        "FOR SHARE",
        "SELECT max_lifetime_days, require_expiry, leak_action, suspended_at, deleted_at \
         FROM organizations WHERE id = $1"
    )
    .bind(id.as_uuid());
    let found = tx
        .optional(query, |row| {
            Ok((
                policy(row)?,
                row.opt_int("suspended_at")?.is_some(),
                row.opt_int("deleted_at")?.is_some(),
            ))
        })
        .await?;
    match found {
        None | Some((_, _, true)) => Err(StoreError::NotFound("organization")),
        Some((_, true, _)) => Err(StoreError::Suspended),
        Some((policy, false, false)) => Ok(policy),
    }
}

/// Locks the organization's row until the transaction ends (PostgreSQL).
pub(crate) async fn lock(tx: &mut impl Write, id: OrganizationId) -> Result<(), StoreError> {
    let query =
        locking!("FOR UPDATE", "SELECT 1 FROM organizations WHERE id = $1").bind(id.as_uuid());
    tx.optional(query, super::exists).await?;
    Ok(())
}

pub(crate) async fn set_policy(
    tx: &mut impl Write,
    id: OrganizationId,
    policy: OrganizationPolicy,
) -> Result<(), StoreError> {
    let query = Query::new(
        "UPDATE organizations SET max_lifetime_days = $1, require_expiry = $2, \
         leak_action = $4 WHERE id = $3",
    )
    .bind(policy.max_lifetime_days.map(i64::from))
    .bind(i64::from(policy.require_expiry))
    .bind(id.as_uuid())
    .bind(policy.leak_action.as_str());
    tx.execute(query).await?;
    Ok(())
}

/// The `users` row.
fn user(row: &dyn Columns) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId::from_uuid(row.uuid("id")?),
        email: Email::from_trusted(row.text("email")?),
        password_hash: row.opt_text("password_hash")?,
        external_id: row.opt_text("external_id")?.map(ExternalId::from_trusted),
        created_at: timestamp(row.int("created_at")?),
    })
}

pub(crate) async fn find_user_by_email(
    db: &mut impl Read,
    email: &Email,
) -> Result<Option<UserRecord>, StoreError> {
    let query = Query::new(
        "SELECT id, email, password_hash, created_at, external_id FROM users WHERE email = $1",
    )
    .bind(email.as_str());
    db.optional(query, user).await
}

pub(crate) async fn find_user_by_external_id(
    db: &mut impl Read,
    external_id: &ExternalId,
) -> Result<Option<UserRecord>, StoreError> {
    let query = Query::new(
        "SELECT id, email, password_hash, created_at, external_id FROM users \
         WHERE external_id = $1",
    )
    .bind(external_id.as_str());
    db.optional(query, user).await
}

/// A membership joined with its organization (`organization_id`, `organization_name`,
/// `role`).
pub(crate) fn membership(row: &dyn Columns) -> Result<MembershipRecord, StoreError> {
    Ok(MembershipRecord {
        organization_id: OrganizationId::from_uuid(row.uuid("organization_id")?),
        organization_name: Name::from_trusted(row.text("organization_name")?),
        role: role(&row.text("role")?)?,
    })
}

pub(crate) async fn memberships_of(
    db: &mut impl Read,
    user: UserId,
) -> Result<Vec<MembershipRecord>, StoreError> {
    let query = Query::new(
        "SELECT o.id AS organization_id, o.name AS organization_name, m.role \
         FROM memberships m JOIN organizations o ON o.id = m.organization_id \
         WHERE m.user_id = $1 ORDER BY o.name_key",
    )
    .bind(user.as_uuid());
    db.all(query, membership).await
}

fn member(row: &dyn Columns) -> Result<MemberRecord, StoreError> {
    Ok(MemberRecord {
        user_id: UserId::from_uuid(row.uuid("id")?),
        email: Email::from_trusted(row.text("email")?),
        role: role(&row.text("role")?)?,
        joined_at: timestamp(row.int("created_at")?),
    })
}

pub(crate) async fn members(
    db: &mut impl Read,
    organization: OrganizationId,
) -> Result<Vec<MemberRecord>, StoreError> {
    let query = Query::new(
        "SELECT u.id, u.email, m.role, m.created_at \
         FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 \
         ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.email",
    )
    .bind(organization.as_uuid());
    db.all(query, member).await
}

pub(crate) async fn add_member(
    tx: &mut impl Write,
    organization: OrganizationId,
    user: UserId,
    role: Role,
    at: Timestamp,
) -> Result<(), StoreError> {
    let query = Query::new(
        "INSERT INTO memberships (organization_id, user_id, role, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(organization.as_uuid())
    .bind(user.as_uuid())
    .bind(role.as_str())
    .bind(at.unix_seconds());
    tx.execute(query).await.map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("member"),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("user"),
        _ => StoreError::from(error),
    })?;
    Ok(())
}

/// Moves a member from role `from` to `to`, or removes them when `to` is `None`, unless
/// their role is no longer `from` or the organization would be left without an owner. The
/// organization's membership rows are locked first (on PostgreSQL; SQLite has one writer),
/// so two changes cannot both pass the owner count.
pub(crate) async fn change_role(
    tx: &mut impl Write,
    organization: OrganizationId,
    user: UserId,
    from: Role,
    to: Option<Role>,
) -> Result<MembershipChange, StoreError> {
    let query = locking!(
        "FOR UPDATE",
        "SELECT user_id, role FROM memberships WHERE organization_id = $1"
    )
    .bind(organization.as_uuid());
    let roles = tx
        .all(query, |row| Ok((row.uuid("user_id")?, row.text("role")?)))
        .await?;
    let Some((_, current)) = roles.iter().find(|(id, _)| *id == user.as_uuid()) else {
        return Ok(MembershipChange::NotFound);
    };
    let current = role(current)?;
    if current != from {
        return Ok(MembershipChange::Stale);
    }
    let owners = roles.iter().filter(|(_, r)| r == "owner").count();
    if current == Role::Owner && to != Some(Role::Owner) && owners <= 1 {
        return Ok(MembershipChange::LastOwner);
    }
    let query = match to {
        Some(role) => Query::new(
            "UPDATE memberships SET role = $3 WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(organization.as_uuid())
        .bind(user.as_uuid())
        .bind(role.as_str()),
        None => Query::new("DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2")
            .bind(organization.as_uuid())
            .bind(user.as_uuid()),
    };
    tx.execute(query).await?;
    Ok(MembershipChange::Done)
}

/// Changes the organization's name and external id (the row locked by the caller).
pub(crate) async fn rename(
    tx: &mut impl Write,
    id: OrganizationId,
    name: &Name,
    external_id: Option<&ExternalId>,
) -> Result<(), StoreError> {
    let query = Query::new(
        "UPDATE organizations SET name = $1, name_key = $2, external_id = $3 WHERE id = $4",
    )
    .bind(name.as_str())
    .bind(name.as_str().to_lowercase())
    .bind(external_id.map(ExternalId::as_str))
    .bind(id.as_uuid());
    tx.execute(query)
        .await
        .map_err(conflict_on_unique("organization external id"))?;
    Ok(())
}

/// Suspends (`Some(at)`) or resumes (`None`) the organization, and has every node forget
/// its usable credentials, which are refused (or accepted again) from their next request.
/// Returns their digests, for this node to forget after the commit.
pub(crate) async fn set_suspended(
    tx: &mut impl Write,
    id: OrganizationId,
    at: Option<Timestamp>,
) -> Result<Vec<KeyDigest>, StoreError> {
    let query = Query::new("UPDATE organizations SET suspended_at = $1 WHERE id = $2")
        .bind(at.map(Timestamp::unix_seconds))
        .bind(id.as_uuid());
    tx.execute(query).await?;
    let query = Query::new(
        "SELECT id, kind, secret_sha256 FROM credentials \
         WHERE organization_id = $1 AND revoked_at IS NULL",
    )
    .bind(id.as_uuid());
    let credentials = tx.all(query, revoked).await?;
    forget_all(tx, id, &credentials, KeyChangeKind::Suspension).await?;
    Ok(credentials.into_iter().map(|c| c.digest).collect())
}

/// One credential an organization's deletion revoked.
pub(crate) struct Revoked {
    pub id: keyward_core::CredentialId,
    pub digest: KeyDigest,
}

/// Records the same change to each of the organization's `credentials`.
async fn forget_all(
    tx: &mut impl Write,
    organization: OrganizationId,
    credentials: &[Revoked],
    kind: KeyChangeKind,
) -> Result<(), StoreError> {
    for credential in credentials {
        tx.forget_on_commit(KeyChange {
            organization,
            credential: credential.id,
            digest: &credential.digest,
            kind,
        })
        .await?;
    }
    Ok(())
}

/// Reads `id`, `kind` and `secret_sha256`.
fn revoked(row: &dyn Columns) -> Result<Revoked, StoreError> {
    let kind = crate::decode::kind(&row.text("kind")?)?;
    Ok(Revoked {
        id: keyward_core::CredentialId::from_uuid(row.uuid("id")?, kind),
        digest: crate::decode::digest(row.bytes("secret_sha256")?)?,
    })
}

/// Deletes the organization (the row locked by the caller): revokes every credential it
/// holds, deletes its projects (kept, as deleted) and instances, and removes its members.
/// The audit log and webhook endpoints stay (the revocations are still sent).
pub(crate) async fn delete(
    tx: &mut impl Write,
    id: OrganizationId,
    at: Timestamp,
) -> Result<Vec<Revoked>, StoreError> {
    let revoke = Query::new(
        "UPDATE credentials SET revoked_at = $1 WHERE organization_id = $2 \
         AND revoked_at IS NULL RETURNING id, kind, secret_sha256",
    )
    .bind(at.unix_seconds())
    .bind(id.as_uuid());
    let revoked = tx.all(revoke, revoked).await?;
    forget_all(tx, id, &revoked, KeyChangeKind::Revoked).await?;
    // Every statement binds the organization as `$1`.
    for sql in [
        "DELETE FROM instances WHERE organization_id = $1",
        "DELETE FROM memberships WHERE organization_id = $1",
        "UPDATE sessions SET organization_id = NULL WHERE organization_id = $1",
    ] {
        tx.execute(Query::new(sql).bind(id.as_uuid())).await?;
    }
    for sql in [
        "UPDATE projects SET deleted_at = $2 WHERE organization_id = $1 AND deleted_at IS NULL",
        "UPDATE organizations SET deleted_at = $2 WHERE id = $1",
    ] {
        let query = Query::new(sql).bind(id.as_uuid()).bind(at.unix_seconds());
        tx.execute(query).await?;
    }
    Ok(revoked)
}
