//! `Idempotency-Key` on the requests that create: a retry gets the first answer, another
//! request with the key is refused, a secret is never shown (or kept) twice, and of
//! concurrent requests with one key exactly one creates, on SQLite and on two PostgreSQL
//! nodes.

use std::time::Duration;

use keyward_store::testing::TempPostgres;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, read};
use crate::storage::{contains, database_bytes};

/// `POST path` with `key` and an `Idempotency-Key`.
async fn post_with(app: &TestApp, path: &str, key: &str, idempotency: &str, body: Value) -> Answer {
    let request = app
        .client
        .request(Method::POST, app.url(path))
        .bearer_auth(key)
        .header("idempotency-key", idempotency)
        .json(&body);
    read(request.send().await.unwrap()).await
}

async fn project_count(app: &TestApp, key: &str) -> usize {
    app.get("/v1/projects?limit=100", key).await.body["data"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_and_creates_nothing_more() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let body = json!({"name": "web", "description": "the site"});
    let first = post_with(&app, "/v1/projects", &org.key, "create-web", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post_with(&app, "/v1/projects", &org.key, "create-web", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("content-type"), Some("application/json"));
    assert_eq!(project_count(&app, &org.key).await, 1);

    // The quoted form of the IETF draft is the same key.
    let quoted = post_with(
        &app,
        "/v1/projects",
        &org.key,
        "\"create-web\"",
        body.clone(),
    )
    .await;
    assert_eq!(quoted.header("idempotent-replayed"), Some("true"));

    // The same key with another body: refused, nothing created.
    let other = post_with(
        &app,
        "/v1/projects",
        &org.key,
        "create-web",
        json!({"name": "api"}),
    )
    .await;
    other.problem(422, "idempotency_key_reused");
    // …or on another path.
    let elsewhere = post_with(
        &app,
        "/v1/instances",
        &org.key,
        "create-web",
        json!({"name": "web-1", "project_id": first.body["id"], "region": "eu-west-1"}),
    )
    .await;
    elsewhere.problem(422, "idempotency_key_reused");
    assert_eq!(project_count(&app, &org.key).await, 1);

    // Another credential's key of the same name is its own.
    let (_, writer) = app
        .create_key(&org.key, "writer", &["projects:write", "projects:read"])
        .await;
    let theirs = post_with(
        &app,
        "/v1/projects",
        &writer,
        "create-web",
        json!({"name": "api"}),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_eq!(project_count(&app, &org.key).await, 2);
}

#[tokio::test]
async fn a_refused_request_gives_its_key_back() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let bad = post_with(&app, "/v1/projects", &org.key, "k", json!({"name": ""})).await;
    bad.problem(422, "validation_failed");
    // Not kept: the same request runs (and fails) again, and a corrected one may use the key.
    let bad = post_with(&app, "/v1/projects", &org.key, "k", json!({"name": ""})).await;
    bad.problem(422, "validation_failed");
    let good = post_with(&app, "/v1/projects", &org.key, "k", json!({"name": "web"})).await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.body);

    // Without a valid key nothing is claimed: 401, then the same key works for its owner.
    let unknown = post_with(
        &app,
        "/v1/projects",
        "kwk_unknown",
        "k2",
        json!({"name": "x"}),
    )
    .await;
    unknown.problem(401, "invalid_token");
    let mine = post_with(&app, "/v1/projects", &org.key, "k2", json!({"name": "api"})).await;
    assert_eq!(mine.status, StatusCode::CREATED);

    // A key that is not one: 400, before anything runs.
    for bad_key in ["", "caf\u{e9}", &"x".repeat(256)] {
        let request = app
            .client
            .post(app.url("/v1/projects"))
            .bearer_auth(&org.key)
            .header("idempotency-key", bad_key.as_bytes())
            .json(&json!({"name": "never"}));
        let answer = read(request.send().await.unwrap()).await;
        answer.problem(400, "invalid_idempotency_key");
    }
    let twice = app
        .client
        .post(app.url("/v1/projects"))
        .bearer_auth(&org.key)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&json!({"name": "never"}));
    read(twice.send().await.unwrap())
        .await
        .problem(400, "invalid_idempotency_key");
    assert_eq!(project_count(&app, &org.key).await, 2);

    // Requests that create nothing ignore the header.
    let (_, verifier) = app.create_key(&org.key, "v", &["keys:verify"]).await;
    for _ in 0..2 {
        let checked = post_with(
            &app,
            "/v1/keys/verify",
            &verifier,
            "v",
            json!({"key": org.key}),
        )
        .await;
        assert_eq!(checked.status, StatusCode::OK);
        assert_eq!(checked.header("idempotent-replayed"), None);
    }
}

#[tokio::test]
async fn a_secret_is_shown_once_and_never_kept_for_a_retry() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let body = json!({"name": "CI", "scopes": ["instances:read"]});
    let first = post_with(&app, "/v1/api-keys", &org.key, "new-ci-key", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let secret = first.body["key"].as_str().unwrap().to_owned();
    let again = post_with(&app, "/v1/api-keys", &org.key, "new-ci-key", body).await;
    let problem = again.problem(409, "secret_already_shown");
    let location = first.header("location").unwrap();
    assert_eq!(again.header("location"), Some(location));
    assert!(
        problem["detail"].as_str().unwrap().contains(location),
        "{problem}"
    );
    assert!(!again.body.to_string().contains(&secret));
    let keys = app.get("/v1/api-keys", &org.key).await;
    assert_eq!(
        keys.body["data"].as_array().unwrap().len(),
        2,
        "the bootstrap key and CI"
    );

    // Rotations and webhook secrets alike.
    let id = first.body["id"].as_str().unwrap();
    let rotate = format!("/v1/api-keys/{id}/rotate");
    let rotated = post_with(
        &app,
        &rotate,
        &org.key,
        "rotate-ci",
        json!({"grace_seconds": 60}),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    post_with(
        &app,
        &rotate,
        &org.key,
        "rotate-ci",
        json!({"grace_seconds": 60}),
    )
    .await
    .problem(409, "secret_already_shown");

    // Nothing kept for idempotency holds a secret; what it keeps is there.
    let mut app = app;
    app.shutdown().await;
    let bytes = database_bytes(&app);
    assert!(
        contains(&bytes, b"rotate-ci"),
        "the test must see the kept keys"
    );
    for shown in [&secret, rotated.body["key"].as_str().unwrap()] {
        assert!(!contains(&bytes, shown.as_bytes()), "a shown key is stored");
        assert!(
            !contains(&bytes, &shown.as_bytes()[4..36]),
            "a key's random part is stored"
        );
    }
}

#[tokio::test]
async fn a_replay_spends_no_more_of_the_rate_limit_than_one_request() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({"name": "slow", "scopes": ["projects:write", "projects:read"], "rate_limit": {"requests": 2, "per_seconds": 3600}}),
        )
        .await;
    let limited = created.body["key"].as_str().unwrap();
    // One request, verified once (not once for the claim and again for the handler).
    let made = post_with(
        &app,
        "/v1/projects",
        limited,
        "once",
        json!({"name": "web"}),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let remaining = made.header("ratelimit").unwrap_or_default();
    assert!(remaining.contains(";r=1;"), "one of two left: {remaining}");
    assert_eq!(
        app.get("/v1/projects", limited).await.status,
        StatusCode::OK
    );
    app.get("/v1/projects", limited)
        .await
        .problem(429, "rate_limited");
}

#[tokio::test]
async fn a_key_is_kept_a_day() {
    let (app, clock) = TestApp::spawn_with_manual_clock(keyward_server::Config::default()).await;
    let org = app.bootstrap("Acme").await;
    let made = post_with(
        &app,
        "/v1/projects",
        &org.key,
        "daily",
        json!({"name": "web"}),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED);
    clock.advance(Duration::from_secs(23 * 3600));
    post_with(
        &app,
        "/v1/projects",
        &org.key,
        "daily",
        json!({"name": "api"}),
    )
    .await
    .problem(422, "idempotency_key_reused");
    clock.advance(Duration::from_secs(3600 + 1));
    let fresh = post_with(
        &app,
        "/v1/projects",
        &org.key,
        "daily",
        json!({"name": "api"}),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
    assert_eq!(fresh.header("idempotent-replayed"), None);
    // The hourly pruning deletes what is a day old.
    clock.advance(Duration::from_secs(24 * 3600 + 1));
    app.state.prune_audit_log().await.unwrap();
    let again = post_with(
        &app,
        "/v1/projects",
        &org.key,
        "daily",
        json!({"name": "mobile"}),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
}

/// 20 identical requests with one key at once, spread over `nodes`: exactly one creates, the
/// others get its answer or 409 while it runs.
async fn race(nodes: &[&TestApp], key: &str) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let node = nodes[i % nodes.len()];
        let request = node
            .client
            .post(node.url("/v1/projects"))
            .bearer_auth(key)
            .header("idempotency-key", "race")
            .json(&json!({"name": "raced"}));
        tasks.push(tokio::spawn(async move {
            read(request.send().await.unwrap()).await
        }));
    }
    let (mut created, mut replayed, mut in_flight) = (0, 0, 0);
    for task in tasks {
        let answer = task.await.unwrap();
        match (answer.status, answer.header("idempotent-replayed")) {
            (StatusCode::CREATED, None) => created += 1,
            (StatusCode::CREATED, Some("true")) => replayed += 1,
            (StatusCode::CONFLICT, _) => {
                answer.problem(409, "idempotency_in_flight");
                in_flight += 1;
            }
            _ => panic!("{} {}", answer.status, answer.body),
        }
    }
    assert_eq!(created, 1, "replayed {replayed}, in flight {in_flight}");
    assert_eq!(created + replayed + in_flight, 20);
    assert_eq!(project_count(nodes[0], key).await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_once_on_sqlite() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    race(&[&app], &org.key).await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_once_on_two_postgres_nodes() {
    let Some(cluster) = TempPostgres::start().unwrap_or_else(|error| panic!("{error}")) else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let a = TestApp::spawn_on(&url).await;
    let b = TestApp::spawn_on(&url).await;
    let org = a.bootstrap("Acme").await;
    race(&[&a, &b], &org.key).await;
    a.store.close().await;
    b.store.close().await;
}
