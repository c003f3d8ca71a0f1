//! `/v1/admin-keys`: the installation's admin keys, held by the platform's backend. They are
//! credentials like the others (shown once, hashed, rotated, revoked on every node), managed
//! by admin keys with `admin_keys:read` / `admin_keys:write`; an admin key never grants more
//! than it holds. The first is made on the host: `keyward admin-keys create`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::{CredentialKind, Scope};

use utoipa_axum::routes;

use super::ApiRoutes;
use super::credential_body::{CreateCredential, CredentialListQuery, RotateCredential};
use super::credential_endpoints::{self as endpoints, Collection};
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::List;
use crate::services::caller::Caller;
use crate::services::credentials::{CreatedCredential, CredentialView};

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(list_admin_keys, create_admin_key))
        .routes(routes!(rotate_admin_key))
        .routes(routes!(show_admin_key, revoke_admin_key))
}

const ADMIN_KEYS: Collection = Collection {
    kind: CredentialKind::AdminKey,
    project: None,
};

/// List admin keys
///
/// The installation's admin keys, newest first; revoked and expired ones included.
#[utoipa::path(
    get, path = "/v1/admin-keys", tag = "Installation",
    params(CredentialListQuery),
    responses((status = 200, description = "A page of admin keys", body = List<CredentialView>)),
    security(("bearer" = ["admin_keys:read"]))
)]
pub(super) async fn list_admin_keys(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    query: Result<ApiQuery<CredentialListQuery>, ApiError>,
) -> Result<ApiJson<List<CredentialView>>, ApiError> {
    principal.require(Scope::ADMIN_KEYS_READ)?;
    let ApiQuery(query) = query?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::list(&state, &caller, ADMIN_KEYS, query).await
}

/// Create an admin key
///
/// The answer holds the key itself (`kwa_…`), which no other answer ever shows again. It may
/// hold installation scopes and organization scopes (which work only while it acts for an
/// organization), each of them held by the calling admin key.
#[utoipa::path(
    post, path = "/v1/admin-keys", tag = "Installation",
    request_body = CreateCredential,
    responses((status = 201, description = "Created; the key is shown this once", body = CreatedCredential)),
    extensions(("x-keyward-grants" = json!("The admin key must also hold every scope it grants."))),
    security(("bearer" = ["admin_keys:write"]))
)]
pub(super) async fn create_admin_key(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    body: Result<ApiJson<CreateCredential>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(Scope::ADMIN_KEYS_WRITE)?;
    let ApiJson(body) = body?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::create(&state, &caller, ADMIN_KEYS, body).await
}

/// Show an admin key
#[utoipa::path(
    get, path = "/v1/admin-keys/{admin_key_id}", tag = "Installation",
    params(("admin_key_id" = String, Path, description = "The admin key's id, `adk_…`")),
    responses((status = 200, description = "The admin key", body = CredentialView)),
    security(("bearer" = ["admin_keys:read"]))
)]
pub(super) async fn show_admin_key(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<CredentialView>, ApiError> {
    principal.require(Scope::ADMIN_KEYS_READ)?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::show(&state, &caller, ADMIN_KEYS, &id).await
}

/// Revoke an admin key
///
/// Immediate and permanent, on every node. Revoking a revoked key changes nothing.
#[utoipa::path(
    delete, path = "/v1/admin-keys/{admin_key_id}", tag = "Installation",
    params(("admin_key_id" = String, Path, description = "The admin key's id, `adk_…`")),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = ["admin_keys:write"]))
)]
pub(super) async fn revoke_admin_key(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::ADMIN_KEYS_WRITE)?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::revoke(&state, &caller, ADMIN_KEYS, &id).await
}

/// Rotate an admin key
///
/// A new admin key with the same name, scopes, limits and expiry, shown once; the old one
/// keeps working for `grace_seconds` (at most seven days), then is refused as if revoked.
#[utoipa::path(
    post, path = "/v1/admin-keys/{admin_key_id}/rotate", tag = "Installation",
    params(("admin_key_id" = String, Path, description = "The admin key's id, `adk_…`")),
    request_body = RotateCredential,
    responses((status = 201, description = "The new admin key, shown once", body = CreatedCredential)),
    extensions(("x-keyward-grants" = json!("The admin key must also hold every scope it grants."))),
    security(("bearer" = ["admin_keys:write"]))
)]
pub(super) async fn rotate_admin_key(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<RotateCredential>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(Scope::ADMIN_KEYS_WRITE)?;
    let id = ADMIN_KEYS.parse_id(&id)?;
    let ApiJson(body) = body?;
    let caller = Caller::credential(&principal, &origin);
    endpoints::rotate(&state, &caller, ADMIN_KEYS, id, body).await
}
