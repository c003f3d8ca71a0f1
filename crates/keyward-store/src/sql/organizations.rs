//! Organizations, users and memberships.

use keyward_core::{Email, Name, OrganizationId, Role, Timestamp, UserId};

use super::{Columns, Query, Read, Write, locking};
use crate::decode::{role, timestamp};
use crate::error::conflict_on_unique;
use crate::{
    MemberRecord, MembershipChange, MembershipRecord, NewOrganization, NewOwner,
    OrganizationPolicy, OrganizationRecord, StoreError, UserRecord,
};

pub(crate) async fn create(
    tx: &mut impl Write,
    organization: &NewOrganization,
    owner: &NewOwner,
) -> Result<(), StoreError> {
    let query = Query::new(
        "INSERT INTO organizations (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(organization.id.as_uuid())
    .bind(organization.name.as_str())
    .bind(organization.name.as_str().to_lowercase())
    .bind(organization.created_at.unix_seconds());
    tx.execute(query)
        .await
        .map_err(conflict_on_unique("organization"))?;
    let owner_id = match owner {
        NewOwner::Create {
            id,
            email,
            password_hash,
        } => {
            let query = Query::new(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id.as_uuid())
            .bind(email.as_str())
            .bind(password_hash.as_str())
            .bind(organization.created_at.unix_seconds());
            tx.execute(query)
                .await
                .map_err(conflict_on_unique("user"))?;
            *id
        }
        NewOwner::Existing(id) => *id,
    };
    add_member(
        tx,
        organization.id,
        owner_id,
        Role::Owner,
        organization.created_at,
    )
    .await
}

fn organization(row: &dyn Columns) -> Result<OrganizationRecord, StoreError> {
    Ok(OrganizationRecord {
        id: OrganizationId::from_uuid(row.uuid("id")?),
        name: Name::from_trusted(row.text("name")?),
        created_at: timestamp(row.int("created_at")?),
        policy: policy(row)?,
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

pub(crate) async fn get(
    db: &mut impl Read,
    id: OrganizationId,
) -> Result<Option<OrganizationRecord>, StoreError> {
    let query = Query::new(
        "SELECT id, name, created_at, max_lifetime_days, require_expiry, leak_action \
         FROM organizations WHERE id = $1",
    )
    .bind(id.as_uuid());
    db.optional(query, organization).await
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
        password_hash: row.text("password_hash")?,
        created_at: timestamp(row.int("created_at")?),
    })
}

pub(crate) async fn find_user_by_email(
    db: &mut impl Read,
    email: &Email,
) -> Result<Option<UserRecord>, StoreError> {
    let query =
        Query::new("SELECT id, email, password_hash, created_at FROM users WHERE email = $1")
            .bind(email.as_str());
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
