//! Instances: the platform resource that belongs to a project.

use keyward_core::{InstanceId, InstanceStatus, Name, OrganizationId, ProjectId, Region};

use super::{Columns, Query, Read, Write};
use crate::decode::{corrupt, timestamp};
use crate::error::conflict_on_unique;
use crate::{InstanceRecord, NewInstance, Page, Paged, StoreError};

macro_rules! select_instances {
    ($tail:literal) => {
        concat!(
            "SELECT id, organization_id, project_id, name, region, status, created_at \
             FROM instances ",
            $tail
        )
    };
}

/// The `instances` row.
pub(crate) fn decode(row: &dyn Columns) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        id: InstanceId::from_uuid(row.uuid("id")?),
        organization_id: OrganizationId::from_uuid(row.uuid("organization_id")?),
        project_id: ProjectId::from_uuid(row.uuid("project_id")?),
        name: Name::from_trusted(row.text("name")?),
        region: Region::from_trusted(row.text("region")?),
        status: InstanceStatus::from_storage(&row.text("status")?)
            .ok_or_else(|| corrupt("instance status"))?,
        created_at: timestamp(row.int("created_at")?),
    })
}

pub(crate) async fn insert(
    tx: &mut impl Write,
    new: NewInstance,
) -> Result<InstanceRecord, StoreError> {
    if !super::projects::lock_live(tx, new.organization_id, new.project_id, false).await? {
        return Err(StoreError::NotFound("project"));
    }
    super::organizations::active_policy(tx, new.organization_id).await?;
    let query = Query::new(
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
    .bind(new.created_at.unix_seconds());
    tx.execute(query)
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

pub(crate) async fn list(
    db: &mut impl Read,
    organization: OrganizationId,
    project: Option<ProjectId>,
    page: Page,
) -> Result<Paged<InstanceRecord>, StoreError> {
    let query = Query::new(select_instances!(
        "WHERE organization_id = $1 AND ($2 IS NULL OR project_id = $2) \
         AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(organization.as_uuid())
    .bind(project.map(|p| p.as_uuid()));
    super::page(db, query, decode, page).await
}

pub(crate) async fn get(
    db: &mut impl Read,
    organization: OrganizationId,
    id: InstanceId,
) -> Result<Option<InstanceRecord>, StoreError> {
    let query = Query::new(select_instances!("WHERE organization_id = $1 AND id = $2"))
        .bind(organization.as_uuid())
        .bind(id.as_uuid());
    db.optional(query, decode).await
}

pub(crate) async fn delete(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: InstanceId,
) -> Result<bool, StoreError> {
    let query = Query::new("DELETE FROM instances WHERE organization_id = $1 AND id = $2")
        .bind(organization.as_uuid())
        .bind(id.as_uuid());
    Ok(tx.execute(query).await? > 0)
}
