use keyward_core::{Brand, CredentialId, CredentialKind, KeyDigest, Name, PlaintextKey, Timestamp};
use keyward_server::Config;
use keyward_store::{Creator, NewCredential};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, event};

#[tokio::test]
async fn the_help_page_flow_works_end_to_end() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;

    let (reader_id, reader) = app
        .create_key(&org.key, "Monitoring Script", &["instances:read"])
        .await;
    let listed = app.get("/v1/instances", &reader).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["data"], json!([]));

    let (projects_id, projects_only) = app
        .create_key(&org.key, "Projects", &["projects:read"])
        .await;
    let refused = app.get("/v1/instances", &projects_only).await;
    refused.problem(403, "insufficient_scope");
    assert_eq!(refused.body["scope"], "instances:read");
    assert_eq!(
        refused.header("www-authenticate"),
        Some(r#"Bearer realm="keyward", error="insufficient_scope", scope="instances:read""#)
    );

    let revoked = app
        .delete(&format!("/v1/api-keys/{reader_id}"), &org.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = app.get("/v1/instances", &reader).await;
    after.problem(401, "invalid_token");
    assert!(
        after
            .header("www-authenticate")
            .unwrap()
            .starts_with(r#"Bearer realm="keyward", error="invalid_token""#)
    );

    // Each change left one event; the refusals none.
    let trail = app.audit_trail(org.id).await;
    assert_eq!(
        trail[2..],
        [
            event("api_key.created", &reader_id),
            event("api_key.created", &projects_id),
            event("api_key.revoked", &reader_id),
        ]
    );
}

#[tokio::test]
async fn create_shows_the_key_once_and_lists_never_show_it() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({
                "name": "  CI/CD Pipeline ",
                "scopes": ["projects:read", "instances:read", "instances:read"],
                "expires_at": "2099-01-31T12:00:00+01:00",
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let body = &created.body;
    let id = body["id"].as_str().unwrap();
    let key = body["key"].as_str().unwrap();
    assert!(id.starts_with("key_"));
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/api-keys/{id}").as_str())
    );
    assert!(keyward_core::credential::check_format(&Brand::default(), key).is_ok());
    assert_eq!(body["name"], "CI/CD Pipeline");
    assert_eq!(body["hint"], format!("kwk_…{}", &key[key.len() - 4..]));
    assert_eq!(body["scopes"], json!(["instances:read", "projects:read"]));
    assert_eq!(body["expires_at"], "2099-01-31T11:00:00Z");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));

    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body["status"], "active");
    assert_eq!(shown.body["last_used_at"], json!(null));
    assert_eq!(shown.body["revoked_at"], json!(null));
    assert_eq!(shown.body["expires_at"], "2099-01-31T11:00:00Z");
    assert!(shown.body.get("key").is_none());

    let list = app.get("/v1/api-keys", &org.key).await;
    assert_eq!(list.status, StatusCode::OK);
    let text = list.body.to_string();
    assert!(!text.contains(key), "a list must never contain a key");
    assert!(!text.contains(&org.key), "a list must never contain a key");
    let names: Vec<_> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["CI/CD Pipeline", "bootstrap"], "newest first");
    for item in list.body["data"].as_array().unwrap() {
        for field in [
            "id",
            "name",
            "hint",
            "scopes",
            "created_at",
            "last_used_at",
            "expires_at",
            "status",
            "revoked_at",
        ] {
            assert!(item.get(field).is_some(), "{field} missing from {item}");
        }
    }
}

#[tokio::test]
async fn lists_page_with_limit_and_cursor() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    for n in 0..5 {
        app.create_key(&org.key, &format!("key {n}"), &["instances:read"])
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/api-keys?limit=2".to_owned();
    loop {
        let page = app.get(&path, &org.key).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let items = page.body["data"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|k| k["name"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/api-keys?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["key 4", "key 3", "key 2", "key 1", "key 0", "bootstrap"]
    );

    app.get("/v1/api-keys?limit=0", &org.key)
        .await
        .problem(422, "validation_failed");
    app.get("/v1/api-keys?limit=101", &org.key)
        .await
        .problem(422, "validation_failed");
    app.get("/v1/api-keys?limit=ten", &org.key)
        .await
        .problem(400, "malformed_request");
    let bad_cursor = app
        .get(
            "/v1/api-keys?cursor=prj_00000000000000000000000000",
            &org.key,
        )
        .await;
    bad_cursor.problem(422, "validation_failed");
    assert_eq!(bad_cursor.body["errors"][0]["field"], "cursor");
}

#[tokio::test]
async fn revocation_is_immediate_permanent_and_keeps_history() {
    let (app, clock) = TestApp::spawn_with_manual_clock(Config::default()).await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app
        .create_key(&org.key, "Staging CI", &["instances:read"])
        .await;
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);

    assert_eq!(
        app.delete(&format!("/v1/api-keys/{id}"), &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let refused = app.get("/v1/me", &key).await;
    refused.problem(401, "invalid_token");
    // Revoked and never-existing keys get the same answer.
    let made_up = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
    let unknown = app.get("/v1/me", made_up.expose_secret()).await;
    assert_eq!(refused.body, unknown.body);
    assert_eq!(
        refused.header("www-authenticate"),
        unknown.header("www-authenticate")
    );

    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(shown.body["status"], "revoked");
    let revoked_at = shown.body["revoked_at"].clone();
    assert!(revoked_at.is_string());

    // Revoking again succeeds and changes nothing.
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{id}"), &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let again = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(again.body["revoked_at"], revoked_at);
    app.get("/v1/me", &key).await.problem(401, "invalid_token");

    let listed = app.get("/v1/api-keys", &org.key).await;
    let entry = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .cloned()
        .expect("revoked keys stay listed");
    assert_eq!(entry["status"], "revoked");
}

#[tokio::test]
async fn expired_keys_are_refused_and_listed_as_expired() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let key = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
    let id = CredentialId::generate(CredentialKind::ApiKey);
    let expired_at = Timestamp::now().plus_seconds(-60);
    app.store
        .insert_credential(
            &keyward_store::AuditContext::SYSTEM,
            NewCredential {
                id,
                organization_id: org.id,
                project_id: None,
                name: Name::parse("Temporary").unwrap(),
                digest: KeyDigest::of(key.expose_secret()),
                hint: key.hint(),
                scopes: crate::helpers::all_scope_names(),
                created_at: expired_at.plus_seconds(-3600),
                expires_at: Some(expired_at),
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

    let refused = app.get("/v1/instances", key.expose_secret()).await;
    refused.problem(401, "invalid_token");
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("expired"), "{detail}");
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .contains("expired")
    );

    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(shown.body["status"], "expired");
}

#[tokio::test]
async fn keys_cannot_grant_scopes_they_lack() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, manager) = app
        .create_key(
            &org.key,
            "Key manager",
            &["api_keys:write", "instances:read"],
        )
        .await;
    let escalation = app
        .post(
            "/v1/api-keys",
            &manager,
            json!({ "name": "more", "scopes": ["instances:read", "instances:write"] }),
        )
        .await;
    escalation.problem(403, "insufficient_scope");
    assert_eq!(escalation.body["scope"], "instances:write");

    // Granting what it holds is fine.
    app.create_key(&manager, "Reader", &["instances:read"])
        .await;

    // Without api_keys:write nothing can be created, whatever the body.
    let (_, reader) = app
        .create_key(&org.key, "Reader 2", &["instances:read"])
        .await;
    let refused = app
        .post(
            "/v1/api-keys",
            &reader,
            json!({ "name": "x", "scopes": ["instances:read"] }),
        )
        .await;
    refused.problem(403, "insufficient_scope");
    assert_eq!(refused.body["scope"], "api_keys:write");
    let refused_before_parsing = app
        .call(Method::POST, "/v1/api-keys", Some(&reader), None)
        .await;
    refused_before_parsing.problem(403, "insufficient_scope");
}

#[tokio::test]
async fn create_validates_every_field() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let cases = [
        (
            json!({ "name": "   ", "scopes": ["instances:read"] }),
            "name",
        ),
        (
            json!({ "name": "x".repeat(101), "scopes": ["instances:read"] }),
            "name",
        ),
        (json!({ "name": "ok", "scopes": [] }), "scopes"),
        (
            json!({ "name": "ok", "scopes": ["instances:admin"] }),
            "scopes",
        ),
        (
            json!({ "name": "ok", "scopes": ["instances:read"], "expires_at": "2001-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (
            json!({ "name": "ok", "scopes": ["instances:read"], "expires_at": "next week" }),
            "expires_at",
        ),
    ];
    for (body, field) in cases {
        let answer = app.post("/v1/api-keys", &org.key, body.clone()).await;
        answer.problem(422, "validation_failed");
        assert_eq!(answer.body["errors"][0]["field"], field, "{body}");
    }
    let unknown = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "ok", "scopes": ["instances:admin"] }),
        )
        .await;
    assert!(
        unknown.body["detail"]
            .as_str()
            .unwrap()
            .contains("instances:admin")
    );

    let several = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "", "scopes": ["nope"] }),
        )
        .await;
    assert_eq!(several.body["errors"].as_array().unwrap().len(), 2);

    let listed = app.get("/v1/api-keys", &org.key).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
}

#[tokio::test]
async fn other_organizations_keys_are_not_found() {
    let app = TestApp::spawn().await;
    let acme = app.bootstrap("Acme").await;
    let globex = app.bootstrap("Globex").await;
    let path = format!("/v1/api-keys/{}", globex.key_id);
    app.get(&path, &acme.key).await.problem(404, "not_found");
    app.delete(&path, &acme.key).await.problem(404, "not_found");
    assert_eq!(
        app.get("/v1/me", &globex.key).await.status,
        StatusCode::OK,
        "not revoked"
    );

    let listed = app.get("/v1/api-keys", &acme.key).await;
    assert!(!listed.body.to_string().contains(&globex.key_id));

    for wrong in [
        "/v1/api-keys/prj_00000000000000000000000000",
        "/v1/api-keys/key_",
        "/v1/api-keys/tok_00000000000000000000000000",
        "/v1/api-keys/key_00000000000000000000000000",
    ] {
        app.get(wrong, &acme.key).await.problem(404, "not_found");
    }
}

#[tokio::test]
async fn me_describes_the_presented_key() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app
        .create_key(&org.key, "Checker", &["instances:read"])
        .await;
    let me = app.get("/v1/me", &key).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], id.as_str());
    assert_eq!(me.body["kind"], "api_key");
    assert_eq!(me.body["name"], "Checker");
    assert_eq!(me.body["organization_id"], org.id.to_string());
    assert_eq!(me.body["project_id"], json!(null));
    assert_eq!(me.body["scopes"], json!(["instances:read"]));
    assert_eq!(me.body["expires_at"], json!(null));
}

#[tokio::test]
async fn last_use_is_shown_at_once_and_written_in_a_batch() {
    // A flush interval longer than the test, so only shutdown can write.
    let mut app = TestApp::spawn_with(Config {
        usage_flush_interval: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app.create_key(&org.key, "Used", &["instances:read"]).await;
    let (unused_id, _) = app
        .create_key(&org.key, "Unused", &["instances:read"])
        .await;
    assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);

    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert!(shown.body["last_used_at"].is_string(), "{}", shown.body);
    let unused = app
        .get(&format!("/v1/api-keys/{unused_id}"), &org.key)
        .await;
    assert_eq!(unused.body["last_used_at"], json!(null));

    // Nothing was written on the request path...
    let credential = CredentialId::parse(&id, CredentialKind::ApiKey).unwrap();
    let stored = app
        .store
        .get_credential(org.id, credential)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_used_at, None);
    // ...and a graceful shutdown writes it.
    app.shutdown().await;
    let stored = app
        .store
        .get_credential(org.id, credential)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.last_used_at.is_some());
}

#[tokio::test]
async fn an_expiring_key_cannot_create_one_that_outlives_it() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let temporary = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({
                "name": "Contractor",
                "scopes": ["api_keys:write", "instances:read"],
                "expires_at": "2099-01-01T00:00:00Z",
            }),
        )
        .await;
    let temporary = temporary.body["key"].as_str().unwrap().to_owned();
    for expires_at in [json!(null), json!("2100-01-01T00:00:00Z")] {
        let refused = app
            .post(
                "/v1/api-keys",
                &temporary,
                json!({ "name": "Forever", "scopes": ["instances:read"], "expires_at": expires_at }),
            )
            .await;
        refused.problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "expires_at");
    }
    let shorter = app
        .post(
            "/v1/api-keys",
            &temporary,
            json!({ "name": "Shorter", "scopes": ["instances:read"], "expires_at": "2098-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(shorter.status, StatusCode::CREATED, "{}", shorter.body);
}

#[tokio::test]
async fn a_key_shows_the_addresses_it_was_used_from() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = app.create_key(&org.key, "CI", &["instances:read"]).await;
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    // The server's pruning at start-up writes too: let it finish first.
    let writes = app
        .writes_settled(std::time::Duration::from_millis(200))
        .await;
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    assert_eq!(
        app.store.stats().write_transactions,
        writes,
        "no write per use"
    );
    app.state.flush_usage().await.unwrap();

    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    let addresses = shown.body["last_addresses"].as_array().unwrap();
    assert_eq!(addresses.len(), 1, "{}", shown.body);
    assert_eq!(addresses[0]["ip"], "127.0.0.1");
    assert_eq!(addresses[0]["last_used_at"], shown.body["last_used_at"]);
    // Lists leave them out: one look-up per key is for one key.
    let listed = app.get("/v1/api-keys", &org.key).await;
    assert!(listed.body["data"][0].get("last_addresses").is_none());
}
