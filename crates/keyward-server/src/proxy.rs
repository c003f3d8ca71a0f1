//! Gateway mode: a node that also serves a protected API on a listen address of its own,
//! forwarding to one upstream (`[proxy]`).
//!
//! Each request is decided as `/v1/forward-auth` decides (the same cache, route rules, scopes,
//! project confinement, rate limits, credits and usage counts), with its own method and path.
//! A request that may pass is streamed to the upstream with the identity headers
//! (`Keyward-Key-Id`, …) in place of any the client sent, without `Authorization` (unless
//! kept) and without hop-by-hop headers; the answer streams back. A refusal is Keyward's own
//! answer (401, 403, 429), and the upstream never sees the request. An upstream that cannot
//! be reached is 502 `bad_gateway`; one that does not answer within the timeout, 504
//! `gateway_timeout`; a body over the limit, 413. Connections to the upstream are HTTP/1.1,
//! kept alive in a pool ([`pool`]).

mod pool;
mod threads;

pub(crate) use threads::Threads;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::uri::{PathAndQuery, Uri};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::Accept;
use crate::error::ApiError;

/// How the gateway reaches its upstream, and what it lets through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `http://host:port`, optionally with a path prefix put before every request's path.
    pub upstream: Upstream,
    /// How long the upstream has to connect and send its answer's head, and between two
    /// parts of an answer's body.
    pub timeout: Duration,
    /// The largest request body passed on; larger is 413.
    pub max_body_bytes: u64,
    /// Pass the client's `Authorization` header on (it is removed by default: the upstream
    /// gets who is calling in the `Keyward-*` headers, and never the key).
    pub keep_authorization: bool,
    /// Threads serving the gateway's connections, each with an event loop and an upstream
    /// pool of its own (see [`threads`]).
    pub threads: usize,
}

impl ProxyConfig {
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            timeout: Duration::from_secs(30),
            max_body_bytes: 10 * 1024 * 1024,
            keep_authorization: false,
            threads: default_threads(),
        }
    }
}

/// One gateway thread per CPU the process may use (1 if that is unknown).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// An upstream's base URL: `http`, an authority, and a path prefix without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    authority: axum::http::uri::Authority,
    prefix: String,
    /// The `Host` the upstream is sent: the URL's authority.
    host: HeaderValue,
}

impl Upstream {
    /// Parses `http://host:port[/prefix]`; TLS to the upstream is not spoken (it runs next
    /// to the gateway, or behind its own).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("{url:?} is not a URL (http://host:port)"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("the upstream is reached over plain http (http://host:port)".into());
            }
            _ => return Err(format!("{url:?} is not an http:// URL")),
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("{url:?} names no host"))?;
        if authority.as_str().contains('@') {
            return Err("the upstream URL may not carry credentials".into());
        }
        if uri.query().is_some() {
            return Err("the upstream URL may not have a query".into());
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        // As clients write it: without the scheme's default port.
        let host = match authority.port_u16() {
            Some(80) => authority.host(),
            _ => authority.as_str(),
        };
        let host =
            HeaderValue::try_from(host).map_err(|_| format!("{url:?} names no usable host"))?;
        Ok(Self {
            authority,
            prefix,
            host,
        })
    }

    /// The request target sent upstream: `path_and_query` after the prefix, in origin form.
    fn uri_for(&self, path_and_query: &PathAndQuery) -> Result<Uri, axum::http::Error> {
        let target = if self.prefix.is_empty() {
            path_and_query.clone()
        } else {
            PathAndQuery::try_from(format!("{}{path_and_query}", self.prefix))?
        };
        Ok(Uri::from(target))
    }

    /// `host:port`, the address connected to.
    fn address(&self) -> String {
        match self.authority.port() {
            Some(_) => self.authority.to_string(),
            None => format!("{}:80", self.authority),
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}

/// The gateway's state: the node's, and the pool of connections to the upstream.
#[derive(Clone)]
struct Gateway {
    state: AppState,
    config: Arc<ProxyConfig>,
    pool: Arc<pool::Pool>,
}

/// The gateway's service: every method and path goes to [`forward`], through what is done
/// around every request of the node's API ([`crate::around`]). No router: there is nothing
/// to route, and each of a router's layers cost an allocation or two per request.
pub(crate) fn service(state: AppState, config: ProxyConfig) -> Service {
    Service(Gateway {
        state,
        pool: Arc::new(pool::Pool::new(config.upstream.address(), config.timeout)),
        config: Arc::new(config),
    })
}

#[derive(Clone)]
pub(crate) struct Service(Gateway);

impl tower::Service<Request> for Service {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let gateway = self.0.clone();
        Box::pin(async move {
            let state = gateway.state.clone();
            let run = |request| forward(gateway, request);
            Ok(crate::around(state, request, run, false).await)
        })
    }
}

/// Headers that belong to one connection, never passed on (RFC 9110 §7.6.1), besides those
/// the `Connection` header names.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers (and `Transfer-Encoding`, which hyper sets itself).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over what is there: most messages carry none of them.
    let mut found: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        if *name == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(name) {
            found.push(name.clone());
        }
        if *name == header::CONNECTION {
            let named = value.to_str().unwrap_or_default().split(',');
            found.extend(named.filter_map(|name| HeaderName::try_from(name.trim()).ok()));
        }
    }
    for name in found {
        headers.remove(name);
    }
}

/// Headers of the client's that would make the upstream act on another request than the one
/// decided (another method or path), or take an address or scheme from the client: the
/// gateway writes its own `X-Forwarded-*` from what it knows.
const NOT_FROM_CLIENTS: [&str; 20] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "front-end-https",
    "x-url-scheme",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
];

/// Removes what the client must not tell the upstream:
/// - every header the upstream could read as one of the decision's `Keyward-*` headers;
/// - every header with `_` in its name, as nginx does by default: CGI-style servers (WSGI,
///   PHP, Rack) read `X_Project_Id` as `X-Project-Id` and `Keyward_Key_Id` as
///   `Keyward-Key-Id`, so the upstream could read another project or identity than the one
///   decided;
/// - the headers of [`NOT_FROM_CLIENTS`].
///
/// `X-Forwarded-Proto` stays for [`forwarded_proto`] to judge.
fn drop_client_only_headers(headers: &mut HeaderMap) {
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            names_identity(name)
                || name.as_str().contains('_')
                || NOT_FROM_CLIENTS.contains(&name.as_str())
        })
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
}

/// Whether `name` starts with `keyward-` (header names are lowercase).
fn names_identity(name: &HeaderName) -> bool {
    name.as_str().starts_with("keyward-")
}

/// The scheme the client used: what a trusted proxy in front of the gateway says (one
/// `X-Forwarded-Proto` value, `http` or `https`, from a peer in `--trusted-proxies`), else
/// `http`, the gateway's own.
fn forwarded_proto(
    parts: &axum::http::request::Parts,
    trusted: &[keyward_core::Cidr],
) -> HeaderValue {
    let http = HeaderValue::from_static("http");
    if !crate::client_address::peer_is_trusted(parts, trusted) {
        return http;
    }
    let mut values = parts.headers.get_all("x-forwarded-proto").iter();
    match (values.next(), values.next()) {
        (Some(value), None) if value.as_bytes().eq_ignore_ascii_case(b"https") => {
            HeaderValue::from_static("https")
        }
        _ => http,
    }
}

/// The method as route rules name them: upper case (`delete` is decided as `DELETE`, as a
/// server that compares methods without case would run it).
fn decided_method(method: &axum::http::Method) -> std::borrow::Cow<'_, str> {
    let name = method.as_str();
    if name.bytes().any(|byte| byte.is_ascii_lowercase()) {
        std::borrow::Cow::Owned(name.to_ascii_uppercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Decides the request, then forwards it or answers the refusal.
async fn forward(gateway: Gateway, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let state = &gateway.state;
    // Only origin-form targets (`/path?query`): `CONNECT host:port` and `OPTIONS *` name no
    // path to decide on.
    let origin_form = parts
        .uri
        .path_and_query()
        .is_some_and(|target| target.as_str().starts_with('/'));
    if !origin_form || parts.method == axum::http::Method::CONNECT {
        return ApiError::InvalidRequest("the gateway forwards requests for a path only")
            .into_response();
    }
    // What is decided is what is sent: the headers the upstream will not get go first.
    strip_hop_by_hop(&mut parts.headers);
    drop_client_only_headers(&mut parts.headers);
    let principal = match crate::auth::authenticate(&parts, state, Accept::Customers).await {
        Ok(principal) => principal,
        Err(refused) => return refused.into_response(),
    };
    let target = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let passed = match crate::api::forward_auth::allow(
        state,
        &principal,
        &parts.headers,
        &decided_method(&parts.method),
        target.as_str(),
    )
    .await
    {
        Ok(passed) => passed,
        Err(refused) => return refused,
    };
    let config = &gateway.config;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > config.max_body_bytes) {
        // Refused before anything went: it costs nothing.
        let mut response = too_large(config.max_body_bytes);
        response.extensions_mut().insert(crate::auth::NotServed);
        return response;
    }
    let Ok(uri) = config.upstream.uri_for(&target) else {
        return ApiError::InvalidRequest("the request's path cannot be passed on").into_response();
    };

    let client_ip = crate::client_address::of(&parts);
    let proto = forwarded_proto(&parts, &state.config.trusted_proxies);
    let host = parts.headers.get(header::HOST).cloned();
    let headers = &mut parts.headers;
    if !config.keep_authorization {
        headers.remove(header::AUTHORIZATION);
    }
    // Room for what is added below, in one step.
    headers.reserve(crate::api::forward_auth::IDENTITY_HEADERS + 3);
    // Who is calling, written straight into the request.
    passed.write_identity(state, &principal, headers);
    // The client's address as Keyward resolved it (through `--trusted-proxies`); what the
    // client said of itself went before the decision.
    if let Some(ip) = client_ip.and_then(crate::api::forward_auth::header_value) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), ip);
    }
    headers.insert(HeaderName::from_static("x-forwarded-proto"), proto);
    if let Some(host) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    headers.insert(header::HOST, config.upstream.host.clone());
    parts.uri = uri;
    parts.version = axum::http::Version::HTTP_11;
    // A request without a body (most) has nothing to limit.
    let body = if http_body::Body::is_end_stream(&body) {
        body
    } else {
        // A body of no announced length goes chunked, whatever the method: hyper's client
        // would otherwise send a GET's or HEAD's as none at all.
        if declared.is_none() {
            parts.headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        let limit = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
        Body::new(http_body_util::Limited::new(body, limit))
    };
    let upstream_request = axum::http::Request::from_parts(parts, body);

    let answer = tokio::time::timeout(config.timeout, gateway.pool.send(upstream_request));
    let mut response = match answer.await {
        // The upstream may have acted on it: what it cost stays spent.
        Err(_) => {
            return ApiError::GatewayTimeout(config.timeout.as_secs()).into_response();
        }
        // Cut off on the way: the upstream had part of it, and may have acted on that.
        Ok(Err(failure)) if failure.body_too_large() => return too_large(config.max_body_bytes),
        Ok(Err(failure)) => {
            tracing::warn!(upstream = %config.upstream, %failure, "the upstream could not be reached");
            let mut response = ApiError::BadGateway.into_response();
            if failure.never_sent() {
                response.extensions_mut().insert(crate::auth::NotServed);
            }
            return response;
        }
        Ok(Ok(response)) => response,
    };
    strip_hop_by_hop(response.headers_mut());
    // The rate-limit headers (added around every request) and the usage counts follow the
    // decision.
    if let Some(route) = passed.route {
        response
            .extensions_mut()
            .insert(crate::auth::CountedRoute(route));
    }
    response
}

fn too_large(limit: u64) -> Response {
    ApiError::Unreadable {
        status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        detail: format!("the body is larger than {limit} bytes"),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_plain_http_urls_with_an_optional_prefix() {
        let upstream = Upstream::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            upstream
                .uri_for(&PathAndQuery::from_static("/v1/a?b=c"))
                .unwrap(),
            "/v1/a?b=c"
        );
        assert_eq!(upstream.address(), "127.0.0.1:9000");
        let prefixed = Upstream::parse("http://api.internal:80/base/").unwrap();
        assert_eq!(
            prefixed.uri_for(&PathAndQuery::from_static("/x")).unwrap(),
            "/base/x"
        );
        assert_eq!(prefixed.to_string(), "http://api.internal:80/base");
        assert_eq!(prefixed.address(), "api.internal:80");
        assert_eq!(prefixed.host, "api.internal");
        let other_port = Upstream::parse("http://[::1]:8080").unwrap();
        assert_eq!(other_port.address(), "[::1]:8080");
        assert_eq!(other_port.host, "[::1]:8080");
        let default_port = Upstream::parse("http://api.internal").unwrap();
        assert_eq!(default_port.address(), "api.internal:80");
        assert_eq!(default_port.host, "api.internal");
        for bad in [
            "https://127.0.0.1:9000",
            "127.0.0.1:9000",
            "ftp://x",
            "http://user:secret@host",
            "http://host/?q=1",
            "",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_only_the_gateway_may_say_goes_in_any_spelling() {
        let mut headers = HeaderMap::new();
        for name in [
            "keyward-key-id",
            "keyward-",
            "keyward_meta",
            "x_project_id",
            "x-project_id",
            "x-http-method-override",
            "x-original-url",
            "x-forwarded-port",
            "true-client-ip",
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
        }
        for kept in [
            "keyward",
            "x-keyward-key-id",
            "keywardx",
            "x-project-id",
            "x-forwarded-proto",
        ] {
            headers.insert(HeaderName::from_static(kept), HeaderValue::from_static("x"));
        }
        drop_client_only_headers(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "keyward",
                "keywardx",
                "x-forwarded-proto",
                "x-keyward-key-id",
                "x-project-id"
            ]
        );
    }

    #[test]
    fn methods_are_decided_in_upper_case() {
        for (sent, decided) in [("GET", "GET"), ("delete", "DELETE"), ("Patch", "PATCH")] {
            let method = axum::http::Method::from_bytes(sent.as_bytes()).unwrap();
            assert_eq!(decided_method(&method), decided);
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }
}
