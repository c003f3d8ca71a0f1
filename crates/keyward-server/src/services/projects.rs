//! Projects: create, list, show, rename or describe, delete.

use keyward_core::{Description, Name, OrganizationId, ProjectId};
use keyward_store::{NewProject, Page, Paged, ProjectChanges, ProjectDeletion, ProjectRecord};

use super::{Conflict, ServiceError, store_error};
use crate::AppState;
use keyward_store::AuditContext;

pub async fn create(
    state: &AppState,
    audit: &AuditContext,
    organization: OrganizationId,
    name: Name,
    description: Description,
) -> Result<ProjectRecord, ServiceError> {
    state
        .store
        .insert_project(
            audit,
            NewProject {
                id: ProjectId::generate(),
                organization_id: organization,
                name,
                description: description.into_string(),
                created_at: state.config.clock.now(),
            },
        )
        .await
        .map_err(store_error(Conflict::NameTaken("project")))
}

/// Newest first; `only` (a project token's project) confines the list to one project.
pub async fn list(
    state: &AppState,
    organization: OrganizationId,
    only: Option<ProjectId>,
    page: Page,
) -> Result<Paged<ProjectRecord>, ServiceError> {
    Ok(state.store.list_projects(organization, only, page).await?)
}

/// The project `id`, if the caller can reach it (`reach`: a project token's own project).
pub async fn get(
    state: &AppState,
    organization: OrganizationId,
    id: ProjectId,
    reach: Option<ProjectId>,
) -> Result<ProjectRecord, ServiceError> {
    state
        .store
        .get_project(organization, id)
        .await?
        .filter(|project| reach.is_none_or(|own| own == project.id))
        .ok_or(ServiceError::NotFound("project"))
}

/// Renames the project or changes its description (or both).
pub async fn update(
    state: &AppState,
    audit: &AuditContext,
    organization: OrganizationId,
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
    let changes = ProjectChanges {
        name,
        description: description.map(Description::into_string),
    };
    state
        .store
        .update_project(audit, organization, id, changes, state.config.clock.now())
        .await
        .map_err(store_error(Conflict::NameTaken("project")))?
        .ok_or(ServiceError::NotFound("project"))
}

/// Deletes an empty project and revokes its tokens, which stop working on the next request.
pub async fn delete(
    state: &AppState,
    audit: &AuditContext,
    organization: OrganizationId,
    id: ProjectId,
) -> Result<(), ServiceError> {
    let outcome = state
        .store
        .delete_project(audit, organization, id, state.config.clock.now())
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
