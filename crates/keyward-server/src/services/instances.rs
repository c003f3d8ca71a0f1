//! Instances, the resource that belongs to a project: create, list, show, delete. A project
//! token reaches only its own project's ([`Caller::reach`]): an instance of another project is
//! as absent to it as another organization's.

use keyward_core::{InstanceId, InstanceStatus, Name, ProjectId, Reach, Region};
use keyward_store::{InstanceRecord, NewInstance, Page, Paged};

use super::caller::Caller;
use super::{Conflict, ServiceError, store_error};
use crate::AppState;

/// A validated request for a new instance.
pub struct InstanceInput {
    pub project_id: ProjectId,
    pub name: Name,
    pub region: Region,
    pub status: InstanceStatus,
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: InstanceInput,
) -> Result<InstanceRecord, ServiceError> {
    if !caller.reach.allows(input.project_id) {
        return Err(ServiceError::NotFound("project"));
    }
    state
        .store
        .insert_instance(
            &caller.audit,
            NewInstance {
                id: InstanceId::generate(),
                organization_id: caller.organization_id,
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
    caller: &Caller,
    project: Option<ProjectId>,
    page: Page,
) -> Result<Paged<InstanceRecord>, ServiceError> {
    let project = match (caller.reach, project) {
        (reach, Some(asked)) if !reach.allows(asked) => {
            return Ok(Paged {
                items: Vec::new(),
                has_more: false,
            });
        }
        (Reach::Project(own), _) => Some(own),
        (Reach::Organization, asked) => asked,
    };
    Ok(state
        .store
        .list_instances(caller.organization_id, project, page)
        .await?)
}

/// The instance `id`, if the caller can reach its project (and, with `project`, if it
/// belongs to that one).
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: InstanceId,
    project: Option<ProjectId>,
) -> Result<InstanceRecord, ServiceError> {
    state
        .store
        .get_instance(caller.organization_id, id)
        .await?
        .filter(|instance| caller.reach.allows(instance.project_id))
        .filter(|instance| project.is_none_or(|asked| asked == instance.project_id))
        .ok_or(ServiceError::NotFound("instance"))
}

pub async fn delete(
    state: &AppState,
    caller: &Caller,
    id: InstanceId,
    project: Option<ProjectId>,
) -> Result<(), ServiceError> {
    let instance = get(state, caller, id, project).await?;
    if state
        .store
        .delete_instance(&caller.audit, caller.organization_id, instance.id)
        .await?
    {
        Ok(())
    } else {
        Err(ServiceError::NotFound("instance"))
    }
}
