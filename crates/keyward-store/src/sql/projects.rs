//! Projects. A deleted project is kept (with `deleted_at`) so that its revoked tokens keep
//! their history; it no longer appears anywhere else. Deleting one locks its row, so that an
//! instance or a token cannot be added meanwhile, and revokes its tokens in the same
//! transaction.

use keyward_core::{CredentialId, CredentialKind, Name, OrganizationId, ProjectId, Timestamp};

use super::{Columns, Query, Read, Write, locking};
use crate::decode::{self, timestamp};
use crate::error::conflict_on_unique;
use crate::{
    KeyChange, KeyChangeKind, NewProject, Page, Paged, ProjectChanges, ProjectDeletion,
    ProjectRecord, RevokedToken, StoreError,
};

macro_rules! select_projects {
    ($tail:literal) => {
        concat!(
            "SELECT id, organization_id, name, description, created_at, updated_at FROM projects ",
            $tail
        )
    };
}

/// The `projects` row.
pub(crate) fn decode(row: &dyn Columns) -> Result<ProjectRecord, StoreError> {
    Ok(ProjectRecord {
        id: ProjectId::from_uuid(row.uuid("id")?),
        organization_id: OrganizationId::from_uuid(row.uuid("organization_id")?),
        name: Name::from_trusted(row.text("name")?),
        description: row.text("description")?,
        created_at: timestamp(row.int("created_at")?),
        updated_at: timestamp(row.int("updated_at")?),
    })
}

pub(crate) async fn insert(
    tx: &mut impl Write,
    new: NewProject,
) -> Result<ProjectRecord, StoreError> {
    super::organizations::active_policy(tx, new.organization_id).await?;
    let query = Query::new(
        "INSERT INTO projects (id, organization_id, name, name_key, description, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(new.id.as_uuid())
    .bind(new.organization_id.as_uuid())
    .bind(new.name.as_str())
    .bind(new.name.as_str().to_lowercase())
    .bind(new.description.as_str())
    .bind(new.created_at.unix_seconds());
    tx.execute(query)
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

pub(crate) async fn list(
    db: &mut impl Read,
    organization: OrganizationId,
    only: Option<ProjectId>,
    page: Page,
) -> Result<Paged<ProjectRecord>, StoreError> {
    let query = Query::new(select_projects!(
        "WHERE organization_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR id = $2) \
         AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(organization.as_uuid())
    .bind(only.map(|p| p.as_uuid()));
    super::page(db, query, decode, page).await
}

pub(crate) async fn get(
    db: &mut impl Read,
    organization: OrganizationId,
    id: ProjectId,
) -> Result<Option<ProjectRecord>, StoreError> {
    let query = Query::new(select_projects!(
        "WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL"
    ))
    .bind(organization.as_uuid())
    .bind(id.as_uuid());
    db.optional(query, decode).await
}

pub(crate) async fn update(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: ProjectId,
    changes: ProjectChanges,
    at: Timestamp,
) -> Result<Option<ProjectRecord>, StoreError> {
    let name_key = changes.name.as_ref().map(|n| n.as_str().to_lowercase());
    let query = Query::new(
        "UPDATE projects SET name = COALESCE($3, name), name_key = COALESCE($4, name_key), \
         description = COALESCE($5, description), updated_at = $6 \
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(changes.name.as_ref().map(Name::as_str))
    .bind(name_key)
    .bind(changes.description)
    .bind(at.unix_seconds());
    tx.execute(query)
        .await
        .map_err(conflict_on_unique("project"))?;
    get(tx, organization, id).await
}

/// Whether the project is live, locking its row until the transaction ends: `FOR UPDATE`
/// to delete it, `FOR SHARE` to add something to it (a deletion then waits, or this sees the
/// project deleted).
pub(crate) async fn lock_live(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: ProjectId,
    exclusive: bool,
) -> Result<bool, StoreError> {
    let query = if exclusive {
        locking!(
            "FOR UPDATE",
            "SELECT 1 FROM projects WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL"
        )
    } else {
        locking!(
            "FOR SHARE",
            "SELECT 1 FROM projects WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL"
        )
    };
    let query = query.bind(organization.as_uuid()).bind(id.as_uuid());
    Ok(tx.optional(query, super::exists).await?.is_some())
}

pub(crate) async fn delete(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: ProjectId,
    at: Timestamp,
) -> Result<ProjectDeletion, StoreError> {
    if !lock_live(tx, organization, id, true).await? {
        return Ok(ProjectDeletion::NotFound);
    }
    let instances =
        Query::new("SELECT 1 FROM instances WHERE project_id = $1 LIMIT 1").bind(id.as_uuid());
    if tx.optional(instances, super::exists).await?.is_some() {
        return Ok(ProjectDeletion::HasInstances);
    }
    let revoke = Query::new(
        "UPDATE credentials SET revoked_at = $1 WHERE project_id = $2 AND revoked_at IS NULL \
         RETURNING id, secret_sha256",
    )
    .bind(at.unix_seconds())
    .bind(id.as_uuid());
    let revoked_tokens = tx.all(revoke, revoked_token).await?;
    for token in &revoked_tokens {
        tx.forget_on_commit(KeyChange {
            organization,
            credential: token.id,
            digest: &token.digest,
            kind: KeyChangeKind::Revoked,
        })
        .await?;
    }
    let delete =
        Query::new("UPDATE projects SET deleted_at = $1 WHERE id = $2").bind(at.unix_seconds());
    tx.execute(delete.bind(id.as_uuid())).await?;
    Ok(ProjectDeletion::Deleted { revoked_tokens })
}

fn revoked_token(row: &dyn Columns) -> Result<RevokedToken, StoreError> {
    Ok(RevokedToken {
        id: CredentialId::from_uuid(row.uuid("id")?, CredentialKind::ProjectToken),
        digest: decode::digest(row.bytes("secret_sha256")?)?,
    })
}
