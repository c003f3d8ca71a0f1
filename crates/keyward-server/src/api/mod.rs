//! The REST API: one module per resource, each with its own `router()`, merged here with the
//! behaviour every endpoint shares (body limit, problem+json for unknown routes and methods,
//! `Cache-Control: no-store`, a 500 problem instead of a dropped connection on panic).

mod api_keys;
mod audit_events;
mod credential_body;
mod credentials_revoke;
mod forward_auth;
mod health;
mod instances;
mod introspect;
mod keys_verify;
mod me;
mod members;
mod metrics;
mod openapi;
mod organization;
mod projects;
pub(crate) mod schema;
mod scopes;
mod secret_scanning;
mod tokens;
mod webhooks;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tower_http::catch_panic::CatchPanicLayer;

use crate::AppState;
use crate::error::ApiError;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API's routes, recorded as they are added, so that [`paths`] lists exactly what the
/// router serves (the authorization matrix test walks it).
pub(crate) struct ApiRoutes {
    router: Router<AppState>,
    paths: Vec<String>,
}

impl ApiRoutes {
    pub(crate) fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    /// Adds a route; [`paths`] lists it as OpenAPI writes it (`{*rest}` as `{rest}`).
    pub(crate) fn route(mut self, path: &'static str, methods: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, methods);
        self.paths.push(path.replace("{*", "{"));
        self
    }

    fn merge(mut self, other: ApiRoutes) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.extend(other.paths);
        self
    }
}

fn routes() -> (ApiRoutes, ApiRoutes) {
    let v1 = ApiRoutes::new()
        .merge(api_keys::router())
        .merge(audit_events::router())
        .merge(projects::router())
        .merge(tokens::router())
        .merge(instances::router())
        .merge(keys_verify::router())
        .merge(introspect::router())
        .merge(forward_auth::router())
        .merge(me::router())
        .merge(members::router())
        .merge(organization::router())
        .merge(scopes::router())
        .merge(webhooks::router())
        .merge(credentials_revoke::router())
        .merge(secret_scanning::router());
    let open = health::router()
        .merge(metrics::router())
        .merge(openapi::router());
    (v1, open)
}

/// Every path the API serves, with `{placeholders}` for its parameters.
pub fn paths() -> Vec<String> {
    let (v1, health) = routes();
    v1.paths.into_iter().chain(health.paths).collect()
}

/// The API. Every `/v1` handler starts with Bearer authentication (the `Principal`
/// extractor); health and metrics are open.
pub use credentials_revoke::REPORTS_PER_ADDRESS;
pub use openapi::{document as openapi_document, served_document};

pub fn router() -> Router<AppState> {
    let (v1, open) = routes();
    Router::new()
        .merge(v1.router)
        .merge(open.router)
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
