//! Rotation with overlap: the new key at once, the old one until the grace ends, then refused
//! exactly as if revoked, through the cache.

use std::time::Duration;

use keyward_server::Config;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_rotated_key_works_until_its_grace_ends_and_its_successor_at_once() {
    let (app, clock) = TestApp::spawn_with_manual_clock(Config::default()).await;
    let org = app.bootstrap("Acme").await;
    let made = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "CI", "scopes": ["instances:read"], "rate_limit": { "requests": 100, "per_seconds": 60 } }),
        )
        .await;
    let (old_id, old) = (
        made.body["id"].as_str().unwrap().to_owned(),
        made.body["key"].as_str().unwrap().to_owned(),
    );
    // Cached before the rotation.
    assert_eq!(app.get("/v1/me", &old).await.status, StatusCode::OK);

    let rotated = app
        .post(
            &format!("/v1/api-keys/{old_id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 3600 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let new_id = rotated.body["id"].as_str().unwrap().to_owned();
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert_eq!(rotated.body["name"], "CI");
    assert_eq!(rotated.body["scopes"], json!(["instances:read"]));
    assert_eq!(
        rotated.body["rate_limit"],
        json!({ "requests": 100, "per_seconds": 60 })
    );
    assert_eq!(rotated.body["rotated_from"], old_id);
    assert_eq!(
        rotated.header("location"),
        Some(format!("/v1/api-keys/{new_id}").as_str())
    );

    // Both work during the grace; the lists link them.
    assert_eq!(app.get("/v1/me", &old).await.status, StatusCode::OK);
    assert_eq!(app.get("/v1/me", &new).await.status, StatusCode::OK);
    let shown = app.get(&format!("/v1/api-keys/{old_id}"), &org.key).await;
    assert_eq!(shown.body["status"], "active");
    assert_eq!(shown.body["rotation"]["replaced_by"], new_id);
    let ends_at = shown.body["rotation"]["ends_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let successor = app.get(&format!("/v1/api-keys/{new_id}"), &org.key).await;
    assert_eq!(successor.body["rotated_from"], old_id);
    assert!(successor.body.get("rotation").is_none());

    // Once, and only once.
    app.post(
        &format!("/v1/api-keys/{old_id}/rotate"),
        &org.key,
        json!({ "grace_seconds": 0 }),
    )
    .await
    .problem(409, "conflict");

    // The grace ends: refused as if revoked, with no message between nodes needed.
    clock.advance(Duration::from_secs(3599));
    assert_eq!(app.get("/v1/me", &old).await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    app.get("/v1/me", &old).await.problem(401, "invalid_token");
    assert_eq!(app.get("/v1/me", &new).await.status, StatusCode::OK);
    let shown = app.get(&format!("/v1/api-keys/{old_id}"), &org.key).await;
    assert_eq!(shown.body["status"], "revoked");
    assert_eq!(shown.body["rotation"]["ends_at"], ends_at.as_str());

    // One event for the new key, one for the rotation.
    let trail = app.audit_trail(org.id).await;
    assert_eq!(
        trail[trail.len() - 2..],
        [
            crate::helpers::event("api_key.created", &new_id),
            crate::helpers::event("api_key.rotated", &old_id),
        ]
    );
}

#[tokio::test]
async fn rotation_is_refused_for_what_cannot_rotate_and_checked_like_creation() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app.create_key(&org.key, "Old", &["instances:read"]).await;
    let path = format!("/v1/api-keys/{id}/rotate");
    let bad = app
        .post(&path, &org.key, json!({ "grace_seconds": 604_801 }))
        .await;
    assert_eq!(
        bad.problem(422, "validation_failed")["errors"][0]["field"],
        "grace_seconds"
    );
    app.post(&path, &org.key, json!({}))
        .await
        .problem(422, "validation_failed");
    app.post(
        "/v1/api-keys/key_01m8dz95x5e4w8stdkzcqeqr73/rotate",
        &org.key,
        json!({ "grace_seconds": 0 }),
    )
    .await
    .problem(404, "not_found");
    // A key that lacks a scope of the rotated one cannot make its successor.
    let (_, writer) = app
        .create_key(&org.key, "Writer", &["api_keys:write"])
        .await;
    let refused = app
        .post(&path, &writer, json!({ "grace_seconds": 0 }))
        .await;
    assert_eq!(
        refused.problem(403, "insufficient_scope")["scope"],
        "instances:read"
    );

    // No grace: the old key stops at once. Revoked keys do not rotate.
    let now = app
        .post(&path, &org.key, json!({ "grace_seconds": 0 }))
        .await;
    assert_eq!(now.status, StatusCode::CREATED, "{}", now.body);
    app.get("/v1/me", &key).await.problem(401, "invalid_token");
    let (gone_id, _) = app.create_key(&org.key, "Gone", &["instances:read"]).await;
    app.delete(&format!("/v1/api-keys/{gone_id}"), &org.key)
        .await;
    app.post(
        &format!("/v1/api-keys/{gone_id}/rotate"),
        &org.key,
        json!({ "grace_seconds": 60 }),
    )
    .await
    .problem(409, "conflict");

    // Revoking during the grace stops it at once.
    let (late_id, late) = app.create_key(&org.key, "Late", &["instances:read"]).await;
    let rotated = app
        .post(
            &format!("/v1/api-keys/{late_id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 3600 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED);
    assert_eq!(app.get("/v1/me", &late).await.status, StatusCode::OK);
    app.delete(&format!("/v1/api-keys/{late_id}"), &org.key)
        .await;
    app.get("/v1/me", &late).await.problem(401, "invalid_token");
}

#[tokio::test]
async fn a_project_token_rotates_within_its_project() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let project = app.create_project(&org.key, "Web").await;
    let other = app.create_project(&org.key, "Other").await;
    let made = app
        .post(
            &format!("/v1/projects/{project}/tokens"),
            &org.key,
            json!({ "name": "deploy", "scopes": ["instances:read"] }),
        )
        .await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/projects/{other}/tokens/{id}/rotate"),
        &org.key,
        json!({ "grace_seconds": 60 }),
    )
    .await
    .problem(404, "not_found");
    let rotated = app
        .post(
            &format!("/v1/projects/{project}/tokens/{id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 60 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(rotated.body["project_id"], project);
    let token = rotated.body["key"].as_str().unwrap();
    assert!(token.starts_with("kwp_"));
    let me = app.get("/v1/me", token).await;
    assert_eq!(me.body["project_id"], project);
}

#[tokio::test]
async fn the_dashboard_rotates_with_a_choice_of_overlap() {
    use crate::dashboard::{Visitor, shown_key};
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let old = shown_key(&ada.create_key("Deploy", &["instances:read"]).await);
    let list = ada.get("/settings/api-keys").await;
    let marker = "<tr id=\"";
    let start = list.body.find(marker).expect("the key's row") + marker.len();
    let id = list.body[start..start + 30].to_owned();
    assert!(
        list.body
            .contains(&format!("/settings/api-keys/{id}/rotate"))
    );

    let confirm = ada.get(&format!("/settings/api-keys/{id}/rotate")).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    for seconds in ["0", "3600", "86400", "604800"] {
        assert!(
            confirm.body.contains(&format!("value=\"{seconds}\"")),
            "{seconds}"
        );
    }
    let csrf = confirm.csrf_token();
    let odd = ada
        .post(
            &format!("/settings/api-keys/{id}/rotate"),
            &[("csrf_token", &csrf), ("grace_seconds", "5")],
        )
        .await;
    assert_eq!(odd.status, StatusCode::UNPROCESSABLE_ENTITY);
    let rotated = ada
        .post(
            &format!("/settings/api-keys/{id}/rotate"),
            &[("csrf_token", &csrf), ("grace_seconds", "3600")],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert!(rotated.body.contains("API Key rotated"), "{}", rotated.body);
    let new = shown_key(&rotated);
    assert_ne!(new, old);
    assert_eq!(app.get("/v1/me", &old).await.status, StatusCode::OK);
    assert_eq!(app.get("/v1/me", &new).await.status, StatusCode::OK);

    app.state.flush_usage().await.unwrap();
    let list = ada.get("/settings/api-keys").await;
    assert!(list.body.contains("Rotating until"), "{}", list.body);
    assert!(
        list.body
            .contains("aria-label=\"Last addresses\"><li><code>127.0.0.1</code>"),
        "the address each key was used from: {}",
        list.body
    );
    assert!(
        !list
            .body
            .contains(&format!("/settings/api-keys/{id}/rotate"))
    );
    let again = ada.get(&format!("/settings/api-keys/{id}/rotate")).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_key_in_its_overlap_grants_nothing_that_outlives_it() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, leaked) = app
        .create_key(
            &org.key,
            "Leaked",
            &["api_keys:write", "instances:read", "keys:verify"],
        )
        .await;
    let rotated = app
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 3600 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED);
    let successor = rotated.body["id"].as_str().unwrap().to_owned();
    let ends_at =
        app.get(&format!("/v1/api-keys/{id}"), &org.key).await.body["rotation"]["ends_at"].clone();

    // No key that outlives the overlap, and no rotation of its successor into one.
    let forever = app
        .post(
            "/v1/api-keys",
            &leaked,
            json!({ "name": "Backdoor", "scopes": ["instances:read"] }),
        )
        .await;
    assert_eq!(
        forever.problem(422, "validation_failed")["errors"][0]["field"],
        "expires_at"
    );
    app.post(
        &format!("/v1/api-keys/{successor}/rotate"),
        &leaked,
        json!({ "grace_seconds": 0 }),
    )
    .await
    .problem(422, "validation_failed");

    // Verification answers end it at the overlap's end.
    let verdict = app
        .post("/v1/keys/verify", &org.key, json!({ "key": leaked }))
        .await;
    assert_eq!(verdict.body["expires_at"], ends_at);
}
