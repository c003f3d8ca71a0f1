//! `/v1/forward-auth`: may this request to the platform pass? Asked by a gateway (nginx
//! `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`, Envoy `ext_authz`) before it
//! forwards a request to one of the platform's services.
//!
//! The gateway sends the original request's method and URI in `X-Forwarded-Method` and
//! `X-Forwarded-Uri` (Traefik, Caddy) or `X-Original-Method` and `X-Original-URI` (the nginx
//! convention), and passes its `Authorization: Bearer` header on. The key is verified like
//! any request's (the same cache, last use and rate limit); the first route rule that matches
//! says which scopes it needs and, if it names one, which project a project token must be
//! for. 200 carries who is calling in `Keyward-*` headers for the upstream; a refusal is the
//! same 401, 403 or 429 (challenge, problem body, RateLimit headers) as Keyward's own API
//! gives, for the gateway to pass on.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use keyward_core::ProjectId;
use keyward_core::route::ProjectSource;

use super::ApiRoutes;
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().route("/v1/forward-auth", any(forward_auth))
}

/// The first of `names` the request has, as text.
fn header<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|value| value.to_str().ok())
}

/// Whether `uri`'s path is in the form the rules are matched against: no `.` or `..`
/// segment and no encoded slash or backslash, which a server behind the gateway might
/// resolve into another path than the one decided on (`/db/A/x/../../B` passing as A's).
fn in_normal_form(uri: &str) -> bool {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    path.split('/').all(|segment| {
        let lower = segment.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        dots != "."
            && dots != ".."
            && !lower.contains("%2f")
            && !lower.contains("%5c")
            && !lower.contains('\\')
    })
}

/// Decide
///
/// Whether the request a gateway describes may pass, by the route rules of the configuration
/// file. Any method.
#[utoipa::path(
    method(get, post, put, patch, delete), path = "/v1/forward-auth", tag = "Verification",
    params(
        ("X-Forwarded-Method" = Option<String>, Header, description = "The original method (or X-Original-Method)"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "The original path and query (or X-Original-URI)"),
    ),
    responses(
        (status = 200, description = "It may pass; who is calling is in the Keyward-* headers"),
        (status = 403, description = "No rule allows the request, the key lacks a scope the rule needs, or a project token names another project", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn forward_auth(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let method = header(&headers, &["x-forwarded-method", "x-original-method"]);
    let uri = header(&headers, &["x-forwarded-uri", "x-original-uri"]);
    let (Some(method), Some(uri)) = (method, uri) else {
        return Err(ApiError::Unreadable {
            status: StatusCode::BAD_REQUEST,
            detail: "say which request to decide: X-Forwarded-Method and X-Forwarded-Uri \
                     (or X-Original-Method and X-Original-URI)"
                .into(),
        });
    };
    let method = method.to_ascii_uppercase();
    if !in_normal_form(uri) {
        return Err(ApiError::Forbidden(
            "the path has dot segments or encoded slashes; send it in normal form",
        ));
    }
    let Some(found) = state.config.routes.find(&method, uri) else {
        return Err(ApiError::Forbidden("no route rule allows this request"));
    };
    for scope in found.rule.scopes.iter() {
        principal.require(scope)?;
    }
    if let (Some(source), Some(own)) = (&found.rule.project, principal.project_id) {
        let named = match source {
            ProjectSource::Capture(name) => found
                .captures
                .iter()
                .find(|(captured, _)| captured == name)
                .map(|(_, value)| *value),
            ProjectSource::Header(name) => header(&headers, &[name.as_str()]),
        };
        if named.and_then(|raw| ProjectId::parse(raw).ok()) != Some(own) {
            return Err(ApiError::Forbidden(
                "this project token is for another project",
            ));
        }
    }

    let mut response = StatusCode::OK.into_response();
    let identity = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::try_from(value) {
            identity.insert(HeaderName::from_static(name), value);
        }
    };
    set("keyward-key-id", principal.credential_id.to_string());
    set(
        "keyward-organization-id",
        principal.organization_id.to_string(),
    );
    if let Some(project) = principal.project_id {
        set("keyward-project-id", project.to_string());
    }
    set(
        "keyward-scopes",
        principal
            .scopes
            .iter()
            .map(|scope| scope.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    );
    Ok(response)
}
