//! The verification hot path: what the cache must never get wrong, the verify API and rate
//! limits.

use std::sync::atomic::Ordering;
use std::time::Duration;

use keyward_core::{Brand, CredentialId, CredentialKind, KeyDigest, Name, PlaintextKey, Timestamp};
use keyward_server::Config;
use keyward_store::{Creator, NewCredential};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Org, TestApp};

/// Inserts a key that expires at `expires_at`, and returns it.
async fn key_expiring(app: &TestApp, org: &Org, expires_at: Timestamp) -> String {
    let key = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
    app.store
        .insert_credential(
            &keyward_store::AuditContext::SYSTEM,
            NewCredential {
                id: CredentialId::generate(CredentialKind::ApiKey),
                organization_id: org.id,
                project_id: None,
                name: Name::parse("Short-lived").unwrap(),
                digest: KeyDigest::of(key.expose_secret()),
                hint: key.hint(),
                scopes: crate::helpers::all_scope_names(),
                created_at: Timestamp::now(),
                expires_at: Some(expires_at),
                rate_limit: None,
                allowed_cidrs: None,
                created_by: Creator::Credential(
                    CredentialId::parse(&org.key_id, CredentialKind::ApiKey).unwrap(),
                ),
                rotated_from: None,
                metadata: keyward_core::Metadata::default(),
                credits: None,
            },
        )
        .await
        .unwrap();
    key.expose_secret().to_owned()
}

#[tokio::test]
async fn a_cached_key_is_refused_the_request_after_its_revocation() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app
        .create_key(&org.key, "Cached", &["instances:read"])
        .await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    }
    let lookups = app.store.stats().credential_lookups;
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    assert_eq!(
        app.store.stats().credential_lookups,
        lookups,
        "answered from memory"
    );

    assert_eq!(
        app.delete(&format!("/v1/api-keys/{id}"), &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get("/v1/me", &key).await.problem(401, "invalid_token");
}

#[tokio::test]
async fn a_key_that_expires_while_cached_is_refused() {
    let (app, clock) = TestApp::spawn_with_manual_clock(Config::default()).await;
    let org = app.bootstrap("Acme").await;
    let key = key_expiring(&app, &org, clock.clock().now().plus_seconds(2)).await;
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    let refused = app.get("/v1/me", &key).await;
    refused.problem(401, "invalid_token");
    assert!(refused.body["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_flood_of_unknown_keys_reads_the_database_once_per_distinct_key() {
    let app = TestApp::spawn().await;
    let made_up: Vec<String> = (0..5)
        .map(|_| {
            PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey)
                .unwrap()
                .expose_secret()
                .to_owned()
        })
        .collect();
    let before = app.store.stats().credential_lookups;
    let mut requests = Vec::new();
    for round in 0..40 {
        let key = made_up[round % made_up.len()].clone();
        let request = app.client.get(app.url("/v1/me")).bearer_auth(key);
        requests.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.store.stats().credential_lookups - before, 5);
    // Malformed keys never reach the database at all. (The server's pruning at start-up
    // writes too: let it finish first.)
    let writes = app.writes_settled(Duration::from_millis(200)).await;
    for _ in 0..10 {
        app.get("/v1/me", "kwk_not-a-key")
            .await
            .problem(401, "invalid_token");
    }
    assert_eq!(app.store.stats().credential_lookups - before, 5);
    // Keys of no organization leave no audit event, so the flood never writes at all.
    assert_eq!(
        app.store.stats().write_transactions,
        writes,
        "no write per failure"
    );
    app.state.flush_usage().await.unwrap();
    let metrics = &app.state.metrics;
    assert_eq!(metrics.failure_batches.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.failure_events.load(Ordering::Relaxed), 0);
    assert_eq!(app.store.stats().write_transactions, writes);
}

#[tokio::test]
async fn last_use_reaches_the_database_in_the_periodic_flush() {
    let app = TestApp::spawn_with(Config {
        usage_flush_interval: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app
        .create_key(&org.key, "Flushed", &["instances:read"])
        .await;
    // The pruning the server starts with writes too: let it finish (three transactions
    // with nothing to delete), and the flush of the bootstrap key's use with it.
    let writes = app.writes_settled(Duration::from_millis(400)).await;
    let batches = app.state.metrics.flush_batches.load(Ordering::Relaxed);
    for _ in 0..20 {
        assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    }
    // A periodic flush may fall among the requests: it is the only write allowed.
    let flushed = app.state.metrics.flush_batches.load(Ordering::Relaxed) - batches;
    assert_eq!(
        app.store.stats().write_transactions,
        writes + flushed,
        "no write per request"
    );
    let credential = CredentialId::parse(&id, CredentialKind::ApiKey).unwrap();
    let mut stored = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stored = app
            .store
            .get_credential(org.id, credential)
            .await
            .unwrap()
            .unwrap()
            .last_used_at;
        if stored.is_some() {
            break;
        }
    }
    assert!(stored.is_some(), "the flush wrote last use");
    let metrics = app.call(reqwest::Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("keyward_last_used_flush_batches_total"),
        "{text}"
    );
    assert!(
        !text.contains("keyward_last_used_flush_rows_total 0\n"),
        "{text}"
    );
}

#[tokio::test]
async fn the_verify_api_answers_for_the_callers_organization_only() {
    let app = TestApp::spawn().await;
    let acme = app.bootstrap("Acme").await;
    let globex = app.bootstrap("Globex").await;
    let (_, verifier) = app.create_key(&acme.key, "Gateway", &["keys:verify"]).await;
    let (reader_id, reader) = app
        .create_key(&acme.key, "Reader", &["instances:read", "projects:read"])
        .await;
    let verify = |key: String, scopes: serde_json::Value| {
        let body = json!({ "key": key, "scopes": scopes });
        let verifier = verifier.clone();
        let app = &app;
        async move { app.post("/v1/keys/verify", &verifier, body).await }
    };

    let valid = verify(reader.clone(), json!(["instances:read"])).await;
    assert_eq!(valid.status, StatusCode::OK);
    assert_eq!(valid.body["valid"], true);
    assert_eq!(valid.body["code"], "VALID");
    assert_eq!(valid.body["key_id"], reader_id.as_str());
    assert_eq!(valid.body["kind"], "api_key");
    assert_eq!(valid.body["organization_id"], acme.id.to_string());
    assert_eq!(
        valid.body["scopes"],
        json!(["instances:read", "projects:read"])
    );
    assert_eq!(valid.body["expires_at"], json!(null));

    let short = verify(reader.clone(), json!(["instances:write"])).await;
    assert_eq!(
        (short.body["valid"].clone(), short.body["code"].clone()),
        (json!(false), json!("INSUFFICIENT_SCOPE"))
    );

    for unknown in [
        "kwk_not-a-key".to_owned(),
        PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey)
            .unwrap()
            .expose_secret()
            .to_owned(),
        globex.key.clone(),
    ] {
        let answer = verify(unknown, json!([])).await;
        assert_eq!(answer.body["code"], "NOT_FOUND");
        assert_eq!(
            answer.body["organization_id"],
            json!(null),
            "nothing about other keys"
        );
    }

    let expired = key_expiring(&app, &acme, Timestamp::now().plus_seconds(-5)).await;
    assert_eq!(verify(expired, json!([])).await.body["code"], "EXPIRED");
    app.delete(&format!("/v1/api-keys/{reader_id}"), &acme.key)
        .await;
    assert_eq!(verify(reader, json!([])).await.body["code"], "REVOKED");

    app.post(
        "/v1/keys/verify",
        &verifier,
        json!({ "key": "x", "scopes": ["nope"] }),
    )
    .await
    .problem(422, "validation_failed");
    let (_, no_scope) = app
        .create_key(&acme.key, "No verify", &["instances:read"])
        .await;
    let refused = app
        .post("/v1/keys/verify", &no_scope, json!({ "key": "x" }))
        .await;
    refused.problem(403, "insufficient_scope");
    assert_eq!(refused.body["scope"], "keys:verify");
}

#[tokio::test]
async fn rate_limits_answer_429_with_the_ratelimit_headers_and_can_change() {
    let (app, clock) = TestApp::spawn_with_manual_clock(Config::default()).await;
    let org = app.bootstrap("Acme").await;
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "Limited", "scopes": ["instances:read"], "rate_limit": { "requests": 3, "per_seconds": 60 } }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.body["rate_limit"],
        json!({ "requests": 3, "per_seconds": 60 })
    );
    let id = created.body["id"].as_str().unwrap().to_owned();
    let key = created.body["key"].as_str().unwrap().to_owned();

    for remaining in [2, 1, 0] {
        let answer = app.get("/v1/instances", &key).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("ratelimit-policy"), Some(r#""key";q=3;w=60"#));
        let current = answer.header("ratelimit").unwrap();
        assert!(
            current.starts_with(&format!(r#""key";r={remaining};t="#)),
            "{current}"
        );
    }
    let limited = app.get("/v1/instances", &key).await;
    limited.problem(429, "rate_limited");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(retry_after, 20, "one request every 20 s");
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some(r#""key";q=3;w=60"#)
    );
    assert!(
        limited
            .header("ratelimit")
            .unwrap()
            .starts_with(r#""key";r=0;t="#)
    );

    // The verify API reports it too, without spending anything.
    let verified = app
        .post("/v1/keys/verify", &org.key, json!({ "key": key }))
        .await;
    assert_eq!(verified.body["code"], "RATE_LIMITED");
    assert_eq!(verified.body["retry_after"], 20);

    // One request is allowed again once its share of the window has passed, not sooner.
    clock.advance(Duration::from_secs(19));
    app.get("/v1/instances", &key)
        .await
        .problem(429, "rate_limited");
    clock.advance(Duration::from_secs(1));
    assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);
    app.get("/v1/instances", &key)
        .await
        .problem(429, "rate_limited");

    // Lifting the limit takes effect on the next request; keys without one get no headers.
    let path = format!("/v1/api-keys/{id}");
    let lifted = app
        .patch(&path, &org.key, json!({ "rate_limit": null }))
        .await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.body);
    assert_eq!(lifted.body["rate_limit"], json!(null));
    let free = app.get("/v1/instances", &key).await;
    assert_eq!(free.status, StatusCode::OK);
    assert_eq!(free.header("ratelimit"), None);

    let renamed = app
        .patch(&path, &org.key, json!({ "name": "Renamed" }))
        .await;
    assert_eq!(renamed.body["name"], "Renamed");
    for bad in [
        json!({ "requests": 0, "per_seconds": 60 }),
        json!({ "requests": 5 }),
        json!("fast"),
    ] {
        let answer = app
            .call(
                reqwest::Method::PATCH,
                &path,
                Some(&org.key),
                Some(json!({ "rate_limit": bad })),
            )
            .await;
        assert_eq!(answer.status.as_u16(), 422, "{bad}: {}", answer.body);
    }
    app.call(
        reqwest::Method::PATCH,
        &path,
        Some(&org.key),
        Some(json!({})),
    )
    .await
    .problem(422, "validation_failed");
}

#[tokio::test]
async fn metrics_count_verifications_and_cache_use() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    for _ in 0..3 {
        app.get("/v1/me", &org.key).await;
    }
    app.get("/v1/me", "kwk_bad").await;
    let metrics = app.call(reqwest::Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().unwrap();
    for line in [
        "keyward_verifications_total{outcome=\"valid\"} 3",
        "keyward_verifications_total{outcome=\"malformed\"} 1",
        "keyward_verification_cache_misses_total 1",
        "keyward_verification_cache_hits_total 2",
        "keyward_verification_cache_entries 1",
        "keyward_http_request_duration_seconds_count",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(!text.contains(&org.key));
}

/// Asks `with` for a key limited to `requests` per `per_seconds`.
async fn limited_key(
    app: &TestApp,
    with: &str,
    requests: u32,
    per_seconds: u32,
) -> crate::helpers::Answer {
    app.post(
        "/v1/api-keys",
        with,
        json!({
            "name": format!("{requests} per {per_seconds} s"),
            "scopes": ["instances:read", "api_keys:read", "api_keys:write"],
            "rate_limit": { "requests": requests, "per_seconds": per_seconds },
        }),
    )
    .await
}

#[tokio::test]
async fn a_spent_quota_stays_spent_when_the_cache_forgets_the_key() {
    // Entries age out after a second.
    let (app, clock) = TestApp::spawn_with_manual_clock(Config {
        cache_max_age: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let created = limited_key(&app, &org.key, 2, 86_400).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let path = format!("/v1/api-keys/{}", created.body["id"].as_str().unwrap());
    for _ in 0..2 {
        assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    }
    app.get("/v1/me", &key).await.problem(429, "rate_limited");

    // The entry ages out and is swept: the quota is still spent.
    clock.advance(Duration::from_secs(2));
    app.state.verifier.sweep();
    assert_eq!(app.verifier_cache_entries(), 0, "the entry was swept");
    app.get("/v1/me", &key).await.problem(429, "rate_limited");

    // Renaming it (which drops the entry on every node) gives nothing back either.
    let renamed = app
        .patch(&path, &org.key, json!({ "name": "Renamed" }))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    app.get("/v1/me", &key).await.problem(429, "rate_limited");
}

#[tokio::test]
async fn a_limited_key_cannot_lift_its_own_limit_or_grant_a_looser_one() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let created = limited_key(&app, &org.key, 100, 60).await;
    let limited = created.body["key"].as_str().unwrap().to_owned();
    let own = format!("/v1/api-keys/{}", created.body["id"].as_str().unwrap());

    // Not its own limit, in either direction; its name is fine.
    for body in [
        json!({ "rate_limit": null }),
        json!({ "rate_limit": { "requests": 1000, "per_seconds": 1 } }),
        json!({ "rate_limit": { "requests": 1, "per_seconds": 60 } }),
    ] {
        let refused = app.patch(&own, &limited, body).await;
        refused.problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "rate_limit");
    }
    assert_eq!(
        app.patch(&own, &limited, json!({ "name": "Still limited" }))
            .await
            .status,
        StatusCode::OK
    );
    let stored = app.get(&own, &org.key).await;
    assert_eq!(
        stored.body["rate_limit"],
        json!({ "requests": 100, "per_seconds": 60 })
    );

    // Children: limited, and no looser than the creator.
    for (requests, per_seconds) in [(101, 60), (100, 59), (1000, 600)] {
        limited_key(&app, &limited, requests, per_seconds)
            .await
            .problem(422, "validation_failed");
    }
    app.post(
        "/v1/api-keys",
        &limited,
        json!({ "name": "Unlimited child", "scopes": ["instances:read"] }),
    )
    .await
    .problem(422, "validation_failed");
    let child = limited_key(&app, &limited, 10, 60).await;
    assert_eq!(child.status, StatusCode::CREATED, "{}", child.body);
    let child_path = format!("/v1/api-keys/{}", child.body["id"].as_str().unwrap());

    // Nor can it loosen or lift a sibling's limit; tightening is fine.
    app.patch(&child_path, &limited, json!({ "rate_limit": null }))
        .await
        .problem(422, "validation_failed");
    app.patch(
        &child_path,
        &limited,
        json!({ "rate_limit": { "requests": 200, "per_seconds": 60 } }),
    )
    .await
    .problem(422, "validation_failed");
    let tightened = app
        .patch(
            &child_path,
            &limited,
            json!({ "rate_limit": { "requests": 5, "per_seconds": 60 } }),
        )
        .await;
    assert_eq!(tightened.status, StatusCode::OK, "{}", tightened.body);

    // An unlimited key (the bootstrap key) may set any limit, or none.
    let lifted = app
        .patch(&child_path, &org.key, json!({ "rate_limit": null }))
        .await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.body);
}
