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
    // A service caching answers (`keyward-verify`) may keep this one.
    let (_, checker) = app.create_key(&org.key, "Checker", &["keys:verify"]).await;
    let verify = || app.post("/v1/keys/verify", &checker, json!({ "key": key }));
    let answer = verify().await;
    assert_eq!(answer.body["valid"], true, "{}", answer.body);
    assert_eq!(answer.body["cacheable"], true, "{}", answer.body);

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
    assert_eq!(answer.header("retry-after"), Some("5"), "come back shortly");
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
    // Still valid from this node's cache, but not to be kept: cut off from the database, it
    // would not hear of a revocation made through another node.
    let answer = verify().await;
    assert_eq!(answer.body["valid"], true, "{}", answer.body);
    assert_eq!(answer.body["cacheable"], false, "{}", answer.body);

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

/// Waits up to 15 s for `app` to see the database `up` (or not), by its `/readyz`.
async fn wait_until_ready(app: &TestApp, up: bool) {
    let wanted = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    wait_for(app, "/readyz", wanted).await;
}

fn unknown_key() -> String {
    keyward_core::PlaintextKey::generate(
        &keyward_core::Brand::default(),
        keyward_core::CredentialKind::ApiKey,
    )
    .unwrap()
    .expose_secret()
    .to_owned()
}

#[tokio::test]
async fn a_clean_postgres_shutdown_keeps_verified_keys_working_and_fails_the_rest_at_once() {
    let Some(cluster) = cluster() else { return };
    let url = cluster.create_database().await.unwrap();
    let a = TestApp::spawn_on(&url).await;
    let b = TestApp::spawn_on(&url).await;
    let org = a.bootstrap("Acme").await;
    let (_, key) = a.create_key(&org.key, "Cached", &["instances:read"]).await;
    for node in [&a, &b] {
        assert_eq!(node.get("/v1/me", &key).await.status, StatusCode::OK);
    }

    cluster.pause().unwrap();
    wait_until_ready(&a, false).await;
    wait_until_ready(&b, false).await;
    // Keys verified before keep working on every node, for the grace.
    for _ in 0..5 {
        for node in [&a, &b] {
            assert_eq!(node.get("/v1/me", &key).await.status, StatusCode::OK);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything else is refused at once, without waiting for a connection.
    let unknown = unknown_key();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        a.get("/v1/me", &unknown).await.problem(503, "unavailable");
        a.post("/v1/projects", &org.key, json!({ "name": "During" }))
            .await
            .problem(503, "unavailable");
        a.call(Method::GET, "/readyz", None, None)
            .await
            .problem(503, "unavailable");
        slowest = slowest.max(started.elapsed() / 3);
    }
    eprintln!("slowest 503 while the database is away: {slowest:?}");
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");

    cluster.resume().unwrap();
    wait_until_ready(&a, true).await;
    wait_until_ready(&b, true).await;
    assert_eq!(a.get("/v1/me", &key).await.status, StatusCode::OK);
    a.get("/v1/me", &unknown)
        .await
        .problem(401, "invalid_token");
    a.store.close().await;
    b.store.close().await;
}

#[tokio::test]
async fn after_an_outage_no_node_accepts_a_key_revoked_on_another() {
    let Some(cluster) = cluster() else { return };
    let url = cluster.create_database().await.unwrap();
    let a = TestApp::spawn_on(&url).await;
    let b = TestApp::spawn_on(&url).await;
    let org = b.bootstrap("Acme").await;
    let (mut worst_in_grace, mut worst_notified) = (Duration::ZERO, Duration::ZERO);
    for round in 0..3 {
        let (id, key) = b
            .create_key(&org.key, &format!("Round {round}"), &["instances:read"])
            .await;
        assert_eq!(
            a.get("/v1/me", &key).await.status,
            StatusCode::OK,
            "cached on A"
        );
        cluster.pause().unwrap();
        wait_until_ready(&a, false).await;
        assert_eq!(a.get("/v1/me", &key).await.status, StatusCode::OK, "grace");

        // Node A is asked with the key all along; node B revokes it as soon as it can. Each
        // request notes whether A had its database back when it was sent.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hammer = {
            let (client, url, key, stop, store) = (
                a.client.clone(),
                a.url("/v1/me"),
                key.clone(),
                stop.clone(),
                a.store.clone(),
            );
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let a_was_up = store.state().down_for.is_none();
                    let sent = Instant::now();
                    let answer = client.get(&url).bearer_auth(&key).send().await;
                    if answer.is_ok_and(|answer| answer.status() == StatusCode::OK) {
                        accepted.push((sent, a_was_up));
                    }
                }
                accepted
            })
        };
        cluster.resume().unwrap();
        let revoked_at = loop {
            let answer = b.delete(&format!("/v1/api-keys/{id}"), &org.key).await;
            if answer.status == StatusCode::NO_CONTENT {
                break Instant::now();
            }
            assert_eq!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let accepted = hammer.await.unwrap();
        // Accepted after the revocation: while A still could not reach the database (its
        // grace, serving what it verified before), and once it had it back (until B's
        // notification arrived).
        let latest = |up: bool| {
            accepted
                .iter()
                .filter(|(sent, a_was_up)| *sent > revoked_at && *a_was_up == up)
                .map(|(sent, _)| *sent - revoked_at)
                .max()
                .unwrap_or_default()
        };
        let (in_grace, notified) = (latest(false), latest(true));
        eprintln!(
            "round {round}: node A accepted the key up to {in_grace:?} after its revocation \
             while reconnecting, up to {notified:?} with its database back"
        );
        worst_in_grace = worst_in_grace.max(in_grace);
        worst_notified = worst_notified.max(notified);
        a.get("/v1/me", &key).await.problem(401, "invalid_token");
    }
    // Once A has its database back, the revocation reaches it as any change does.
    assert!(
        worst_notified <= Duration::from_millis(100),
        "accepted {worst_notified:?} after revocation with the database back"
    );
    // Before that, A serves its grace until it reconnects, within a few retry intervals of
    // B; a loose bound, as the runner may be busy.
    assert!(
        worst_in_grace <= Duration::from_secs(2),
        "accepted {worst_in_grace:?} after revocation while reconnecting"
    );
    a.store.close().await;
    b.store.close().await;
}

/// The grace lasts exactly its length from when the node lost the database, on the node's
/// clock (monotonic, to the nanosecond; it used to be kept in whole wall-clock seconds and
/// could end up to a second early). The clock here moves only when told, so the test waits
/// for nothing.
#[tokio::test]
async fn the_outage_grace_lasts_its_length() {
    let Some(cluster) = cluster() else { return };
    let url = cluster.create_database().await.unwrap();
    let grace = Duration::from_secs(60);
    let (app, clock) = TestApp::spawn_on_with_manual_clock(
        &url,
        keyward_server::Config {
            outage_grace: grace,
            ..keyward_server::Config::default()
        },
    )
    .await;
    let org = app.bootstrap("Acme").await;
    assert_eq!(app.get("/v1/me", &org.key).await.status, StatusCode::OK);
    cluster.pause().unwrap();
    wait_until_ready(&app, false).await;
    clock.advance(grace - Duration::from_millis(1));
    assert_eq!(
        app.get("/v1/me", &org.key).await.status,
        StatusCode::OK,
        "a millisecond before the grace ends"
    );
    clock.advance(Duration::from_millis(1));
    app.get("/v1/me", &org.key)
        .await
        .problem(503, "unavailable");
    cluster.resume().unwrap();
    wait_until_ready(&app, true).await;
    assert_eq!(app.get("/v1/me", &org.key).await.status, StatusCode::OK);
    app.store.close().await;
}

/// Requests already waiting for a database connection when PostgreSQL shuts down get their
/// 503 as soon as the node knows the database is away, not when the pool stops waiting (3 s).
#[tokio::test]
async fn requests_waiting_for_a_connection_when_postgres_stops_fail_at_once() {
    let Some(cluster) = cluster() else { return };
    let url = cluster.create_database().await.unwrap();
    let app = TestApp::spawn_on(&url).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Back to back from eight clients, across the shutdown: unknown keys, each a database read.
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, stop) = (app.client.clone(), app.url("/v1/me"), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let started = Instant::now();
                    let status = client
                        .get(&url)
                        .bearer_auth(unknown_key())
                        .send()
                        .await
                        .unwrap()
                        .status();
                    answers.push((status, started.elapsed()));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.pause().unwrap();
    wait_until_ready(&app, false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    let refused: Vec<Duration> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(_, took)| *took)
        .collect();
    assert!(
        answers.iter().all(|(status, _)| [
            StatusCode::UNAUTHORIZED,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(status)),
        "{answers:?}"
    );
    assert!(!refused.is_empty());
    let slowest = refused.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} answers, slowest 503 across the shutdown: {slowest:?}",
        answers.len()
    );
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    cluster.resume().unwrap();
    wait_until_ready(&app, true).await;
    app.store.close().await;
}

#[tokio::test]
async fn a_rotated_key_stops_on_every_node_when_its_grace_ends() {
    let Some(cluster) = cluster() else { return };
    let url = cluster.create_database().await.unwrap();
    let node = |clock: &keyward_store::ManualClock| keyward_server::Config {
        clock: clock.clock(),
        // Far longer than the grace: only the rotation can stop the key in time.
        cache_max_age: Duration::from_secs(3600),
        ..keyward_server::Config::default()
    };
    let (clock_a, clock_b) = (
        keyward_store::ManualClock::starting_now(),
        keyward_store::ManualClock::starting_now(),
    );
    let a = TestApp::spawn_on_with(&url, node(&clock_a)).await;
    let b = TestApp::spawn_on_with(&url, node(&clock_b)).await;
    let org = a.bootstrap("Acme").await;
    let (id, key) = a.create_key(&org.key, "CI", &["instances:read"]).await;
    // Node B has the key in memory before the rotation.
    assert_eq!(b.get("/v1/me", &key).await.status, StatusCode::OK);

    let rotated = a
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 60 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(
        b.get("/v1/me", &key).await.status,
        StatusCode::OK,
        "in the grace"
    );
    clock_a.advance(Duration::from_secs(61));
    clock_b.advance(Duration::from_secs(61));
    a.get("/v1/me", &key).await.problem(401, "invalid_token");
    // B learned of the rotation from A's notification, not from its cache ageing out.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.get("/v1/me", &key).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "node B still accepts the rotated key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new = rotated.body["key"].as_str().unwrap();
    assert_eq!(b.get("/v1/me", new).await.status, StatusCode::OK);
    a.store.close().await;
    b.store.close().await;
}
