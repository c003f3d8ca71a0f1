//! `/v1/api-keys`: the organization's API keys (Settings > API Keys).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::{CredentialKind, Scope};

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
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(rotate_api_key))
        .routes(routes!(show_api_key, update_api_key, revoke_api_key))
}

const API_KEYS: Collection = Collection {
    kind: CredentialKind::ApiKey,
    project: None,
};

/// List API keys
///
/// The organization's API keys, newest first; revoked and expired ones included. With
/// `external_id`, only the keys the platform gave that id.
#[utoipa::path(
    get, path = "/v1/api-keys", tag = "API keys",
    params(CredentialListQuery),
    responses((status = 200, description = "A page of keys", body = List<CredentialView>)),
    security(("bearer" = ["api_keys:read"]))
)]
pub(super) async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    query: Result<ApiQuery<CredentialListQuery>, ApiError>,
) -> Result<ApiJson<List<CredentialView>>, ApiError> {
    principal.require(Scope::API_KEYS_READ)?;
    let ApiQuery(query) = query?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::list(&state, &caller, API_KEYS, query).await
}

/// Create an API key
///
/// The answer holds the key itself, which no other answer ever shows again.
#[utoipa::path(
    post, path = "/v1/api-keys", tag = "API keys",
    request_body = CreateCredential,
    responses((status = 201, description = "Created; the key is shown this once", body = CreatedCredential)),
    extensions(("x-keyward-grants" = json!("The key must also hold every scope it grants."))),
    security(("bearer" = ["api_keys:write"]))
)]
pub(super) async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    body: Result<ApiJson<CreateCredential>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(Scope::API_KEYS_WRITE)?;
    let ApiJson(body) = body?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::create(&state, &caller, API_KEYS, body).await
}

/// Show an API key
#[utoipa::path(
    get, path = "/v1/api-keys/{key_id}", tag = "API keys",
    params(("key_id" = String, Path, description = "The key's id, `key_…`")),
    responses((status = 200, description = "The key", body = CredentialView)),
    security(("bearer" = ["api_keys:read"]))
)]
pub(super) async fn show_api_key(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<CredentialView>, ApiError> {
    principal.require(Scope::API_KEYS_READ)?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::show(&state, &caller, API_KEYS, &id).await
}

/// Revoke an API key
///
/// Immediate and permanent: the key's next request gets 401. Revoking a revoked key changes
/// nothing.
#[utoipa::path(
    delete, path = "/v1/api-keys/{key_id}", tag = "API keys",
    params(("key_id" = String, Path, description = "The key's id, `key_…`")),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = ["api_keys:write"]))
)]
pub(super) async fn revoke_api_key(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::API_KEYS_WRITE)?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::revoke(&state, &caller, API_KEYS, &id).await
}

/// Rotate an API key
///
/// A new key with the same name, scopes, rate limit and expiry, shown once in the answer;
/// the old one keeps working for `grace_seconds`, then is refused as if revoked. Lists show
/// the old one's `rotation` and the new one's `rotated_from`.
#[utoipa::path(
    post, path = "/v1/api-keys/{key_id}/rotate", tag = "API keys",
    params(("key_id" = String, Path, description = "The key's id, `key_…`")),
    request_body = RotateCredential,
    responses((status = 201, description = "The new key, shown once", body = CreatedCredential)),
    extensions(("x-keyward-grants" = json!("The key must also hold every scope it grants."))),
    security(("bearer" = ["api_keys:write"]))
)]
pub(super) async fn rotate_api_key(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<RotateCredential>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(Scope::API_KEYS_WRITE)?;
    let id = API_KEYS.parse_id(&id)?;
    let ApiJson(body) = body?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::rotate(&state, &caller, API_KEYS, id, body).await
}

/// Rename an API key or change its rate limit
///
/// The key's next request sees the change.
#[utoipa::path(
    patch, path = "/v1/api-keys/{key_id}", tag = "API keys",
    params(("key_id" = String, Path, description = "The key's id, `key_…`")),
    request_body = UpdateCredential,
    responses((status = 200, description = "The key as changed", body = CredentialView)),
    security(("bearer" = ["api_keys:write"]))
)]
pub(super) async fn update_api_key(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<UpdateCredential>, ApiError>,
) -> Result<ApiJson<CredentialView>, ApiError> {
    principal.require(Scope::API_KEYS_WRITE)?;
    let ApiJson(body) = body?;
    let changes = body.parse()?;
    let view = credentials::update(
        &state,
        &Caller::credential(&principal, &origin),
        API_KEYS.parse_id(&id)?,
        None,
        changes,
    )
    .await?;
    Ok(ApiJson(view))
}
