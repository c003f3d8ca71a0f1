//! The API on PostgreSQL: the same behaviour as on SQLite, and what happens when the
//! database goes away and comes back.

use std::time::{Duration, Instant};

use keyward_store::testing::TempPostgres;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

fn cluster() -> Option<TempPostgres> {
    TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test]
async fn the_help_page_flow_works_on_postgres() {
    let Some(cluster) = cluster() else { return };
    let app = TestApp::spawn_on(&cluster.create_database().await.unwrap()).await;
    let org = app.bootstrap("Acme").await;
    let project = app.create_project(&org.key, "Web").await;
    app.create_instance(&org.key, &project, "web-1").await;
    let (id, key) = app
        .create_key(&org.key, "Reader", &["instances:read"])
        .await;
    let listed = app.get("/v1/instances", &key).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["data"][0]["name"], "web-1");
    app.post("/v1/projects", &key, json!({ "name": "x" }))
        .await
        .problem(403, "insufficient_scope");
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{id}"), &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get("/v1/instances", &key)
        .await
        .problem(401, "invalid_token");
    app.store.close().await;
}

/// Waits up to 15 s for `path` to answer `status` without a key.
async fn wait_for(app: &TestApp, path: &str, status: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if app.call(Method::GET, path, None, None).await.status == status {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_the_database_cached_keys_work_the_rest_is_503_and_it_recovers() {
    let Some(cluster) = cluster() else { return };
    let app = TestApp::spawn_on(&cluster.create_database().await.unwrap()).await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app
        .create_key(&org.key, "Cached", &["instances:read", "projects:read"])
        .await;
    assert_eq!(
        app.get("/v1/me", &key).await.status,
        StatusCode::OK,
        "now cached"
    );

    cluster.pause().unwrap();
    assert_eq!(
        app.get("/v1/me", &key).await.status,
        StatusCode::OK,
        "cached keys keep working"
    );
    let unknown = keyward_core::PlaintextKey::generate(
        &keyward_core::Brand::default(),
        keyward_core::CredentialKind::ApiKey,
    )
    .unwrap();
    let answer = app.get("/v1/me", unknown.expose_secret()).await;
    answer.problem(503, "unavailable");
    app.post(
        "/v1/projects",
        &org.key,
        json!({ "name": "During the outage" }),
    )
    .await
    .problem(503, "unavailable");
    app.call(Method::GET, "/readyz", None, None)
        .await
        .problem(503, "unavailable");

    cluster.resume().unwrap();
    wait_for(&app, "/readyz", StatusCode::OK).await;
    let created = app
        .post("/v1/projects", &org.key, json!({ "name": "After" }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    app.get("/v1/me", unknown.expose_secret())
        .await
        .problem(401, "invalid_token");
    app.store.close().await;
}

#[tokio::test]
async fn tokens_never_outlive_a_project_deleted_while_they_are_created_on_postgres() {
    let Some(cluster) = cluster() else { return };
    let app = TestApp::spawn_on(&cluster.create_database().await.unwrap()).await;
    crate::tokens::race_token_creation_against_project_deletion(&app, 40).await;
    app.store.close().await;
}
