//! `/v1/projects/{project_id}/tokens`: project tokens (Settings > Project > Tokens).
//!
//! Managing tokens takes `tokens:read` / `tokens:write` on an organization key; a project
//! token can hold neither, so it can never create, list or revoke a credential. Tokens hold
//! only project-level scopes and act only within their project.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::Scope;

use utoipa_axum::routes;

use super::ApiRoutes;
use super::credential_body::{
    CreateCredential, CredentialListQuery, RotateCredential, UpdateCredential,
};
use super::credential_endpoints::{self as endpoints, Collection};
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::List;
use crate::services::caller::Caller;
use crate::services::credentials::{self, CreatedCredential, CredentialView};

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(list_project_tokens, create_project_token))
        .routes(routes!(
            show_project_token,
            update_project_token,
            revoke_project_token
        ))
        .routes(routes!(rotate_project_token))
}

/// List a project's tokens
#[utoipa::path(
    get, path = "/v1/projects/{project_id}/tokens", tag = "Project tokens",
    params(("project_id" = String, Path, description = "The project's id, `prj_…`"), CredentialListQuery),
    responses((status = 200, description = "A page of tokens", body = List<CredentialView>)),
    security(("bearer" = ["tokens:read"]))
)]
pub(super) async fn list_project_tokens(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(project): ApiPath<String>,
    query: Result<ApiQuery<CredentialListQuery>, ApiError>,
) -> Result<ApiJson<List<CredentialView>>, ApiError> {
    principal.require(Scope::TOKENS_READ)?;
    let ApiQuery(query) = query?;
    let tokens = Collection::tokens(super::projects::parse_id(&project)?);
    let caller = Caller::credential(&principal, &origin);
    endpoints::list(&state, &caller, tokens, query).await
}

/// Create a project token
///
/// Project-level scopes only (`instances:read`, `instances:write`, `projects:read`). The
/// answer holds the token itself, shown this once.
#[utoipa::path(
    post, path = "/v1/projects/{project_id}/tokens", tag = "Project tokens",
    params(("project_id" = String, Path, description = "The project's id, `prj_…`")),
    request_body = crate::services::schema::CreateProjectTokenSchema,
    responses((status = 201, description = "Created; the token is shown this once", body = CreatedCredential)),
    extensions(("x-keyward-grants" = json!("The key must also hold every scope it grants."))),
    security(("bearer" = ["tokens:write"]))
)]
pub(super) async fn create_project_token(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(project): ApiPath<String>,
    body: Result<ApiJson<CreateCredential>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(Scope::TOKENS_WRITE)?;
    let ApiJson(body) = body?;
    let tokens = Collection::tokens(super::projects::parse_id(&project)?);
    let caller = Caller::credential(&principal, &origin);
    endpoints::create(&state, &caller, tokens, body).await
}

/// Show a project token
#[utoipa::path(
    get, path = "/v1/projects/{project_id}/tokens/{token_id}", tag = "Project tokens",
    params(
        ("project_id" = String, Path, description = "The project's id, `prj_…`"),
        ("token_id" = String, Path, description = "The token's id, `tok_…`"),
    ),
    responses((status = 200, description = "The token", body = CredentialView)),
    security(("bearer" = ["tokens:read"]))
)]
pub(super) async fn show_project_token(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath((project, token)): ApiPath<(String, String)>,
) -> Result<ApiJson<CredentialView>, ApiError> {
    principal.require(Scope::TOKENS_READ)?;
    let tokens = Collection::tokens(super::projects::parse_id(&project)?);
    let caller = Caller::credential(&principal, &origin);
    endpoints::show(&state, &caller, tokens, &token).await
}

/// Revoke a project token
///
/// Immediate and permanent. Works for tokens of deleted projects too.
#[utoipa::path(
    delete, path = "/v1/projects/{project_id}/tokens/{token_id}", tag = "Project tokens",
    params(
        ("project_id" = String, Path, description = "The project's id, `prj_…`"),
        ("token_id" = String, Path, description = "The token's id, `tok_…`"),
    ),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = ["tokens:write"]))
)]
pub(super) async fn revoke_project_token(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath((project, token)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::TOKENS_WRITE)?;
    // The project need not be live: a token is revoked by its id even after its project is
    // deleted (the deletion revoked it already; this makes sure of it).
    let tokens = Collection::tokens(super::projects::parse_id(&project)?);
    let caller = Caller::credential(&principal, &origin);
    endpoints::revoke(&state, &caller, tokens, &token).await
}

/// Rotate a project token
///
/// A new token for the same project with the same name, scopes, rate limit and expiry,
/// shown once; the old one keeps working for `grace_seconds`, then is refused as if revoked.
#[utoipa::path(
    post, path = "/v1/projects/{project_id}/tokens/{token_id}/rotate", tag = "Project tokens",
    params(
        ("project_id" = String, Path, description = "The project's id, `prj_…`"),
        ("token_id" = String, Path, description = "The token's id, `tok_…`"),
    ),
    request_body = RotateCredential,
    responses((status = 201, description = "The new token, shown once", body = CreatedCredential)),
    extensions(("x-keyward-grants" = json!("The key must also hold every scope it grants."))),
    security(("bearer" = ["tokens:write"]))
)]
pub(super) async fn rotate_project_token(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath((project, token)): ApiPath<(String, String)>,
    body: Result<ApiJson<RotateCredential>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(Scope::TOKENS_WRITE)?;
    let tokens = Collection::tokens(super::projects::parse_id(&project)?);
    let id = tokens.parse_id(&token)?;
    let ApiJson(body) = body?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::rotate(&state, &caller, tokens, id, body).await
}

/// Rename a project token or change its rate limit
#[utoipa::path(
    patch, path = "/v1/projects/{project_id}/tokens/{token_id}", tag = "Project tokens",
    params(
        ("project_id" = String, Path, description = "The project's id, `prj_…`"),
        ("token_id" = String, Path, description = "The token's id, `tok_…`"),
    ),
    request_body = UpdateCredential,
    responses((status = 200, description = "The token as changed", body = CredentialView)),
    security(("bearer" = ["tokens:write"]))
)]
pub(super) async fn update_project_token(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath((project, token)): ApiPath<(String, String)>,
    body: Result<ApiJson<UpdateCredential>, ApiError>,
) -> Result<ApiJson<CredentialView>, ApiError> {
    principal.require(Scope::TOKENS_WRITE)?;
    let ApiJson(body) = body?;
    let tokens = Collection::tokens(super::projects::parse_id(&project)?);
    let changes = body.parse()?;
    let view = credentials::update(
        &state,
        &Caller::credential(&principal, &origin),
        tokens.parse_id(&token)?,
        tokens.project,
        changes,
    )
    .await?;
    Ok(ApiJson(view))
}
