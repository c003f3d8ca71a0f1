//! What the API's three credential collections share once the caller is known and its scope
//! checked: `/v1/api-keys`, `/v1/admin-keys` and `/v1/projects/{project_id}/tokens` list,
//! create, show, revoke and rotate alike, through the credentials service.

use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::{CredentialId, CredentialKind, ProjectId};

use super::credential_body::{CreateCredential, CredentialListQuery, RotateCredential};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::pagination::List;
use crate::services::caller::Caller;
use crate::services::credentials::{self, CredentialView};

/// A collection: the kind of credential, and the project of a token.
#[derive(Clone, Copy)]
pub(super) struct Collection {
    pub kind: CredentialKind,
    pub project: Option<ProjectId>,
}

impl Collection {
    pub fn tokens(project: ProjectId) -> Self {
        Self {
            kind: CredentialKind::ProjectToken,
            project: Some(project),
        }
    }

    /// A credential id of this kind from a path; any other text is not found.
    pub fn parse_id(&self, raw: &str) -> Result<CredentialId, ApiError> {
        CredentialId::parse(raw, self.kind).map_err(|_| ApiError::NotFound(self.kind.label()))
    }

    /// Where a credential of the collection is.
    fn location(&self, id: CredentialId) -> String {
        match (self.kind, self.project) {
            (CredentialKind::ProjectToken, Some(project)) => {
                format!("/v1/projects/{project}/tokens/{id}")
            }
            (CredentialKind::AdminKey, _) => format!("/v1/admin-keys/{id}"),
            _ => format!("/v1/api-keys/{id}"),
        }
    }
}

pub(super) async fn list(
    state: &AppState,
    caller: &Caller,
    collection: Collection,
    query: CredentialListQuery,
) -> Result<ApiJson<List<CredentialView>>, ApiError> {
    let (filter, page) = query.parse(collection.kind, collection.project)?;
    let list = credentials::list(state, caller, &filter, page).await?;
    Ok(ApiJson(list.map(|entry| entry.view)))
}

/// 201 with the new credential, its secret shown this once.
pub(super) async fn create(
    state: &AppState,
    caller: &Caller,
    collection: Collection,
    body: CreateCredential,
) -> Result<Response, ApiError> {
    let input = body.parse(state)?;
    let created = credentials::create(
        state,
        caller,
        collection.kind,
        collection.project,
        input,
        CredentialId::generate(collection.kind),
    )
    .await?;
    let location = collection.location(created.id);
    Ok(super::created_with_secret(
        collection.kind.label(),
        location,
        created,
    ))
}

pub(super) async fn show(
    state: &AppState,
    caller: &Caller,
    collection: Collection,
    id: &str,
) -> Result<ApiJson<CredentialView>, ApiError> {
    let id = collection.parse_id(id)?;
    let view = credentials::show_with_addresses(state, caller, id, collection.project).await?;
    Ok(ApiJson(view))
}

pub(super) async fn revoke(
    state: &AppState,
    caller: &Caller,
    collection: Collection,
    id: &str,
) -> Result<StatusCode, ApiError> {
    let id = collection.parse_id(id)?;
    credentials::revoke(state, caller, id, collection.project).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 201 with the successor, its secret shown this once.
pub(super) async fn rotate(
    state: &AppState,
    caller: &Caller,
    collection: Collection,
    id: CredentialId,
    body: RotateCredential,
) -> Result<Response, ApiError> {
    let expires_at = body.expiry(state)?;
    let created = credentials::rotate(
        state,
        caller,
        id,
        collection.project,
        body.grace_seconds,
        expires_at,
    )
    .await?;
    let location = collection.location(created.id);
    Ok(super::created_with_secret(
        collection.kind.label(),
        location,
        created,
    ))
}
