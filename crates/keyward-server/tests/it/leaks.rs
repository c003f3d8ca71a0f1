//! Reports of exposed keys: `POST /v1/credentials/revoke` answers the same whatever it is
//! sent, revokes every usable key in it on every node, and tells the key's organization
//! (audit log, webhook, "exposed" mark, owners' banner).

use std::time::{Duration, Instant};

use keyward_core::{Brand, CredentialKind, PlaintextKey};
use keyward_server::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::Visitor;
use crate::helpers::{Answer, TestApp, read};

async fn report(app: &TestApp, body: &str) -> Answer {
    let request = app
        .client
        .post(app.url("/v1/credentials/revoke"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    read(request.send().await.unwrap()).await
}

/// Waits until `key` is refused by `app`.
async fn wait_until_refused(app: &TestApp, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if app.get("/v1/me", key).await.status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert!(Instant::now() < deadline, "the reported key still works");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What an answer shows a reporter: status, body and headers but the per-request ones.
fn seen(answer: &Answer) -> (StatusCode, Value, Vec<String>) {
    let mut headers: Vec<String> = answer
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date"))
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
        .collect();
    headers.sort();
    (answer.status, answer.body.clone(), headers)
}

#[tokio::test]
async fn the_answer_is_the_same_whatever_the_keys_and_live_ones_are_revoked() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (live_id, live) = app
        .create_key(&org.key, "leaked", &["instances:read"])
        .await;
    let (revoked_id, revoked) = app.create_key(&org.key, "old", &["instances:read"]).await;
    app.delete(&format!("/v1/api-keys/{revoked_id}"), &org.key)
        .await;
    let unknown = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
    let unknown = unknown.expose_secret().to_owned();

    let answers = [
        report(&app, &json!({ "credentials": [revoked] }).to_string()).await,
        report(&app, &json!({ "credentials": [unknown] }).to_string()).await,
        report(
            &app,
            &json!({ "credentials": ["kwk_not_a_key", ""] }).to_string(),
        )
        .await,
        report(&app, &json!({ "credentials": [] }).to_string()).await,
        report(&app, &json!({ "credentials": [live] }).to_string()).await,
    ];
    let first = seen(&answers[0]);
    assert_eq!(first.0, StatusCode::ACCEPTED);
    assert_eq!(first.1, json!({ "status": "accepted" }));
    for answer in &answers[1..] {
        assert_eq!(seen(answer), first);
    }
    wait_until_refused(&app, &live).await;

    // The organization sees why.
    let shown = app.get(&format!("/v1/api-keys/{live_id}"), &org.key).await;
    assert_eq!(shown.body["status"], "revoked");
    assert_eq!(
        shown.body["exposure"]["source"],
        "reported to the public revocation endpoint"
    );
    let trail = app.audit_trail(org.id).await;
    let leaked: Vec<_> = trail
        .iter()
        .filter(|(a, _)| a == "api_key.leaked")
        .collect();
    assert_eq!(leaked.len(), 1, "{trail:?}");
    assert_eq!(leaked[0].1, live_id);
    // The already revoked key was not marked: it leaked nothing that works.
    let old = app
        .get(&format!("/v1/api-keys/{revoked_id}"), &org.key)
        .await;
    assert!(old.body.get("exposure").is_none(), "{}", old.body);

    // The same report again changes nothing.
    report(&app, &json!({ "credentials": [live] }).to_string()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = app.audit_trail(org.id).await;
    assert_eq!(again.len(), trail.len());
}

/// A key a scanning partner only flagged (the organization's `leak_action = "flag"`) is
/// still usable, and a public report, which anyone (and `keyward scan --revoke`) sends,
/// revokes it.
#[tokio::test]
async fn a_flagged_key_is_revoked_by_a_public_report() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app
        .create_key(&org.key, "leaked", &["instances:read"])
        .await;
    let flagged = app
        .store
        .report_exposed(
            &keyward_store::AuditContext::SYSTEM,
            &[keyward_core::KeyDigest::of(&key)],
            "https://github.com/acme/app/blob/main/.env",
            Some(false),
            keyward_core::Timestamp::now(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(flagged.len(), 1);
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);

    let answer = report(&app, &json!({ "credentials": [key] }).to_string()).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    wait_until_refused(&app, &key).await;
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(shown.body["status"], "revoked");
    assert_eq!(
        shown.body["exposure"]["source"], "https://github.com/acme/app/blob/main/.env",
        "the first report is when it was known to be out"
    );
}

#[tokio::test]
async fn a_report_is_told_to_the_organization_by_webhook_and_in_the_dashboard() {
    let app = TestApp::spawn_with(Config {
        webhooks_allow_private_networks: true,
        webhook_poll_interval: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let created = ada.create_key("CI", &["instances:read"]).await;
    let key = crate::dashboard::shown_key(&created);
    assert!(
        !ada.get("/settings/api-keys")
            .await
            .body
            .contains("exposed-banner")
    );

    // An endpoint of the organization, through a key made in the dashboard.
    let admin = ada
        .create_key("admin", &["webhooks:write", "webhooks:read"])
        .await;
    let admin = crate::dashboard::shown_key(&admin);
    let hook = app
        .post(
            "/v1/webhooks",
            &admin,
            json!({ "url": "http://127.0.0.1:9/hook", "events": ["credential.leaked"] }),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);
    let hook = hook.body["id"].as_str().unwrap();

    report(&app, &json!({ "credentials": [key] }).to_string()).await;
    wait_until_refused(&app, &key).await;
    let deliveries = app
        .get(&format!("/v1/webhooks/{hook}/deliveries"), &admin)
        .await;
    assert_eq!(
        deliveries.body["data"][0]["event_type"],
        "credential.leaked"
    );
    let message = deliveries.body["data"][0]["message_id"].as_str().unwrap();
    let detail = app
        .get(&format!("/v1/webhooks/{hook}/deliveries/{message}"), &admin)
        .await;
    let payload = &detail.body["payload"];
    assert_eq!(payload["data"]["action"], "revoked");
    assert_eq!(
        payload["data"]["source"],
        "reported to the public revocation endpoint"
    );
    assert!(!payload.to_string().contains(&key));

    let list = ada.get("/settings/api-keys").await;
    assert!(
        list.body.contains("id=\"exposed-banner\""),
        "owners see why"
    );
    assert!(
        list.body
            .contains("Found at reported to the public revocation endpoint")
    );
}

#[tokio::test]
async fn malformed_reports_get_400_and_floods_429() {
    let app = TestApp::spawn().await;
    let many: Vec<String> = (0..1001).map(|i| format!("kwk_{i}")).collect();
    for body in [
        "{".to_owned(),
        "[]".to_owned(),
        json!({ "credentials": "kwk_x" }).to_string(),
        json!({ "credentials": [1] }).to_string(),
        json!({ "credentials": [], "more": 1 }).to_string(),
        json!({ "credentials": many }).to_string(),
    ] {
        let answer = report(&app, &body).await;
        answer.problem(400, "malformed_request");
    }
    // 30 a minute from one address (six were spent above).
    let mut refused = None;
    for _ in 0..30 {
        let answer = report(&app, r#"{"credentials": []}"#).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("the 31st report in a minute is refused");
    refused.problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
}

#[tokio::test]
async fn an_installation_with_its_own_brand_revokes_its_own_keys() {
    let app = TestApp::spawn_with(Config {
        brand: Brand::parse("acme").unwrap(),
        ..Config::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = app.create_key(&org.key, "CI", &["instances:read"]).await;
    assert!(key.starts_with("acmek_"), "{key}");
    report(&app, &json!({ "credentials": [key] }).to_string()).await;
    wait_until_refused(&app, &key).await;
}

#[tokio::test]
async fn a_reported_key_stops_on_every_node() {
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let a = TestApp::spawn_on(&url).await;
    let b = TestApp::spawn_on(&url).await;
    let org = a.bootstrap("Acme").await;
    let (_, key) = a.create_key(&org.key, "CI", &["instances:read"]).await;
    for node in [&a, &b] {
        assert_eq!(node.get("/v1/me", &key).await.status, StatusCode::OK);
    }
    report(&a, &json!({ "credentials": [key] }).to_string()).await;
    wait_until_refused(&a, &key).await;
    wait_until_refused(&b, &key).await;
}
