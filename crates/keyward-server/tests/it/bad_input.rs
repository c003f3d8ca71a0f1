//! Every kind of bad input gets a clear 4xx problem: never a 500, never a hint whether some
//! key exists.

use keyward_core::{Brand, CredentialKind, PlaintextKey};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, read};

#[tokio::test]
async fn malformed_bodies_are_problems() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let send = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&org.key)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        async move { read(request.send().await.unwrap()).await }
    };
    let json_type = Some("application/json");

    send(b"{\"name\": ".to_vec(), json_type)
        .await
        .problem(400, "malformed_request");
    send(b"not json".to_vec(), json_type)
        .await
        .problem(400, "malformed_request");
    send(
        br#"{"name": 5, "scopes": ["instances:read"]}"#.to_vec(),
        json_type,
    )
    .await
    .problem(422, "validation_failed");
    send(
        br#"{"name": "x", "scopes": "instances:read"}"#.to_vec(),
        json_type,
    )
    .await
    .problem(422, "validation_failed");
    send(br#"{"name": "x"}"#.to_vec(), json_type)
        .await
        .problem(422, "validation_failed");
    let unknown_field = send(
        br#"{"name": "x", "scopes": ["instances:read"], "admin": true}"#.to_vec(),
        json_type,
    )
    .await;
    unknown_field.problem(422, "validation_failed");
    assert!(
        unknown_field.body["detail"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
    send(
        br#"{"name": "x", "scopes": ["instances:read"]}"#.to_vec(),
        None,
    )
    .await
    .problem(415, "unsupported_media_type");
    send(
        br#"{"name": "x", "scopes": ["instances:read"]}"#.to_vec(),
        Some("text/plain"),
    )
    .await
    .problem(415, "unsupported_media_type");

    let mut huge = br#"{"name": "x", "scopes": ["instances:read"], "expires_at": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    huge.extend(br#""}"#);
    send(huge, json_type)
        .await
        .problem(413, "payload_too_large");

    let listed = app.get("/v1/api-keys", &org.key).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
}

#[tokio::test]
async fn bad_authorization_headers_are_refused_without_look_ups() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let with_header = |value: String| {
        let request = app
            .client
            .get(app.url("/v1/instances"))
            .header("authorization", value);
        async move { read(request.send().await.unwrap()).await }
    };

    let none = app.call(Method::GET, "/v1/instances", None, None).await;
    none.problem(401, "missing_credentials");
    assert_eq!(
        none.header("www-authenticate"),
        Some(r#"Bearer realm="keyward""#)
    );

    let basic = with_header("Basic dXNlcjpwYXNzd29yZA==".into()).await;
    basic.problem(401, "missing_credentials");
    assert_eq!(
        basic.header("www-authenticate"),
        Some(r#"Bearer realm="keyward""#)
    );

    let empty = with_header("Bearer".into()).await;
    empty.problem(400, "invalid_request");
    assert!(
        empty
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_request""#)
    );

    let mut wrong_checksum = org.key.clone();
    let last = wrong_checksum.pop().unwrap();
    wrong_checksum.push(if last == 'A' { 'B' } else { 'A' });
    let checksum = with_header(format!("Bearer {wrong_checksum}")).await;
    checksum.problem(401, "invalid_token");
    assert!(
        checksum.body["detail"]
            .as_str()
            .unwrap()
            .contains("checksum")
    );

    let other_brand =
        PlaintextKey::generate(&Brand::parse("onet").unwrap(), CredentialKind::ApiKey).unwrap();
    with_header(format!("Bearer {}", other_brand.expose_secret()))
        .await
        .problem(401, "invalid_token");

    let huge = with_header(format!("Bearer {}", "k".repeat(16 * 1024))).await;
    assert!(huge.status.is_client_error(), "{}", huge.status);
    huge.problem(401, "invalid_token");

    with_header(format!("Bearer {}", &org.key[..20]))
        .await
        .problem(401, "invalid_token");
    with_header(format!("Bearer {} extra", org.key))
        .await
        .problem(401, "invalid_token");

    // The untouched key still works, and nothing above was a server error.
    assert_eq!(
        app.get("/v1/instances", &org.key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    app.get("/v1/nothing-here", &org.key)
        .await
        .problem(404, "no_such_endpoint");
    app.call(Method::PUT, "/v1/api-keys", Some(&org.key), Some(json!({})))
        .await
        .problem(405, "method_not_allowed");
    app.call(
        Method::PATCH,
        "/v1/instances/ins_00000000000000000000000000",
        Some(&org.key),
        None,
    )
    .await
    .problem(405, "method_not_allowed");
    // Percent-encoded bytes that are not UTF-8 in a path parameter.
    app.get("/v1/projects/%FF%FE", &org.key)
        .await
        .problem(400, "malformed_request");
}

#[tokio::test]
async fn health_and_readiness_need_no_key() {
    let app = TestApp::spawn().await;
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({ "status": "ok" }));
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body, json!({ "status": "ready" }));
}

#[tokio::test]
async fn names_and_descriptions_with_invisible_characters_are_refused_and_look_alikes_are_one_name()
{
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    app.create_project(&org.key, "P1").await;
    for spoof in ["P1\u{200b}", "\u{feff}P1", "P1\u{202e}", "P\u{2066}1"] {
        let refused = app
            .post("/v1/projects", &org.key, json!({ "name": spoof }))
            .await;
        refused.problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "name");
        let key = app
            .post(
                "/v1/api-keys",
                &org.key,
                json!({ "name": spoof, "scopes": ["instances:read"] }),
            )
            .await;
        key.problem(422, "validation_failed");
    }
    // Descriptions too, of projects and of webhooks, where they would reorder what a page or
    // the audit log shows around them.
    let project = app.create_project(&org.key, "Described").await;
    for spoof in ["ok\u{202e}kcab", "zero\u{200b}width", "iso\u{2066}late"] {
        for (path, body) in [
            (
                "/v1/projects".to_owned(),
                json!({ "name": "P2", "description": spoof }),
            ),
            (
                "/v1/webhooks".to_owned(),
                json!({ "url": "https://hooks.example.com/k", "events": ["api_key.created"], "description": spoof }),
            ),
        ] {
            let refused = app.post(&path, &org.key, body).await;
            let errors = refused.problem(422, "validation_failed")["errors"].clone();
            assert!(
                errors
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|error| error["field"] == "description"),
                "{path}: {errors}"
            );
        }
        let refused = app
            .patch(
                &format!("/v1/projects/{project}"),
                &org.key,
                json!({ "description": spoof }),
            )
            .await;
        refused.problem(422, "validation_failed");
    }
    // The same name in two Unicode spellings is one name.
    app.create_project(&org.key, "Caf\u{e9}").await;
    app.post("/v1/projects", &org.key, json!({ "name": "Cafe\u{301}" }))
        .await
        .problem(409, "conflict");
}
