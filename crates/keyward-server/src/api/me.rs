//! `GET /v1/me`: what the presented credential is, so a user can check a key.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keyward_core::{CredentialId, CredentialKind, OrganizationId, ProjectId, Timestamp};
use serde::Serialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::auth::Authenticated;
use crate::extract::ApiJson;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(show_current_credential))
}

/// The credential a request presented.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CurrentCredential)]
pub(super) struct CurrentCredential<'a> {
    #[schema(value_type = String, example = "key_01m8dz95x5e4w8stdkzcqeqr73")]
    id: CredentialId,
    #[schema(value_type = crate::services::schema::KindName)]
    kind: CredentialKind,
    #[schema(value_type = String, example = "CI/CD Pipeline")]
    name: &'a str,
    /// Its organization; `null` for an admin key, which is the installation's.
    #[schema(value_type = Option<String>)]
    organization_id: Option<OrganizationId>,
    #[schema(value_type = Option<String>)]
    project_id: Option<ProjectId>,
    #[schema(value_type = Vec<crate::services::schema::ScopeName>)]
    scopes: Vec<&'a str>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
}

/// Describe the presented key
///
/// Needs no scope: any valid key or token may describe itself. An admin key is shown as
/// itself (kind `admin_key`, no organization), with or without `Keyward-Organization`.
#[utoipa::path(
    get, path = "/v1/me", tag = "Verification",
    responses((status = 200, description = "The presented credential", body = CurrentCredential)),
    security(("bearer" = []))
)]
pub(super) async fn show_current_credential(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Response {
    ApiJson(CurrentCredential {
        id: principal.credential_id,
        kind: principal.kind(),
        name: &principal.credential.name,
        organization_id: Some(principal.organization_id)
            .filter(|organization| !organization.is_installation()),
        project_id: principal.project_id,
        scopes: state.config.scopes.names(&principal.scopes).collect(),
        created_at: principal.created_at,
        expires_at: principal.expires_at,
    })
    .into_response()
}
