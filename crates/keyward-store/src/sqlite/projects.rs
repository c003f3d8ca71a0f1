//! Projects. A deleted project is kept (with `deleted_at`) so that its revoked tokens keep
//! their history; it no longer appears anywhere else.

use keyward_core::{CredentialId, CredentialKind, Name, OrganizationId, ProjectId, Timestamp};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::timestamp;
use crate::error::conflict_on_unique;
use crate::{
    NewProject, Page, Paged, ProjectChanges, ProjectDeletion, ProjectRecord, RevokedToken,
    StoreError,
};

macro_rules! select_projects {
    ($($tail:literal)*) => {
        concat!(
            "SELECT id, organization_id, name, description, created_at, updated_at FROM projects ",
            $($tail),*
        )
    };
}

fn from_row(row: &SqliteRow) -> Result<ProjectRecord, StoreError> {
    Ok(ProjectRecord {
        id: ProjectId::from_uuid(row.try_get("id")?),
        organization_id: OrganizationId::from_uuid(row.try_get("organization_id")?),
        name: Name::from_trusted(row.try_get("name")?),
        description: row.try_get("description")?,
        created_at: timestamp(row.try_get("created_at")?),
        updated_at: timestamp(row.try_get("updated_at")?),
    })
}

pub(super) async fn insert(
    tx: &mut Transaction<'static, Sqlite>,
    new: NewProject,
) -> Result<ProjectRecord, StoreError> {
    sqlx::query(
        "INSERT INTO projects (id, organization_id, name, name_key, description, created_at, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )
    .bind(new.id.as_uuid())
    .bind(new.organization_id.as_uuid())
    .bind(new.name.as_str())
    .bind(new.name.as_str().to_lowercase())
    .bind(&new.description)
    .bind(new.created_at.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(conflict_on_unique("project"))?;
    Ok(ProjectRecord {
        id: new.id,
        organization_id: new.organization_id,
        name: new.name,
        description: new.description,
        created_at: new.created_at,
        updated_at: new.created_at,
    })
}

pub(super) async fn list(
    pool: &SqlitePool,
    organization: OrganizationId,
    only: Option<ProjectId>,
    page: Page,
) -> Result<Paged<ProjectRecord>, StoreError> {
    let rows = sqlx::query(select_projects!(
        "WHERE organization_id = ?1 AND deleted_at IS NULL AND (?2 IS NULL OR id = ?2) "
        "AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
    ))
    .bind(organization.as_uuid())
    .bind(only.map(|p| p.as_uuid()))
    .bind(page.before)
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Paged::from_rows(items, page))
}

pub(super) async fn get(
    pool: &SqlitePool,
    organization: OrganizationId,
    id: ProjectId,
) -> Result<Option<ProjectRecord>, StoreError> {
    sqlx::query(select_projects!(
        "WHERE organization_id = ?1 AND id = ?2 AND deleted_at IS NULL"
    ))
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(super) async fn update(
    tx: &mut Transaction<'static, Sqlite>,
    organization: OrganizationId,
    id: ProjectId,
    changes: ProjectChanges,
    at: Timestamp,
) -> Result<Option<ProjectRecord>, StoreError> {
    let name_key = changes.name.as_ref().map(|n| n.as_str().to_lowercase());
    sqlx::query(
        "UPDATE projects SET name = COALESCE(?3, name), name_key = COALESCE(?4, name_key), \
         description = COALESCE(?5, description), updated_at = ?6 \
         WHERE organization_id = ?1 AND id = ?2 AND deleted_at IS NULL",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(changes.name.as_ref().map(Name::as_str))
    .bind(name_key)
    .bind(changes.description)
    .bind(at.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(conflict_on_unique("project"))?;
    sqlx::query(select_projects!(
        "WHERE organization_id = ?1 AND id = ?2 AND deleted_at IS NULL"
    ))
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(super) async fn delete(
    tx: &mut Transaction<'static, Sqlite>,
    organization: OrganizationId,
    id: ProjectId,
    at: Timestamp,
) -> Result<ProjectDeletion, StoreError> {
    let live: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM projects WHERE organization_id = ?1 AND id = ?2 AND deleted_at IS NULL",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    if live.is_none() {
        return Ok(ProjectDeletion::NotFound);
    }
    let has_instances: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instances WHERE project_id = ?1)")
            .bind(id.as_uuid())
            .fetch_one(&mut **tx)
            .await?;
    if has_instances {
        return Ok(ProjectDeletion::HasInstances);
    }
    let tokens = sqlx::query(
        "SELECT id, secret_sha256 FROM credentials WHERE project_id = ?1 AND revoked_at IS NULL",
    )
    .bind(id.as_uuid())
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| {
        let uuid: Uuid = row.try_get("id")?;
        Ok(RevokedToken {
            id: CredentialId::from_uuid(uuid, CredentialKind::ProjectToken),
            digest: crate::decode::digest(row.try_get("secret_sha256")?)?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    sqlx::query(
        "UPDATE credentials SET revoked_at = ?1 WHERE project_id = ?2 AND revoked_at IS NULL",
    )
    .bind(at.unix_seconds())
    .bind(id.as_uuid())
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE projects SET deleted_at = ?1 WHERE id = ?2")
        .bind(at.unix_seconds())
        .bind(id.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(ProjectDeletion::Deleted {
        revoked_tokens: tokens,
    })
}
