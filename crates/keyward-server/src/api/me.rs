//! `GET /v1/me`: what the presented credential is, so a user can check a key.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keyward_core::{CredentialId, CredentialKind, OrganizationId, ProjectId, ScopeSet, Timestamp};
use serde::Serialize;

use super::ApiRoutes;
use crate::auth::Principal;
use crate::extract::ApiJson;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().route("/v1/me", get(show_current_credential))
}

#[derive(Serialize)]
struct CurrentCredential<'a> {
    id: CredentialId,
    kind: CredentialKind,
    name: &'a str,
    organization_id: OrganizationId,
    project_id: Option<ProjectId>,
    scopes: ScopeSet,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
}

/// Needs no scope: any valid credential may describe itself.
async fn show_current_credential(principal: Principal) -> Response {
    ApiJson(CurrentCredential {
        id: principal.credential_id,
        kind: principal.kind(),
        name: &principal.credential.name,
        organization_id: principal.organization_id,
        project_id: principal.project_id,
        scopes: principal.scopes,
        created_at: principal.created_at,
        expires_at: principal.expires_at,
    })
    .into_response()
}
