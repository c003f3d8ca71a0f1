//! The audit log over HTTP: who did what, from where, with which request; its filters and
//! pages; and what the dashboard's sign-up, log-in and log-out leave in it.

use reqwest::StatusCode;
use serde_json::json;

use crate::dashboard::{PASSWORD, Visitor};
use crate::helpers::{TestApp, event, read};

#[tokio::test]
async fn events_name_the_actor_the_address_the_agent_and_the_request() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let created = read(
        app.client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&org.key)
            .header("user-agent", "deploy-bot/2.1")
            .json(&json!({ "name": "CI", "scopes": ["instances:read"] }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let request_id = created.header("x-request-id").unwrap().to_owned();
    assert!(request_id.starts_with("req_"), "{request_id}");
    let key_id = created.body["id"].as_str().unwrap();

    let log = app.get("/v1/audit-events", &org.key).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let newest = &log.body["data"][0];
    assert_eq!(newest["action"], "api_key.created");
    assert_eq!(newest["target"], json!({ "type": "api_key", "id": key_id }));
    assert_eq!(newest["actor"]["type"], "credential");
    assert_eq!(newest["actor"]["id"], org.key_id);
    let hint = newest["actor"]["hint"].as_str().unwrap();
    assert!(hint.starts_with("kwk_…") && org.key.ends_with(&hint[hint.len() - 4..]));
    assert_eq!(newest["client_ip"], "127.0.0.1");
    assert_eq!(newest["user_agent"], "deploy-bot/2.1");
    assert_eq!(newest["request_id"], request_id);
    assert_eq!(newest["changes"]["name"], json!({ "after": "CI" }));
    assert_eq!(
        newest["changes"]["scopes"],
        json!({ "after": ["instances:read"] })
    );
    // The key itself is nowhere in the log.
    let secret = created.body["key"].as_str().unwrap();
    assert!(!log.body.to_string().contains(secret));
    assert!(!log.body.to_string().contains(&org.key));
}

#[tokio::test]
async fn the_log_is_filtered_and_paged() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (first, _) = app.create_key(&org.key, "One", &["instances:read"]).await;
    let (second, _) = app.create_key(&org.key, "Two", &["instances:read"]).await;
    app.delete(&format!("/v1/api-keys/{first}"), &org.key).await;

    let list = |query: String| {
        let app = &app;
        let key = org.key.clone();
        async move { app.get(&format!("/v1/audit-events?{query}"), &key).await }
    };
    let actions = |answer: &crate::helpers::Answer| -> Vec<String> {
        answer.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["action"].as_str().unwrap(),
                    e["target"]["id"].as_str().unwrap()
                )
            })
            .collect()
    };
    let revoked = list("action=api_key.revoked".into()).await;
    assert_eq!(actions(&revoked), [format!("api_key.revoked {first}")]);
    let about_first = list(format!("target={first}")).await;
    assert_eq!(
        actions(&about_first),
        [
            format!("api_key.revoked {first}"),
            format!("api_key.created {first}")
        ]
    );
    let by_bootstrap = list(format!("actor={}", org.key_id)).await;
    assert_eq!(by_bootstrap.body["data"].as_array().unwrap().len(), 3);
    let later = list("since=2999-01-01T00:00:00Z".into()).await;
    assert_eq!(later.body["data"], json!([]));
    let before = list("until=2000-01-01T00:00:00Z".into()).await;
    assert_eq!(before.body["data"], json!([]));

    // Pages of one, newest first, following next_cursor.
    let mut seen = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let page = list(query.clone()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        seen.extend(actions(&page));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0], format!("api_key.revoked {first}"));
    assert_eq!(seen[1], format!("api_key.created {second}"));

    let bad = list("since=yesterday&limit=0&cursor=key_x".into()).await;
    let problem = bad.problem(422, "validation_failed");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["since", "limit", "cursor"]);
}

#[tokio::test]
async fn sign_up_log_in_failures_and_log_out_are_recorded() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let csrf = ada.get("/settings/api-keys").await.csrf_token();
    let logged_out = ada.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(logged_out.status, StatusCode::SEE_OTHER);
    let refused = ada
        .log_in("ada@example.com", "not the password at all")
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let nobody = ada.log_in("nobody@example.com", PASSWORD).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    let signed_in = ada.log_in("ada@example.com", PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);

    let user = app
        .store
        .find_user_by_email(&keyward_core::Email::parse("ada@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let organization = app.store.memberships_of(user.id).await.unwrap()[0].organization_id;
    let ada_id = user.id.to_string();
    assert_eq!(
        app.audit_trail(organization).await,
        [
            event("organization.created", &organization.to_string()),
            event("user.logged_in", &ada_id),
            event("user.logged_out", &ada_id),
            event("user.login_failed", &ada_id),
            event("user.logged_in", &ada_id),
        ],
        "the unknown email's failure belongs to no organization"
    );
}

#[tokio::test]
async fn failed_authentications_are_counted_and_written_in_one_batch() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (revoked_id, revoked) = app.create_key(&org.key, "Old", &["instances:read"]).await;
    app.delete(&format!("/v1/api-keys/{revoked_id}"), &org.key)
        .await;
    let (narrow_id, narrow) = app
        .create_key(&org.key, "Narrow", &["instances:read"])
        .await;
    for _ in 0..3 {
        app.get("/v1/me", &revoked)
            .await
            .problem(401, "invalid_token");
    }
    app.get("/v1/projects", &narrow)
        .await
        .problem(403, "insufficient_scope");
    app.get("/v1/projects", &narrow)
        .await
        .problem(403, "insufficient_scope");
    app.state.flush_usage().await.unwrap();

    let failed = app
        .get("/v1/audit-events?action=auth.failed", &org.key)
        .await;
    let events = failed.body["data"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{}", failed.body);
    let of = |target: &str| {
        events
            .iter()
            .find(|e| e["target"]["id"] == target)
            .unwrap_or_else(|| panic!("no event for {target}: {}", failed.body))
    };
    let revoked_event = of(&revoked_id);
    assert_eq!(revoked_event["changes"]["reason"]["after"], "revoked");
    assert_eq!(revoked_event["changes"]["count"]["after"], 3);
    assert_eq!(revoked_event["actor"]["id"], revoked_id);
    assert!(
        revoked_event["actor"]["hint"]
            .as_str()
            .unwrap()
            .starts_with("kwk_…")
    );
    assert_eq!(revoked_event["client_ip"], "127.0.0.1");
    let scope_event = of(&narrow_id);
    assert_eq!(
        scope_event["changes"]["reason"]["after"],
        "insufficient_scope"
    );
    assert_eq!(scope_event["changes"]["count"]["after"], 2);
}

#[tokio::test]
async fn events_older_than_the_retention_are_pruned() {
    let (app, clock) = TestApp::spawn_with_manual_clock(keyward_server::Config {
        audit_retention: std::time::Duration::from_secs(30 * 86_400),
        ..keyward_server::Config::default()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    assert_eq!(
        app.state.prune_audit_log().await.unwrap(),
        0,
        "nothing is old yet"
    );
    clock.advance(std::time::Duration::from_secs(31 * 86_400));
    assert_eq!(app.state.prune_audit_log().await.unwrap(), 2);
    assert!(app.audit_trail(org.id).await.is_empty());
}

#[tokio::test]
async fn owners_and_admins_read_the_log_in_the_dashboard() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let created = ada.create_key("Deploy", &["instances:read"]).await;
    assert_eq!(created.status, StatusCode::OK);

    let page = ada.get("/settings/audit-log").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<code>api_key.created</code>"));
    assert!(page.body.contains("<code>organization.created</code>"));
    assert!(page.body.contains("name: Deploy"), "{}", page.body);
    assert!(page.body.contains("ada@example.com"));
    assert!(
        page.body
            .contains("href=\"/settings/audit-log\" aria-current=\"page\"")
    );

    let filtered = ada.get("/settings/audit-log?action=api_key.created").await;
    assert!(filtered.body.contains("<code>api_key.created</code>"));
    assert!(!filtered.body.contains("<code>organization.created</code>"));
    let today = &keyward_core::Timestamp::now().to_string()[..10];
    let by_day = ada
        .get(&format!("/settings/audit-log?since={today}&until={today}"))
        .await;
    assert!(by_day.body.contains("<code>api_key.created</code>"));
    let bad = ada.get("/settings/audit-log?since=someday").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"since-error\""), "{}", bad.body);

    // A member has neither the page nor the link.
    let mut bob = Visitor::new(&app);
    bob.sign_up("bob@example.com", "Bob's own").await;
    crate::dashboard::add_and_switch(&mut ada, &mut bob, "bob@example.com", "member", "Acme").await;
    let refused = bob.get("/settings/audit-log").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        !bob.get("/settings/api-keys")
            .await
            .body
            .contains("/settings/audit-log")
    );
}
