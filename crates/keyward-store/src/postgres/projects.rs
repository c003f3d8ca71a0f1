//! Projects. Deleting one locks its row, so an instance cannot be added meanwhile, and
//! revokes its tokens (notifying every node) in the same transaction.

use keyward_core::{CredentialId, CredentialKind, Name, OrganizationId, ProjectId, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::credentials::notify;
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

fn from_row(row: &PgRow) -> Result<ProjectRecord, StoreError> {
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
    tx: &mut Transaction<'static, Postgres>,
    new: NewProject,
) -> Result<ProjectRecord, StoreError> {
    sqlx::query(
        "INSERT INTO projects (id, organization_id, name, name_key, description, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
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
    pool: &PgPool,
    organization: OrganizationId,
    only: Option<ProjectId>,
    page: Page,
) -> Result<Paged<ProjectRecord>, StoreError> {
    let rows = sqlx::query(select_projects!(
        "WHERE organization_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id = $2) "
        "AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
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

pub(super) async fn get<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    organization: OrganizationId,
    id: ProjectId,
) -> Result<Option<ProjectRecord>, StoreError> {
    sqlx::query(select_projects!(
        "WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(executor)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(super) async fn update(
    tx: &mut Transaction<'static, Postgres>,
    organization: OrganizationId,
    id: ProjectId,
    changes: ProjectChanges,
    at: Timestamp,
) -> Result<Option<ProjectRecord>, StoreError> {
    let name_key = changes.name.as_ref().map(|n| n.as_str().to_lowercase());
    sqlx::query(
        "UPDATE projects SET name = COALESCE($3, name), name_key = COALESCE($4, name_key), \
         description = COALESCE($5, description), updated_at = $6 \
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL",
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
    get(&mut **tx, organization, id).await
}

pub(super) async fn delete(
    tx: &mut Transaction<'static, Postgres>,
    organization: OrganizationId,
    id: ProjectId,
    at: Timestamp,
) -> Result<ProjectDeletion, StoreError> {
    let live: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM projects WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL \
         FOR UPDATE",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    if live.is_none() {
        return Ok(ProjectDeletion::NotFound);
    }
    let has_instances: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instances WHERE project_id = $1)")
            .bind(id.as_uuid())
            .fetch_one(&mut **tx)
            .await?;
    if has_instances {
        return Ok(ProjectDeletion::HasInstances);
    }
    let rows = sqlx::query(
        "UPDATE credentials SET revoked_at = $1 WHERE project_id = $2 AND revoked_at IS NULL \
         RETURNING id, secret_sha256",
    )
    .bind(at.unix_seconds())
    .bind(id.as_uuid())
    .fetch_all(&mut **tx)
    .await?;
    let mut revoked_tokens = Vec::with_capacity(rows.len());
    for row in &rows {
        let uuid: Uuid = row.try_get("id")?;
        let token = RevokedToken {
            id: CredentialId::from_uuid(uuid, CredentialKind::ProjectToken),
            digest: crate::decode::digest(row.try_get("secret_sha256")?)?,
        };
        notify(tx, &token.digest).await?;
        revoked_tokens.push(token);
    }
    sqlx::query("UPDATE projects SET deleted_at = $1 WHERE id = $2")
        .bind(at.unix_seconds())
        .bind(id.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(ProjectDeletion::Deleted { revoked_tokens })
}
