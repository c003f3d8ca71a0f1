//! The REST API: one module per resource, each with its own `router()`, merged here with the
//! behaviour every endpoint shares (body limit, problem+json for unknown routes and methods,
//! `Cache-Control: no-store`, a 500 problem instead of a dropped connection on panic).

mod admin_keys;
mod api_keys;
mod audit_events;
mod credential_body;
mod credential_endpoints;
mod credentials_revoke;
pub(crate) mod forward_auth;
mod health;
mod identities;
mod instances;
mod introspect;
mod key_events;
mod keys_verify;
mod me;
mod members;
mod metrics;
mod openapi;
mod organization;
mod organizations;
mod portal;
mod projects;
mod scopes;
mod secret_scanning;
mod tokens;
mod usage;
mod webhooks;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::services::ServiceError;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API's routes with their OpenAPI operations. Each module's `router()` registers its
/// handlers with `routes!`, which takes a handler's path and methods from its
/// `#[utoipa::path]`: the route and its documentation are one declaration, and the
/// authorization matrix and `docs/authorization.md` read the scope each operation declares.
pub(crate) type ApiRoutes = OpenApiRouter<AppState>;

/// Registers `handler` for every method at `route` (axum's syntax: a `{*rest}` wildcard may
/// end it), with the operation its `#[utoipa::path]` (`P`) declares: for forward
/// authentication, which decides requests of any method, for any path after its prefix.
pub(crate) fn any_method<P, H, T>(routes: ApiRoutes, route: &str, handler: H) -> ApiRoutes
where
    P: utoipa::Path + for<'t> utoipa::__dev::Tags<'t>,
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    let mut routes = routes.route(route, axum::routing::any(handler));
    let mut operation = P::operation();
    // As `routes!` does: the operation's tags come apart from it.
    operation
        .tags
        .get_or_insert_with(Vec::new)
        .extend(P::tags().into_iter().map(str::to_owned));
    routes
        .get_openapi_mut()
        .paths
        .add_path_operation(P::path(), P::methods(), operation);
    routes
}

/// Every route of the API with its operation.
fn routes() -> ApiRoutes {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api_keys::router())
        .merge(admin_keys::router())
        .merge(audit_events::router())
        .merge(projects::router())
        .merge(tokens::router())
        .merge(identities::router())
        .merge(usage::router())
        .merge(instances::router())
        .merge(keys_verify::router())
        .merge(key_events::router())
        .merge(introspect::router())
        .merge(forward_auth::router())
        .merge(me::router())
        .merge(members::router())
        .merge(organization::router())
        .merge(organizations::router())
        .merge(portal::router())
        .merge(scopes::router())
        .merge(webhooks::router())
        .merge(credentials_revoke::router())
        .merge(secret_scanning::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
}

/// The operations the API declares, before the shared error answers are added.
pub(crate) fn declared_operations() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The paths (with `{placeholders}`) whose `POST` creates something: declared with a 201
/// answer and Bearer authentication. `Idempotency-Key` applies to these.
pub fn creating_paths() -> std::collections::HashSet<String> {
    openapi::creating_paths(openapi::document())
}

/// 201 with `Location`, for what a `POST` created.
pub(crate) fn created<T: serde::Serialize>(location: String, body: T) -> Response {
    (
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        ApiJson(body),
    )
        .into_response()
}

/// As [`created`], for an answer that shows `what` it created with its secret, once: an
/// idempotent retry never shows it again.
pub(crate) fn created_with_secret<T: serde::Serialize>(
    what: &'static str,
    location: String,
    body: T,
) -> Response {
    let mut response = created(location, body);
    response
        .extensions_mut()
        .insert(crate::idempotency::ShowsSecret(what));
    response
}

/// Every path the API serves, with `{placeholders}` for its parameters.
pub fn paths() -> Vec<String> {
    declared_operations().paths.paths.into_keys().collect()
}

pub(crate) use openapi::is_an_organizations;
/// The API. Every `/v1` handler starts with Bearer authentication (the `Principal`
/// extractor); health and metrics are open.
pub use openapi::{document as openapi_document, served_document};

pub fn router() -> Router<AppState> {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
}

async fn no_such_endpoint() -> ApiError {
    ApiError::NoSuchEndpoint
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    // The panic message itself is printed by the panic hook; it never reaches the client.
    ApiError::Internal("a request handler panicked".into()).into_response()
}

/// What the API answers for a service's refusal.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(fields) => Self::Validation(fields),
            ServiceError::NotFound(what) => Self::NotFound(what),
            ServiceError::Conflict(conflict) => Self::Conflict(conflict.to_string()),
            ServiceError::CannotGrant { scope } => Self::InsufficientScope {
                detail: format!(
                    "this credential cannot grant the {scope} scope, which it does not hold"
                ),
                scope,
                who: None,
            },
            ServiceError::Forbidden { message, .. } => Self::Forbidden(message),
            ServiceError::Throttled {
                message,
                retry_after_seconds,
            } => Self::Throttled {
                message,
                retry_after_seconds,
            },
            ServiceError::Store(error) => error.into(),
            ServiceError::Internal(error) => Self::Internal(error),
        }
    }
}
