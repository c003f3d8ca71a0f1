//! `/v1/forward-auth`: may this request to the platform pass? Asked by a gateway (nginx
//! `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`, Envoy `ext_authz`) before it
//! forwards a request to one of the platform's services.
//!
//! The gateway sends the original request's method and URI in `X-Forwarded-Method` and
//! `X-Forwarded-Uri` (Traefik, Caddy) or `X-Original-Method` and `X-Original-URI` (the nginx
//! convention), or (Envoy's `ext_authz`) asks with the original method and the original path
//! and query after the prefix, `/v1/forward-auth/…`; it passes its `Authorization: Bearer`
//! header on. The key is verified like
//! any request's (the same cache, last use and rate limit); the first route rule that matches
//! says which scopes it needs and, if it names one, which project a project token must be
//! for. 200 carries who is calling in `Keyward-*` headers for the upstream (with the key's
//! `Keyward-External-Id` and `Keyward-Meta`, empty if it has none); a refusal is the
//! same 401, 403 or 429 (challenge, problem body, RateLimit headers) as Keyward's own API
//! gives, for the gateway to pass on.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use keyward_core::route::{ProjectSource, RouteMatch, in_a_path_as_is};
use keyward_core::{ProjectId, Reach};

use super::{ApiRoutes, any_method};
use crate::AppState;
use crate::auth::{CountedRoute, Customer, Principal};
use crate::error::ApiError;

/// What is left of a key's credits after the request, for the upstream.
const CREDITS_REMAINING: &str = "keyward-credits-remaining";

/// Where the request to decide follows, in Envoy's form.
const PREFIX: &str = "/v1/forward-auth";

pub fn router() -> ApiRoutes {
    let routes = any_method::<__path_forward_auth, _, _>(ApiRoutes::new(), PREFIX, forward_auth);
    any_method::<__path_forward_auth_by_path, _, _>(
        routes,
        "/v1/forward-auth/{*path}",
        forward_auth_by_path,
    )
}

/// The one value of header `name`: `Ok(None)` when absent, `Err` when sent more than once
/// or not as text (a gateway and the service behind it might each read another one).
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(name) {
            true => Err(unreadable(format!("send {name} once"))),
            false => Ok(None),
        };
    };
    value
        .to_str()
        .map(Some)
        .map_err(|_| unreadable(format!("{name} is not text")))
}

fn unreadable(detail: String) -> ApiError {
    ApiError::Unreadable {
        status: StatusCode::BAD_REQUEST,
        detail,
    }
}

/// The request to decide: from `X-Forwarded-Method` and `-Uri`, or `X-Original-Method` and
/// `-URI`. When both pairs are sent they must agree: a gateway sets one pair, and a client
/// must not be able to slip the other past it.
fn original(headers: &HeaderMap) -> Result<(String, &str), ApiError> {
    let forwarded = (
        single(headers, "x-forwarded-method")?,
        single(headers, "x-forwarded-uri")?,
    );
    let original = (
        single(headers, "x-original-method")?,
        single(headers, "x-original-uri")?,
    );
    let (method, uri) = match (forwarded, original) {
        ((Some(m), Some(u)), (None, None)) | ((None, None), (Some(m), Some(u))) => (m, u),
        ((Some(m), Some(u)), (Some(om), Some(ou))) if m.eq_ignore_ascii_case(om) && u == ou => {
            (m, u)
        }
        ((None, None), (None, None)) => {
            return Err(unreadable(
                "say which request to decide: X-Forwarded-Method and X-Forwarded-Uri (or \
                 X-Original-Method and X-Original-URI)"
                    .into(),
            ));
        }
        _ => {
            return Err(unreadable(
                "the X-Forwarded-* and X-Original-* headers do not describe one request".into(),
            ));
        }
    };
    Ok((method.to_ascii_uppercase(), uri))
}

/// Whether `uri`'s path is in the form the rules are matched against, so that a server
/// behind the gateway cannot resolve it into another path than the one decided on
/// (`/db/A/x/../../B` passing as A's): no `.` or `..` segment, no empty segment, no `;`
/// (`..;` is `..` to some servers), no fragment, and no percent-encoding of a character that
/// need not be encoded (`%2e`, `%2f`, `%61` …) nor of a backslash.
fn in_normal_form(uri: &str) -> bool {
    if uri.contains('#') || uri.contains('\\') {
        return false;
    }
    let path = uri.split('?').next().unwrap_or_default();
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    // One trailing slash is fine; any other empty segment (`//` included) is not.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && !segment.contains(';')
            && percent_escapes_are_needed(segment)
    })
}

/// Every `%XX` in `segment` encodes a byte that had to be encoded: none that a path carries
/// as it is (unreserved characters, and `:`, `@` and the sub-delimiters a rule's literal
/// may hold: `/v1/admin%3Apurge` must not slip past a rule for `/v1/admin:purge`), not `/`
/// and not `\`.
fn percent_escapes_are_needed(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let mut index = 0;
    while let Some(offset) = bytes[index..].iter().position(|&b| b == b'%') {
        let at = index + offset;
        let decoded = bytes
            .get(at + 1..at + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) if !(in_a_path_as_is(byte) || matches!(byte, b'/' | b'\\')) => {}
            _ => return false,
        }
        index = at + 3;
    }
    true
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
    Customer(principal): Customer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (method, uri) = original(&headers)?;
    Ok(decide(&state, &principal, &headers, &method, uri).await)
}

/// Decide, as Envoy asks
///
/// The same decision, for a gateway that asks with the original method and puts the original
/// path and query after `/v1/forward-auth` (Envoy's `ext_authz` with `path_prefix:
/// /v1/forward-auth`): `GET /v1/forward-auth/v1/databases/prj_1/t` decides `GET
/// /v1/databases/prj_1/t`. Any method; `X-Forwarded-*` and `X-Original-*` headers are
/// ignored here.
#[utoipa::path(
    method(get, post, put, patch, delete), path = "/v1/forward-auth/{path}", tag = "Verification",
    params(
        ("path" = String, Path, description = "The original path (and query), without its leading slash"),
    ),
    responses(
        (status = 200, description = "It may pass; who is calling is in the Keyward-* headers"),
        (status = 403, description = "No rule allows the request, the key lacks a scope the rule needs, or a project token names another project", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn forward_auth_by_path(
    State(state): State<AppState>,
    Customer(principal): Customer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asked = uri
        .path_and_query()
        .map_or(uri.path(), |full| full.as_str());
    let original = asked.strip_prefix(PREFIX).unwrap_or("/");
    Ok(decide(&state, &principal, &headers, method.as_str(), original).await)
}

/// Whether the key may make `method` `uri` by the route rules, spending the matched rule's
/// `cost` of its credits if it passes; counted in the key's usage under the rule's name when
/// it has one, a 403 `forbidden` as such. The answer to a gateway: 200 with the identity
/// headers, or the refusal.
pub(crate) async fn decide(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    method: &str,
    uri: &str,
) -> Response {
    match allow(state, principal, headers, method, uri).await {
        Ok(passed) => {
            let mut response = StatusCode::OK.into_response();
            // The identity headers, in one allocation.
            *response.headers_mut() = HeaderMap::with_capacity(IDENTITY_HEADERS);
            passed.write_identity(state, principal, response.headers_mut());
            if let Some(route) = passed.route {
                response.extensions_mut().insert(CountedRoute(route));
            }
            response
        }
        Err(refused) => refused,
    }
}

/// A request [`allow`] lets pass.
pub(crate) struct Passed {
    /// The matched rule's name, under which its use is counted.
    pub(crate) route: Option<Arc<str>>,
    /// What is left of its credits, when it has credits: the least of the key's and its
    /// identity's, as this node knows them.
    credits_remaining: Option<i64>,
}

/// How many headers [`Passed::write_identity`] writes at most.
pub(crate) const IDENTITY_HEADERS: usize = 7;

impl Passed {
    /// Writes who is calling into `headers` (an answer to a gateway, or the request the
    /// gateway mode passes on): the `Keyward-*` headers, each replacing any of its name. An
    /// id or scope list that makes no header value is left out, so a caller passing a
    /// request on removes any `Keyward-*` header the client sent first.
    pub(crate) fn write_identity(
        &self,
        state: &AppState,
        principal: &Principal,
        headers: &mut HeaderMap,
    ) {
        let mut set = |name: &'static str, value: Option<HeaderValue>| {
            if let Some(value) = value {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set("keyward-key-id", header_value(principal.credential_id));
        set(
            "keyward-organization-id",
            header_value(principal.organization_id),
        );
        // Always sent, empty for an organization's key: a gateway that copies only the
        // headers present (Caddy 2.6) would otherwise leave the upstream a placeholder or a
        // forged value.
        set(
            "keyward-project-id",
            match principal.project_id {
                Some(project) => header_value(project),
                None => Some(HeaderValue::from_static("")),
            },
        );
        set(
            "keyward-scopes",
            HeaderValue::try_from(state.config.scopes.joined(&principal.scopes)).ok(),
        );
        // Empty when the key has none, for the same reason as the project: Caddy 2.6 would
        // pass its placeholder's text instead (nginx sends no empty header).
        let (external_id, meta) = principal.credential.metadata_headers();
        let empty = || HeaderValue::from_static("");
        set(
            "keyward-external-id",
            Some(external_id.cloned().unwrap_or_else(empty)),
        );
        set("keyward-meta", Some(meta.cloned().unwrap_or_else(empty)));
        // Empty unless the key has credits.
        set(
            CREDITS_REMAINING,
            Some(self.credits_remaining.map_or_else(empty, HeaderValue::from)),
        );
    }
}

/// [`decide`]'s decision, without making the answer: what passed, or the refusal (with the
/// rule's name for the usage counts, as [`CountedRoute`]).
pub(crate) async fn allow(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    method: &str,
    uri: &str,
) -> Result<Passed, Response> {
    let found = state.config.routes.find(method, uri);
    let route = found.as_ref().and_then(|found| found.rule.name.clone());
    let cost = found.as_ref().map_or(1, |found| found.rule.cost);
    // What is left of the credits, or the refusal. Only a request that passes spends (a free
    // rule, cost 0, only looks); a refusal is counted by `spend_credits`.
    let decided = match judge(state, principal, headers, found, uri) {
        Ok(()) => crate::auth::spend_credits(state, &principal.credential, cost, route.as_ref())
            .await
            .map(|credited| {
                credited.map(|credited| {
                    // The gateway's request may yet go unserved (`NotServed`).
                    crate::auth::note_charges(credited.charges);
                    credited.remaining
                })
            }),
        Err(refused) => Err(refused),
    };
    // The key's verification was counted as allowed, with no route.
    let outcome = match &decided {
        Ok(_) if route.is_some() => Some("allowed"),
        Err(ApiError::Forbidden(_)) => Some("forbidden"),
        // Counted by `every_request`, as every scope refusal is.
        _ => None,
    };
    if let Some(outcome) = outcome {
        state.verifier.usage_counts().reclassify(
            principal.credential_id,
            outcome,
            route.as_ref(),
            state.config.clock.now(),
        );
    }
    match decided {
        Ok(credits_remaining) => Ok(Passed {
            route,
            credits_remaining,
        }),
        Err(refused) => {
            let mut response = refused.into_response();
            if let Some(route) = route {
                response.extensions_mut().insert(CountedRoute(route));
            }
            Err(response)
        }
    }
}

/// Whether the key may make the request `found` matched (`None`: no rule did) to `uri`.
fn judge(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    found: Option<RouteMatch<'_, '_>>,
    uri: &str,
) -> Result<(), ApiError> {
    if !in_normal_form(uri) {
        return Err(ApiError::Forbidden(
            "the path is not in normal form (dot or empty segments, `;`, a fragment, or \
             needless percent-encoding)",
        ));
    }
    let Some(found) = found else {
        return Err(ApiError::Forbidden("no route rule allows this request"));
    };
    if !found.rule.satisfiable {
        return Err(ApiError::Forbidden(
            "the route rule needs a scope the configuration does not define",
        ));
    }
    let catalog = &state.config.scopes;
    for scope in found.rule.scopes.iter() {
        principal.require_in(scope, catalog)?;
    }
    // Confined to one project, a credential passes only for the project the request names;
    // an organization's reaches them all (the service checks the project's organization).
    let reach = principal.reach();
    if let (Some(source), Reach::Project(_)) = (&found.rule.project, reach) {
        let named = match source {
            ProjectSource::Capture(name) => found
                .captures
                .iter()
                .find(|(captured, _)| captured == name)
                .map(|(_, value)| *value),
            ProjectSource::Header(name) => single(headers, name)?,
        };
        let named = named.and_then(|raw| ProjectId::parse(raw).ok());
        if !named.is_some_and(|project| reach.allows(project)) {
            return Err(ApiError::Forbidden(
                "this project token is for another project",
            ));
        }
    }

    Ok(())
}

/// `value`'s text as a header value: written on the stack and copied once (ids and
/// addresses are short), or through a `String` when it is longer than that. (`value`'s
/// `Display` must pass write errors on, as the standard ones and Keyward's ids do: one that
/// swallowed the buffer's "full" would be cut at 64 bytes.)
pub(crate) fn header_value(value: impl std::fmt::Display) -> Option<HeaderValue> {
    use std::io::Write as _;
    let mut written = std::io::Cursor::new([0u8; 64]);
    if write!(written, "{value}").is_ok() {
        let length = usize::try_from(written.position()).unwrap_or_default();
        return HeaderValue::from_bytes(&written.get_ref()[..length]).ok();
    }
    HeaderValue::try_from(value.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::header_value;

    #[test]
    fn header_values_are_written_whole_however_long() {
        let address: std::net::IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        assert_eq!(
            header_value(address).unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        for length in [0, 63, 64, 65, 200] {
            let text = "k".repeat(length);
            assert_eq!(header_value(&text).unwrap(), text.as_str(), "{length}");
        }
        assert!(header_value("line\nbreak").is_none());
    }
}
