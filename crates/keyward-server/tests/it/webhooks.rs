//! Webhooks end to end: endpoints through the API, signatures checked by the Standard
//! Webhooks reference library (Python), retries while a receiver is down, redelivery, the
//! address checks, and the expiry scanner.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyward_server::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const RECEIVER: &str = include_str!("support/webhook_receiver.py");

/// Whether python3 with `standardwebhooks` is here; with `KEYWARD_REQUIRE_ALL` it must be.
pub(crate) fn has_reference_library() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import standardwebhooks.webhooks"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            !keyward_store::testing::require_all(),
            "this test needs python3 with standardwebhooks: pip install standardwebhooks"
        );
        eprintln!("skipped: python3 with standardwebhooks is not installed");
    }
    found
}

/// A receiver process on a fixed port, logging what it gets.
pub(crate) struct Receiver {
    child: Child,
}

impl Receiver {
    pub(crate) fn start(dir: &Path, port: u16, secret: &str, log: &Path) -> Self {
        let script = dir.join("webhook_receiver.py");
        std::fs::write(&script, RECEIVER).unwrap();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(secret)
            .arg(log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        Self { child }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the receiver logged.
pub(crate) fn received(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Waits until the receiver logged at least `count` verified requests.
pub(crate) async fn wait_for(log: &Path, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = received(log);
        if lines.iter().filter(|l| l["verified"] == true).count() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {count} deliveries; got {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nothing listens on (for now).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Quick retries and polls, and private addresses allowed (the receivers are local).
pub(crate) fn fast(config: Config) -> Config {
    Config {
        webhooks_allow_private_networks: true,
        webhook_poll_interval: Duration::from_millis(50),
        webhook_retry_delays: vec![Duration::from_secs(1); 30],
        ..config
    }
}

async fn register(app: &TestApp, key: &str, port: u16, events: &[&str]) -> (String, String) {
    register_at(app, key, &format!("127.0.0.1:{port}"), events).await
}

/// Registers `http://{host}/hooks/keyward` and returns its id and secret.
pub(crate) async fn register_at(
    app: &TestApp,
    key: &str,
    host: &str,
    events: &[&str],
) -> (String, String) {
    let created = app
        .post(
            "/v1/webhooks",
            key,
            json!({
                "url": format!("http://{host}/hooks/keyward"),
                "events": events,
                "description": "test receiver",
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["secret"].as_str().unwrap().to_owned(),
    )
}

fn log_in(dir: &Path) -> PathBuf {
    dir.join("received.jsonl")
}

#[tokio::test]
async fn signed_messages_reach_a_standard_receiver_and_carry_no_key() {
    if !has_reference_library() {
        return;
    }
    let app = TestApp::spawn_with(fast(Config::default())).await;
    let org = app.bootstrap("Acme").await;
    let port = free_port();
    let (hook, secret) = register(
        &app,
        &org.key,
        port,
        &["api_key.created", "api_key.revoked", "api_key.rotated"],
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    let shown = app.get(&format!("/v1/webhooks/{hook}"), &org.key).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        shown.body.get("secret").is_none(),
        "shown once: {}",
        shown.body
    );
    assert_eq!(
        shown.body["events"],
        json!(["api_key.created", "api_key.revoked", "api_key.rotated"])
    );

    let log = log_in(app.dir.path());
    let _receiver = Receiver::start(app.dir.path(), port, &secret, &log);
    let (id, key) = app.create_key(&org.key, "CI", &["instances:read"]).await;
    app.delete(&format!("/v1/api-keys/{id}"), &org.key).await;
    let (other, other_key) = app
        .create_key(&org.key, "deploy", &["instances:read"])
        .await;
    let rotated = app
        .post(
            &format!("/v1/api-keys/{other}/rotate"),
            &org.key,
            json!({ "grace_seconds": 60 }),
        )
        .await;
    let new_key = rotated.body["key"].as_str().unwrap().to_owned();
    // created, revoked, created, created (the successor), rotated.
    let lines = wait_for(&log, 5).await;
    assert!(lines.iter().all(|l| l["verified"] == true), "{lines:?}");
    let mut types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "api_key.created",
            "api_key.created",
            "api_key.created",
            "api_key.revoked",
            "api_key.rotated"
        ]
    );
    for line in &lines {
        let body = line["body"].as_str().unwrap();
        for secret in [&key, &other_key, &new_key, &org.key] {
            assert!(!body.contains(secret.as_str()), "a key in {body}");
        }
        let payload: Value = serde_json::from_str(body).unwrap();
        assert!(payload["data"]["hint"].as_str().unwrap().contains('…'));
        assert!(payload["timestamp"].is_string());
    }
    let revoked = lines
        .iter()
        .find(|l| l["type"] == "api_key.revoked")
        .unwrap();
    let payload: Value = serde_json::from_str(revoked["body"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["id"], id.as_str());
    assert!(payload["data"]["revoked_at"].is_string());

    // The deliveries and their attempts, as the API shows them (once the answers are
    // recorded, just after the receiver logged the requests).
    let deadline = Instant::now() + Duration::from_secs(10);
    let deliveries = loop {
        let deliveries = app
            .get(&format!("/v1/webhooks/{hook}/deliveries"), &org.key)
            .await;
        let done = deliveries.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "delivered");
        if done || Instant::now() > deadline {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let data = deliveries.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    for delivery in data {
        assert_eq!(delivery["state"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_status"], 204);
    }
    let message = data[0]["message_id"].as_str().unwrap();
    let detail = app
        .get(
            &format!("/v1/webhooks/{hook}/deliveries/{message}"),
            &org.key,
        )
        .await;
    assert_eq!(
        detail.body["attempts_made"][0]["status"], 204,
        "{}",
        detail.body
    );
    assert!(detail.body["attempts_made"][0]["latency_ms"].is_u64());
    assert!(detail.body["payload"]["type"].is_string());

    // A manual redelivery sends the same message again, with the same webhook-id.
    let again = app
        .post(
            &format!("/v1/webhooks/{hook}/deliveries/{message}/redeliver"),
            &org.key,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    let lines = wait_for(&log, 6).await;
    let same: Vec<&Value> = lines.iter().filter(|l| l["id"] == message).collect();
    assert_eq!(same.len(), 2, "{lines:?}");
    assert_eq!(same[0]["body"], same[1]["body"]);
    let events = app
        .get(
            "/v1/audit-events?action=webhook.redelivery_requested",
            &org.key,
        )
        .await;
    assert_eq!(events.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_every_message_once_per_id() {
    if !has_reference_library() {
        return;
    }
    let app = TestApp::spawn_with(fast(Config::default())).await;
    let org = app.bootstrap("Acme").await;
    let port = free_port();
    // By name: the delivery goes through the checking resolver, and the URL's port is kept.
    let host = format!("localhost:{port}");
    let (hook, secret) = register_at(&app, &org.key, &host, &["api_key.created"]).await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            app.create_key(&org.key, &format!("key {i}"), &["instances:read"])
                .await
                .0,
        );
    }
    // Nobody listens: the first attempts fail and are retried.
    let failing = Instant::now();
    loop {
        let list = app
            .get(&format!("/v1/webhooks/{hook}/deliveries"), &org.key)
            .await;
        let tried = list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["attempts"].as_u64().unwrap_or(0) >= 1);
        if tried {
            let first = &list.body["data"][0];
            assert_eq!(first["state"], "pending", "{first}");
            assert_eq!(first["last_error"], "could not connect", "{first}");
            break;
        }
        assert!(failing.elapsed() < Duration::from_secs(20), "{}", list.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let log = log_in(app.dir.path());
    let _receiver = Receiver::start(app.dir.path(), port, &secret, &log);
    let lines = wait_for(&log, 5).await;
    let mut by_id = std::collections::HashMap::<String, Vec<String>>::new();
    for line in &lines {
        assert_eq!(line["verified"], true);
        by_id
            .entry(line["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(line["body"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_id.len(), 5, "every message: {lines:?}");
    for bodies in by_id.values() {
        assert!(bodies.iter().all(|b| b == &bodies[0]), "same id, same body");
    }
    let ids: std::collections::HashSet<String> = by_id
        .values()
        .map(|bodies| {
            let payload: Value = serde_json::from_str(&bodies[0]).unwrap();
            payload["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids, made.into_iter().collect());
}

#[tokio::test]
async fn private_destinations_are_refused_unless_the_operator_allows_them() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/hook",
    ] {
        let refused = app
            .post(
                "/v1/webhooks",
                &org.key,
                json!({ "url": url, "events": ["api_key.created"] }),
            )
            .await;
        let problem = refused.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "url", "{url}");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("private"),
            "{url}: {problem}"
        );
    }
    let bad = app
        .post(
            "/v1/webhooks",
            &org.key,
            json!({ "url": "ftp://example.com/", "events": ["api_key.deleted"], "description": "x" }),
        )
        .await;
    let problem = bad.problem(422, "validation_failed");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["url", "events"], "{problem}");
    assert_eq!(
        app.get("/v1/webhooks", &org.key).await.body["data"],
        json!([])
    );

    // Allowed by the operator: registered. Checked again when sending: an endpoint whose
    // address became private after registration is not called.
    let open = TestApp::spawn_with(fast(Config::default())).await;
    let org = open.bootstrap("Acme").await;
    let (hook, _) = register(&open, &org.key, free_port(), &["api_key.created"]).await;
    assert!(hook.starts_with("whk_"));
}

#[tokio::test]
async fn a_delivery_is_checked_again_when_it_is_sent() {
    // Registered while private networks were allowed; the next node does not allow them.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let key = std::sync::Arc::new(keyward_core::webhook::SigningKey::generate().unwrap());
    let permissive = TestApp::spawn_on_with(
        &url,
        Config {
            webhooks_allow_private_networks: true,
            webhook_signing_key: Some(key.clone()),
            webhook_poll_interval: Duration::from_secs(3600),
            ..Config::default()
        },
    )
    .await;
    let org = permissive.bootstrap("Acme").await;
    let port = free_port();
    let (hook, _) = register(&permissive, &org.key, port, &["api_key.created"]).await;
    let strict = TestApp::spawn_on_with(
        &url,
        Config {
            webhook_signing_key: Some(key),
            webhook_poll_interval: Duration::from_millis(50),
            ..Config::default()
        },
    )
    .await;
    strict.create_key(&org.key, "CI", &["instances:read"]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = strict
            .get(&format!("/v1/webhooks/{hook}/deliveries"), &org.key)
            .await;
        let first = &list.body["data"][0];
        if first["attempts"].as_u64().unwrap_or(0) >= 1 {
            let error = first["last_error"].as_str().unwrap();
            assert!(error.starts_with("refused: "), "{first}");
            assert!(error.contains("127.0.0.1"), "{first}");
            break;
        }
        assert!(Instant::now() < deadline, "{}", list.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A webhook URL may carry a token of the receiver's, in its path or query: the audit log,
/// which more people read (and export), records its origin only, and still records that it
/// changed.
#[tokio::test]
async fn the_audit_log_records_a_webhook_urls_origin_only() {
    let app = TestApp::spawn_with(fast(Config::default())).await;
    let org = app.bootstrap("Acme").await;
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let created = app
        .post(
            "/v1/webhooks",
            &org.key,
            json!({
                "url": format!("http://{host}/services/T0/B0/pathsecret?token=querysecret"),
                "events": ["api_key.created"],
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let hook = created.body["id"].as_str().unwrap();
    // The endpoint itself shows its URL whole to whoever manages webhooks.
    let shown = app.get(&format!("/v1/webhooks/{hook}"), &org.key).await;
    assert!(shown.body["url"].as_str().unwrap().contains("querysecret"));
    let moved = app
        .patch(
            &format!("/v1/webhooks/{hook}"),
            &org.key,
            json!({ "url": format!("http://{host}/services/T0/B0/othersecret") }),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    app.delete(&format!("/v1/webhooks/{hook}"), &org.key).await;

    let events = app
        .get(&format!("/v1/audit-events?target={hook}"), &org.key)
        .await;
    let events = events.body["data"].as_array().unwrap().clone();
    let text = serde_json::to_string(&events).unwrap();
    for secret in ["pathsecret", "querysecret", "othersecret", "services"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let origin = format!("http://{host}/…");
    let of = |action: &str| {
        events
            .iter()
            .find(|event| event["action"] == action)
            .unwrap_or_else(|| panic!("{action}: {text}"))["changes"]["url"]
            .clone()
    };
    assert_eq!(of("webhook.created"), json!({ "after": origin }));
    assert_eq!(
        of("webhook.updated"),
        json!({ "before": origin, "after": origin }),
        "the change is recorded though what is shown looks alike"
    );
    assert_eq!(of("webhook.deleted"), json!({ "before": origin }));
}

#[tokio::test]
async fn endpoints_are_managed_through_the_api() {
    let app = TestApp::spawn_with(fast(Config::default())).await;
    let org = app.bootstrap("Acme").await;
    let (hook, _) = register(&app, &org.key, free_port(), &["api_key.created"]).await;
    let path = format!("/v1/webhooks/{hook}");
    let changed = app
        .patch(
            &path,
            &org.key,
            json!({ "events": ["project_token.expiring", "credential.leaked"], "enabled": false }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        changed.body["events"],
        json!(["project_token.expiring", "credential.leaked"])
    );
    assert_eq!(changed.body["enabled"], false);
    app.patch(&path, &org.key, json!({}))
        .await
        .problem(422, "validation_failed");
    app.patch(&path, &org.key, json!({ "enabled": null }))
        .await
        .problem(422, "validation_failed");
    // A disabled endpoint gets nothing, and cannot be redelivered to.
    app.patch(&path, &org.key, json!({ "events": ["api_key.created"] }))
        .await;
    app.create_key(&org.key, "CI", &["instances:read"]).await;
    let list = app.get(&format!("{path}/deliveries"), &org.key).await;
    assert_eq!(list.body["data"], json!([]));
    let message = keyward_core::MessageId::generate();
    app.post(
        &format!("{path}/deliveries/{message}/redeliver"),
        &org.key,
        json!({}),
    )
    .await
    .problem(409, "conflict");

    // Another organization sees none of it.
    let other = app.bootstrap("Globex").await;
    app.get(&path, &other.key).await.problem(404, "not_found");
    app.delete(&path, &other.key)
        .await
        .problem(404, "not_found");
    app.get("/v1/webhooks/whk_nope", &org.key)
        .await
        .problem(404, "not_found");

    // A key without the scopes is refused.
    let (_, reader) = app.create_key(&org.key, "reader", &["webhooks:read"]).await;
    assert_eq!(app.get(&path, &reader).await.status, StatusCode::OK);
    app.delete(&path, &reader)
        .await
        .problem(403, "insufficient_scope");

    assert_eq!(
        app.delete(&path, &org.key).await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&path, &org.key).await.problem(404, "not_found");
    let trail = app.audit_trail(org.id).await;
    for action in ["webhook.created", "webhook.updated", "webhook.deleted"] {
        assert!(
            trail.iter().any(|(a, _)| a == action),
            "{action}: {trail:?}"
        );
    }
}

#[tokio::test]
async fn the_expiry_scanner_warns_once_at_seven_days_one_day_and_expiry() {
    if !has_reference_library() {
        return;
    }
    let (app, clock) = TestApp::spawn_with_manual_clock(fast(Config {
        expiry_scan_interval: Duration::from_secs(3600),
        ..Config::default()
    }))
    .await;
    let org = app.bootstrap("Acme").await;
    let port = free_port();
    let (_, secret) = register(
        &app,
        &org.key,
        port,
        &["api_key.expiring", "api_key.expired"],
    )
    .await;
    let log = log_in(app.dir.path());
    let _receiver = Receiver::start(app.dir.path(), port, &secret, &log);
    let expires = app.state.config.clock.now().plus_seconds(10 * 86_400);
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "expiring", "scopes": ["instances:read"], "expires_at": expires.to_string() }),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let scan = || keyward_server::webhooks::scan_expiring(&app.state);

    assert_eq!(scan().await.unwrap(), 0, "ten days out: nothing yet");
    clock.advance(Duration::from_secs(3 * 86_400 + 60));
    assert_eq!(scan().await.unwrap(), 1, "within seven days");
    assert_eq!(scan().await.unwrap(), 0, "once");
    clock.advance(Duration::from_secs(6 * 86_400));
    assert_eq!(scan().await.unwrap(), 1, "within a day");
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(scan().await.unwrap(), 1, "expired");
    assert_eq!(scan().await.unwrap(), 0);

    let lines = wait_for(&log, 3).await;
    // Sent in order of time left (they may arrive in any order when due together).
    let mut kinds: Vec<(String, Option<i64>)> = lines
        .iter()
        .map(|line| {
            let payload: Value = serde_json::from_str(line["body"].as_str().unwrap()).unwrap();
            assert_eq!(payload["data"]["id"], id.as_str());
            (
                payload["type"].as_str().unwrap().to_owned(),
                payload["data"]["expires_in_seconds"].as_i64(),
            )
        })
        .collect();
    kinds.sort_by_key(|(_, left)| std::cmp::Reverse(left.unwrap_or(i64::MIN)));
    assert_eq!(kinds.len(), 3);
    assert_eq!(kinds[0].0, "api_key.expiring");
    assert!(kinds[0].1.unwrap() <= 7 * 86_400 && kinds[0].1.unwrap() > 86_400);
    assert_eq!(kinds[1].0, "api_key.expiring");
    assert!(kinds[1].1.unwrap() <= 86_400);
    assert_eq!(kinds[2], ("api_key.expired".to_owned(), None));
}

#[tokio::test]
async fn two_nodes_on_postgres_send_each_message_once() {
    if !has_reference_library() {
        return;
    }
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let key = std::sync::Arc::new(keyward_core::webhook::SigningKey::generate().unwrap());
    let node = || {
        fast(Config {
            webhook_signing_key: Some(key.clone()),
            ..Config::default()
        })
    };
    let a = TestApp::spawn_on_with(&url, node()).await;
    let b = TestApp::spawn_on_with(&url, node()).await;
    let org = a.bootstrap("Acme").await;
    let port = free_port();
    let (_, secret) = register(&a, &org.key, port, &["api_key.created"]).await;
    let log = log_in(a.dir.path());
    let _receiver = Receiver::start(a.dir.path(), port, &secret, &log);
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.create_key(&org.key, &format!("key {i}"), &["instances:read"])
            .await;
    }
    wait_for(&log, 20).await;
    // Both nodes keep polling: nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines = received(&log);
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert!(lines.iter().all(|l| l["verified"] == true));
    ids.sort_unstable();
    let count = ids.len();
    ids.dedup();
    assert_eq!((count, ids.len()), (20, 20), "each message once");
}

#[tokio::test]
async fn the_dashboard_registers_shows_redelivers_and_deletes_endpoints() {
    use crate::dashboard::Visitor;

    let app = TestApp::spawn_with(fast(Config::default())).await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let page = ada.get("/settings/webhooks").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("api_key.expiring"));
    let csrf = page.csrf_token();
    let url = format!("http://127.0.0.1:{}/hook", free_port());

    let refused = ada
        .post(
            "/settings/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", "ftp://x"),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("id=\"url-error\""));
    assert!(refused.body.contains("id=\"events-error\""));

    let created = ada
        .post(
            "/settings/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", &url),
                ("description", "alerts"),
                ("events", "api_key.created"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(created.body.contains("id=\"new-secret\">whsec_"));
    let list = ada.get("/settings/webhooks").await;
    assert!(list.body.contains(&url));
    let marker = "href=\"/settings/webhooks/whk_";
    let start = list.body.find(marker).unwrap() + "href=\"".len();
    let end = start + list.body[start..].find('"').unwrap();
    let endpoint = list.body[start..end].to_owned();

    // A key made in the dashboard is announced; nobody listens, so it is retried.
    ada.create_key("CI", &["instances:read"]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = ada.get(&endpoint).await;
        if page.body.contains("could not connect") {
            break page;
        }
        assert!(Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(page.body.contains("api_key.created"));
    let marker = "/deliveries/msg_";
    let start = page.body.find(marker).unwrap() + "/deliveries/".len();
    let message = page.body[start..start + 30].to_owned();
    let delivery = ada.get(&format!("{endpoint}/deliveries/{message}")).await;
    assert_eq!(delivery.status, StatusCode::OK);
    assert!(delivery.body.contains("could not connect"));
    assert!(
        delivery
            .body
            .contains("&#34;type&#34;: &#34;api_key.created&#34;"),
        "{}",
        delivery.body
    );
    let csrf = delivery.csrf_token();
    let queued = ada
        .post(
            &format!("{endpoint}/deliveries/{message}/redeliver"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(queued.location(), format!("{endpoint}?notice=redeliver"));

    // A member may not manage webhooks.
    let mut bob = Visitor::new(&app);
    bob.sign_up("bob@example.com", "Globex").await;
    crate::dashboard::add_and_switch(&mut ada, &mut bob, "bob@example.com", "member", "Acme").await;
    assert_eq!(
        bob.get("/settings/webhooks").await.status,
        StatusCode::FORBIDDEN
    );

    let deleted = ada
        .post(&format!("{endpoint}/delete"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(deleted.location(), "/settings/webhooks?notice=deleted");
    assert!(!ada.get("/settings/webhooks").await.body.contains(&url));
}
