//! Credits: calls a key may make, spent by each allowed request (the API's own 1, a route
//! rule's `cost`, the `cost` of `/v1/keys/verify`), refused whole once spent, refilled at the
//! boundary, set and added by `PATCH`; and on several nodes, never over-spent.

use std::time::Duration;

use keyward_store::testing::TempPostgres;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

/// A key of `org_key`'s organization with `credits`.
async fn credited(
    app: &TestApp,
    org_key: &str,
    scopes: &[&str],
    credits: Value,
) -> (String, String) {
    let created = app
        .post(
            "/v1/api-keys",
            org_key,
            json!({ "name": "Metered", "scopes": scopes, "credits": credits }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["credits"]["remaining"], credits["remaining"]);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["key"].as_str().unwrap().to_owned(),
    )
}

/// A webhook endpoint of `org_key`'s organization for the credits events (never answering).
async fn credit_webhook(app: &TestApp, org_key: &str) -> String {
    let hook = app
        .post(
            "/v1/webhooks",
            org_key,
            json!({
                "url": "http://127.0.0.1:9/hooks",
                "events": ["api_key.credits_low", "api_key.credits_exhausted"],
            }),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);
    hook.body["id"].as_str().unwrap().to_owned()
}

/// The events of the messages written for the endpoint `hook`, sorted.
async fn sent(app: &TestApp, org_key: &str, hook: &str) -> Vec<String> {
    let deliveries = app
        .get(&format!("/v1/webhooks/{hook}/deliveries"), org_key)
        .await;
    let mut events: Vec<String> = deliveries.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap().to_owned())
        .collect();
    events.sort();
    events
}

/// `PATCH`es the key `id`'s credits with `with`.
async fn set_credits(app: &TestApp, with: &str, id: &str, credits: Value) -> Answer {
    app.patch(
        &format!("/v1/api-keys/{id}"),
        with,
        json!({ "credits": credits }),
    )
    .await
}

#[tokio::test]
async fn credits_are_spent_by_allowed_requests_and_refused_whole_once_spent() {
    let app = TestApp::spawn_with(crate::forward_auth::platform()).await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = credited(
        &app,
        &org.key,
        &["instances:read"],
        json!({ "remaining": 3 }),
    )
    .await;

    // A request refused for a scope it lacks spends nothing.
    app.get("/v1/projects", &key)
        .await
        .problem(403, "insufficient_scope");
    for _ in 0..3 {
        assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);
    }
    let spent = app.get("/v1/instances", &key).await;
    spent.problem(429, "credits_exhausted");
    assert_eq!(
        spent.header("retry-after"),
        None,
        "no refill: no time to come back"
    );

    // The organization's key sees them spent, and sets them again; a key cannot set its own.
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(
        shown.body["credits"],
        json!({ "remaining": 0, "refill": null })
    );
    let patched = set_credits(&app, &org.key, &id, json!({ "remaining": 2 })).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    for _ in 0..2 {
        assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);
    }
    app.get("/v1/instances", &key)
        .await
        .problem(429, "credits_exhausted");
    let added = set_credits(&app, &org.key, &id, json!({ "add": 1 })).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);
    app.get("/v1/instances", &key)
        .await
        .problem(429, "credits_exhausted");

    // Bad changes are refused by field, and change nothing.
    for (body, says) in [
        (
            json!({ "credits": { "add": 1, "remaining": 3 } }),
            "send `add` alone",
        ),
        (
            json!({ "credits": { "remaining": -1 } }),
            "remaining must be 0",
        ),
        (json!({ "credits": { "add": 0 } }), "`add` must be 1"),
        (
            json!({ "credits": { "remaining": 1, "refill": { "amount": 5, "every": "day", "on_day": 3 } } }),
            "on_day is for monthly refills",
        ),
        (json!({ "credits": {} }), "give `remaining`"),
    ] {
        let refused = app
            .patch(&format!("/v1/api-keys/{id}"), &org.key, body.clone())
            .await;
        let problem = refused.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "credits", "{body}");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (other_id, other) = app
        .create_key(&org.key, "Manager", &["api_keys:write", "api_keys:read"])
        .await;
    let itself = set_credits(&app, &other, &other_id, json!({ "remaining": 5 })).await;
    assert_eq!(
        itself.problem(422, "validation_failed")["errors"][0]["message"],
        "a credential cannot change its own credits"
    );
    // Adding to a key without credits is refused inside the write.
    let none = set_credits(&app, &org.key, &other_id, json!({ "add": 5 })).await;
    none.problem(422, "validation_failed");
    // A key with credits can neither make keys nor give credits: they would be calls it does
    // not have.
    let (_, metered_manager) = credited(
        &app,
        &org.key,
        &["api_keys:write", "api_keys:read"],
        json!({ "remaining": 100 }),
    )
    .await;
    let minted = app
        .post(
            "/v1/api-keys",
            &metered_manager,
            json!({ "name": "Escape", "scopes": ["api_keys:read"] }),
        )
        .await;
    assert_eq!(
        minted.problem(422, "validation_failed")["errors"][0]["field"],
        "credits"
    );
    let given = set_credits(&app, &metered_manager, &other_id, json!({ "remaining": 5 })).await;
    given.problem(422, "validation_failed");
    // Nor people, who could make keys without its limit.
    let (_, metered_inviter) = credited(
        &app,
        &org.key,
        &["members:write", "members:read"],
        json!({ "remaining": 100 }),
    )
    .await;
    let invited = app
        .post(
            "/v1/members",
            &metered_inviter,
            json!({ "email": "grace@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::FORBIDDEN, "{}", invited.body);
    // Setting them again to the same values still starts a generation, and is audited.
    let again = set_credits(&app, &org.key, &id, json!({ "remaining": 1 })).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let again = set_credits(&app, &org.key, &id, json!({ "remaining": 1 })).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    // Removing them: no limit any more.
    let removed = set_credits(&app, &org.key, &id, json!(null)).await;
    assert_eq!(removed.body["credits"], Value::Null);
    assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);

    // Every change was audited.
    let audit = app
        .get(&format!("/v1/audit-events?target={id}"), &org.key)
        .await;
    let updates: Vec<&Value> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"] == "api_key.updated")
        .collect();
    assert_eq!(
        updates.len(),
        5,
        "set, add, set, the same set, remove: {}",
        audit.body
    );

    // The refusals are counted in the key's usage.
    app.state.flush_usage().await.unwrap();
    let usage = app
        .get(
            &format!("/v1/api-keys/{id}/usage?granularity=hour"),
            &org.key,
        )
        .await;
    assert_eq!(
        usage.body["totals"]["credits_exhausted"], 3,
        "{}",
        usage.body
    );
    assert_eq!(usage.body["totals"]["allowed"], 7, "{}", usage.body);
}

#[tokio::test]
async fn verify_forward_authentication_and_introspection_spend_what_they_say() {
    let app = TestApp::spawn_with(crate::forward_auth::platform()).await;
    let org = app.bootstrap("Acme").await;
    let (_, gateway) = app.create_key(&org.key, "Gateway", &["keys:verify"]).await;
    let (_, key) = credited(
        &app,
        &org.key,
        &["databases:read"],
        json!({ "remaining": 10 }),
    )
    .await;
    let verify = async |cost: Value| {
        app.post(
            "/v1/keys/verify",
            &gateway,
            json!({ "key": key, "cost": cost }),
        )
        .await
        .body
    };
    let first = verify(json!(4)).await;
    assert_eq!(first["code"], "VALID", "{first}");
    assert_eq!(first["credits_remaining"], 6);
    // A cost of 0 only looks.
    let free = verify(json!(0)).await;
    assert_eq!(free["code"], "VALID", "{free}");
    assert_eq!(free["credits_remaining"], 6);
    // More than is left: refused whole, nothing spent.
    let refused = verify(json!(7)).await;
    assert_eq!(refused["code"], "CREDITS_EXHAUSTED", "{refused}");
    assert_eq!(refused["valid"], false);
    assert_eq!(refused["credits_remaining"], 6, "what is left, untouched");
    // Looking spends nothing.
    let looked = app
        .call_form(
            Method::POST,
            "/oauth/introspect",
            Some(&gateway),
            &[("token", key.as_str())],
        )
        .await;
    assert_eq!(looked.body["active"], true);
    assert_eq!(looked.body["credits_remaining"], 6, "{}", looked.body);
    // Forward authentication spends the rule's cost (1 unless it says), and says what is left.
    let project = app.create_project(&org.key, "Web").await;
    let passed = crate::forward_auth::decide(
        &app,
        Some(&key),
        "GET",
        &format!("/v1/databases/{project}/t"),
    )
    .await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    assert_eq!(passed.header("keyward-credits-remaining"), Some("5"));
    let exact = verify(json!(5)).await;
    assert_eq!(exact["credits_remaining"], 0, "{exact}");
    let gone = crate::forward_auth::decide(
        &app,
        Some(&key),
        "GET",
        &format!("/v1/databases/{project}/t"),
    )
    .await;
    gone.problem(429, "credits_exhausted");
    // A bad cost is the caller's mistake.
    let bad = app
        .post(
            "/v1/keys/verify",
            &gateway,
            json!({ "key": key, "cost": -1 }),
        )
        .await;
    bad.problem(422, "validation_failed");
}

#[tokio::test]
async fn credits_refill_at_the_boundary_and_webhooks_say_so_once() {
    let (app, clock) = TestApp::spawn_with_manual_clock(keyward_server::Config {
        webhooks_allow_private_networks: true,
        ..Default::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let hook = credit_webhook(&app, &org.key).await;
    let (id, key) = credited(
        &app,
        &org.key,
        &["instances:read"],
        json!({ "remaining": 10, "refill": { "amount": 10, "every": "day" } }),
    )
    .await;
    for _ in 0..10 {
        assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);
    }
    let now = clock.clock().now().unix_seconds();
    let midnight = now - now.rem_euclid(86_400) + 86_400;
    for _ in 0..3 {
        let refused = app.get("/v1/instances", &key).await;
        refused.problem(429, "credits_exhausted");
        let retry: i64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert_eq!(retry, midnight - now, "until the refill");
    }
    // Once each, however many requests found them spent.
    let events = async || sent(&app, &org.key, &hook).await;
    assert_eq!(
        events().await,
        ["api_key.credits_exhausted", "api_key.credits_low"]
    );
    // A second before midnight, still spent; at midnight, ten again.
    clock.advance(Duration::from_secs(
        u64::try_from(midnight - now - 1).unwrap(),
    ));
    app.get("/v1/instances", &key)
        .await
        .problem(429, "credits_exhausted");
    clock.advance(Duration::from_secs(1));
    for _ in 0..10 {
        assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);
    }
    app.get("/v1/instances", &key)
        .await
        .problem(429, "credits_exhausted");
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(
        shown.body["credits"]["refill"],
        json!({ "amount": 10, "every": "day" })
    );
    // The new period sent its own, once each.
    assert_eq!(events().await.len(), 4, "{:?}", events().await);
}

/// Requests spread over two nodes: exactly the credits are allowed.
#[tokio::test]
async fn two_nodes_never_allow_more_than_the_credits() {
    let Some(cluster) = TempPostgres::start().unwrap_or_else(|error| panic!("{error}")) else {
        return;
    };
    for run in 0..5 {
        let url = cluster.create_database().await.unwrap();
        let config = || keyward_server::Config {
            webhooks_allow_private_networks: true,
            ..Default::default()
        };
        let a = TestApp::spawn_on_with(&url, config()).await;
        let b = TestApp::spawn_on_with(&url, config()).await;
        let org = a.bootstrap("Acme").await;
        let hook = credit_webhook(&a, &org.key).await;
        let (_, key) = credited(
            &a,
            &org.key,
            &["instances:read"],
            json!({ "remaining": 1000 }),
        )
        .await;
        // 3,000 requests, 20 at a time, alternating between the nodes.
        let mut allowed = 0;
        let mut exhausted = 0;
        for _ in 0..150 {
            let mut batch = tokio::task::JoinSet::new();
            for i in 0..20 {
                let node = if i % 2 == 0 { &a } else { &b };
                let request = node.client.get(node.url("/v1/instances")).bearer_auth(&key);
                batch.spawn(async move { request.send().await.map(|r| r.status()) });
            }
            while let Some(done) = batch.join_next().await {
                match done.unwrap().unwrap() {
                    StatusCode::OK => allowed += 1,
                    StatusCode::TOO_MANY_REQUESTS => exhausted += 1,
                    other => panic!("run {run}: {other}"),
                }
            }
        }
        assert_eq!(allowed, 1_000, "run {run}: {exhausted} refused");
        // Both nodes found them low and spent: each webhook once, whichever node sent it.
        let events = sent(&a, &org.key, &hook).await;
        assert_eq!(
            events,
            ["api_key.credits_exhausted", "api_key.credits_low"],
            "run {run}"
        );
    }
}

#[tokio::test]
async fn rotation_moves_the_credits_to_the_successor() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, old) = credited(
        &app,
        &org.key,
        &["instances:read", "api_keys:write"],
        json!({ "remaining": 5 }),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(app.get("/v1/instances", &old).await.status, StatusCode::OK);
    }
    // What the node holds goes back before the rotation reads the balance.
    let rotated = app
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 3600 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(rotated.body["credits"]["remaining"], 3, "{}", rotated.body);
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    // The old key still works during the overlap, but its credits went with the rotation.
    app.get("/v1/instances", &old)
        .await
        .problem(429, "credits_exhausted");
    assert_eq!(app.get("/v1/instances", &new).await.status, StatusCode::OK);
    // A key with credits may rotate itself (the request spends one): it hands on only its
    // own.
    let new_id = rotated.body["id"].as_str().unwrap().to_owned();
    let own = app
        .post(
            &format!("/v1/api-keys/{new_id}/rotate"),
            &new,
            json!({ "grace_seconds": 0 }),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    assert_eq!(own.body["credits"]["remaining"], 1, "{}", own.body);
    let newest = own.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/instances", &newest).await.status,
        StatusCode::OK
    );
    app.get("/v1/instances", &newest)
        .await
        .problem(429, "credits_exhausted");
}

#[tokio::test]
async fn the_keys_list_shows_what_is_left_and_the_refill() {
    let app = TestApp::spawn().await;
    let mut ada = crate::dashboard::Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let admin = ada
        .create_key("Admin", &["api_keys:write", "instances:read"])
        .await;
    let admin = crate::dashboard::shown_key(&admin);
    credited(
        &app,
        &admin,
        &["instances:read"],
        json!({ "remaining": 50, "refill": { "amount": 80, "every": "month", "on_day": 15 } }),
    )
    .await;
    let list = ada.get("/settings/api-keys").await;
    assert!(
        list.body.contains(
            "<p class=\"credits\">50 credits left, back to 80 on day 15 of each month (UTC)</p>"
        ),
        "{}",
        list.body
    );
}

#[tokio::test]
async fn the_dashboard_creates_keys_with_credits() {
    let app = TestApp::spawn().await;
    let mut ada = crate::dashboard::Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let form = ada.get("/settings/api-keys/new").await;
    assert!(form.body.contains("id=\"credits\""), "{}", form.body);
    let csrf = form.csrf_token();
    let request_id = form.request_id();
    let mut fields = vec![
        ("csrf_token", csrf.as_str()),
        ("request_id", request_id.as_str()),
        ("name", "metered"),
        ("expires_in", "never"),
        ("scopes", "instances:read"),
        ("credits", ""),
        ("refill_every", "month"),
        ("refill_amount", "80"),
        ("refill_on_day", "15"),
    ];
    // A refill without the credits it starts with: refused, what was typed kept.
    let refused = ada.post("/settings/api-keys", &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"credits-error\""),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("value=\"80\""), "{}", refused.body);
    assert!(refused.body.contains("<option value=\"month\" selected>"));
    fields[5] = ("credits", "abc");
    let refused = ada.post("/settings/api-keys", &fields).await;
    assert!(
        refused.body.contains("credits must be a whole number"),
        "{}",
        refused.body
    );
    fields[5] = ("credits", "50");
    let created = ada.post("/settings/api-keys", &fields).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let key = crate::dashboard::shown_key(&created);
    let list = ada.get("/settings/api-keys").await;
    assert!(
        list.body
            .contains("50 credits left, back to 80 on day 15 of each month (UTC)"),
        "{}",
        list.body
    );
    let record = app
        .store
        .find_credential_by_digest(&keyward_core::KeyDigest::of(&key))
        .await
        .unwrap()
        .unwrap();
    let credits = record.credits.unwrap().settings;
    assert_eq!(credits.remaining, 50);
    assert_eq!(credits.refill.unwrap().on_day, Some(15));
}
