//! `POST /oauth/introspect`: OAuth 2.0 token introspection (RFC 7662), so that resource
//! servers and gateways that speak it can check Keyward keys without a plugin.
//!
//! The caller authenticates with a Keyward key holding `keys:verify`, like `POST
//! /v1/keys/verify`, and sends `token=<key>` (and optionally `token_type_hint`, which is
//! ignored: every Keyward credential is looked up the same way) as a form, with `client_ip`
//! (an extension parameter, §2.1) for a key limited to networks. A key of the
//! caller's organization that may be used now answers `active: true` with what it is;
//! anything else (unknown, malformed, revoked, expired, rate-limited for now, used from an
//! address outside its networks, or another organization's) answers exactly `{"active": false}`, as §2.2 asks, so the answer never
//! tells which.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::{ExternalId, Meta, Scope};
use serde::Serialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::auth::{Accept, Principal, Refusal, Verified};
use crate::error::ApiError;
use crate::extract::{ApiJson, media_type};

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(introspect))
}

/// The form an introspection request sends (`application/x-www-form-urlencoded`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct IntrospectionRequest {
    /// The key to introspect.
    #[schema(example = "kwk_yNGeILriJDLhr8P3NkdZNttxm0A3sDgP4DLnXc")]
    token: String,
    /// Accepted and ignored.
    #[schema(example = "access_token")]
    token_type_hint: Option<String>,
    /// The address the key was presented from, for a key limited to networks: without it,
    /// such a key is not active.
    #[schema(example = "192.0.2.7")]
    client_ip: Option<String>,
}

/// RFC 7662 §2.2. Only `active` is present when it is false.
#[derive(Serialize, Default, utoipa::ToSchema)]
#[schema(as = Introspection)]
pub(super) struct IntrospectionResponse {
    active: bool,
    /// The key's scopes, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "instances:read projects:read")]
    scope: Option<String>,
    /// The key's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "key_01m8dz95x5e4w8stdkzcqeqr73")]
    client_id: Option<String>,
    /// `api_key` or `project_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "api_key")]
    token_type: Option<&'static str>,
    /// When the key expires, in Unix seconds; absent for a key that does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    /// When the key was created, in Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// The organization the key acts for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "org_01m8dz95x5e4w8stdkz9nzcgw8")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "org_01m8dz95x5e4w8stdkz9nzcgw8")]
    organization_id: Option<String>,
    /// Set for project tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "prj_01m8dz968yez2sm2rg58r2payg")]
    project_id: Option<String>,
    /// The platform's id for whoever uses the key, if it gave one (an extension, §2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "user_8412")]
    external_id: Option<ExternalId>,
    /// The platform's meta on the key, if it gave any (an extension, §2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    meta: Option<Meta>,
    /// For a key with credits, what is left (introspection spends none), as the answering
    /// node knows it (other nodes' leases count as spent; an extension, §2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    credits_remaining: Option<i64>,
}

/// The `token` and `client_ip` fields of a form body.
fn fields_of(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Option<std::net::IpAddr>), ApiError> {
    let is_form = media_type(headers)
        .is_some_and(|media| media.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(ApiError::Unreadable {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            detail: "send the token as a form: Content-Type: application/x-www-form-urlencoded"
                .into(),
        });
    }
    let token = form_urlencoded::parse(body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| ApiError::Unreadable {
            status: StatusCode::BAD_REQUEST,
            detail: "the form has no `token` field".into(),
        })?;
    let client_ip = form_urlencoded::parse(body)
        .find(|(name, _)| name == "client_ip")
        .map(|(_, value)| {
            value.trim().parse().map_err(|_| ApiError::Unreadable {
                status: StatusCode::BAD_REQUEST,
                detail: "`client_ip` must be an IPv4 or IPv6 address".into(),
            })
        })
        .transpose()?;
    Ok((token, client_ip))
}

/// Introspect a key (RFC 7662)
///
/// Whether a key of the caller's organization may be used now, and what it is. Anything
/// else is `{"active": false}`. Checking a key this way counts as its use and spends its
/// rate limit, like any request made with it.
#[utoipa::path(
    post, path = "/oauth/introspect", tag = "Verification",
    request_body(content = IntrospectionRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "What the key is, if active", body = IntrospectionResponse)),
    security(("bearer" = ["keys:verify"]))
)]
pub(super) async fn introspect(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::KEYS_VERIFY)?;
    let (token, client_ip) = fields_of(&headers, &body)?;
    let outcome = state
        .verifier
        .verify(
            &token,
            client_ip,
            Accept::Organization(principal.organization_id),
        )
        .await;
    let answer = match outcome {
        Ok(Verified { credential, .. }) => IntrospectionResponse {
            active: true,
            scope: Some(state.config.scopes.joined(&credential.scopes)),
            client_id: Some(credential.id.to_string()),
            token_type: Some(credential.id.kind().as_str()),
            exp: credential.usable_until().map(|at| at.unix_seconds()),
            iat: Some(credential.created_at.unix_seconds()),
            sub: Some(credential.organization_id.to_string()),
            organization_id: Some(credential.organization_id.to_string()),
            project_id: credential.project_id.map(|p| p.to_string()),
            external_id: credential.external_id().cloned(),
            meta: credential.meta().cloned(),
            credits_remaining: credential.credits_left(),
        },
        Err(
            Refusal::Malformed(_)
            | Refusal::NotFound
            | Refusal::Revoked
            | Refusal::Expired(_)
            | Refusal::RateLimited(_)
            | Refusal::IpNotAllowed(_)
            | Refusal::Suspended,
        ) => IntrospectionResponse::default(),
        Err(other) => return Err(other.into()),
    };
    let mut response = ApiJson(answer).into_response();
    // §4: the answer must not be kept by anyone in between.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
