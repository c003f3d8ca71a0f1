//! The organization's policy for new credentials: refusals that say the maximum, existing
//! credentials marked, rotation held to it too, and the owners' dashboard page.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::dashboard::Visitor;
use crate::helpers::TestApp;

fn days_ahead(days: i64) -> String {
    keyward_core::Timestamp::now()
        .plus_seconds(days * 86_400)
        .to_string()
}

#[tokio::test]
async fn new_credentials_meet_the_policy_and_old_ones_are_marked() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (old_id, _) = app.create_key(&org.key, "Old", &["instances:read"]).await;

    let shown = app.get("/v1/organization", &org.key).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["max_lifetime_days"], json!(null));
    assert_eq!(shown.body["require_expiry"], false);
    let set = app
        .call(
            Method::PATCH,
            "/v1/organization",
            Some(&org.key),
            Some(json!({ "max_lifetime_days": 30 })),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["max_lifetime_days"], 30);
    assert_eq!(set.body["name"], "Acme");

    // No expiry, or a later one: refused, saying the maximum; within it: created.
    for body in [
        json!({ "name": "Forever", "scopes": ["instances:read"] }),
        json!({ "name": "Long", "scopes": ["instances:read"], "expires_at": days_ahead(31) }),
    ] {
        let refused = app.post("/v1/api-keys", &org.key, body).await;
        let problem = refused.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "expires_at");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("at most 30 days"),
            "{problem}"
        );
    }
    let made = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "Short", "scopes": ["instances:read"], "expires_at": days_ahead(29) }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);

    // Existing keys keep working, marked; a rotation is a new key, held to the policy too.
    let listed = app.get("/v1/api-keys", &org.key).await;
    let marked: Vec<(&str, bool)> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap(),
                k["exceeds_policy"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        marked,
        [("Short", false), ("Old", true), ("bootstrap", true)]
    );
    let rotation = app
        .post(
            &format!("/v1/api-keys/{old_id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 0 }),
        )
        .await;
    rotation.problem(422, "validation_failed");
    // With an expiry within the policy, it rotates.
    let within = app
        .post(
            &format!("/v1/api-keys/{old_id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 0, "expires_at": days_ahead(20) }),
        )
        .await;
    assert_eq!(within.status, StatusCode::CREATED, "{}", within.body);

    // An expiry is required without a maximum too; null removes the maximum.
    let set = app
        .call(
            Method::PATCH,
            "/v1/organization",
            Some(&org.key),
            Some(json!({ "max_lifetime_days": null, "require_expiry": true })),
        )
        .await;
    assert_eq!(set.body["max_lifetime_days"], json!(null));
    assert_eq!(set.body["require_expiry"], true);
    let refused = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "Forever", "scopes": ["instances:read"] }),
        )
        .await;
    assert!(
        refused.problem(422, "validation_failed")["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("requires an expiry")
    );
    let far = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "Far", "scopes": ["instances:read"], "expires_at": days_ahead(300) }),
        )
        .await;
    assert_eq!(far.status, StatusCode::CREATED);

    app.call(
        Method::PATCH,
        "/v1/organization",
        Some(&org.key),
        Some(json!({ "max_lifetime_days": 0 })),
    )
    .await
    .problem(422, "validation_failed");
    // The policy needs organization:write (only owners may grant it).
    let reader = far.body["key"].as_str().unwrap();
    let refused = app
        .call(
            Method::PATCH,
            "/v1/organization",
            Some(reader),
            Some(json!({ "require_expiry": false })),
        )
        .await;
    assert_eq!(
        refused.problem(403, "insufficient_scope")["scope"],
        "organization:write"
    );
    assert_eq!(
        app.get("/v1/organization", reader).await.status,
        StatusCode::OK
    );
    // Two events: the two policy changes (the refused one left none).
    let trail = app.audit_trail(org.id).await;
    let changes = trail
        .iter()
        .filter(|(action, _)| action == "organization.policy_changed")
        .count();
    assert_eq!(changes, 2);
}

#[tokio::test]
async fn owners_set_the_policy_in_the_dashboard_and_forms_say_it() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let page = ada.get("/settings/organization/policy").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf_token();
    let bad = ada
        .post(
            "/settings/organization/policy",
            &[("csrf_token", &csrf), ("max_lifetime_days", "forever")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"max-lifetime-error\""));
    let saved = ada
        .post(
            "/settings/organization/policy",
            &[("csrf_token", &csrf), ("max_lifetime_days", "90")],
        )
        .await;
    assert_eq!(
        saved.location(),
        "/settings/organization/policy?notice=saved"
    );
    let page = ada.get("/settings/organization/policy").await;
    assert!(page.body.contains("value=\"90\""));

    // The create form's "No expiration" is refused with the rule next to the field.
    let refused = ada.create_key("Forever", &["instances:read"]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("at most 90 days"), "{}", refused.body);

    // Admins neither see nor open the page.
    let mut bob = Visitor::new(&app);
    bob.sign_up("bob@example.com", "Bob's own").await;
    crate::dashboard::add_and_switch(&mut ada, &mut bob, "bob@example.com", "admin", "Acme").await;
    assert_eq!(
        bob.get("/settings/organization/policy").await.status,
        StatusCode::FORBIDDEN
    );
}

/// A policy change and key creations at once, on PostgreSQL when it is installed: the check
/// runs in the inserting transaction (the organization's row share-locked), so every key
/// that was made without an expiry committed before the policy did, and every one after was
/// refused. The audit log's ids (time-ordered) show the order of the transactions.
#[tokio::test]
async fn a_policy_change_and_concurrent_creations_never_pass_each_other() {
    let cluster =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let app = match &cluster {
        Some(cluster) => TestApp::spawn_on(&cluster.create_database().await.unwrap()).await,
        None => TestApp::spawn().await,
    };
    let org = app.bootstrap("Acme").await;
    let mut creations = Vec::new();
    let mut policy = None;
    for i in 0..24 {
        if i == 12 {
            let (client, url, key) = (
                app.client.clone(),
                app.url("/v1/organization"),
                org.key.clone(),
            );
            policy = Some(tokio::spawn(async move {
                let answer = client
                    .patch(url)
                    .bearer_auth(key)
                    .json(&json!({ "max_lifetime_days": 30 }))
                    .send()
                    .await
                    .unwrap();
                answer.status()
            }));
        }
        // Spread over a few milliseconds, so that the change lands among them.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let (client, url, key) = (app.client.clone(), app.url("/v1/api-keys"), org.key.clone());
        creations.push(tokio::spawn(async move {
            let answer = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({ "name": format!("key {i}"), "scopes": ["instances:read"] }))
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let body: serde_json::Value = answer.json().await.unwrap();
            (status, body)
        }));
    }
    let policy = policy.unwrap().await.unwrap();
    assert_eq!(policy, StatusCode::OK);
    let mut made = Vec::new();
    for creation in creations {
        let (status, body) = creation.await.unwrap();
        match status {
            StatusCode::CREATED => made.push(body["id"].as_str().unwrap().to_owned()),
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(body["errors"][0]["field"], "expires_at", "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    let events = app
        .store
        .list_audit_events(
            org.id,
            &keyward_store::AuditFilter::default(),
            keyward_store::Page::first(100),
        )
        .await
        .unwrap()
        .items;
    let policy_event = events
        .iter()
        .find(|e| e.action == "organization.policy_changed")
        .unwrap()
        .id;
    for id in &made {
        let created = events
            .iter()
            .find(|e| e.action == "api_key.created" && &e.target_id == id)
            .unwrap();
        assert!(
            created.id < policy_event,
            "{id} without an expiry committed after the policy"
        );
    }
    // Every key made is marked as exceeding the policy now in force.
    let list = app.get("/v1/api-keys", &org.key).await;
    for key in list.body["data"].as_array().unwrap() {
        if made.iter().any(|id| key["id"] == id.as_str()) {
            assert_eq!(key["exceeds_policy"], true);
        }
    }
}
