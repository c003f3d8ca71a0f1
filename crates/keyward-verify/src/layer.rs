//! A tower layer that verifies every request's key, and the axum extractor that hands the
//! verified identity to handlers.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::{Layer, Service};

use crate::{Cidr, Identity, Refusal, Verifier};

/// Verifies the `Authorization: Bearer` key of every request with a [`Verifier`]; a refused
/// request is answered here (as Keyward's API answers it) and never reaches the service.
///
/// The client's address, which Keyward checks against a key's networks, is the TCP peer's
/// (axum's `ConnectInfo`, so serve with `into_make_service_with_connect_info`). Behind a
/// reverse proxy that peer is the proxy: list it with [`VerifyLayer::trusted_proxies`], or
/// every client would be checked as the proxy's address.
#[derive(Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
    trusted: Arc<[Cidr]>,
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            trusted: Arc::new([]),
        }
    }

    /// The reverse proxies in front of the service: from a peer in these ranges, the client
    /// is the right-most address of `X-Forwarded-For` that is not itself one of them (as
    /// Keyward's `--trusted-proxies`). A client reaching the service directly cannot choose
    /// its address by sending the header.
    pub fn trusted_proxies(mut self, ranges: impl IntoIterator<Item = Cidr>) -> Self {
        self.trusted = ranges.into_iter().collect();
        self
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
            trusted: self.trusted.clone(),
        }
    }
}

/// The service [`VerifyLayer`] makes.
#[derive(Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
    trusted: Arc<[Cidr]>,
}

impl<S> Service<Request> for VerifyService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was made ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let client_ip = client_address(&request, &self.trusted);
        Box::pin(async move {
            let key = match bearer(request.headers()) {
                Some(key) => key.to_owned(),
                None => return Ok(Refusal::MissingKey.into_response()),
            };
            match verifier.verify(&key, client_ip).await {
                Ok(identity) => {
                    request.extensions_mut().insert(Caller(identity));
                    inner.call(request).await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// The client's address: the TCP peer, or behind `trusted` proxies the address they
/// forwarded for.
fn client_address(request: &Request, trusted: &[Cidr]) -> Option<IpAddr> {
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    let forwarded = request.headers().get_all("x-forwarded-for").iter();
    Some(keyward_core::network::client_address_from_header(
        peer.ip(),
        forwarded.map(HeaderValue::as_bytes),
        trusted,
    ))
}

/// The key of an `Authorization: Bearer` header, if there is exactly one.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// Who is calling, as [`VerifyLayer`] verified it: take it in a handler, then
/// [`Identity::require`] the scope the handler needs.
#[derive(Clone, Debug)]
pub struct Caller(pub Arc<Identity>);

impl std::ops::Deref for Caller {
    type Target = Identity;
    fn deref(&self) -> &Identity {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!("a handler takes Caller on a route without VerifyLayer");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the key was not verified",
            )
        })
    }
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or_default(),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let challenge = |error: &str| format!("Bearer error=\"{error}\"");
        let (status, code, detail, challenge, retry_after) = match &self {
            Refusal::MissingKey => (
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "send a key: Authorization: Bearer <key>".to_owned(),
                Some("Bearer".to_owned()),
                None,
            ),
            Refusal::Refused { code, retry_after } => match code.as_str() {
                "ORGANIZATION_SUSPENDED" => (
                    StatusCode::FORBIDDEN,
                    "organization_suspended",
                    "the key's organization is suspended".to_owned(),
                    None,
                    None,
                ),
                "IP_NOT_ALLOWED" => (
                    StatusCode::FORBIDDEN,
                    "ip_not_allowed",
                    "this key may not be used from this address".to_owned(),
                    None,
                    None,
                ),
                "RATE_LIMITED" => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "the key's rate limit is spent for now".to_owned(),
                    None,
                    *retry_after,
                ),
                "CREDITS_EXHAUSTED" => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "credits_exhausted",
                    "the key's credits are spent".to_owned(),
                    None,
                    *retry_after,
                ),
                // NOT_FOUND, REVOKED, EXPIRED: told apart to nobody.
                _ => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the key is not valid".to_owned(),
                    Some(challenge("invalid_token")),
                    None,
                ),
            },
            Refusal::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this key lacks the {scope} scope"),
                Some(format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
                )),
                None,
            ),
            Refusal::Forbidden(reason) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                reason.clone(),
                None,
                None,
            ),
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "keys cannot be verified right now; try again shortly".to_owned(),
                None,
                Some(5),
            ),
        };
        let mut response = problem(status, code, &detail);
        if let Some(challenge) = challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bearer_header_holds_the_key() {
        let headers = |values: &[&str]| {
            let mut map = axum::http::HeaderMap::new();
            for value in values {
                map.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            }
            map
        };
        assert_eq!(bearer(&headers(&["Bearer kwk_a"])), Some("kwk_a"));
        assert_eq!(bearer(&headers(&["bearer  kwk_a "])), Some("kwk_a"));
        assert_eq!(bearer(&headers(&["Basic abc"])), None);
        assert_eq!(bearer(&headers(&["Bearer "])), None);
        assert_eq!(bearer(&headers(&["Bearer a", "Bearer b"])), None);
        assert_eq!(bearer(&headers(&[])), None);
    }

    #[test]
    fn refusals_answer_as_keywards_api_does() {
        let status = |refusal: Refusal| refusal.into_response().status().as_u16();
        assert_eq!(status(Refusal::MissingKey), 401);
        let refused = |code: &str| Refusal::Refused {
            code: code.into(),
            retry_after: Some(7),
        };
        for (code, expected) in [
            ("REVOKED", 401),
            ("NOT_FOUND", 401),
            ("EXPIRED", 401),
            ("ORGANIZATION_SUSPENDED", 403),
            ("IP_NOT_ALLOWED", 403),
            ("RATE_LIMITED", 429),
            ("CREDITS_EXHAUSTED", 429),
        ] {
            assert_eq!(status(refused(code)), expected, "{code}");
        }
        let limited = refused("RATE_LIMITED").into_response();
        assert_eq!(limited.headers()[header::RETRY_AFTER], "7");
        let scope = Refusal::InsufficientScope("things:read".into()).into_response();
        assert_eq!(scope.status(), 403);
        assert!(
            scope.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("things:read")
        );
        assert_eq!(status(Refusal::Forbidden("no".into())), 403);
        assert_eq!(status(Refusal::Unavailable), 503);
    }
}
