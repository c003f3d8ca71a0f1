//! Organizations, users and memberships.

use keyward_core::{Email, Name, OrganizationId, Role, Timestamp, UserId};
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::timestamp;
use crate::error::conflict_on_unique;
use crate::{
    MemberRecord, MembershipChange, MembershipRecord, NewOrganization, NewOwner, StoreError,
    UserRecord,
};

pub(super) async fn create(
    tx: &mut Transaction<'static, Postgres>,
    organization: &NewOrganization,
    owner: &NewOwner,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO organizations (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(organization.id.as_uuid())
    .bind(organization.name.as_str())
    .bind(organization.name.as_str().to_lowercase())
    .bind(organization.created_at.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(conflict_on_unique("organization"))?;
    let owner_id = match owner {
        NewOwner::Create {
            id,
            email,
            password_hash,
        } => {
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id.as_uuid())
            .bind(email.as_str())
            .bind(password_hash)
            .bind(organization.created_at.unix_seconds())
            .execute(&mut **tx)
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

pub(super) async fn find_user_by_email(
    pool: &PgPool,
    email: &Email,
) -> Result<Option<UserRecord>, StoreError> {
    let row =
        sqlx::query("SELECT id, email, password_hash, created_at FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(pool)
            .await?;
    row.map(|row| {
        Ok(UserRecord {
            id: UserId::from_uuid(row.try_get("id")?),
            email: Email::from_trusted(row.try_get("email")?),
            password_hash: row.try_get("password_hash")?,
            created_at: timestamp(row.try_get("created_at")?),
        })
    })
    .transpose()
}

pub(super) use crate::decode::role;

pub(super) async fn memberships_of(
    pool: &PgPool,
    user: UserId,
) -> Result<Vec<MembershipRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.id, o.name, m.role FROM memberships m JOIN organizations o ON o.id = m.organization_id \
         WHERE m.user_id = $1 ORDER BY o.name_key",
    )
    .bind(user.as_uuid())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(MembershipRecord {
                organization_id: OrganizationId::from_uuid(row.try_get("id")?),
                organization_name: Name::from_trusted(row.try_get("name")?),
                role: role(&row.try_get::<String, _>("role")?)?,
            })
        })
        .collect()
}

pub(super) async fn members(
    pool: &PgPool,
    organization: OrganizationId,
) -> Result<Vec<MemberRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.id, u.email, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 \
         ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.email",
    )
    .bind(organization.as_uuid())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(MemberRecord {
                user_id: UserId::from_uuid(row.try_get("id")?),
                email: Email::from_trusted(row.try_get("email")?),
                role: role(&row.try_get::<String, _>("role")?)?,
                joined_at: timestamp(row.try_get("created_at")?),
            })
        })
        .collect()
}

pub(super) async fn add_member(
    tx: &mut Transaction<'static, Postgres>,
    organization: OrganizationId,
    user: UserId,
    role: Role,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(organization.as_uuid())
    .bind(user.as_uuid())
    .bind(role.as_str())
    .bind(at.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("member"),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("user"),
        _ => StoreError::from(error),
    })?;
    Ok(())
}

/// As the SQLite store's: refuses a stale `from` role and never removes the last owner. The
/// organization's membership rows are locked first, so two changes cannot both pass the
/// owner count.
pub(super) async fn change_role(
    tx: &mut Transaction<'static, Postgres>,
    organization: OrganizationId,
    user: UserId,
    from: Role,
    to: Option<Role>,
) -> Result<MembershipChange, StoreError> {
    let roles: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT user_id, role FROM memberships WHERE organization_id = $1 FOR UPDATE",
    )
    .bind(organization.as_uuid())
    .fetch_all(&mut **tx)
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
    match to {
        Some(role) => {
            sqlx::query(
                "UPDATE memberships SET role = $3 WHERE organization_id = $1 AND user_id = $2",
            )
            .bind(organization.as_uuid())
            .bind(user.as_uuid())
            .bind(role.as_str())
            .execute(&mut **tx)
            .await?
        }
        None => {
            sqlx::query("DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2")
                .bind(organization.as_uuid())
                .bind(user.as_uuid())
                .execute(&mut **tx)
                .await?
        }
    };
    Ok(MembershipChange::Done)
}
