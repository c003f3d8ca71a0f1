//! Limits shared by an identity: a rate limit and credits set on an external id, shared by
//! every key of the organization that carries it, with each key's own limits as well.

use keyward_store::testing::TempPostgres;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

/// A key of `with`'s organization carrying `external_id` (and `extra` fields).
async fn key_of(app: &TestApp, with: &str, external_id: &str, extra: Value) -> String {
    let mut body = json!({
        "name": format!("Key of {external_id}"),
        "scopes": ["instances:read"],
        "external_id": external_id,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let created = app.post("/v1/api-keys", with, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["key"].as_str().unwrap().to_owned()
}

async fn put_limits(app: &TestApp, with: &str, external_id: &str, body: Value) -> Answer {
    app.call(
        reqwest::Method::PUT,
        &format!("/v1/identities/{external_id}/limits"),
        Some(with),
        Some(body),
    )
    .await
}

/// Sends `rounds` requests with each of `keys` in turn; how many each answer code got.
async fn spread(app: &TestApp, keys: &[String], rounds: usize) -> (usize, Vec<String>) {
    let mut allowed = 0;
    let mut refusals = Vec::new();
    for _ in 0..rounds {
        for key in keys {
            let answer = app.get("/v1/me", key).await;
            if answer.status == StatusCode::OK {
                allowed += 1;
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::TOO_MANY_REQUESTS,
                    "{}",
                    answer.body
                );
                refusals.push(answer.body["code"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    (allowed, refusals)
}

#[tokio::test]
async fn three_keys_of_one_identity_share_its_credits_and_rate_limit_exactly() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;

    // Credits: 30 for three keys, 60 requests.
    let set = put_limits(
        &app,
        &org.key,
        "customer_1",
        json!({ "credits": { "remaining": 30 } }),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["external_id"], "customer_1");
    assert_eq!(
        set.body["credits"],
        json!({ "remaining": 30, "refill": null })
    );
    assert_eq!(set.body["rate_limit"], Value::Null);
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(key_of(&app, &org.key, "customer_1", json!({})).await);
    }
    let other = key_of(&app, &org.key, "customer_2", json!({})).await;
    let (allowed, refusals) = spread(&app, &keys, 20).await;
    assert_eq!(allowed, 30, "{refusals:?}");
    assert!(refusals.iter().all(|code| code == "credits_exhausted"));
    // Another identity's key is not held by it.
    assert_eq!(app.get("/v1/me", &other).await.status, StatusCode::OK);
    let shown = app.get("/v1/identities/customer_1/limits", &org.key).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["credits"]["remaining"], 0);

    // A rate limit: 10 an hour for three keys, one of which has its own of 2: the stricter
    // wins for that key, and the three together get 10.
    let set = put_limits(
        &app,
        &org.key,
        "customer_3",
        json!({ "rate_limit": { "requests": 10, "per_seconds": 3600 } }),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let strict = key_of(
        &app,
        &org.key,
        "customer_3",
        json!({ "rate_limit": { "requests": 2, "per_seconds": 3600 } }),
    )
    .await;
    assert_eq!(spread(&app, std::slice::from_ref(&strict), 5).await.0, 2);
    let loose = vec![
        key_of(&app, &org.key, "customer_3", json!({})).await,
        key_of(&app, &org.key, "customer_3", json!({})).await,
    ];
    let (allowed, refusals) = spread(&app, &loose, 10).await;
    assert_eq!(allowed, 8, "10 less the strict key's 2: {refusals:?}");
    assert!(refusals.iter().all(|code| code == "rate_limited"));
    let limited = app.get("/v1/me", &loose[0]).await;
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some(r#""key";q=10;w=3600"#)
    );

    // Removed: the keys have only their own limits, on the next request.
    assert_eq!(
        app.delete("/v1/identities/customer_1/limits", &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get("/v1/me", &keys[0]).await.status, StatusCode::OK);
    app.get("/v1/identities/customer_1/limits", &org.key)
        .await
        .problem(404, "not_found");
    app.delete("/v1/identities/customer_1/limits", &org.key)
        .await
        .problem(404, "not_found");

    // Audited, both ways.
    let audit = app
        .get("/v1/audit-events?target=customer_1", &org.key)
        .await;
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["identity.limits_deleted", "identity.limits_set"],
        "{}",
        audit.body
    );
}

#[tokio::test]
async fn identity_limits_are_checked_and_kept_from_those_they_hold() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    for (path_id, body, field) in [
        ("customer_1", json!({}), "rate_limit"),
        (
            "customer_1",
            json!({ "rate_limit": { "requests": 0, "per_seconds": 60 } }),
            "rate_limit",
        ),
        ("customer_1", json!({ "credits": { "add": 5 } }), "credits"),
        (
            "customer_1",
            json!({ "credits": { "remaining": -1 } }),
            "credits",
        ),
        (
            "caf%C3%A9",
            json!({ "credits": { "remaining": 1 } }),
            "external_id",
        ),
        (
            "%20leading",
            json!({ "credits": { "remaining": 1 } }),
            "external_id",
        ),
    ] {
        let refused = put_limits(&app, &org.key, path_id, body.clone()).await;
        refused.problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], field, "{body}");
    }
    let unknown_field = put_limits(&app, &org.key, "customer_1", json!({ "quota": 5 })).await;
    assert_eq!(unknown_field.status.as_u16(), 422, "{}", unknown_field.body);
    // A `/` in the external id is percent-encoded.
    let slashed = put_limits(
        &app,
        &org.key,
        "customer_9%2Fuser_1",
        json!({ "credits": { "remaining": 100 } }),
    )
    .await;
    assert_eq!(slashed.status, StatusCode::OK, "{}", slashed.body);
    assert_eq!(slashed.body["external_id"], "customer_9/user_1");

    // Another organization sees none of it.
    let other = app.bootstrap("Other").await;
    app.get("/v1/identities/customer_9%2Fuser_1/limits", &other.key)
        .await
        .problem(404, "not_found");

    // It needs api_keys:write.
    let (_, reader) = app.create_key(&org.key, "Reader", &["api_keys:read"]).await;
    put_limits(
        &app,
        &reader,
        "customer_1",
        json!({ "credits": { "remaining": 1 } }),
    )
    .await
    .problem(403, "insufficient_scope");

    // A key held by any limit cannot change an identity's: not its own identity's (it would
    // free itself), nor another's.
    let writes = json!({ "scopes": ["api_keys:write", "api_keys:read"] });
    let rate_limited = key_of(
        &app,
        &org.key,
        "customer_5",
        json!({
            "scopes": ["api_keys:write"],
            "rate_limit": { "requests": 100, "per_seconds": 60 },
        }),
    )
    .await;
    put_limits(
        &app,
        &rate_limited,
        "customer_6",
        json!({ "credits": { "remaining": 1 } }),
    )
    .await
    .problem(422, "validation_failed");
    let held = key_of(&app, &org.key, "customer_9/user_1", writes).await;
    for refused in [
        put_limits(
            &app,
            &held,
            "customer_9%2Fuser_1",
            json!({ "credits": { "remaining": 9 } }),
        )
        .await,
        app.delete("/v1/identities/customer_9%2Fuser_1/limits", &held)
            .await,
    ] {
        refused.problem(422, "validation_failed");
    }
    // Nor make keys, which would not carry its identity's limits.
    app.post(
        "/v1/api-keys",
        &held,
        json!({ "name": "Escape", "scopes": ["api_keys:read"] }),
    )
    .await
    .problem(422, "validation_failed");
    // The organization's own key still can.
    assert_eq!(
        app.delete("/v1/identities/customer_9%2Fuser_1/limits", &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

/// Three keys of one identity, their requests spread over two nodes: exactly the identity's
/// credits are allowed.
#[tokio::test]
async fn an_identitys_credits_hold_exactly_across_two_nodes() {
    let Some(cluster) = TempPostgres::start().unwrap_or_else(|error| panic!("{error}")) else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let a = TestApp::spawn_on(&url).await;
    let b = TestApp::spawn_on(&url).await;
    let org = a.bootstrap("Acme").await;
    let set = put_limits(
        &a,
        &org.key,
        "customer_1",
        json!({ "credits": { "remaining": 300 } }),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(key_of(&a, &org.key, "customer_1", json!({})).await);
    }
    // 900 requests, 30 at a time, each key's alternating between the nodes.
    let mut allowed = 0;
    for _ in 0..30 {
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..30 {
            let node = if i % 2 == 0 { &a } else { &b };
            let request = node
                .client
                .get(node.url("/v1/me"))
                .bearer_auth(&keys[i % 3]);
            batch.spawn(async move { request.send().await.map(|r| r.status()) });
        }
        while let Some(done) = batch.join_next().await {
            match done.unwrap().unwrap() {
                StatusCode::OK => allowed += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("{other}"),
            }
        }
    }
    assert_eq!(allowed, 300);
    a.store.close().await;
    b.store.close().await;
}
