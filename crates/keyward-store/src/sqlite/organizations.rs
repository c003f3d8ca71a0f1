//! Organizations, users and memberships.

use keyward_core::{Email, Role, UserId};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::timestamp;
use crate::error::conflict_on_unique;
use crate::{NewOrganization, NewOwner, StoreError, UserRecord};

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
