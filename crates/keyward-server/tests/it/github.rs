//! GitHub's secret-scanning partner endpoint, with a test key pair in GitHub's document
//! format: a valid report revokes and labels; a wrong key id, a tampered or re-serialized
//! body, or a key GitHub marks as not current changes nothing.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_server::Config;
use keyward_server::secret_scanning::GithubKeys;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, read};

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

/// GitHub's public key document with these keys: (identifier, key, is_current).
fn document(keys: &[(&str, &SigningKey, bool)]) -> String {
    let entries: Vec<Value> = keys
        .iter()
        .map(|(id, key, current)| {
            json!({
                "key_identifier": id,
                "key": key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
                "is_current": current,
            })
        })
        .collect();
    json!({ "public_keys": entries }).to_string()
}

fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: p256::ecdsa::Signature = key.sign(body);
    STANDARD.encode(signature.to_der().as_bytes())
}

async fn send(app: &TestApp, identifier: &str, signature: &str, body: &[u8]) -> Answer {
    let request = app
        .client
        .post(app.url("/v1/secret-scanning/github"))
        .header("content-type", "application/json")
        .header("Github-Public-Key-Identifier", identifier)
        .header("Github-Public-Key-Signature", signature)
        .body(body.to_vec());
    read(request.send().await.unwrap()).await
}

/// The shape of GitHub's documented example payload, with this installation's key in it.
fn report(token: &str) -> Vec<u8> {
    format!(
        "[{{\"token\":\"{token}\",\"type\":\"keyward_api_key\",\"url\":\"https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt\",\"source\":\"content\"}},{{\"token\":\"NMIfyYncKcRALEXAMPLE\",\"type\":\"keyward_api_key\",\"url\":\"https://github.com/octocat/Hello-World/commit/123456718ee16e59dabbacb1b4049abc11abc123\",\"source\":\"commit\"}}]"
    )
    .into_bytes()
}

fn hex_sha256(text: &str) -> String {
    keyward_core::KeyDigest::of(text)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn only_reports_signed_by_a_current_github_key_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let (current, old, stranger) = (signing_key(7), signing_key(8), signing_key(9));
    let file = dir.path().join("github-keys.json");
    std::fs::write(
        &file,
        document(&[("current-id", &current, true), ("old-id", &old, false)]),
    )
    .unwrap();
    let app = TestApp::spawn_with(Config {
        github_keys: Some(Arc::new(GithubKeys::load(file.clone()).unwrap())),
        ..Config::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app
        .create_key(&org.key, "leaked", &["instances:read"])
        .await;
    let body = report(&key);

    // Refused, and nothing changes: a wrong key id, another key, a tampered body, the same
    // JSON serialized again, a key marked not current, no signature at all.
    let reserialized =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'"').unwrap();
    tampered.insert(at, b' ');
    let refusals = [
        ("unknown-id", sign(&current, &body), body.clone()),
        ("current-id", sign(&stranger, &body), body.clone()),
        ("current-id", sign(&current, &body), tampered),
        ("current-id", sign(&current, &body), reserialized),
        ("old-id", sign(&old, &body), body.clone()),
        ("current-id", "not base64!".into(), body.clone()),
    ];
    for (identifier, signature, sent) in refusals {
        let answer = send(&app, identifier, &signature, &sent).await;
        answer.problem(401, "invalid_signature");
    }
    let unsigned = app
        .client
        .post(app.url("/v1/secret-scanning/github"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    let untouched = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert!(untouched.body.get("exposure").is_none());

    // Signed by the current key: revoked at once, labelled, marked with the URL.
    let answer = send(&app, "current-id", &sign(&current, &body), &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!([
            { "token_hash": hex_sha256(&key), "token_type": "keyward_api_key", "label": "true_positive" },
            { "token_hash": hex_sha256("NMIfyYncKcRALEXAMPLE"), "token_type": "keyward_api_key", "label": "false_positive" },
        ])
    );
    assert_eq!(
        app.get("/v1/me", &key).await.status,
        StatusCode::UNAUTHORIZED
    );
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(
        shown.body["exposure"]["source"],
        "https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt"
    );
    let trail = app.audit_trail(org.id).await;
    let leaked = trail.iter().filter(|(a, _)| a == "api_key.leaked").count();
    assert_eq!(leaked, 1);

    // The same report again: the same labels, nothing more changes.
    let again = send(&app, "current-id", &sign(&current, &body), &body).await;
    assert_eq!(again.body, answer.body);
    assert_eq!(app.audit_trail(org.id).await.len(), trail.len());

    // GitHub rotates its key: the file is read again when it changes.
    let next = signing_key(10);
    std::fs::write(&file, document(&[("next-id", &next, true)])).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let (_, other) = app.create_key(&org.key, "other", &["instances:read"]).await;
    let body = report(&other);
    send(&app, "current-id", &sign(&current, &body), &body)
        .await
        .problem(401, "invalid_signature");
    let rotated = send(&app, "next-id", &sign(&next, &body), &body).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(rotated.body[0]["label"], "true_positive");
    assert_eq!(
        app.get("/v1/me", &other).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A body that is not a list of matches, correctly signed: 400.
    let junk = br#"{"token": "x"}"#;
    send(&app, "next-id", &sign(&next, junk), junk)
        .await
        .problem(400, "malformed_request");
}

#[tokio::test]
async fn without_github_keys_every_report_is_refused() {
    let app = TestApp::spawn().await;
    let key = signing_key(7);
    let body = report("kwk_x");
    send(&app, "current-id", &sign(&key, &body), &body)
        .await
        .problem(401, "invalid_signature");
}

#[test]
fn a_file_that_is_not_githubs_document_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    for text in [
        "{}",
        r#"{"public_keys": [{"key_identifier": "a", "key": "not pem", "is_current": true}]}"#,
    ] {
        std::fs::write(&file, text).unwrap();
        assert!(GithubKeys::load(file.clone()).is_err(), "{text}");
    }
    assert!(GithubKeys::load(dir.path().join("absent.json")).is_err());
}

#[tokio::test]
async fn an_organization_that_flags_leaks_keeps_the_key_working_and_marked() {
    // With an installation brand of its own, as an operator enrolled with GitHub would have.
    let dir = tempfile::tempdir().unwrap();
    let github = signing_key(7);
    let file = dir.path().join("github-keys.json");
    std::fs::write(&file, document(&[("current-id", &github, true)])).unwrap();
    let app = TestApp::spawn_with(Config {
        brand: keyward_core::Brand::parse("acme").unwrap(),
        github_keys: Some(Arc::new(GithubKeys::load(file).unwrap())),
        ..Config::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let policy = app
        .patch(
            "/v1/organization",
            &org.key,
            json!({ "leak_action": "flag" }),
        )
        .await;
    assert_eq!(policy.body["leak_action"], "flag", "{}", policy.body);
    app.patch(
        "/v1/organization",
        &org.key,
        json!({ "leak_action": "ignore" }),
    )
    .await
    .problem(422, "validation_failed");
    let (id, key) = app.create_key(&org.key, "CI", &["instances:read"]).await;
    assert!(key.starts_with("acmek_"));
    let body = report(&key);
    let answer = send(&app, "current-id", &sign(&github, &body), &body).await;
    assert_eq!(answer.body[0]["label"], "true_positive", "{}", answer.body);
    assert_eq!(
        app.get("/v1/me", &key).await.status,
        StatusCode::OK,
        "flagged, not revoked"
    );
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(shown.body["status"], "active");
    assert!(
        shown.body["exposure"]["source"]
            .as_str()
            .unwrap()
            .starts_with("https://github.com/octocat/")
    );
    let events = app
        .get(
            "/v1/audit-events?action=organization.policy_changed",
            &org.key,
        )
        .await;
    assert_eq!(
        events.body["data"][0]["changes"]["leak_action"],
        json!({ "before": "revoke", "after": "flag" })
    );
}
