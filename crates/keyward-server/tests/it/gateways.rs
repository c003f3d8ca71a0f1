//! Keyward behind real gateways: nginx (`auth_request`) and Caddy (`forward_auth`), Debian's
//! packages, each started on a free port with its own configuration file, in front of a small
//! upstream that reports what it was told about the caller.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::dashboard::{Visitor, shown_key};
use crate::helpers::{Answer, TestApp, read};

const NGINX: &str = "/usr/sbin/nginx";
const CADDY: &str = "/usr/bin/caddy";

/// The upstream: answers every request with what a CGI-style application (WSGI, PHP, Rack)
/// would read of the headers that matter: such servers fold `_` and `-` in a header's name
/// into one variable (`HTTP_KEYWARD_PROJECT_ID`) and join the values of every spelling.
async fn upstream() -> SocketAddr {
    async fn echo(headers: HeaderMap) -> axum::Json<Value> {
        let get = |name: &str| {
            let values: Vec<&str> = headers
                .iter()
                .filter(|(field, _)| field.as_str().replace('_', "-") == name)
                .map(|(_, value)| value.to_str().unwrap_or("(not text)"))
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        let overrides: Vec<String> = [
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
            "x-original-url",
            "x-rewrite-url",
        ]
        .iter()
        .filter_map(|name| get(name))
        .collect();
        axum::Json(json!({
            "key_id": get("keyward-key-id"),
            "organization_id": get("keyward-organization-id"),
            "project_id": get("keyward-project-id"),
            "scopes": get("keyward-scopes"),
            "external_id": get("keyward-external-id"),
            "meta": get("keyward-meta"),
            "credits_remaining": get("keyward-credits-remaining"),
            "x_project_id": get("x-project-id"),
            "overrides": overrides,
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway process, stopped when dropped.
struct Gateway {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn start(mut command: Command, port: u16, dir: tempfile::TempDir, log: PathBuf) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut gateway = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = gateway.child.try_wait() {
                panic!(
                    "the gateway exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "the gateway did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        gateway
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Whether the gateway's binary is here; without it the test is skipped, unless
/// `KEYWARD_REQUIRE_ALL` says nothing may be.
fn available(binary: &str) -> bool {
    if Path::new(binary).is_file() {
        return true;
    }
    assert!(
        !keyward_store::testing::require_all(),
        "{binary} is missing (Debian packages nginx and caddy)"
    );
    eprintln!("skipped: {binary} is not installed");
    false
}

fn nginx(keyward: SocketAddr, upstream: SocketAddr) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let root = dir.path().display().to_string();
    let config = include_str!("../../../../docs/gateways/nginx.conf")
        .replace("LISTEN_ADDRESS", &format!("127.0.0.1:{port}"))
        .replace("KEYWARD_ADDRESS", &keyward.to_string())
        .replace("UPSTREAM_ADDRESS", &upstream.to_string());
    let file = dir.path().join("nginx.conf");
    std::fs::write(
        &file,
        format!(
            "daemon off;\nmaster_process off;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n\
             events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  \
             proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  \
             uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n{config}\n}}\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(NGINX);
    command.arg("-c").arg(&file).arg("-p").arg(dir.path());
    let log = dir.path().join("error.log");
    Gateway::start(command, port, dir, log)
}

fn caddy(keyward: SocketAddr, upstream: SocketAddr) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let site = include_str!("../../../../docs/gateways/Caddyfile")
        .replace("KEYWARD_ADDRESS", &keyward.to_string())
        .replace("UPSTREAM_ADDRESS", &upstream.to_string());
    let file = dir.path().join("Caddyfile");
    std::fs::write(
        &file,
        format!("{{\n  admin off\n  auto_https off\n}}\nhttp://127.0.0.1:{port} {{\n{site}\n}}\n"),
    )
    .unwrap();
    let mut command = Command::new(CADDY);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path());
    let log = dir.path().join("none");
    Gateway::start(command, port, dir, log)
}

async fn through(gateway: &Gateway, key: Option<&str>, path: &str) -> Answer {
    through_with(gateway, key, path, &[]).await
}

async fn through_with(
    gateway: &Gateway,
    key: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    send(gateway, Method::GET, key, path, headers).await
}

async fn send(
    gateway: &Gateway,
    method: Method,
    key: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    // A gateway that never answers fails the test instead of hanging it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut request = client.request(method, gateway.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    read(request.send().await.unwrap()).await
}

/// Everything a gateway must hold to, the same through each.
async fn holds(app: &TestApp, gateway: &Gateway, passes_problem_bodies: bool) {
    // A person grants the platform's scope in the dashboard, as the help page says.
    let mut ada = Visitor::new(app);
    ada.sign_up("ada@example.com", "Acme").await;
    let mut create = async |name: &str, scopes: &[&str]| {
        let page = ada.create_key(name, scopes).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        shown_key(&page)
    };
    let admin = create(
        "Admin",
        &[
            "api_keys:write",
            "projects:write",
            "tokens:write",
            "databases:read",
        ],
    )
    .await;
    let reader = create("reader", &["databases:read"]).await;
    let other = create("other", &["projects:read"]).await;
    let me = app.get("/v1/me", &reader).await;
    let (reader_id, organization_id) = (me.body["id"].clone(), me.body["organization_id"].clone());
    let own = app.create_project(&admin, "Web").await;
    let elsewhere = app.create_project(&admin, "Mobile").await;

    // A key with the route's scope reaches the upstream, which learns who is calling.
    let passed = through(gateway, Some(&reader), &format!("/v1/databases/{own}/t")).await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    assert_eq!(passed.body["key_id"], reader_id);
    assert_eq!(passed.body["organization_id"], organization_id);
    assert_eq!(passed.body["scopes"], "databases:read");

    // The upstream trusts these headers: a client cannot send its own.
    let forged = through_with(
        gateway,
        Some(&reader),
        &format!("/v1/databases/{own}/t"),
        &[
            ("keyward-key-id", "key_forged"),
            ("keyward-project-id", elsewhere.as_str()),
            ("keyward-scopes", "databases:write"),
        ],
    )
    .await;
    assert_eq!(forged.status, StatusCode::OK);
    assert_eq!(forged.body["key_id"], reader_id);
    // An API key has no project: nginx drops the empty header, Caddy passes it empty.
    assert!(
        [Value::Null, json!("")].contains(&forged.body["project_id"]),
        "{}",
        forged.body
    );
    assert_eq!(forged.body["scopes"], "databases:read");

    // Without it: 403.
    let refused = through(gateway, Some(&other), &format!("/v1/databases/{own}/t")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    if passes_problem_bodies {
        assert_eq!(refused.body["scope"], "databases:read");
    }

    // A project token for another project: 403; for its own: through, with its project.
    let token = app
        .post(
            &format!("/v1/projects/{own}/tokens"),
            &admin,
            json!({ "name": "deploy", "scopes": ["databases:read"] }),
        )
        .await;
    let token = token.body["key"].as_str().unwrap().to_owned();
    let confined = through(
        gateway,
        Some(&token),
        &format!("/v1/databases/{elsewhere}/t"),
    )
    .await;
    assert_eq!(confined.status, StatusCode::FORBIDDEN);
    // The client cannot describe another request than the one it makes.
    let claimed = format!("/v1/databases/{own}/t");
    for (method, uri) in [
        ("x-forwarded-method", "x-forwarded-uri"),
        ("x-original-method", "x-original-uri"),
    ] {
        let spoofed = through_with(
            gateway,
            Some(&token),
            &format!("/v1/databases/{elsewhere}/t"),
            &[(method, "GET"), (uri, claimed.as_str())],
        )
        .await;
        assert!(
            [StatusCode::FORBIDDEN, StatusCode::BAD_REQUEST].contains(&spoofed.status),
            "{uri}: {} {}",
            spoofed.status,
            spoofed.body
        );
    }
    let at_home = through(gateway, Some(&token), &format!("/v1/databases/{own}/t")).await;
    assert_eq!(at_home.status, StatusCode::OK);
    assert_eq!(at_home.body["project_id"], own.as_str());

    // No key: 401 with the challenge.
    let anonymous = through(gateway, None, &format!("/v1/databases/{own}/t")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some(r#"Bearer realm="keyward""#)
    );

    // Revoked: 401 on the very next request.
    assert_eq!(
        app.delete(
            &format!("/v1/api-keys/{}", reader_id.as_str().unwrap()),
            &admin,
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let revoked = through(gateway, Some(&reader), &format!("/v1/databases/{own}/t")).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert!(
        revoked
            .header("www-authenticate")
            .is_some_and(|c| c.contains(r#"error="invalid_token""#)),
        "{:?}",
        revoked.header("www-authenticate")
    );

    // Rate-limited: 429 with its RateLimit headers and Retry-After.
    let limited = app
        .post(
            "/v1/api-keys",
            &admin,
            json!({ "name": "Once", "scopes": ["databases:read"], "rate_limit": { "requests": 1, "per_seconds": 3600 } }),
        )
        .await;
    let limited = limited.body["key"].as_str().unwrap().to_owned();
    let first = through(gateway, Some(&limited), &format!("/v1/databases/{own}/t")).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = through(gateway, Some(&limited), &format!("/v1/databases/{own}/t")).await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.body
    );
    assert_eq!(
        second.header("ratelimit-policy"),
        Some(r#""key";q=1;w=3600"#)
    );
    assert!(
        second
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""key";r=0;"#)),
        "{:?}",
        second.header("ratelimit")
    );
    assert!(second.header("retry-after").is_some());
}

/// What a client sends to change who the service thinks is calling, or what it thinks was
/// asked, never reaches the service: identity headers in another spelling (`Keyward_…`,
/// which a CGI-style server reads as `Keyward-…`), `Connection` naming the identity headers
/// (a proxy drops what it names, after Keyward answered), the project header's underscore
/// spelling, and the headers that make some frameworks act on another method or URL.
async fn nothing_forged_reaches_the_service(app: &TestApp, gateway: &Gateway) {
    let acme = app.bootstrap("Caller").await;
    let other = app.bootstrap("Bystander").await;
    let (_, reader) = app
        .create_key(&acme.key, "reader", &["databases:read"])
        .await;
    let own = app.create_project(&acme.key, "Web").await;
    let elsewhere = app.create_project(&other.key, "Theirs").await;
    let token = app
        .post(
            &format!("/v1/projects/{own}/tokens"),
            &acme.key,
            json!({ "name": "deploy", "scopes": ["databases:read", "databases:write"] }),
        )
        .await;
    let token = token.body["key"].as_str().unwrap().to_owned();
    let acme_id = acme.id.to_string();
    let path = format!("/v1/databases/{own}/t");

    // A project token whose project header the client asks the proxy to drop.
    let stripped = through_with(
        gateway,
        Some(&token),
        &path,
        &[("connection", "Keyward-Project-Id")],
    )
    .await;
    assert_eq!(stripped.status, StatusCode::OK, "{}", stripped.body);
    assert_eq!(
        stripped.body["project_id"],
        own.as_str(),
        "{}",
        stripped.body
    );

    // Another organization's identity in underscore spellings, with and without
    // `Connection` dropping the real headers.
    let forged = [
        ("keyward_organization_id", other.id.to_string()),
        ("keyward_project_id", elsewhere.clone()),
        ("keyward_scopes", "billing:read".to_owned()),
        ("Keyward_Key_Id", other.key_id.clone()),
    ];
    for connection in [
        None,
        Some("Keyward-Organization-Id, Keyward-Project-Id, Keyward-Scopes, Keyward-Key-Id"),
    ] {
        let mut headers: Vec<(&str, &str)> = forged.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.extend(connection.map(|c| ("connection", c)));
        let seen = through_with(gateway, Some(&reader), &path, &headers).await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
        assert_eq!(
            seen.body["organization_id"],
            acme_id.as_str(),
            "{connection:?}: {}",
            seen.body
        );
        assert_eq!(
            seen.body["scopes"], "databases:read",
            "{connection:?}: {}",
            seen.body
        );
        assert!(
            [Value::Null, json!("")].contains(&seen.body["project_id"]),
            "{connection:?}: {}",
            seen.body
        );
        assert_ne!(seen.body["key_id"], other.key_id.as_str(), "{}", seen.body);
    }

    // The project header Keyward checked is the only one the service reads.
    for spelling in ["x_project_id", "X-Project_Id", "x_project-id"] {
        let confined = send(
            gateway,
            Method::POST,
            Some(&token),
            "/v1/databases",
            &[
                ("x-project-id", own.as_str()),
                (spelling, elsewhere.as_str()),
            ],
        )
        .await;
        assert_eq!(
            confined.status,
            StatusCode::OK,
            "{spelling}: {}",
            confined.body
        );
        assert_eq!(
            confined.body["x_project_id"],
            own.as_str(),
            "{spelling}: {}",
            confined.body
        );
    }

    // Keyward decided on the real method and URL; the service is not told another.
    let overridden = through_with(
        gateway,
        Some(&reader),
        &path,
        &[
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x-method-override", "DELETE"),
            ("x-original-url", "/v1/billing"),
            ("x-rewrite-url", "/v1/billing"),
        ],
    )
    .await;
    assert_eq!(overridden.status, StatusCode::OK, "{}", overridden.body);
    assert_eq!(
        overridden.body["overrides"],
        json!([]),
        "{}",
        overridden.body
    );
}

/// A key's external id and meta reach the service as Keyward gave them, and only then: a
/// client's own (in any spelling, or with `Connection` naming Keyward's) never do.
async fn metadata_reaches_the_service(app: &TestApp, gateway: &Gateway) {
    let org = app.bootstrap("Tagged").await;
    let meta = json!({"plan": "pro", "region": "eu"});
    let tagged = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({"name": "tagged", "scopes": ["databases:read"], "external_id": "user_42", "meta": meta, "credits": {"remaining": 100}}),
        )
        .await;
    assert_eq!(tagged.status, StatusCode::CREATED, "{}", tagged.body);
    let tagged = tagged.body["key"].as_str().unwrap().to_owned();
    let (_, plain) = app.create_key(&org.key, "plain", &["databases:read"]).await;
    let project = app.create_project(&org.key, "Web").await;
    let path = format!("/v1/databases/{project}/t");
    let forged = [
        ("keyward-external-id", "admin"),
        ("keyward-meta", "eyJwbGFuIjoiZW50ZXJwcmlzZSJ9"),
        ("keyward_external_id", "admin"),
        ("Keyward_Meta", "eyJwbGFuIjoiZW50ZXJwcmlzZSJ9"),
        ("keyward-credits-remaining", "999999"),
    ];
    let mut left = 100;
    for connection in [
        None,
        Some("Keyward-External-Id, Keyward-Meta, Keyward-Credits-Remaining"),
    ] {
        let mut headers = forged.to_vec();
        headers.extend(connection.map(|c| ("connection", c)));
        let seen = through_with(gateway, Some(&tagged), &path, &headers).await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
        assert_eq!(
            seen.body["external_id"], "user_42",
            "{connection:?}: {}",
            seen.body
        );
        let decoded = URL_SAFE_NO_PAD
            .decode(seen.body["meta"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&decoded).unwrap(),
            meta,
            "{connection:?}"
        );
        // Its credits: what is left after the request, never the client's figure.
        left -= 1;
        assert_eq!(
            seen.body["credits_remaining"],
            left.to_string(),
            "{connection:?}: {}",
            seen.body
        );
        let seen = through_with(gateway, Some(&plain), &path, &headers).await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
        // nginx sends no empty header; Caddy passes Keyward's empty one.
        for field in ["external_id", "meta", "credits_remaining"] {
            assert!(
                [Value::Null, json!("")].contains(&seen.body[field]),
                "{connection:?}: {}",
                seen.body
            );
        }
    }
}

/// Keyward with the forward-auth tests' rules, the upstream, and the gateway in front.
async fn behind(gateway: fn(SocketAddr, SocketAddr) -> Gateway, passes_problem_bodies: bool) {
    let app = TestApp::spawn_with(crate::forward_auth::platform()).await;
    let upstream = upstream().await;
    let gateway = gateway(app.address, upstream);
    holds(&app, &gateway, passes_problem_bodies).await;
    nothing_forged_reaches_the_service(&app, &gateway).await;
    metadata_reaches_the_service(&app, &gateway).await;
}

/// A Keyward that accepts connections and never answers.
async fn silent() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    address
}

/// With Keyward unreachable, or not answering, nothing passes: the client is told to come
/// back (503 with `Retry-After`), as in an outage of Keyward's database, after at most the
/// file's 5 s.
async fn unreachable(gateway: fn(SocketAddr, SocketAddr) -> Gateway) {
    let nowhere: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let upstream = upstream().await;
    for keyward in [nowhere, silent().await] {
        let gateway = gateway(keyward, upstream);
        let started = Instant::now();
        let refused = through(&gateway, Some("kwk_anything"), "/v1/databases/prj_x/t").await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            refused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            refused.body
        );
        assert!(
            refused
                .header("retry-after")
                .is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|s| s > 0)),
            "{:?}",
            refused.headers
        );
    }
}

/// With Keyward up and the service down, the gateway says so (502): the client is not told
/// that Keyward is the one away.
async fn service_down(gateway: fn(SocketAddr, SocketAddr) -> Gateway) {
    let app = TestApp::spawn_with(crate::forward_auth::platform()).await;
    let org = app.bootstrap("Acme").await;
    let project = app.create_project(&org.key, "Web").await;
    let nowhere: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gateway = gateway(app.address, nowhere);
    let failed = through(
        &gateway,
        Some(&org.key),
        &format!("/v1/databases/{project}/t"),
    )
    .await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.body);
    assert_eq!(failed.header("retry-after"), None);
}

#[tokio::test]
async fn nginx_auth_request_lets_through_only_what_the_rules_allow() {
    if available(NGINX) {
        behind(nginx, false).await;
    }
}

#[tokio::test]
async fn caddy_forward_auth_lets_through_only_what_the_rules_allow() {
    if available(CADDY) {
        behind(caddy, true).await;
    }
}

#[tokio::test]
async fn nginx_answers_503_while_keyward_is_unreachable() {
    if available(NGINX) {
        unreachable(nginx).await;
    }
}

#[tokio::test]
async fn caddy_answers_503_while_keyward_is_unreachable() {
    if available(CADDY) {
        unreachable(caddy).await;
    }
}

#[tokio::test]
async fn nginx_answers_502_while_the_service_is_down() {
    if available(NGINX) {
        service_down(nginx).await;
    }
}

#[tokio::test]
async fn caddy_answers_502_while_the_service_is_down() {
    if available(CADDY) {
        service_down(caddy).await;
    }
}

/// The usage of the key `id`, by the hour, with `query` added.
async fn hourly_usage(app: &TestApp, key: &str, id: &str, query: &str) -> Value {
    let usage = app
        .get(
            &format!("/v1/api-keys/{id}/usage?granularity=hour{query}"),
            key,
        )
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    usage.body
}

/// What nginx asked Keyward, and what introspection looked at, is counted in each key's usage:
/// by outcome, and by the name of the route rule forward authentication matched.
#[tokio::test]
async fn usage_counts_what_nginx_asked_by_route_and_what_introspection_looked_at() {
    if !available(NGINX) {
        return;
    }
    let app = TestApp::spawn_with(crate::forward_auth::platform()).await;
    let gateway = nginx(app.address, upstream().await);
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let mut create = async |name: &str, scopes: &[&str]| {
        let page = ada.create_key(name, scopes).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        shown_key(&page)
    };
    let admin = create("Admin", &["api_keys:read", "projects:write"]).await;
    let reader = create("Reader", &["databases:read"]).await;
    let lacking = create("Lacking", &["projects:read"]).await;
    let verifier = create("Gateway", &["keys:verify"]).await;
    let id_of = async |key: &str| app.get("/v1/me", key).await.body["id"].clone();
    let (reader_id, lacking_id) = (id_of(&reader).await, id_of(&lacking).await);
    let reader_id = reader_id.as_str().unwrap().to_owned();
    let project = app.create_project(&admin, "Web").await;
    let database = format!("/v1/databases/{project}/t");

    // Through nginx: three allowed by the named rule `databases`, two lacking its scope, one
    // allowed by the unnamed rule, one matching no rule.
    for _ in 0..3 {
        let passed = through(&gateway, Some(&reader), &database).await;
        assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    }
    for _ in 0..2 {
        let refused = through(&gateway, Some(&lacking), &database).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    }
    let status = through(&gateway, Some(&reader), "/status/up").await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    let nowhere = through(&gateway, Some(&reader), "/v1/elsewhere").await;
    assert_eq!(nowhere.status, StatusCode::FORBIDDEN, "{}", nowhere.body);
    // Introspection looks at the reader's key twice: counted, with no route (as is the
    // reader's `/v1/me` above).
    for _ in 0..2 {
        let looked = app
            .call_form(
                Method::POST,
                "/oauth/introspect",
                Some(&verifier),
                &[("token", reader.as_str())],
            )
            .await;
        assert_eq!(looked.body["active"], true, "{}", looked.body);
    }
    app.state.flush_usage().await.unwrap();

    let usage = hourly_usage(&app, &admin, &reader_id, "").await;
    assert_eq!(
        usage["totals"],
        json!({ "allowed": 7, "forbidden": 1 }),
        "{usage}"
    );
    assert_eq!(usage["routes"], json!({ "databases": { "allowed": 3 } }));
    assert!(usage.get("route").is_none());
    // One route's counts alone, in the buckets and totals; every route's still beside them.
    let databases = hourly_usage(&app, &admin, &reader_id, "&route=databases").await;
    assert_eq!(databases["route"], "databases");
    assert_eq!(databases["totals"], json!({ "allowed": 3 }));
    assert_eq!(databases["data"][47]["outcomes"], json!({ "allowed": 3 }));
    assert_eq!(databases["routes"], usage["routes"]);
    let unknown = hourly_usage(&app, &admin, &reader_id, "&route=billing").await;
    assert_eq!(unknown["total"], 0);
    let lacking_usage = hourly_usage(&app, &admin, lacking_id.as_str().unwrap(), "").await;
    assert_eq!(
        lacking_usage["totals"],
        json!({ "allowed": 1, "insufficient_scope": 2 }),
        "{lacking_usage}"
    );
    assert_eq!(
        lacking_usage["routes"],
        json!({ "databases": { "insufficient_scope": 2 } })
    );
    // The organization's usage has the same routes, added up.
    let whole = app.get("/v1/usage?route=databases", &admin).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.body);
    assert_eq!(
        whole.body["totals"],
        json!({ "allowed": 3, "insufficient_scope": 2 })
    );

    // The dashboard's page of the key: the numbers beside the chart, and the routes.
    let page = ada
        .get(&format!("/settings/api-keys/{reader_id}/usage"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let table = |id: &str| {
        let start = page
            .body
            .find(&format!("id=\"{id}-table\""))
            .unwrap_or_else(|| panic!("no {id} table: {}", page.body));
        let end = start + page.body[start..].find("</table>").unwrap();
        page.body[start..end].to_owned()
    };
    let hours = table("hours");
    assert!(
        hours.contains("<th scope=\"col\">allowed</th><th scope=\"col\">forbidden</th>"),
        "{hours}"
    );
    assert!(hours.contains("<td>8</td><td>7</td><td>1</td>"), "{hours}");
    let routes = table("routes");
    assert!(
        routes.contains("<tr><th scope=\"row\">databases</th><td>3</td><td>3</td></tr>"),
        "{routes}"
    );
}
