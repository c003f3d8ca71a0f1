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

/// A resource server's view: Authlib's RFC 7662 client (Python), talking to Keyward over
/// HTTP, with the caller's key as its Bearer.
const AUTHLIB_CLIENT: &str = r#"
import json, os
from authlib.integrations.requests_client import OAuth2Session

def bearer(request):
    request.headers["Authorization"] = "Bearer " + os.environ["KEYWARD_CALLER"]
    return request

url = os.environ["KEYWARD_INTROSPECT"]
session = OAuth2Session()
active = session.introspect_token(url, token=os.environ["KEYWARD_TOKEN"], auth=bearer)
unknown = session.introspect_token(
    url, token="mF_9.B5f-4.1JqM", token_type_hint="access_token", auth=bearer
)
print(json.dumps({
    "active": active.json(), "active_status": active.status_code,
    "unknown": unknown.json(), "unknown_status": unknown.status_code,
}))
"#;

#[tokio::test]
async fn a_standard_client_library_reads_the_answers() {
    let has_authlib = std::process::Command::new("python3")
        .args(["-c", "import authlib.integrations.requests_client"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_authlib {
        assert!(
            !keyward_store::testing::require_all(),
            "this test needs python3 with Authlib: pip install authlib requests"
        );
        eprintln!("skipped: python3 with Authlib is not installed");
        return;
    }
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, verifier) = app.create_key(&org.key, "gateway", &["keys:verify"]).await;
    let (id, key) = app
        .create_key(&org.key, "reader", &["instances:read"])
        .await;
    let url = app.url("/oauth/introspect");
    // The client blocks; the server runs on this test's runtime, so it runs elsewhere.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", AUTHLIB_CLIENT])
            .env("KEYWARD_INTROSPECT", url)
            .env("KEYWARD_CALLER", verifier)
            .env("KEYWARD_TOKEN", key)
            // Authlib refuses plain http unless told this is a test.
            .env("AUTHLIB_INSECURE_TRANSPORT", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["active_status"], 200);
    assert_eq!(seen["active"]["active"], true);
    assert_eq!(seen["active"]["client_id"], id.as_str());
    assert_eq!(seen["active"]["scope"], "instances:read");
    assert_eq!(seen["active"]["token_type"], "api_key");
    assert_eq!(seen["unknown_status"], 200);
    assert_eq!(seen["unknown"], json!({ "active": false }));
}
