//! `POST /oauth/introspect` (RFC 7662) as a resource server or gateway calls it.

use keyward_core::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Answer, TestApp};

async fn introspect(app: &TestApp, caller: &str, form: &[(&str, &str)]) -> Answer {
    app.call_form(Method::POST, "/oauth/introspect", Some(caller), form)
        .await
}

#[tokio::test]
async fn the_rfc_example_request_for_an_unknown_token_is_inactive_and_nothing_else() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, verifier) = app.create_key(&org.key, "gateway", &["keys:verify"]).await;
    // RFC 7662 §2.1's example, token and hint as written there.
    let answer = introspect(
        &app,
        &verifier,
        &[
            ("token", "mF_9.B5f-4.1JqM"),
            ("token_type_hint", "access_token"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!({ "active": false }));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn an_active_key_is_described_and_anything_else_is_just_inactive() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, verifier) = app.create_key(&org.key, "gateway", &["keys:verify"]).await;
    let expires = Timestamp::now().plus_seconds(86_400);
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({
                "name": "Reporting",
                "scopes": ["projects:read", "instances:read"],
                "expires_at": expires.to_string(),
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap();
    let iat = Timestamp::parse(created.body["created_at"].as_str().unwrap()).unwrap();

    let active = introspect(&app, &verifier, &[("token", key)]).await;
    assert_eq!(
        active.body,
        json!({
            "active": true,
            "scope": "instances:read projects:read",
            "client_id": created.body["id"],
            "token_type": "api_key",
            "exp": expires.unix_seconds(),
            "iat": iat.unix_seconds(),
            "sub": org.id.to_string(),
            "organization_id": org.id.to_string(),
        })
    );

    // A project token says which project.
    let project = app.create_project(&org.key, "Web").await;
    let token = app
        .post(
            &format!("/v1/projects/{project}/tokens"),
            &org.key,
            json!({ "name": "deploy", "scopes": ["instances:read"] }),
        )
        .await;
    let described = introspect(
        &app,
        &verifier,
        &[("token", token.body["key"].as_str().unwrap())],
    )
    .await;
    assert_eq!(described.body["token_type"], "project_token");
    assert_eq!(described.body["project_id"], project);

    // Revoked, malformed, and another organization's keys: the same two words.
    let path = format!("/v1/api-keys/{}", created.body["id"].as_str().unwrap());
    assert_eq!(
        app.delete(&path, &org.key).await.status,
        StatusCode::NO_CONTENT
    );
    let other = app.bootstrap("Other").await;
    for token in [key, "not-a-key", other.key.as_str()] {
        let answer = introspect(&app, &verifier, &[("token", token)]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, json!({ "active": false }), "{token}");
    }
}

#[tokio::test]
async fn a_rate_limited_key_is_inactive_until_its_quota_returns() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, verifier) = app.create_key(&org.key, "gateway", &["keys:verify"]).await;
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "Once", "scopes": ["instances:read"], "rate_limit": { "requests": 1, "per_seconds": 3600 } }),
        )
        .await;
    let key = created.body["key"].as_str().unwrap();
    // Introspecting is a use of the key: it spends the one request.
    let first = introspect(&app, &verifier, &[("token", key)]).await;
    assert_eq!(first.body["active"], true);
    let second = introspect(&app, &verifier, &[("token", key)]).await;
    assert_eq!(second.body, json!({ "active": false }));
}

#[tokio::test]
async fn the_caller_needs_keys_verify_and_a_form_with_a_token() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, reader) = app
        .create_key(&org.key, "reader", &["instances:read"])
        .await;
    let refused = introspect(&app, &reader, &[("token", &org.key)]).await;
    refused.problem(403, "insufficient_scope");
    assert_eq!(refused.body["scope"], "keys:verify");
    let anonymous = app
        .call_form(
            Method::POST,
            "/oauth/introspect",
            None,
            &[("token", &org.key)],
        )
        .await;
    anonymous.problem(401, "missing_credentials");
    assert!(anonymous.header("www-authenticate").is_some());

    let json_body = app
        .post("/oauth/introspect", &org.key, json!({ "token": org.key }))
        .await;
    json_body.problem(415, "unsupported_media_type");
    let no_token = introspect(&app, &org.key, &[("token_type_hint", "access_token")]).await;
    no_token.problem(400, "malformed_request");
}
