//! Projects: create, list, show, rename or describe, delete. A project token reaches only its
//! own project ([`Caller::reach`]); anything else is as absent to it as another
//! organization's.

use keyward_core::{Description, Name, ProjectId};
use keyward_store::{NewProject, Page, Paged, ProjectChanges, ProjectDeletion, ProjectRecord};

use super::caller::Caller;
use super::{Conflict, ServiceError, store_error};
use crate::AppState;

pub async fn create(
    state: &AppState,
    caller: &Caller,
    name: Name,
    description: Description,
) -> Result<ProjectRecord, ServiceError> {
    state
        .store
        .insert_project(
            &caller.audit,
            NewProject {
                id: ProjectId::generate(),
                organization_id: caller.organization_id,
                name,
                description: description.into_string(),
                created_at: state.config.clock.now(),
            },
        )
        .await
        .map_err(store_error(Conflict::NameTaken("project")))
}

/// Newest first: the organization's, or a project token's own.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    page: Page,
) -> Result<Paged<ProjectRecord>, ServiceError> {
    Ok(state
        .store
        .list_projects(caller.organization_id, caller.reach.project(), page)
        .await?)
}

/// The live project `id`, if it is within the caller's reach.
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: ProjectId,
) -> Result<ProjectRecord, ServiceError> {
    if !caller.reach.allows(id) {
        return Err(ServiceError::NotFound("project"));
    }
    state
        .store
        .get_project(caller.organization_id, id)
        .await?
        .ok_or(ServiceError::NotFound("project"))
}

/// Renames the project or changes its description (or both).
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: ProjectId,
    name: Option<Name>,
    description: Option<Description>,
) -> Result<ProjectRecord, ServiceError> {
    if name.is_none() && description.is_none() {
        return Err(ServiceError::invalid(
            "name",
            "send a new name, a new description, or both",
        ));
    }
    if !caller.reach.allows(id) {
        return Err(ServiceError::NotFound("project"));
    }
    let changes = ProjectChanges {
        name,
        description: description.map(Description::into_string),
    };
    state
        .store
        .update_project(
            &caller.audit,
            caller.organization_id,
            id,
            changes,
            state.config.clock.now(),
        )
        .await
        .map_err(store_error(Conflict::NameTaken("project")))?
        .ok_or(ServiceError::NotFound("project"))
}

/// Deletes an empty project and revokes its tokens, which stop working on the next request.
pub async fn delete(state: &AppState, caller: &Caller, id: ProjectId) -> Result<(), ServiceError> {
    if !caller.reach.allows(id) {
        return Err(ServiceError::NotFound("project"));
    }
    let outcome = state
        .store
        .delete_project(
            &caller.audit,
            caller.organization_id,
            id,
            state.config.clock.now(),
        )
        .await?;
    match outcome {
        ProjectDeletion::Deleted { revoked_tokens } => {
            for token in &revoked_tokens {
                state.verifier.invalidate(&token.digest);
            }
            Ok(())
        }
        ProjectDeletion::NotFound => Err(ServiceError::NotFound("project")),
        ProjectDeletion::HasInstances => Err(ServiceError::Conflict(Conflict::ProjectHasInstances)),
    }
}
