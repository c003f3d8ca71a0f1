//! Organizations, users and memberships.

use keyward_core::{Email, Name, OrganizationId, Role, Timestamp, UserId};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::timestamp;
use crate::error::conflict_on_unique;
use crate::{
    MemberRecord, MembershipChange, MembershipRecord, NewOrganization, NewOwner, StoreError,
    UserRecord,
};

pub(super) async fn create(
    tx: &mut Transaction<'static, Sqlite>,
    organization: &NewOrganization,
    owner: &NewOwner,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO organizations (id, name, name_key, created_at) VALUES (?1, ?2, ?3, ?4)",
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
                "INSERT INTO users (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
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

    sqlx::query(
        "INSERT INTO memberships (organization_id, user_id, role, created_at)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .bind(organization.id.as_uuid())
    .bind(owner_id.as_uuid())
    .bind(Role::Owner.as_str())
    .bind(organization.created_at.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("user"),
        _ => StoreError::from(error),
    })?;
    Ok(())
}

pub(super) async fn find_user_by_email(
    pool: &SqlitePool,
    email: &Email,
) -> Result<Option<UserRecord>, StoreError> {
    let row =
        sqlx::query("SELECT id, email, password_hash, created_at FROM users WHERE email = ?1")
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

pub(super) async fn memberships_of(
    pool: &SqlitePool,
    user: UserId,
) -> Result<Vec<MembershipRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.id, o.name, m.role FROM memberships m JOIN organizations o ON o.id = m.organization_id \
         WHERE m.user_id = ?1 ORDER BY o.name_key",
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
    pool: &SqlitePool,
    organization: OrganizationId,
) -> Result<Vec<MemberRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.id, u.email, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = ?1 \
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

pub(super) use crate::decode::role;

pub(super) async fn add_member(
    tx: &mut Transaction<'static, Sqlite>,
    organization: OrganizationId,
    user: UserId,
    role: Role,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
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

/// Moves a member from role `from` to `role`, or removes them when `role` is `None`, unless
/// their role is no longer `from` or the organization would be left without an owner. Runs
/// inside the caller's write transaction, so nothing changes between the checks and the write.
pub(super) async fn change_role(
    tx: &mut Transaction<'static, Sqlite>,
    organization: OrganizationId,
    user: UserId,
    from: Role,
    role: Option<Role>,
) -> Result<MembershipChange, StoreError> {
    let current: Option<String> = sqlx::query_scalar(
        "SELECT role FROM memberships WHERE organization_id = ?1 AND user_id = ?2",
    )
    .bind(organization.as_uuid())
    .bind(user.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(current) = current else {
        return Ok(MembershipChange::NotFound);
    };
    let current = self::role(&current)?;
    if current != from {
        return Ok(MembershipChange::Stale);
    }
    if current == Role::Owner && role != Some(Role::Owner) {
        let owners: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE organization_id = ?1 AND role = 'owner'",
        )
        .bind(organization.as_uuid())
        .fetch_one(&mut **tx)
        .await?;
        if owners <= 1 {
            return Ok(MembershipChange::LastOwner);
        }
    }
    let statement = match role {
        Some(_) => "UPDATE memberships SET role = ?3 WHERE organization_id = ?1 AND user_id = ?2",
        None => {
            "DELETE FROM memberships WHERE organization_id = ?1 AND user_id = ?2 AND ?3 IS NULL"
        }
    };
    sqlx::query(statement)
        .bind(organization.as_uuid())
        .bind(user.as_uuid())
        .bind(role.map(Role::as_str))
        .execute(&mut **tx)
        .await?;
    Ok(MembershipChange::Done)
}
