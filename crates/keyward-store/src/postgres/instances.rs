//! Instances: the platform resource that belongs to a project.

use keyward_core::{InstanceId, InstanceStatus, Name, OrganizationId, ProjectId, Region};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::{corrupt, timestamp};
use crate::error::conflict_on_unique;
use crate::{InstanceRecord, NewInstance, Page, Paged, StoreError};

macro_rules! select_instances {
    ($($tail:literal)*) => {
        concat!(
            "SELECT id, organization_id, project_id, name, region, status, created_at \
             FROM instances ",
            $($tail),*
        )
    };
}

fn from_row(row: &PgRow) -> Result<InstanceRecord, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(InstanceRecord {
        id: InstanceId::from_uuid(row.try_get("id")?),
        organization_id: OrganizationId::from_uuid(row.try_get("organization_id")?),
        project_id: ProjectId::from_uuid(row.try_get("project_id")?),
        name: Name::from_trusted(row.try_get("name")?),
        region: Region::from_trusted(row.try_get("region")?),
        status: InstanceStatus::from_storage(&status).ok_or_else(|| corrupt("instance status"))?,
        created_at: timestamp(row.try_get("created_at")?),
    })
}

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    new: NewInstance,
) -> Result<InstanceRecord, StoreError> {
    // Share-lock the project: a concurrent deletion waits, or this sees it deleted.
    let project: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM projects WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL \
         FOR SHARE",
    )
    .bind(new.organization_id.as_uuid())
    .bind(new.project_id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    if project.is_none() {
        return Err(StoreError::NotFound("project"));
    }
    sqlx::query(
        "INSERT INTO instances (id, organization_id, project_id, name, name_key, region, status, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new.id.as_uuid())
    .bind(new.organization_id.as_uuid())
    .bind(new.project_id.as_uuid())
    .bind(new.name.as_str())
    .bind(new.name.as_str().to_lowercase())
    .bind(new.region.as_str())
    .bind(new.status.as_str())
    .bind(new.created_at.unix_seconds())
    .execute(&mut **tx)
    .await
    .map_err(conflict_on_unique("instance"))?;
    Ok(InstanceRecord {
        id: new.id,
        organization_id: new.organization_id,
        project_id: new.project_id,
        name: new.name,
        region: new.region,
        status: new.status,
        created_at: new.created_at,
    })
}

pub(super) async fn list(
    pool: &PgPool,
    organization: OrganizationId,
    project: Option<ProjectId>,
    page: Page,
) -> Result<Paged<InstanceRecord>, StoreError> {
    let rows = sqlx::query(select_instances!(
        "WHERE organization_id = $1 AND ($2::uuid IS NULL OR project_id = $2) "
        "AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(organization.as_uuid())
    .bind(project.map(|p| p.as_uuid()))
    .bind(page.before)
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Paged::from_rows(items, page))
}

pub(super) async fn get(
    pool: &PgPool,
    organization: OrganizationId,
    id: InstanceId,
) -> Result<Option<InstanceRecord>, StoreError> {
    sqlx::query(select_instances!("WHERE organization_id = $1 AND id = $2"))
        .bind(organization.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub(super) async fn delete(
    tx: &mut Transaction<'static, Postgres>,
    organization: OrganizationId,
    id: InstanceId,
) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM instances WHERE organization_id = $1 AND id = $2")
        .bind(organization.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() > 0)
}
