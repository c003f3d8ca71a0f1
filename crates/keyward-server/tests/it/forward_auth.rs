//! `/v1/forward-auth` as a gateway asks it, by the route rules in force.

use std::sync::Arc;

use keyward_core::route::{RouteRule, RouteTable};
use keyward_core::{ScopeCatalog, ScopeDefinition, ScopeLevel};
use keyward_server::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Answer, TestApp, read};

/// The platform these tests and the gateway tests run under: a database service with its
/// own (project-level) scopes, a billing service with an organization-level one, and the
/// rules that protect the database service.
pub(crate) fn platform() -> Config {
    let scope = |name: &str, description: &str| ScopeDefinition {
        name: name.into(),
        description: description.into(),
        level: Some(ScopeLevel::Project),
        min_role: None,
    };
    let scopes = ScopeCatalog::new(&[
        scope("databases:read", "List and read databases."),
        scope("databases:write", "Create and change databases."),
        ScopeDefinition {
            level: None,
            ..scope("billing:read", "Read invoices and usage.")
        },
    ])
    .unwrap();
    let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let routes = RouteTable::new(vec![
        RouteRule::parse(
            &owned(&["GET"]),
            "/v1/databases/{project_id}/*",
            &owned(&["databases:read"]),
            Some("project_id"),
            &scopes,
        )
        .and_then(|rule| rule.named("databases"))
        .unwrap(),
        RouteRule::parse(
            &owned(&["POST"]),
            "/v1/databases",
            &owned(&["databases:write"]),
            Some("header:X-Project-Id"),
            &scopes,
        )
        .and_then(|rule| rule.named("databases"))
        .unwrap(),
        RouteRule::parse(&[], "/status/*", &[], None, &scopes).unwrap(),
    ])
    .unwrap();
    Config {
        scopes: Arc::new(scopes),
        routes,
        ..Config::default()
    }
}

/// What a gateway sends: the original method and URI, and the client's Authorization.
pub(crate) async fn decide(app: &TestApp, key: Option<&str>, method: &str, uri: &str) -> Answer {
    decide_with(
        app,
        key,
        &[("x-forwarded-method", method), ("x-forwarded-uri", uri)],
    )
    .await
}

async fn decide_with(app: &TestApp, key: Option<&str>, headers: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new().request(Method::GET, app.url("/v1/forward-auth"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_key_passes_where_its_scopes_allow_and_the_upstream_learns_who_it_is() {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;
    let (reader_id, reader) = app
        .create_key(&org.key, "reader", &["databases:read"])
        .await;
    let passed = decide(
        &app,
        Some(&reader),
        "GET",
        "/v1/databases/prj_x/tables?limit=5",
    )
    .await;
    assert_eq!(passed.status, StatusCode::OK);
    assert_eq!(passed.header("keyward-key-id"), Some(reader_id.as_str()));
    assert_eq!(
        passed.header("keyward-organization-id"),
        Some(org.id.to_string().as_str())
    );
    assert_eq!(passed.header("keyward-scopes"), Some("databases:read"));
    assert_eq!(
        passed.header("keyward-project-id"),
        Some(""),
        "empty for API keys"
    );
    // The nginx convention works the same; a rule without scopes takes any valid key.
    let nginx = decide_with(
        &app,
        Some(&reader),
        &[
            ("x-original-method", "get"),
            ("x-original-uri", "/status/health"),
        ],
    )
    .await;
    assert_eq!(nginx.status, StatusCode::OK);

    // A scope the key lacks, and a request no rule allows: 403, saying why.
    let lacking = decide(&app, Some(&reader), "POST", "/v1/databases").await;
    lacking.problem(403, "insufficient_scope");
    assert_eq!(lacking.body["scope"], "databases:write");
    let unrouted = decide(&app, Some(&reader), "DELETE", "/v1/databases/prj_x/t").await;
    unrouted.problem(403, "forbidden");
    assert_eq!(unrouted.body["detail"], "no route rule allows this request");

    // No key, and a revoked one: 401 with the challenge, on the very next request.
    let anonymous = decide(&app, None, "GET", "/status/health").await;
    anonymous.problem(401, "missing_credentials");
    assert!(anonymous.header("www-authenticate").is_some());
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{reader_id}"), &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let revoked = decide(&app, Some(&reader), "GET", "/status/health").await;
    revoked.problem(401, "invalid_token");
    assert!(
        revoked
            .header("www-authenticate")
            .is_some_and(|c| c.contains("invalid_token"))
    );

    // Without the original method and URI there is nothing to decide; two descriptions
    // that disagree, or a header sent twice, are refused rather than guessed between.
    decide_with(&app, Some(&org.key), &[])
        .await
        .problem(400, "malformed_request");
    let disagreeing = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/status/health"),
        ("x-original-method", "DELETE"),
        ("x-original-uri", "/v1/databases/prj_x"),
    ];
    decide_with(&app, Some(&org.key), &disagreeing)
        .await
        .problem(400, "malformed_request");
    let agreeing = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/status/health"),
        ("x-original-method", "GET"),
        ("x-original-uri", "/status/health"),
    ];
    assert_eq!(
        decide_with(&app, Some(&org.key), &agreeing).await.status,
        StatusCode::OK
    );
    let twice = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/status/health"),
        ("x-forwarded-uri", "/v1/databases/prj_x/t"),
    ];
    decide_with(&app, Some(&org.key), &twice)
        .await
        .problem(400, "malformed_request");
}

#[tokio::test]
async fn a_project_token_passes_only_for_its_own_project() {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;
    let own = app.create_project(&org.key, "Web").await;
    let other = app.create_project(&org.key, "Mobile").await;
    let token = app
        .post(
            &format!("/v1/projects/{own}/tokens"),
            &org.key,
            json!({ "name": "deploy", "scopes": ["databases:read", "databases:write"] }),
        )
        .await;
    let token = token.body["key"].as_str().unwrap().to_owned();

    let mine = decide(&app, Some(&token), "GET", &format!("/v1/databases/{own}/t")).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.header("keyward-project-id"), Some(own.as_str()));
    let theirs = decide(
        &app,
        Some(&token),
        "GET",
        &format!("/v1/databases/{other}/t"),
    )
    .await;
    theirs.problem(403, "forbidden");
    assert_eq!(
        theirs.body["detail"],
        "this project token is for another project"
    );
    decide(&app, Some(&token), "GET", "/v1/databases/not-a-project/t")
        .await
        .problem(403, "forbidden");
    // A path that a server behind the gateway would resolve into another project's.
    for sneaky in [
        format!("/v1/databases/{own}/x/../../{other}/t"),
        format!("/v1/databases/{own}/%2e%2E/{other}/t"),
        format!("/v1/databases/{own}/.%2e/{other}/t"),
        format!("/v1/databases/{own}/x%2F..%2F..%2F{other}/t"),
        format!("/v1/databases/{own}/./t"),
        format!("/v1/databases/{own}/x\\..\\{other}"),
        format!("/v1/databases/{own}/..;/{other}/t"),
        format!("/v1/databases/{own}/t#/../../{other}/t"),
        format!("/v1/databases/{own}//t"),
        format!("/v1/d%61tabases/{own}/t"),
        // Characters a rule's literal may hold as they are (`/v1/admin:purge`), encoded.
        format!("/v1/databases/{own}/a%3Ab"),
        format!("/v1/databases/{own}/user%40host"),
        format!("/v1/databases/{own}/a%2Bb%21"),
    ] {
        let refused = decide(&app, Some(&token), "GET", &sneaky).await;
        refused.problem(403, "forbidden");
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap()
                .contains("normal form"),
            "{sneaky}"
        );
    }

    // The project named in a header.
    let post = |project: String| {
        let (app, token) = (&app, token.clone());
        async move {
            decide_with(
                app,
                Some(&token),
                &[
                    ("x-forwarded-method", "POST"),
                    ("x-forwarded-uri", "/v1/databases"),
                    ("x-project-id", &project),
                ],
            )
            .await
        }
    };
    assert_eq!(post(own.clone()).await.status, StatusCode::OK);
    // The project header twice: refused, whichever one the service would read.
    decide_with(
        &app,
        Some(&token),
        &[
            ("x-forwarded-method", "POST"),
            ("x-forwarded-uri", "/v1/databases"),
            ("x-project-id", &own),
            ("x-project-id", &other),
        ],
    )
    .await
    .problem(400, "malformed_request");
    post(other.clone()).await.problem(403, "forbidden");
    // An API key of the organization is not confined to a project.
    let by_key = decide(
        &app,
        Some(&org.key),
        "GET",
        &format!("/v1/databases/{other}/t"),
    )
    .await;
    assert_eq!(by_key.status, StatusCode::OK);
}

#[tokio::test]
async fn a_rate_limited_key_gets_429_with_its_ratelimit_headers() {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "Once", "scopes": ["databases:read"], "rate_limit": { "requests": 1, "per_seconds": 3600 } }),
        )
        .await;
    let key = created.body["key"].as_str().unwrap();
    let first = decide(&app, Some(key), "GET", "/status/x").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some(r#""key";q=1;w=3600"#)
    );
    let limited = decide(&app, Some(key), "GET", "/status/x").await;
    limited.problem(429, "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert!(
        limited
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""key";r=0;"#))
    );
}

#[tokio::test]
async fn without_route_rules_nothing_passes() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    decide(&app, Some(&org.key), "GET", "/anything")
        .await
        .problem(403, "forbidden");
}

/// The status of `GET target` sent over a socket exactly as written.
async fn raw_get(app: &TestApp, key: &str, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer {key}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer[9..12].parse().unwrap()
}

/// As Envoy's `ext_authz` asks: the original method, and the original path and query after
/// `/v1/forward-auth`, with the headers it is allowed to pass.
async fn envoy(
    app: &TestApp,
    key: &str,
    method: Method,
    original: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = app
        .client
        .request(method, app.url(&format!("/v1/forward-auth{original}")))
        .bearer_auth(key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn envoy_asks_with_the_original_method_and_the_path_after_the_prefix() {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;
    let project = app.create_project(&org.key, "Main").await;
    let other = app.create_project(&org.key, "Other").await;
    let (reader_id, reader) = app
        .create_key(&org.key, "reader", &["databases:read"])
        .await;

    let passed = envoy(
        &app,
        &reader,
        Method::GET,
        &format!("/v1/databases/{project}/tables?limit=5"),
        &[],
    )
    .await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    assert_eq!(passed.header("keyward-key-id"), Some(reader_id.as_str()));
    assert_eq!(passed.header("keyward-scopes"), Some("databases:read"));
    let head = envoy(
        &app,
        &reader,
        Method::HEAD,
        &format!("/v1/databases/{project}/t"),
        &[],
    )
    .await;
    assert_eq!(head.status, StatusCode::OK, "HEAD is GET");

    // The method is the request's own: a POST needs databases:write.
    let lacking = envoy(&app, &reader, Method::POST, "/v1/databases", &[]).await;
    assert_eq!(
        lacking.problem(403, "insufficient_scope")["scope"],
        "databases:write"
    );
    // Headers describing another request are ignored in this form.
    let ignored = envoy(
        &app,
        &reader,
        Method::DELETE,
        "/v1/databases/x",
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/status/x"),
        ],
    )
    .await;
    ignored.problem(403, "forbidden");
    // The same normal form as the headers' form: no empty or dot segments, even encoded.
    // (Sent by hand: an HTTP client would resolve the dots itself.)
    let empty = envoy(
        &app,
        &reader,
        Method::GET,
        &format!("/v1/databases/{project}//t"),
        &[],
    )
    .await;
    empty.problem(403, "forbidden");
    for dots in ["..", "%2e%2e", ".%2E"] {
        let target = format!("/v1/forward-auth/v1/databases/{project}/{dots}/{other}/t");
        assert_eq!(raw_get(&app, &reader, &target).await, 403, "{target}");
    }
    assert_eq!(
        raw_get(
            &app,
            &reader,
            &format!("/v1/forward-auth/v1/databases/{project}/t")
        )
        .await,
        200
    );

    // A project token passes for its own project only, named by a header Envoy passes on.
    let token = app
        .post(
            &format!("/v1/projects/{project}/tokens"),
            &org.key,
            json!({ "name": "deploy", "scopes": ["databases:write"] }),
        )
        .await;
    let token = token.body["key"].as_str().unwrap().to_owned();
    let own = envoy(
        &app,
        &token,
        Method::POST,
        "/v1/databases",
        &[("x-project-id", &project)],
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    let elsewhere = envoy(
        &app,
        &token,
        Method::POST,
        "/v1/databases",
        &[("x-project-id", &other)],
    )
    .await;
    elsewhere.problem(403, "forbidden");

    // A revoked key: 401 with the challenge on the very next request.
    app.delete(&format!("/v1/api-keys/{reader_id}"), &org.key)
        .await;
    let revoked = envoy(
        &app,
        &reader,
        Method::GET,
        &format!("/v1/databases/{project}/t"),
        &[],
    )
    .await;
    revoked.problem(401, "invalid_token");
    assert!(revoked.header("www-authenticate").is_some());
}

#[tokio::test]
async fn rules_follow_the_catalog_in_force_by_name() {
    // Rules parsed against the platform's catalog, served under Keyward's own alone: a rule
    // naming a scope the server does not define refuses rather than read another scope.
    let app = TestApp::spawn_with(Config {
        routes: platform().routes,
        ..Config::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let refused = decide(&app, Some(&org.key), "GET", "/v1/databases/prj_x/t").await;
    assert_eq!(
        refused.problem(403, "forbidden")["detail"],
        "the route rule needs a scope the configuration does not define"
    );
    let open = decide(&app, Some(&org.key), "GET", "/status/health").await;
    assert_eq!(open.status, StatusCode::OK);
}
