//! External ids and `meta` on keys and tokens: set at creation and by `PATCH`, listed and
//! filtered, audited, carried over by rotation, and returned wherever a key is checked
//! (verification, introspection, forward authentication) and in the dashboard.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::dashboard::{Visitor, shown_key};
use crate::forward_auth::platform;
use crate::helpers::{TestApp, read};

/// Creates an API key with `extra` fields merged into the body; returns the answer's body.
async fn create_with(app: &TestApp, with: &str, extra: Value) -> Value {
    let mut body = json!({ "name": "tagged", "scopes": ["instances:read", "keys:verify"] });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let created = app.post("/v1/api-keys", with, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body
}

/// The fields a 422 names.
fn invalid_fields(answer: &crate::helpers::Answer) -> Vec<String> {
    let problem = answer.problem(422, "validation_failed");
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn keys_keep_an_external_id_and_meta_listed_filtered_and_changed() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let meta = json!({"plan": "pro", "limits": {"seats": 5}, "tags": ["a", "b"]});
    let first = create_with(
        &app,
        &org.key,
        json!({"external_id": "user_42", "meta": meta}),
    )
    .await;
    assert_eq!(first["external_id"], "user_42");
    assert_eq!(first["meta"], meta);
    let second = create_with(&app, &org.key, json!({"external_id": "user_42"})).await;
    assert_eq!(second["meta"], Value::Null);
    create_with(&app, &org.key, json!({"external_id": "user_43"})).await;

    let id = first["id"].as_str().unwrap();
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(shown.body["external_id"], "user_42");
    assert_eq!(shown.body["meta"], meta);

    let listed = app.get("/v1/api-keys?external_id=user_42", &org.key).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let ids: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second["id"].as_str().unwrap(), id]);
    let everything = app.get("/v1/api-keys", &org.key).await;
    assert_eq!(everything.body["data"].as_array().unwrap().len(), 4);
    let bad_filter = app
        .get("/v1/api-keys?external_id=caf%C3%A9", &org.key)
        .await;
    assert_eq!(invalid_fields(&bad_filter), ["external_id"]);

    // Changed, then removed with null; each change is in the audit log.
    let path = format!("/v1/api-keys/{id}");
    let changed = app
        .patch(
            &path,
            &org.key,
            json!({"meta": {"plan": "free"}, "external_id": "user_7"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["meta"], json!({"plan": "free"}));
    assert_eq!(changed.body["external_id"], "user_7");
    let events = app
        .get(
            &format!("/v1/audit-events?action=api_key.updated&target_id={id}"),
            &org.key,
        )
        .await;
    let event = &events.body["data"][0];
    assert_eq!(
        event["changes"]["meta"],
        json!({"before": meta, "after": {"plan": "free"}}),
        "{}",
        events.body
    );
    assert_eq!(
        event["changes"]["external_id"],
        json!({"before": "user_42", "after": "user_7"})
    );
    let removed = app
        .patch(&path, &org.key, json!({"meta": null, "external_id": null}))
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert_eq!(
        (&removed.body["meta"], &removed.body["external_id"]),
        (&Value::Null, &Value::Null)
    );
    // Leaving them out changes nothing.
    let renamed = app.patch(&path, &org.key, json!({"name": "renamed"})).await;
    assert_eq!(renamed.body["name"], "renamed");
    assert_eq!(renamed.body["meta"], Value::Null);
}

#[tokio::test]
async fn bad_external_ids_and_meta_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let too_big = json!({ "a": "x".repeat(1017) });
    let just_fits = json!({ "a": "x".repeat(1016) });
    assert_eq!(just_fits.to_string().len(), 1024);
    for (extra, field) in [
        (json!({"meta": too_big}), "meta"),
        (json!({"meta": [1, 2]}), "meta"),
        (json!({"meta": "plan=pro"}), "meta"),
        (json!({"meta": 5}), "meta"),
        (json!({"external_id": ""}), "external_id"),
        (json!({"external_id": "x".repeat(256)}), "external_id"),
        (json!({"external_id": "café"}), "external_id"),
        (json!({"external_id": "line\nbreak"}), "external_id"),
        (json!({"external_id": " padded"}), "external_id"),
        (json!({"external_id": 42}), "body"),
    ] {
        let mut body = json!({ "name": "tagged", "scopes": ["instances:read"] });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let refused = app.post("/v1/api-keys", &org.key, body).await;
        if field == "body" {
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                refused.body
            );
            continue;
        }
        assert_eq!(invalid_fields(&refused), [field], "{extra}");
    }
    // Both at once are both named; nothing was created.
    let both = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({"name": "x", "scopes": ["instances:read"], "meta": [], "external_id": ""}),
        )
        .await;
    assert_eq!(invalid_fields(&both), ["external_id", "meta"]);
    let listed = app.get("/v1/api-keys", &org.key).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "only the bootstrap key"
    );

    let fits = create_with(&app, &org.key, json!({"meta": just_fits})).await;
    let path = format!("/v1/api-keys/{}", fits["id"].as_str().unwrap());
    let refused = app.patch(&path, &org.key, json!({"meta": too_big})).await;
    assert_eq!(invalid_fields(&refused), ["meta"]);
    let refused = app
        .patch(&path, &org.key, json!({"external_id": "tab\there"}))
        .await;
    assert_eq!(invalid_fields(&refused), ["external_id"]);
    let kept = app.get(&path, &org.key).await;
    assert_eq!(kept.body["meta"], just_fits);
}

#[tokio::test]
async fn checking_a_key_gives_back_its_external_id_and_meta() {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;
    let meta = json!({"plan": "pro", "region": "eu"});
    let tagged = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({"name": "reader", "scopes": ["databases:read"], "external_id": "user_42", "meta": meta}),
        )
        .await;
    assert_eq!(tagged.status, StatusCode::CREATED, "{}", tagged.body);
    let key = tagged.body["key"].as_str().unwrap().to_owned();
    let (_, plain) = app.create_key(&org.key, "plain", &["databases:read"]).await;
    let (_, verifier) = app.create_key(&org.key, "verifier", &["keys:verify"]).await;

    let verified = app
        .post("/v1/keys/verify", &verifier, json!({"key": key}))
        .await;
    assert_eq!(verified.body["code"], "VALID", "{}", verified.body);
    assert_eq!(verified.body["external_id"], "user_42");
    assert_eq!(verified.body["meta"], meta);
    let untagged = app
        .post("/v1/keys/verify", &verifier, json!({"key": plain}))
        .await;
    assert_eq!(untagged.body["code"], "VALID");
    assert_eq!(
        (&untagged.body["external_id"], &untagged.body["meta"]),
        (&Value::Null, &Value::Null)
    );

    let introspected = app
        .call_form(
            Method::POST,
            "/oauth/introspect",
            Some(&verifier),
            &[("token", &key)],
        )
        .await;
    assert_eq!(introspected.body["active"], true, "{}", introspected.body);
    assert_eq!(introspected.body["external_id"], "user_42");
    assert_eq!(introspected.body["meta"], meta);
    let introspected = app
        .call_form(
            Method::POST,
            "/oauth/introspect",
            Some(&verifier),
            &[("token", &plain)],
        )
        .await;
    assert!(
        introspected.body.get("meta").is_none() && introspected.body.get("external_id").is_none()
    );

    let ask = |key: String| {
        let url = app.url("/v1/forward-auth");
        async move {
            read(
                reqwest::Client::new()
                    .get(url)
                    .header("x-forwarded-method", "GET")
                    .header("x-forwarded-uri", "/v1/databases/prj_x/tables")
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let passed = ask(key.clone()).await;
    assert_eq!(passed.status, StatusCode::OK);
    assert_eq!(passed.header("keyward-external-id"), Some("user_42"));
    let encoded = passed.header("keyward-meta").unwrap();
    let decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
    assert_eq!(decoded, meta);
    let passed = ask(plain).await;
    assert_eq!(passed.status, StatusCode::OK);
    // Empty, not absent: Caddy 2.6 would pass its placeholder for an absent one.
    assert_eq!(passed.header("keyward-external-id"), Some(""));
    assert_eq!(passed.header("keyward-meta"), Some(""));

    // A change reaches the next check at once (the cached entry is dropped).
    let id = tagged.body["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/api-keys/{id}"),
        &org.key,
        json!({"meta": {"plan": "free"}}),
    )
    .await;
    let passed = ask(key.clone()).await;
    let decoded = URL_SAFE_NO_PAD
        .decode(passed.header("keyward-meta").unwrap())
        .unwrap();
    assert_eq!(decoded, br#"{"plan":"free"}"#);
}

#[tokio::test]
async fn tokens_and_rotations_carry_them_too() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let project = app.create_project(&org.key, "web").await;
    let tokens = format!("/v1/projects/{project}/tokens");
    let created = app
        .post(
            &tokens,
            &org.key,
            json!({"name": "deploy", "scopes": ["instances:read"], "external_id": "svc-deploy", "meta": {"env": "prod"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["external_id"], "svc-deploy");
    let listed = app
        .get(&format!("{tokens}?external_id=svc-deploy"), &org.key)
        .await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
    assert_eq!(listed.body["data"][0]["meta"], json!({"env": "prod"}));
    let none = app
        .get(&format!("{tokens}?external_id=other"), &org.key)
        .await;
    assert!(none.body["data"].as_array().unwrap().is_empty());

    let id = created.body["id"].as_str().unwrap();
    let rotated = app
        .post(
            &format!("{tokens}/{id}/rotate"),
            &org.key,
            json!({"grace_seconds": 0}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(rotated.body["external_id"], "svc-deploy");
    assert_eq!(rotated.body["meta"], json!({"env": "prod"}));
}

#[tokio::test]
async fn the_dashboard_sets_shows_and_edits_them() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let form = ada.get("/settings/api-keys/new").await;
    assert!(form.body.contains("id=\"external_id\"") && form.body.contains("id=\"meta\""));
    let csrf = form.csrf_token();
    let request_id = form.request_id();
    let mut fields = vec![
        ("csrf_token", csrf.as_str()),
        ("request_id", request_id.as_str()),
        ("name", "tagged"),
        ("expires_in", "never"),
        ("scopes", "instances:read"),
        ("external_id", "user_42"),
        ("meta", "[1]"),
    ];
    let refused = ada.post("/settings/api-keys", &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"meta-error\""),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"user_42\""),
        "what was typed stays"
    );
    fields[6] = ("meta", "{\"plan\": \"pro\"}");
    let created = ada.post("/settings/api-keys", &fields).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let key = shown_key(&created);

    let list = ada.get("/settings/api-keys").await;
    assert!(
        list.body.contains("External id <code>user_42</code>"),
        "{}",
        list.body
    );
    assert!(list.body.contains("plan"), "{}", list.body);
    let marker = "/edit\"";
    let end = list.body.find(marker).expect("an Edit link");
    let start = list.body[..end].rfind("href=\"").unwrap() + 6;
    let page_url = format!("{}/edit", &list.body[start..end]);
    let page = ada.get(&page_url).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("value=\"user_42\""), "{}", page.body);

    let csrf = page.csrf_token();
    let bad = ada
        .post(
            &page_url,
            &[
                ("csrf_token", &csrf),
                ("allowed_cidrs", ""),
                ("external_id", "café"),
                ("meta", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("id=\"external-id-error\""),
        "{}",
        bad.body
    );
    let saved = ada
        .post(
            &page_url,
            &[
                ("csrf_token", &csrf),
                ("allowed_cidrs", ""),
                ("external_id", "user_7"),
                ("meta", "{\"plan\":\"free\"}"),
            ],
        )
        .await;
    assert_eq!(saved.location(), "/settings/api-keys?notice=saved");
    let record = app
        .store
        .find_credential_by_digest(&keyward_core::KeyDigest::of(&key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.metadata.external_id.unwrap().as_str(), "user_7");
    assert_eq!(record.metadata.meta.unwrap().as_str(), r#"{"plan":"free"}"#);
}
