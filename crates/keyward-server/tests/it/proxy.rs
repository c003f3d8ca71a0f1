//! Gateway mode (`[proxy]`): a node serving a protected upstream on its own address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use keyward_core::route::{RouteRule, RouteTable};
use keyward_server::Config;
use keyward_server::proxy::{ProxyConfig, Upstream};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::forward_auth::platform;
use crate::helpers::{Answer, TestApp, read, serve_beside};

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
    peer: SocketAddr,
}

/// The size of `/status/large`'s answer: more than the sockets on the way hold.
const LARGE: usize = 64 << 20;

/// A service to protect: it notes every request and echoes it; `/status/slow` answers after
/// 3 s; `/status/stream` sends one chunk, waits to be told, then sends another;
/// `/status/large` answers [`LARGE`] bytes.
struct Service {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    go_on: Arc<Notify>,
}

async fn upstream() -> Service {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let go_on = Arc::new(Notify::new());
    let (noted, notify) = (seen.clone(), go_on.clone());
    let app = axum::Router::new().fallback(move |request: Request| {
        let (noted, notify) = (noted.clone(), notify.clone());
        async move {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .unwrap()
                .0;
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .map(|bytes| bytes.to_vec())
                .unwrap_or_default();
            let uri = parts.uri.to_string();
            noted.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                uri: uri.clone(),
                headers: parts.headers.clone(),
                body: body.clone(),
                peer,
            });
            match uri.as_str() {
                "/status/slow" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    axum::response::Response::new(Body::from("late"))
                }
                "/status/stream" => {
                    let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
                    tokio::spawn(async move {
                        sender.send(b"first;".to_vec()).await.unwrap();
                        notify.notified().await;
                        sender.send(b"second".to_vec()).await.unwrap();
                    });
                    let stream = ReceiverStream::new(receiver).map(Ok::<_, std::io::Error>);
                    axum::response::Response::builder()
                        .header("x-upstream", "yes")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
                "/status/large" => axum::response::Response::new(Body::from(vec![b'x'; LARGE])),
                "/status/empty" => axum::response::Response::builder()
                    .status(204)
                    .body(Body::empty())
                    .unwrap(),
                _ => axum::response::Response::builder()
                    .status(if uri.starts_with("/status/teapot") {
                        418
                    } else {
                        200
                    })
                    .header("content-type", "application/json")
                    .header("cache-control", "max-age=60")
                    .header("connection", "x-private")
                    .header("x-private", "hop")
                    .body(Body::from(
                        json!({ "uri": uri, "bytes": body.len() }).to_string(),
                    ))
                    .unwrap(),
            }
        }
    });
    let address = serve_beside(app).await;
    Service {
        address,
        seen,
        go_on,
    }
}

impl Service {
    /// Asserts that every request it saw came on one connection.
    fn one_connection(&self) {
        let peers: std::collections::HashSet<_> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|seen| seen.peer)
            .collect();
        assert_eq!(peers.len(), 1, "kept alive: {peers:?}");
    }
}

fn gateway_config(upstream: &str, change: impl FnOnce(&mut ProxyConfig)) -> Config {
    let mut proxy = ProxyConfig::new(Upstream::parse(upstream).unwrap());
    change(&mut proxy);
    Config {
        proxy: Some(proxy),
        ..platform()
    }
}

/// `POST /status/upload` through the gateway with `key` and a body of 1,600 bytes sent
/// chunked (no length announced), on a connection of its own: the raw answer.
async fn chunked_upload_of_1600_bytes(app: &TestApp, key: &str) -> String {
    raw_request(
        app.proxy_address.unwrap(),
        &format!(
            "POST /status/upload HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n",
            chunk = "x".repeat(800)
        ),
    )
    .await
}

/// A key of `org_key`'s organization with `credits`.
async fn credited_key(app: &TestApp, org_key: &str, credits: i64) -> String {
    let created = app
        .post(
            "/v1/api-keys",
            org_key,
            json!({ "name": "Metered", "scopes": ["databases:read"], "credits": { "remaining": credits } }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["key"].as_str().unwrap().to_owned()
}

/// A node whose gateway forwards to `upstream` as configured by default, and a key of a new
/// organization with `databases:read`.
async fn gateway_to(upstream: &str) -> (TestApp, String) {
    let app = TestApp::spawn_with(gateway_config(upstream, |_| {})).await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "any", &["databases:read"]).await;
    (app, key)
}

fn through(app: &TestApp, path: &str) -> String {
    format!("http://{}{path}", app.proxy_address.unwrap())
}

async fn get(app: &TestApp, key: Option<&str>, path: &str) -> Answer {
    let mut request = app.client.get(through(app, path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn allowed_requests_reach_the_upstream_with_who_is_calling_and_the_rest_never_do() {
    let service = upstream().await;
    let app = TestApp::spawn_with(gateway_config(
        &format!("http://{}", service.address),
        |_| {},
    ))
    .await;
    let org = app.bootstrap("Acme").await;
    let (reader_id, reader) = app
        .create_key(&org.key, "reader", &["databases:read"])
        .await;
    let (writer_id, writer) = app
        .create_key(&org.key, "writer", &["databases:write"])
        .await;

    // Allowed: forwarded with the identity, without the key, the client's forgeries or the
    // hop-by-hop headers; the answer comes back as the upstream gave it.
    let answer = app
        .client
        .get(through(&app, "/v1/databases/prj_x/tables?limit=5"))
        .bearer_auth(&reader)
        .header("keyward-key-id", "key_forged")
        .header("keyward-scopes", "databases:write")
        .header("keyward_external_id", "forged")
        .header("x-forwarded-for", "198.51.100.66")
        .header("forwarded", "for=198.51.100.66")
        .header("x-client", "kept")
        .send()
        .await
        .unwrap();
    let answer = read(answer).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["uri"], "/v1/databases/prj_x/tables?limit=5");
    assert_eq!(answer.header("cache-control"), Some("max-age=60"));
    assert_eq!(
        answer.header("x-private"),
        None,
        "named by Connection: hop-by-hop"
    );
    let seen = service.seen.lock().unwrap().pop().unwrap();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.uri, "/v1/databases/prj_x/tables?limit=5");
    let header = |name: &str| {
        seen.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("keyward-key-id"), Some(reader_id.clone()));
    assert_eq!(header("keyward-organization-id"), Some(org.id.to_string()));
    assert_eq!(header("keyward-scopes").as_deref(), Some("databases:read"));
    assert_eq!(header("authorization"), None, "the key stays with Keyward");
    assert_eq!(header("x-client").as_deref(), Some("kept"));
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        header("keyward_external_id"),
        None,
        "no spelling of it gets through"
    );
    assert_eq!(header("keyward-external-id").as_deref(), Some(""));
    assert_eq!(header("forwarded"), None);
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        header("x-forwarded-host"),
        Some(app.proxy_address.unwrap().to_string())
    );
    // The upstream's status passes as it is.
    assert_eq!(
        get(&app, Some(&reader), "/status/teapot")
            .await
            .status
            .as_u16(),
        418
    );
    service.seen.lock().unwrap().clear();

    // Refused: Keyward's own answers, and the upstream sees none of these requests.
    let refused = get(&app, None, "/v1/databases/prj_x/tables").await;
    refused.problem(401, "missing_credentials");
    assert!(refused.header("www-authenticate").is_some());
    get(&app, Some("kwk_unknown"), "/v1/databases/prj_x/tables")
        .await
        .problem(401, "invalid_token");
    get(&app, Some(&writer), "/v1/databases/prj_x/tables")
        .await
        .problem(403, "insufficient_scope");
    get(&app, Some(&reader), "/v1/nothing-here")
        .await
        .problem(403, "forbidden");
    // Sent as it is (a client library would resolve the dots itself).
    let dotted = raw_request(
        app.proxy_address.unwrap(),
        &format!(
            "GET /v1/databases/prj_x/../secrets HTTP/1.1\r\nHost: gateway\r\n\
             Authorization: Bearer {reader}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(dotted.starts_with("HTTP/1.1 403"), "{dotted}");
    assert!(
        service.seen.lock().unwrap().is_empty(),
        "nothing refused got through"
    );

    // A body goes through whole, and the rule's project header is checked.
    let body = vec![7u8; 1 << 20];
    let created = app
        .client
        .post(through(&app, "/v1/databases"))
        .bearer_auth(&writer)
        .header("x-project-id", "prj_x")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let created = read(created).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["bytes"], 1 << 20);
    let seen = service.seen.lock().unwrap().pop().unwrap();
    assert_eq!(seen.body, body);
    assert_eq!(
        seen.headers["keyward-key-id"].to_str().unwrap(),
        writer_id.as_str()
    );

    // A project token names its project in the rule's header: a `Connection` header that
    // would remove it on the way cannot make the decision see what the upstream does not.
    let project = app.create_project(&org.key, "Mine").await;
    let token = app
        .create_token(&org.key, &project, &["databases:write"])
        .await;
    let create = |headers: &[(&str, &str)]| {
        let mut request = app
            .client
            .post(through(&app, "/v1/databases"))
            .bearer_auth(&token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let own = read(create(&[("x-project-id", &project)]).await.unwrap()).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let hidden = read(
        create(&[("x-project-id", &project), ("connection", "x-project-id")])
            .await
            .unwrap(),
    )
    .await;
    hidden.problem(403, "forbidden");
    // Only paths are forwarded.
    let connect = raw_request(
        app.proxy_address.unwrap(),
        &format!(
            "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\
             Authorization: Bearer {reader}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(connect.starts_with("HTTP/1.1 400"), "{connect}");

    // Revoked: refused at once.
    let revoked = app
        .delete(&format!("/v1/api-keys/{reader_id}"), &org.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    get(&app, Some(&reader), "/v1/databases/prj_x/tables")
        .await
        .problem(401, "invalid_token");
}

/// A raw request through the gateway, on a connection of its own, with `headers` added.
async fn raw_through(
    app: &TestApp,
    key: &str,
    request_line: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut request = format!("{request_line}\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    raw_request(app.proxy_address.unwrap(), &request).await
}

#[tokio::test]
async fn the_upstream_acts_on_the_request_decided_and_learns_of_the_client_from_the_gateway() {
    let service = upstream().await;
    let mut config = gateway_config(&format!("http://{}", service.address), |_| {});
    let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    config.routes = RouteTable::new(vec![
        RouteRule::parse(
            &owned(&["DELETE"]),
            "/v1/things/*",
            &owned(&["databases:write"]),
            None,
            &config.scopes,
        )
        .unwrap(),
        RouteRule::parse(
            &[],
            "/v1/things/*",
            &owned(&["databases:read"]),
            None,
            &config.scopes,
        )
        .unwrap(),
    ])
    .unwrap();
    let app = TestApp::spawn_with(config).await;
    let org = app.bootstrap("Acme").await;
    let (_, reader) = app
        .create_key(&org.key, "reader", &["databases:read"])
        .await;

    // A method in lower case is decided as the upstream may run it: `delete` is DELETE.
    let deleted = raw_through(&app, &reader, "delete /v1/things/1 HTTP/1.1", &[]).await;
    assert!(deleted.starts_with("HTTP/1.1 403"), "{deleted}");
    assert!(deleted.contains("insufficient_scope"), "{deleted}");
    let read_one = raw_through(&app, &reader, "get /v1/things/1 HTTP/1.1", &[]).await;
    assert!(read_one.starts_with("HTTP/1.1 200"), "{read_one}");
    assert_eq!(service.seen.lock().unwrap().pop().unwrap().method, "get");

    // Nothing the client sends names another method or path, another project or identity in
    // a CGI spelling, or where the client is.
    let sent = [
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("X-Original-URL", "/v1/billing"),
        ("X-Rewrite-URL", "/v1/billing"),
        ("X_Project_Id", "prj_other"),
        ("Keyward_Key_Id", "key_forged"),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Forwarded-Server", "elsewhere"),
        ("X-Forwarded-Proto", "https"),
        ("X-Client-IP", "198.51.100.66"),
        ("True-Client-IP", "198.51.100.66"),
        ("CF-Connecting-IP", "198.51.100.66"),
        ("X-Forwarded-Ssl", "on"),
        ("X-Forwarded-Scheme", "https"),
        ("Front-End-Https", "on"),
        ("X-Url-Scheme", "https"),
        ("X-Kept", "yes"),
    ];
    let answer = raw_through(&app, &reader, "GET /v1/things/2 HTTP/1.1", &sent).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = service.seen.lock().unwrap().pop().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.uri.as_str()),
        ("GET", "/v1/things/2")
    );
    for (name, _) in &sent[..sent.len() - 1] {
        let value = seen.headers.get(*name).map(|value| value.to_str().unwrap());
        let ours = match name.to_ascii_lowercase().as_str() {
            // Written by the gateway: this client is not a trusted proxy.
            "x-forwarded-proto" => Some("http"),
            _ => None,
        };
        assert_eq!(value, ours, "{name}");
    }
    assert_eq!(seen.headers["x-kept"], "yes");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");

    // A body sent chunked with a GET reaches the upstream whole (it was dropped).
    let searched = raw_request(
        app.proxy_address.unwrap(),
        &format!(
            "GET /v1/things/search HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {reader}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert!(searched.starts_with("HTTP/1.1 200"), "{searched}");
    let seen = service.seen.lock().unwrap().pop().unwrap();
    assert_eq!(seen.body, b"hello world");
    assert!(
        seen.headers.keys().all(|name| !name.as_str().contains('_')),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_and_its_scheme_are_the_proxys_word() {
    let service = upstream().await;
    let mut config = gateway_config(&format!("http://{}", service.address), |_| {});
    config.trusted_proxies = vec![keyward_core::Cidr::parse("127.0.0.1").unwrap()];
    let app = TestApp::spawn_with(config).await;
    let org = app.bootstrap("Acme").await;
    let (_, reader) = app
        .create_key(&org.key, "reader", &["databases:read"])
        .await;
    for (proto, told) in [
        (Some("https"), "https"),
        (Some("HTTPS"), "https"),
        (Some("http"), "http"),
        (Some("https, http"), "http"),
        (Some("ftp"), "http"),
        (None, "http"),
    ] {
        let mut headers = vec![("X-Forwarded-For", "198.51.100.7")];
        headers.extend(proto.map(|proto| ("X-Forwarded-Proto", proto)));
        let answer = raw_through(&app, &reader, "GET /status/proto HTTP/1.1", &headers).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let seen = service.seen.lock().unwrap().pop().unwrap();
        assert_eq!(seen.headers["x-forwarded-proto"], told, "{proto:?}");
        assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.7");
    }
}

#[tokio::test]
async fn answers_stream_connections_are_kept_and_rate_limits_hold() {
    let service = upstream().await;
    let app = TestApp::spawn_with(gateway_config(
        &format!("http://{}", service.address),
        |_| {},
    ))
    .await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "any", &["databases:read"]).await;

    // The first chunk arrives while the upstream is still holding the second.
    let mut streamed = app
        .client
        .get(through(&app, "/status/stream"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::OK);
    assert_eq!(streamed.headers()["x-upstream"], "yes");
    let first = tokio::time::timeout(Duration::from_secs(10), streamed.chunk())
        .await
        .expect("the first chunk before the upstream finished")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first;");
    service.go_on.notify_one();
    let second = streamed.chunk().await.unwrap().unwrap();
    assert_eq!(&second[..], b"second");
    assert!(streamed.chunk().await.unwrap().is_none());

    // Twenty requests one after another: one connection to the upstream.
    service.seen.lock().unwrap().clear();
    for _ in 0..20 {
        assert_eq!(
            get(&app, Some(&key), "/status/ok").await.status,
            StatusCode::OK
        );
    }
    service.one_connection();
    // Answers without a body (204, and any answer to HEAD) free their connection too.
    for _ in 0..5 {
        let empty = get(&app, Some(&key), "/status/empty").await;
        assert_eq!(empty.status, StatusCode::NO_CONTENT);
        let head = app
            .client
            .head(through(&app, "/status/ok"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
    }
    service.one_connection();

    // A key's rate limit holds through the gateway, with its headers.
    let limited = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "limited", "scopes": ["databases:read"], "rate_limit": { "requests": 2, "per_seconds": 3600 } }),
        )
        .await;
    let limited = limited.body["key"].as_str().unwrap().to_owned();
    service.seen.lock().unwrap().clear();
    for _ in 0..2 {
        let passed = get(&app, Some(&limited), "/status/ok").await;
        assert_eq!(passed.status, StatusCode::OK);
        assert!(passed.header("ratelimit").is_some(), "{:?}", passed.headers);
    }
    let refused = get(&app, Some(&limited), "/status/ok").await;
    refused.problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(service.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn upstream_failures_are_problems_and_bodies_have_a_limit() {
    // Nothing listens here.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (app, key) = gateway_to(&format!("http://{closed}")).await;
    get(&app, Some(&key), "/status/ok")
        .await
        .problem(502, "bad_gateway");
    // A request the upstream never got costs nothing: one credit lasts.
    let org = app.bootstrap("Metered").await;
    let metered = credited_key(&app, &org.key, 1).await;
    for _ in 0..3 {
        get(&app, Some(&metered), "/status/ok")
            .await
            .problem(502, "bad_gateway");
    }

    let service = upstream().await;
    let app = TestApp::spawn_with(gateway_config(
        &format!("http://{}", service.address),
        |proxy| {
            proxy.timeout = Duration::from_secs(1);
            proxy.max_body_bytes = 1_000;
            proxy.keep_authorization = true;
        },
    ))
    .await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "any", &["databases:read"]).await;
    get(&app, Some(&key), "/status/slow")
        .await
        .problem(504, "gateway_timeout");
    let post = |body: reqwest::Body| {
        app.client
            .post(through(&app, "/status/upload"))
            .bearer_auth(&key)
            .body(body)
            .send()
    };
    read(post(vec![1u8; 1_001].into()).await.unwrap())
        .await
        .problem(413, "payload_too_large");
    // Nor does a body announced over the limit: the one credit pays for the request served.
    let metered = credited_key(&app, &org.key, 1).await;
    let upload = |length: usize| {
        app.client
            .post(through(&app, "/status/upload"))
            .bearer_auth(&metered)
            .body(vec![1u8; length])
            .send()
    };
    read(upload(1_001).await.unwrap())
        .await
        .problem(413, "payload_too_large");
    assert_eq!(read(upload(10).await.unwrap()).await.status, StatusCode::OK);
    read(upload(10).await.unwrap())
        .await
        .problem(429, "credits_exhausted");
    // One found over the limit on the way went to the upstream in part: it keeps its cost.
    let metered = credited_key(&app, &org.key, 1).await;
    let cut_off = chunked_upload_of_1600_bytes(&app, &metered).await;
    assert!(cut_off.starts_with("HTTP/1.1 413"), "{cut_off}");
    get(&app, Some(&metered), "/status/ok")
        .await
        .problem(429, "credits_exhausted");
    // Without a length (chunked), cut off at the limit all the same.
    let chunked = chunked_upload_of_1600_bytes(&app, &key).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert!(chunked.contains("payload_too_large"), "{chunked}");
    service.seen.lock().unwrap().clear();
    let fits = read(post(vec![1u8; 1_000].into()).await.unwrap()).await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.body);
    assert_eq!(
        fits.body,
        json!({ "uri": "/status/upload", "bytes": 1_000 })
    );
    // Kept, as configured.
    let seen = service.seen.lock().unwrap().pop().unwrap();
    assert_eq!(
        seen.headers["authorization"].to_str().unwrap(),
        format!("Bearer {key}")
    );
}

#[tokio::test]
async fn connections_the_upstream_closes_are_replaced_without_failing_a_request() {
    // With `Connection: close`, or without a word, as an upstream whose keep-alive timeout
    // ends a resting connection does.
    for warn in [false, true] {
        let answer = if warn {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        let (address, _, accepted) = scripted_upstream(answer, Answering::OnceThenClose).await;
        let (app, key) = gateway_to(&format!("http://{address}")).await;
        for round in 0..4 {
            let answer = get(&app, Some(&key), "/status/ok").await;
            assert_eq!(answer.status, StatusCode::OK, "warn {warn}, round {round}");
            assert_eq!(answer.body, "ok");
            // Long enough for the upstream to have closed the connection.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(*accepted.lock().unwrap(), 4, "warn {warn}");
    }
}

/// When a [`scripted_upstream`] answers.
#[derive(Clone, Copy, PartialEq)]
enum Answering {
    /// Once it has read the request's body; the connection is kept.
    AfterTheBody,
    /// As soon as it has the request's head, before reading the body; the connection is kept.
    BeforeTheBody,
    /// Once it has read the request's body, then it closes the connection a moment later,
    /// while the connection rests.
    OnceThenClose,
    /// The first request on a connection as `AfterTheBody`; the next one is read whole and
    /// the connection closed without an answer, as when a keep-alive timeout ends it just as
    /// a request arrives.
    OnceThenDropTheNext,
}

/// An upstream that answers every request with `answer`, as `answering` says. Notes how many
/// of each body's announced bytes it got, and counts the connections it accepted.
async fn scripted_upstream(
    answer: &'static str,
    answering: Answering,
) -> (SocketAddr, Arc<Mutex<Vec<usize>>>, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (bodies, accepted): (Arc<Mutex<Vec<usize>>>, Arc<Mutex<usize>>) = Default::default();
    let (noted, counted) = (bodies.clone(), accepted.clone());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            *counted.lock().unwrap() += 1;
            let noted = noted.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buffer = [0u8; 4096];
                for index in 0.. {
                    let head_end = loop {
                        if let Some(at) = received.windows(4).position(|end| end == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => received.extend_from_slice(&buffer[..read]),
                        }
                    };
                    let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse().unwrap());
                    if answering == Answering::BeforeTheBody {
                        stream.write_all(answer.as_bytes()).await.unwrap();
                    }
                    received.drain(..head_end);
                    while received.len() < length {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(read) => received.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let got = received.len().min(length);
                    noted.lock().unwrap().push(got);
                    if got < length {
                        return;
                    }
                    received.drain(..length);
                    if answering == Answering::OnceThenDropTheNext && index > 0 {
                        return;
                    }
                    if answering != Answering::BeforeTheBody {
                        stream.write_all(answer.as_bytes()).await.unwrap();
                    }
                    if answering == Answering::OnceThenClose {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        return;
                    }
                }
            });
        }
    });
    (address, bodies, accepted)
}

#[tokio::test]
async fn a_request_a_closing_connection_took_goes_again_only_when_it_may_be_repeated() {
    let (address, bodies, accepted) = scripted_upstream(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Answering::OnceThenDropTheNext,
    )
    .await;
    // One thread, one pool: each request below takes the connection the one before left.
    let config = gateway_config(&format!("http://{address}"), |proxy| proxy.threads = 1);
    let app = TestApp::spawn_with(config).await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "any", &["databases:read"]).await;
    let send = |method: reqwest::Method, body: &'static str| {
        let request = app
            .client
            .request(method, through(&app, "/status/x"))
            .bearer_auth(&key);
        let request = if body.is_empty() {
            request
        } else {
            request.body(body)
        };
        async move { read(request.send().await.unwrap()).await }
    };

    assert_eq!(send(reqwest::Method::GET, "").await.status, StatusCode::OK);
    assert_eq!(*accepted.lock().unwrap(), 1);
    // The resting connection takes the next GET and closes: it goes again, on a new one.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let answer = send(method.clone(), "").await;
        assert_eq!(answer.status, StatusCode::OK, "{method}: {}", answer.body);
        assert_eq!(answer.body, "ok");
    }
    assert_eq!(*accepted.lock().unwrap(), 3);
    assert_eq!(*bodies.lock().unwrap(), [0, 0, 0, 0, 0]);
    // A POST, or a PUT with a body, the upstream may have acted on: never twice.
    for (method, body) in [(reqwest::Method::POST, ""), (reqwest::Method::PUT, "data")] {
        let answer = send(method.clone(), body).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{method}");
        assert_eq!(answer.body["code"], "bad_gateway");
        // A new connection for the next one: the pool is empty.
        assert_eq!(send(reqwest::Method::GET, "").await.status, StatusCode::OK);
    }
    assert_eq!(*accepted.lock().unwrap(), 5);
    assert_eq!(*bodies.lock().unwrap(), [0, 0, 0, 0, 0, 0, 0, 4, 0]);
    // A DELETE with a chunked body (no length to tell it has one): not repeated either.
    let chunked = raw_request(
        app.proxy_address.unwrap(),
        &format!(
            "DELETE /status/x HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\ndata\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 502 "), "{chunked}");
    assert_eq!(*accepted.lock().unwrap(), 5);
    assert_eq!(bodies.lock().unwrap().len(), 10);
}

#[tokio::test]
async fn an_upstream_answering_before_the_body_ends_still_gets_all_of_it() {
    let accepted_at_once = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    let (address, bodies, accepted) =
        scripted_upstream(accepted_at_once, Answering::BeforeTheBody).await;
    // One thread, one pool: the two requests below come on two client connections.
    let config = gateway_config(&format!("http://{address}"), |proxy| proxy.threads = 1);
    let app = TestApp::spawn_with(config).await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "any", &["databases:read"]).await;

    // A third of the body, then the answer, then the rest.
    let mut client = TcpStream::connect(app.proxy_address.unwrap())
        .await
        .unwrap();
    let head = format!(
        "POST /status/upload HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\
         Content-Length: 3000\r\n\r\n"
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(&[b'x'; 1000]).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !answer.windows(4).any(|end| end == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buffer))
            .await
            .expect("the upstream's answer before the body ends")
            .unwrap();
        assert_ne!(read, 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    client.write_all(&[b'y'; 2000]).await.unwrap();
    let bodies_seen = |count: usize| {
        let bodies = bodies.clone();
        async move {
            for _ in 0..100 {
                if bodies.lock().unwrap().len() >= count {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            bodies.lock().unwrap().clone()
        }
    };
    assert_eq!(bodies_seen(1).await, [3000]);

    // Once the body was through, the connection went back to the pool (given a moment to
    // get there after its last write).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let next = app
        .client
        .post(through(&app, "/status/upload"))
        .bearer_auth(&key)
        .body("more")
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::ACCEPTED);
    assert_eq!(bodies_seen(2).await, [3000, 4]);
    assert_eq!(*accepted.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_request_the_upstream_took_keeps_its_cost_though_it_could_not_be_sent_again() {
    // An upstream that answers the first request on its one connection, stops listening,
    // and closes that connection on the second request after reading it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        drop(listener);
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        for answer in [Some("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), None] {
            while !received.windows(4).any(|end| end == b"\r\n\r\n") {
                let read = stream.read(&mut buffer).await.unwrap();
                assert!(read > 0, "the gateway closed first");
                received.extend_from_slice(&buffer[..read]);
            }
            received.clear();
            match answer {
                Some(answer) => stream.write_all(answer.as_bytes()).await.unwrap(),
                None => return,
            }
        }
    });
    let (app, _) = gateway_to(&format!("http://{address}")).await;
    let org = app.bootstrap("Metered").await;
    let (_, checker) = app.create_key(&org.key, "Checker", &["keys:verify"]).await;
    let metered = credited_key(&app, &org.key, 5).await;
    let left = async || {
        let looked = app
            .post(
                "/v1/keys/verify",
                &checker,
                json!({ "key": metered, "cost": 0 }),
            )
            .await;
        looked.body["credits_remaining"].clone()
    };

    assert_eq!(
        get(&app, Some(&metered), "/status/a").await.status,
        StatusCode::OK
    );
    assert_eq!(left().await, 4);
    // Taken, then the connection closed on it; sent again, no connection could be made.
    get(&app, Some(&metered), "/status/b")
        .await
        .problem(502, "bad_gateway");
    assert_eq!(left().await, 3, "the upstream may have acted on it");
    // Never sent anywhere: given back.
    get(&app, Some(&metered), "/status/c")
        .await
        .problem(502, "bad_gateway");
    assert_eq!(left().await, 3);
}

#[tokio::test]
async fn a_client_that_reads_nothing_of_its_answer_and_an_upstream_that_stops_are_cut_off() {
    // A client asks for a large answer and reads none of it: after the idle timeout without
    // room for a write, its connection closes (holding it, and the upstream's, no longer).
    let service = upstream().await;
    let mut config = gateway_config(&format!("http://{}", service.address), |_| {});
    config.connection_limits.idle_timeout = Duration::from_secs(1);
    let app = TestApp::spawn_with(config).await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "any", &["databases:read"]).await;
    let mut stream = TcpStream::connect(app.proxy_address.unwrap())
        .await
        .unwrap();
    let request = format!(
        "GET /status/large HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    // Closed: what the sockets held, then the end (or a reset).
    let _ = read.await.expect("the connection was closed");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &answer[..answer.len().min(40)]
    );
    assert!(answer.len() < LARGE, "all {} bytes came", answer.len());

    // An upstream that sends part of its answer's body and then nothing: cut off after the
    // upstream's timeout, the client's connection closed on an incomplete answer.
    let (address, _, _) = scripted_upstream(
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
        Answering::AfterTheBody,
    )
    .await;
    let app = TestApp::spawn_with(gateway_config(&format!("http://{address}"), |proxy| {
        proxy.timeout = Duration::from_secs(1);
    }))
    .await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "any", &["databases:read"]).await;
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(app.proxy_address.unwrap())
        .await
        .unwrap();
    let request = format!(
        "GET /status/part HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    let _ = read.await.expect("the connection was closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("only ten b"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn answers_with_trailers_free_their_connection() {
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n\
                   3\r\nok\n\r\n0\r\nx-sum: 3\r\n\r\n";
    let (address, _, accepted) = scripted_upstream(chunked, Answering::AfterTheBody).await;
    let (app, key) = gateway_to(&format!("http://{address}")).await;
    for _ in 0..5 {
        // A client that takes trailers, so that they are passed on.
        let answer = app
            .client
            .get(through(&app, "/status/ok"))
            .bearer_auth(&key)
            .header("te", "trailers")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.text().await.unwrap(), "ok\n");
    }
    assert_eq!(*accepted.lock().unwrap(), 1);
}

/// Sends `request` as it is on a new connection and reads the answer to its end.
async fn raw_request(address: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends `GET path` through the gateway on a connection of its own, and returns it with the
/// answer's status line once the whole answer is read.
async fn held_connection(app: &TestApp, key: &str, path: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(app.proxy_address.unwrap())
        .await
        .unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The echo's JSON body ends the answer.
    while !answer.ends_with(b"}") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    (stream, text.lines().next().unwrap_or_default().to_owned())
}

/// `keyward_connection_limit_reached_total` from the node's `/metrics`.
async fn limit_reached(app: &TestApp) -> u64 {
    let metrics = app.call(reqwest::Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap().to_owned();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("keyward_connection_limit_reached_total "));
    line.and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count: {text}"))
}

/// Sends `GET path` through the gateway from a client of its own (so on a new connection),
/// in a task: its status and body.
fn get_on_a_new_connection(
    app: &TestApp,
    key: &str,
    path: &str,
) -> tokio::task::JoinHandle<(StatusCode, String)> {
    let (url, key) = (through(app, path), key.to_owned());
    tokio::spawn(async move {
        let answer = reqwest::Client::new().get(url).bearer_auth(key).send();
        let answer = answer.await.unwrap();
        (answer.status(), answer.text().await.unwrap())
    })
}

#[tokio::test]
async fn gateway_threads_share_one_connection_cap_and_finish_their_requests_at_shutdown() {
    let service = upstream().await;
    let mut config = gateway_config(&format!("http://{}", service.address), |proxy| {
        proxy.threads = 3;
    });
    config.connection_limits.max_connections = 2;
    config.connection_limits.shutdown_timeout = Duration::from_secs(10);
    let mut app = TestApp::spawn_with(config).await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "any", &["databases:read"]).await;

    // Two connections take the cap, whichever threads accepted them.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (stream, status) = held_connection(&app, &key, "/status/ok").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        held.push(stream);
    }
    // Counted when a connection finds none free, not when an idle thread does.
    assert_eq!(limit_reached(&app).await, 0);
    let waiting = get_on_a_new_connection(&app, &key, "/status/ok");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a third connection was served");
    assert_eq!(limit_reached(&app).await, 1);
    held.pop();
    assert_eq!(waiting.await.unwrap().0, StatusCode::OK);
    held.clear();

    // A request under way when the node stops still gets its answer, before the node ends.
    let slow = get_on_a_new_connection(&app, &key, "/status/slow");
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(8), app.shutdown())
        .await
        .expect("the node stopped");
    assert!(slow.is_finished(), "the node ended before its gateway");
    assert_eq!(slow.await.unwrap(), (StatusCode::OK, "late".to_owned()));
    let refused = TcpStream::connect(app.proxy_address.unwrap()).await;
    assert!(refused.is_err(), "the gateway still accepts connections");
}

#[tokio::test]
async fn a_node_whose_task_is_dropped_stops_its_gateway_threads() {
    let service = upstream().await;
    let (mut app, key) = gateway_to(&format!("http://{}", service.address)).await;
    assert_eq!(
        get(&app, Some(&key), "/status/ok").await.status,
        StatusCode::OK
    );
    app.abort();
    let proxy = app.proxy_address.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while TcpStream::connect(proxy).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the gateway kept accepting after its node's task was dropped"
    );
}
