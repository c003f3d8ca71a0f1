//! Instances, the resource that belongs to a project: create, list, show, delete. `reach` is
//! the one project a project token may touch (`None` for API keys and people): an instance
//! of another project is as absent to it as another organization's.

use keyward_core::{InstanceId, InstanceStatus, Name, OrganizationId, ProjectId, Region};
use keyward_store::{InstanceRecord, NewInstance, Page, Paged};

use super::{Conflict, ServiceError, store_error};
use crate::AppState;
use keyward_store::AuditContext;

/// A validated request for a new instance.
pub struct InstanceInput {
    pub project_id: ProjectId,
    pub name: Name,
    pub region: Region,
    pub status: InstanceStatus,
}

pub async fn create(
    state: &AppState,
    audit: &AuditContext,
    organization: OrganizationId,
    reach: Option<ProjectId>,
    input: InstanceInput,
) -> Result<InstanceRecord, ServiceError> {
    if reach.is_some_and(|own| own != input.project_id) {
        return Err(ServiceError::NotFound("project"));
    }
    state
        .store
        .insert_instance(
            audit,
            NewInstance {
                id: InstanceId::generate(),
                organization_id: organization,
                project_id: input.project_id,
                name: input.name,
                region: input.region,
                status: input.status,
                created_at: state.config.clock.now(),
            },
        )
        .await
        .map_err(store_error(Conflict::NameTaken("instance")))
}

/// Newest first, of one project (`project`) or all the caller can reach. A project token
/// asking for another project gets an empty page.
pub async fn list(
    state: &AppState,
    organization: OrganizationId,
    reach: Option<ProjectId>,
    project: Option<ProjectId>,
    page: Page,
) -> Result<Paged<InstanceRecord>, ServiceError> {
    let project = match (reach, project) {
        (Some(own), Some(asked)) if own != asked => {
            return Ok(Paged {
                items: Vec::new(),
                has_more: false,
            });
        }
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    Ok(state
        .store
        .list_instances(organization, project, page)
        .await?)
}

/// The instance `id`, if the caller can reach its project (and, with `project`, if it
/// belongs to that one).
pub async fn get(
    state: &AppState,
    organization: OrganizationId,
    reach: Option<ProjectId>,
    id: InstanceId,
    project: Option<ProjectId>,
) -> Result<InstanceRecord, ServiceError> {
    state
        .store
        .get_instance(organization, id)
        .await?
        .filter(|instance| reach.is_none_or(|own| own == instance.project_id))
        .filter(|instance| project.is_none_or(|asked| asked == instance.project_id))
        .ok_or(ServiceError::NotFound("instance"))
}

pub async fn delete(
    state: &AppState,
    audit: &AuditContext,
    organization: OrganizationId,
    reach: Option<ProjectId>,
    id: InstanceId,
    project: Option<ProjectId>,
) -> Result<(), ServiceError> {
    let instance = get(state, organization, reach, id, project).await?;
    if state
        .store
        .delete_instance(audit, organization, instance.id)
        .await?
    {
        Ok(())
    } else {
        Err(ServiceError::NotFound("instance"))
    }
}
