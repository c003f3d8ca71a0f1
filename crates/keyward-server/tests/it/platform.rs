//! The platform's backend with one admin key: organizations created for its customers, keys
//! made and revoked for them by acting for an organization, suspension and deletion, and
//! the installation's own audit log.

use std::time::{Duration, Instant};

use keyward_store::testing::TempPostgres;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};
use crate::storage::{contains, database_bytes};

/// Every installation scope, and the organization scopes the backend uses for customers.
const BACKEND: &[&str] = &[
    "organizations:read",
    "organizations:write",
    "organizations:act",
    "admin_keys:read",
    "admin_keys:write",
    "api_keys:read",
    "api_keys:write",
    "keys:verify",
    "audit:read",
];

async fn create_organization(app: &TestApp, admin: &str, body: Value) -> Value {
    let answer = app.post("/v1/organizations", admin, body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body
}

/// A key made for `organization` by the admin key: (id, key).
async fn key_for(
    app: &TestApp,
    admin: &str,
    organization: &str,
    scopes: &[&str],
) -> (String, String) {
    let answer = app
        .call_for(
            Method::POST,
            "/v1/api-keys",
            admin,
            organization,
            Some(json!({ "name": "customer key", "scopes": scopes })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    (
        answer.body["id"].as_str().unwrap().to_owned(),
        answer.body["key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn an_admin_key_is_the_installations_and_checks_no_request_as_a_customer() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (admin_id, admin) = app.admin_key(BACKEND).await;

    let me = app.get("/v1/me", &admin).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["kind"], "admin_key");
    assert_eq!(me.body["id"], admin_id);
    assert!(admin.starts_with("kwa_"));
    assert_eq!(me.body["organization_id"], Value::Null);
    assert_eq!(me.body["scopes"].as_array().unwrap().len(), BACKEND.len());

    // No organization's endpoint without saying which organization.
    for path in [
        "/v1/api-keys",
        "/v1/projects",
        "/v1/members",
        "/v1/audit-events",
        "/v1/organization",
    ] {
        app.get(path, &admin)
            .await
            .problem(400, "organization_required");
    }
    let id = org.id.to_string();
    let unknown = keyward_core::OrganizationId::generate().to_string();
    for named in [
        unknown.as_str(),
        "ext:nobody",
        "nonsense",
        "org_00000000000000000000000000",
    ] {
        app.call_for(Method::GET, "/v1/api-keys", &admin, named, None)
            .await
            .problem(404, "organization_not_found");
    }
    let listed = app
        .call_for(Method::GET, "/v1/api-keys", &admin, &id, None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);

    // An organization's own key names no other organization.
    app.call_for(Method::GET, "/v1/api-keys", &org.key, &id, None)
        .await
        .problem(400, "invalid_request");

    // As the credential being checked, an admin key is no customer's.
    app.get("/v1/forward-auth", &admin)
        .await
        .problem(401, "invalid_token");
    let verified = app
        .post("/v1/keys/verify", &org.key, json!({ "key": admin }))
        .await;
    assert_eq!(verified.body["valid"], false);
    assert_eq!(verified.body["code"], "NOT_FOUND");
    let introspected = app
        .call_form(
            Method::POST,
            "/oauth/introspect",
            Some(&org.key),
            &[("token", &admin)],
        )
        .await;
    assert_eq!(introspected.body, json!({ "active": false }));

    // An organization's key holds no installation scope, and so reaches none of these.
    for path in [
        "/v1/organizations",
        "/v1/admin-keys",
        "/v1/admin/audit-events",
    ] {
        let refused = app.get(path, &org.key).await;
        refused.problem(403, "insufficient_scope");
    }
    let granted = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "escalate", "scopes": ["organizations:act"] }),
        )
        .await;
    assert_eq!(
        granted.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        granted.body
    );
    assert_eq!(granted.body["errors"][0]["field"], "scopes");
}

#[tokio::test]
async fn acting_for_an_organization_is_capped_by_the_admin_keys_scopes_and_audited() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app.admin_key(BACKEND).await;
    let acme = create_organization(
        &app,
        &admin,
        json!({ "name": "Acme", "external_id": "cus_1" }),
    )
    .await;
    let acme_id = acme["id"].as_str().unwrap();

    // Without organizations:act, nothing of any organization.
    let (_, lister) = app
        .admin_key(&["organizations:read", "api_keys:read"])
        .await;
    app.call_for(Method::GET, "/v1/api-keys", &lister, "ext:cus_1", None)
        .await
        .problem(403, "insufficient_scope");
    // With it, only what its organization scopes allow.
    let (_, reader) = app.admin_key(&["organizations:act", "api_keys:read"]).await;
    let read = app
        .call_for(Method::GET, "/v1/api-keys", &reader, "ext:cus_1", None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    app.call_for(
        Method::POST,
        "/v1/api-keys",
        &reader,
        "ext:cus_1",
        Some(json!({ "name": "no", "scopes": ["api_keys:read"] })),
    )
    .await
    .problem(403, "insufficient_scope");
    app.call_for(Method::GET, "/v1/projects", &reader, "ext:cus_1", None)
        .await
        .problem(403, "insufficient_scope");

    // A key it makes holds no more than it holds, and never an installation scope.
    let (key_id, key) = key_for(&app, &admin, "ext:cus_1", &["api_keys:read", "keys:verify"]).await;
    for scopes in [json!(["projects:write"]), json!(["organizations:read"])] {
        let refused = app
            .call_for(
                Method::POST,
                "/v1/api-keys",
                &admin,
                acme_id,
                Some(json!({ "name": "more", "scopes": scopes })),
            )
            .await;
        assert!(
            matches!(refused.status.as_u16(), 403 | 422),
            "{} {}",
            refused.status,
            refused.body
        );
    }
    let me = app.get("/v1/me", &key).await;
    assert_eq!(me.body["organization_id"], acme_id);
    // Acting for it, the admin key may verify the organization's keys like its own keys.
    let verified = app
        .call_for(
            Method::POST,
            "/v1/keys/verify",
            &admin,
            "ext:cus_1",
            Some(json!({ "key": key })),
        )
        .await;
    assert_eq!(verified.body["code"], "VALID", "{}", verified.body);

    // In the organization's log: the admin key as actor, acting for it.
    let log = app
        .call_for(
            Method::GET,
            "/v1/audit-events?action=api_key.created",
            &admin,
            acme_id,
            None,
        )
        .await;
    let event = &log.body["data"][0];
    assert_eq!(event["target"]["id"], key_id.as_str());
    assert_eq!(event["actor"]["type"], "credential");
    assert_eq!(event["actor"]["id"], admin_id);
    assert_eq!(event["acting_for"], acme_id);

    // One Idempotency-Key sent for two customers is two requests.
    let globex = create_organization(
        &app,
        &admin,
        json!({ "name": "Globex", "external_id": "cus_2" }),
    )
    .await;
    let mut created = Vec::new();
    for organization in ["ext:cus_1", "ext:cus_2"] {
        let answer = app
            .client
            .post(app.url("/v1/projects"))
            .bearer_auth(&admin)
            .header("keyward-organization", organization)
            .header("idempotency-key", "signup-42")
            .json(&json!({ "name": "Default" }))
            .send()
            .await
            .unwrap();
        created.push(crate::helpers::read(answer).await);
    }
    // The admin key lacks projects:write: both refused alike, neither replayed.
    for answer in &created {
        answer.problem(403, "insufficient_scope");
    }
    let (_, builder) = app
        .admin_key(&["organizations:act", "projects:write", "projects:read"])
        .await;
    // The organization counts, not its spelling: `org_…` after `ext:…` is the same request.
    for (organization, replayed) in [
        ("ext:cus_1", false),
        ("ext:cus_2", false),
        ("ext:cus_2", true),
        (acme_id, true),
    ] {
        let answer = app
            .client
            .post(app.url("/v1/projects"))
            .bearer_auth(&builder)
            .header("keyward-organization", organization)
            .header("idempotency-key", "signup-42")
            .json(&json!({ "name": "Default" }))
            .send()
            .await
            .unwrap();
        let answer = crate::helpers::read(answer).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(
            answer.header("idempotent-replayed").is_some(),
            replayed,
            "{organization}"
        );
    }
    for organization in [acme_id, globex["id"].as_str().unwrap()] {
        let projects = app
            .call_for(Method::GET, "/v1/projects", &builder, organization, None)
            .await;
        assert_eq!(
            projects.body["data"].as_array().unwrap().len(),
            1,
            "{}",
            projects.body
        );
    }
}

#[tokio::test]
async fn admin_keys_are_made_rotated_and_revoked_by_admin_keys_only() {
    let app = TestApp::spawn().await;
    let (first_id, first) = app.admin_key(BACKEND).await;
    let made = app
        .post(
            "/v1/admin-keys",
            &first,
            json!({ "name": "reporting", "scopes": ["organizations:read"] }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let second_id = made.body["id"].as_str().unwrap().to_owned();
    let second = made.body["key"].as_str().unwrap().to_owned();
    assert!(second_id.starts_with("adk_") && second.starts_with("kwa_"));
    assert_eq!(
        app.get("/v1/organizations", &second).await.status,
        StatusCode::OK
    );

    // It grants nothing it does not hold.
    let (_, small) = app
        .admin_key(&["admin_keys:write", "organizations:read"])
        .await;
    let refused = app
        .post(
            "/v1/admin-keys",
            &small,
            json!({ "name": "bigger", "scopes": ["organizations:write"] }),
        )
        .await;
    refused.problem(403, "insufficient_scope");
    // Reading needs admin_keys:read.
    app.get("/v1/admin-keys", &second)
        .await
        .problem(403, "insufficient_scope");

    let listed = app.get("/v1/admin-keys", &first).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        3,
        "{}",
        listed.body
    );
    let shown = app
        .get(&format!("/v1/admin-keys/{second_id}"), &first)
        .await;
    assert_eq!(shown.body["name"], "reporting");

    let rotated = app
        .post(
            &format!("/v1/admin-keys/{second_id}/rotate"),
            &first,
            json!({ "grace_seconds": 0 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let third = rotated.body["key"].as_str().unwrap().to_owned();
    app.get("/v1/me", &second)
        .await
        .problem(401, "invalid_token");
    assert_eq!(app.get("/v1/me", &third).await.status, StatusCode::OK);

    let third_id = rotated.body["id"].as_str().unwrap();
    let revoked = app
        .delete(&format!("/v1/admin-keys/{third_id}"), &first)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    app.get("/v1/me", &third)
        .await
        .problem(401, "invalid_token");

    // The installation's log has every step, with the acting admin key.
    let log = app.get("/v1/admin/audit-events", &first).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let actions: Vec<&str> = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "admin_key.revoked",
            "admin_key.rotated",
            "admin_key.created",
            "admin_key.created",
            "admin_key.created",
            "admin_key.created",
        ]
    );
    assert_eq!(log.body["data"][0]["actor"]["id"], first_id);
    assert!(log.body["data"][0].get("organization_id").is_none());
    // Made with an Idempotency-Key: the retry says where it is, and keeps no secret.
    let retried = |_: ()| {
        app.client
            .post(app.url("/v1/admin-keys"))
            .bearer_auth(&first)
            .header("idempotency-key", "backend-2")
            .json(&json!({ "name": "retried", "scopes": ["organizations:read"] }))
            .send()
    };
    let made = crate::helpers::read(retried(()).await.unwrap()).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let fourth = made.body["key"].as_str().unwrap().to_owned();
    let again = crate::helpers::read(retried(()).await.unwrap()).await;
    again.problem(409, "secret_already_shown");
    assert_eq!(
        again.header("location"),
        Some(format!("/v1/admin-keys/{}", made.body["id"].as_str().unwrap()).as_str())
    );
    // No key is kept anywhere in the database: not the keys, not the audit log, not the
    // idempotency record.
    let bytes = database_bytes(&app);
    for key in [&first, &second, &third, &fourth] {
        assert!(!contains(&bytes, key.as_bytes()));
    }
}

/// Another admin key, to read the installation's log with.
async fn first_admin(app: &TestApp) -> String {
    app.admin_key(&["organizations:read"]).await.1
}

#[tokio::test]
async fn a_leaked_admin_key_is_revoked_at_once() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin_key(BACKEND).await;
    let report = app
        .client
        .post(app.url("/v1/credentials/revoke"))
        .json(&json!({ "credentials": [admin] }))
        .send()
        .await
        .unwrap();
    assert!(report.status().is_success());
    // The work follows the answer (its timing tells a reporter nothing).
    wait_for(&app, &admin, "invalid_token").await;
    let events = app
        .get("/v1/admin/audit-events", &first_admin(&app).await)
        .await;
    let actions: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"admin_key.leaked"), "{actions:?}");
}

#[tokio::test]
async fn organizations_belong_to_the_platform() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin_key(BACKEND).await;
    let acme = create_organization(
        &app,
        &admin,
        json!({
            "name": "Acme",
            "external_id": "cus_1",
            "owner": {"email": "ada@example.com", "external_id": "user_1", "name": "Ada"},
            "policy": {"max_lifetime_days": 30, "leak_action": "flag"},
        }),
    )
    .await;
    assert_eq!(acme["external_id"], "cus_1");
    assert_eq!(acme["status"], "active");
    assert_eq!(acme["max_lifetime_days"], 30);
    assert_eq!(acme["leak_action"], "flag");
    let acme_id = acme["id"].as_str().unwrap();
    // The owner is a person without a password: no password signs them in.
    let members = app
        .get(&format!("/v1/organizations/{acme_id}/members"), &admin)
        .await;
    assert_eq!(members.body["data"][0]["email"], "ada@example.com");
    assert_eq!(members.body["data"][0]["role"], "owner");
    let ada = app
        .store
        .find_user_by_email(&keyward_core::Email::parse("ada@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.password_hash, None);

    // Names need not be unique; external ids must.
    create_organization(
        &app,
        &admin,
        json!({ "name": "Acme", "owner": {"email": "ada@example.com"} }),
    )
    .await;
    let again = app
        .post(
            "/v1/organizations",
            &admin,
            json!({ "name": "Other", "external_id": "cus_1" }),
        )
        .await;
    again.problem(409, "conflict");
    // An existing account becomes an owner; it is not created twice.
    let ada_orgs = app.store.memberships_of(ada.id).await.unwrap();
    assert_eq!(ada_orgs.len(), 2);

    // Invalid fields are named.
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "X", "external_id": "é" }), "external_id"),
        (
            json!({ "name": "X", "external_id": "x".repeat(256) }),
            "external_id",
        ),
        (
            json!({ "name": "X", "owner": {"email": "nope"} }),
            "owner.email",
        ),
        (
            json!({ "name": "X", "policy": {"max_lifetime_days": 0} }),
            "policy.max_lifetime_days",
        ),
    ] {
        let refused = app.post("/v1/organizations", &admin, body).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(
            refused.body["errors"][0]["field"], field,
            "{}",
            refused.body
        );
    }

    // Found by id and external id; listed with filters; changed.
    let by_external = app.get("/v1/organizations/ext:cus_1", &admin).await;
    assert_eq!(by_external.body["id"], acme_id);
    let listed = app.get("/v1/organizations?name_prefix=ac", &admin).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);
    let listed = app.get("/v1/organizations?external_id=cus_1", &admin).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    app.get("/v1/organizations?status=gone", &admin)
        .await
        .problem(422, "validation_failed");
    let changed = app
        .patch(
            &format!("/v1/organizations/{acme_id}"),
            &admin,
            json!({ "name": "Acme Corp", "external_id": "cus_1b", "policy": {"require_expiry": true} }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["name"], "Acme Corp");
    assert_eq!(changed.body["external_id"], "cus_1b");
    assert_eq!(changed.body["require_expiry"], true);
    app.get("/v1/organizations/ext:cus_1", &admin)
        .await
        .problem(404, "not_found");

    // People: any role, an existing account reused.
    let added = app
        .post(
            &format!("/v1/organizations/{acme_id}/members"),
            &admin,
            json!({ "email": "grace@example.com", "role": "owner", "external_id": "user_2" }),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.body["role"], "owner");
    let twice = app
        .post(
            &format!("/v1/organizations/{acme_id}/members"),
            &admin,
            json!({ "email": "grace@example.com", "role": "member" }),
        )
        .await;
    twice.problem(409, "conflict");

    // `bootstrap` still refuses a name that exists.
    let refused = keyward_server::bootstrap::bootstrap_organization(
        app.store.as_ref(),
        &app.state.config.brand,
        &app.state.config.scopes,
        "acme corp",
        "someone@example.com",
        None,
        app.state.config.clock.now(),
    )
    .await;
    assert!(refused.is_err());

    // The installation's log has the organizations' lifecycle; it is in theirs too.
    let log = app
        .get("/v1/admin/audit-events?action=organization.created", &admin)
        .await;
    assert_eq!(log.body["data"].as_array().unwrap().len(), 2);
    let own = app
        .call_for(
            Method::GET,
            "/v1/audit-events?action=organization.updated",
            &admin,
            acme_id,
            None,
        )
        .await;
    assert_eq!(
        own.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        own.body
    );
}

/// `key` on `app`: 200 on `/v1/me`, or the problem's code.
async fn outcome(app: &TestApp, key: &str) -> String {
    let answer: Answer = app.get("/v1/me", key).await;
    if answer.status == StatusCode::OK {
        "ok".into()
    } else {
        answer.body["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// Waits (up to 10 s, as for a revocation) until `key` gets `wanted` from `app`.
async fn wait_for(app: &TestApp, key: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = outcome(app, key).await;
        if seen == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "still {seen}, not {wanted}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Suspension on `nodes`: the key refused everywhere, an admin key may read and revoke but
/// not create, resumption restores what was not revoked meanwhile.
async fn suspension(nodes: &[&TestApp]) {
    let first = nodes[0];
    let (_, admin) = first.admin_key(BACKEND).await;
    create_organization(
        first,
        &admin,
        json!({ "name": "Acme", "external_id": "cus_1" }),
    )
    .await;
    let (_, kept) = key_for(
        first,
        &admin,
        "ext:cus_1",
        &["api_keys:read", "keys:verify"],
    )
    .await;
    let (doomed_id, doomed) = key_for(first, &admin, "ext:cus_1", &["api_keys:read"]).await;
    let (_, outsider) = {
        create_organization(
            first,
            &admin,
            json!({ "name": "Globex", "external_id": "cus_2" }),
        )
        .await;
        key_for(first, &admin, "ext:cus_2", &["api_keys:read"]).await
    };
    for node in nodes {
        assert_eq!(outcome(node, &kept).await, "ok");
        assert_eq!(outcome(node, &doomed).await, "ok");
    }
    let suspended = first
        .patch(
            "/v1/organizations/ext:cus_1",
            &admin,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.body);
    assert_eq!(suspended.body["status"], "suspended");
    for node in nodes {
        wait_for(node, &kept, "organization_suspended").await;
        let answer = node.get("/v1/api-keys", &kept).await;
        answer.problem(403, "organization_suspended");
        // Another organization is untouched.
        assert_eq!(outcome(node, &outsider).await, "ok");
    }
    let verified = first
        .call_for(
            Method::POST,
            "/v1/keys/verify",
            &admin,
            "ext:cus_1",
            Some(json!({ "key": kept })),
        )
        .await;
    assert_eq!(
        verified.body["code"], "ORGANIZATION_SUSPENDED",
        "{}",
        verified.body
    );
    // The platform may read and revoke, not create.
    let listed = first
        .call_for(Method::GET, "/v1/api-keys", &admin, "ext:cus_1", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let revoked = first
        .call_for(
            Method::DELETE,
            &format!("/v1/api-keys/{doomed_id}"),
            &admin,
            "ext:cus_1",
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    first
        .call_for(
            Method::POST,
            "/v1/api-keys",
            &admin,
            "ext:cus_1",
            Some(json!({ "name": "new", "scopes": ["api_keys:read"] })),
        )
        .await
        .problem(403, "organization_suspended");

    let resumed = first
        .patch(
            "/v1/organizations/ext:cus_1",
            &admin,
            json!({ "status": "active" }),
        )
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    for node in nodes {
        wait_for(node, &kept, "ok").await;
        assert_eq!(outcome(node, &doomed).await, "invalid_token");
    }
}

#[tokio::test]
async fn a_suspended_organizations_keys_are_refused_until_it_is_resumed() {
    let app = TestApp::spawn().await;
    suspension(&[&app]).await;
}

fn postgres() -> Option<TempPostgres> {
    TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test]
async fn suspension_reaches_every_postgres_node() {
    let Some(cluster) = postgres() else { return };
    let url = cluster.create_database().await.unwrap();
    let a = TestApp::spawn_on(&url).await;
    let b = TestApp::spawn_on(&url).await;
    suspension(&[&a, &b]).await;
    a.store.close().await;
    b.store.close().await;
}

/// Deletes the organization while keys are being created for it through the header: no key
/// of a deleted organization works afterwards.
async fn race_key_creation_against_deletion(app: &TestApp, rounds: usize) {
    let (_, admin) = app.admin_key(BACKEND).await;
    let mut created = 0;
    for round in 0..rounds {
        let external = format!("ext:doomed_{round}");
        create_organization(
            app,
            &admin,
            json!({ "name": "Doomed", "external_id": format!("doomed_{round}") }),
        )
        .await;
        let create = || {
            app.call_for(
                Method::POST,
                "/v1/api-keys",
                &admin,
                &external,
                Some(json!({ "name": "raced", "scopes": ["api_keys:read"] })),
            )
        };
        let path = format!("/v1/organizations/{external}");
        let (a, b, c, deletion, d, e, f) = tokio::join!(
            create(),
            create(),
            create(),
            app.delete(&path, &admin),
            create(),
            create(),
            create(),
        );
        assert_eq!(deletion.status, StatusCode::NO_CONTENT, "{}", deletion.body);
        for answer in [a, b, c, d, e, f] {
            if answer.status == StatusCode::NOT_FOUND {
                continue;
            }
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
            created += 1;
            let key = answer.body["key"].as_str().unwrap();
            assert_eq!(outcome(app, key).await, "invalid_token", "round {round}");
        }
    }
    eprintln!("{created} of {} creations beat the deletion", rounds * 6);
}

#[tokio::test]
async fn no_key_of_a_deleted_organization_works_on_sqlite() {
    let app = TestApp::spawn().await;
    race_key_creation_against_deletion(&app, 20).await;
}

#[tokio::test]
async fn no_key_of_a_deleted_organization_works_on_postgres() {
    let Some(cluster) = postgres() else { return };
    let app = TestApp::spawn_on(&cluster.create_database().await.unwrap()).await;
    race_key_creation_against_deletion(&app, 20).await;
    app.store.close().await;
}

#[tokio::test]
async fn the_dashboard_shows_a_suspended_organization_read_only() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin_key(BACKEND).await;
    let mut ada = crate::dashboard::Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let created = ada.create_key("before", &["instances:read"]).await;
    assert_eq!(created.status, StatusCode::OK);
    let organization = app
        .store
        .memberships_of(
            app.store
                .find_user_by_email(&keyward_core::Email::parse("ada@example.com").unwrap())
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap()[0]
        .organization_id;
    let page = ada.get("/settings/api-keys").await;
    assert!(!page.body.contains("suspended-banner"));

    let suspended = app
        .patch(
            &format!("/v1/organizations/{organization}"),
            &admin,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.body);
    let page = ada.get("/settings/api-keys").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("id=\"suspended-banner\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("before"), "the keys are still listed");
    let refused = ada.create_key("during", &["instances:read"]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("suspended"), "{}", refused.body);
    // Read-only: no change either (here, the policy), but revoking still works.
    let csrf = ada.get("/settings/organization/policy").await.csrf_token();
    let changed = ada
        .post(
            "/settings/organization/policy",
            &[("csrf_token", &csrf), ("max_lifetime_days", "30")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::FORBIDDEN);
    let keys = app
        .call_for(
            Method::GET,
            "/v1/api-keys",
            &admin,
            &organization.to_string(),
            None,
        )
        .await;
    let id = keys.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "before")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let csrf = ada
        .get(&format!("/settings/api-keys/{id}/revoke"))
        .await
        .csrf_token();
    let revoked = ada
        .post(
            &format!("/settings/api-keys/{id}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert!(revoked.status.is_redirection() || revoked.status == StatusCode::OK);
    let shown = app
        .call_for(
            Method::GET,
            &format!("/v1/api-keys/{id}"),
            &admin,
            &organization.to_string(),
            None,
        )
        .await;
    assert_eq!(shown.body["status"], "revoked", "{}", shown.body);
}

#[tokio::test]
async fn webhooks_name_the_admin_key_that_acted_for_the_organization() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app
        .admin_key(&[
            "organizations:read",
            "organizations:write",
            "organizations:act",
            "api_keys:write",
            "webhooks:write",
            "webhooks:read",
        ])
        .await;
    create_organization(
        &app,
        &admin,
        json!({ "name": "Acme", "external_id": "cus_1" }),
    )
    .await;
    let endpoint = app
        .call_for(
            Method::POST,
            "/v1/webhooks",
            &admin,
            "ext:cus_1",
            Some(json!({ "url": "https://203.0.114.10/hook", "events": ["api_key.created"] })),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED, "{}", endpoint.body);
    let endpoint = endpoint.body["id"].as_str().unwrap().to_owned();
    let (key_id, _) = key_for(&app, &admin, "ext:cus_1", &["api_keys:write"]).await;
    let deliveries = app
        .call_for(
            Method::GET,
            &format!("/v1/webhooks/{endpoint}/deliveries"),
            &admin,
            "ext:cus_1",
            None,
        )
        .await;
    let message = deliveries.body["data"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let delivery = app
        .call_for(
            Method::GET,
            &format!("/v1/webhooks/{endpoint}/deliveries/{message}"),
            &admin,
            "ext:cus_1",
            None,
        )
        .await;
    let payload = &delivery.body["payload"];
    assert_eq!(payload["data"]["id"], key_id.as_str());
    let actor = &payload["data"]["actor"];
    assert_eq!(actor["type"], "credential");
    assert_eq!(actor["id"], admin_id.as_str());
    let organization = app.get("/v1/organizations/ext:cus_1", &admin).await;
    assert_eq!(actor["acting_for"], organization.body["id"]);
    assert!(!payload.to_string().contains(&admin), "never the key");
}

#[tokio::test]
async fn nothing_is_created_in_a_suspended_organization() {
    let app = TestApp::spawn().await;
    let (_, admin) = app
        .admin_key(&[
            "organizations:write",
            "organizations:act",
            "projects:write",
            "projects:read",
            "instances:write",
            "tokens:write",
            "members:write",
            "webhooks:write",
            "instances:read",
        ])
        .await;
    create_organization(
        &app,
        &admin,
        json!({ "name": "Acme", "external_id": "cus_1" }),
    )
    .await;
    let act = |method: Method, path: &'static str, body: Value| {
        app.call_for(method, path, &admin, "ext:cus_1", Some(body))
    };
    let project = act(Method::POST, "/v1/projects", json!({ "name": "Main" })).await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
    let project = project.body["id"].as_str().unwrap().to_owned();
    let suspended = app
        .patch(
            "/v1/organizations/ext:cus_1",
            &admin,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::OK);
    let refused = [
        act(Method::POST, "/v1/projects", json!({ "name": "Second" })).await,
        act(
            Method::POST,
            "/v1/instances",
            json!({ "name": "web-1", "project_id": project, "region": "eu-west-1" }),
        )
        .await,
        app.call_for(
            Method::POST,
            &format!("/v1/projects/{project}/tokens"),
            &admin,
            "ext:cus_1",
            Some(json!({ "name": "t", "scopes": ["instances:read"] })),
        )
        .await,
        act(
            Method::POST,
            "/v1/webhooks",
            json!({ "url": "https://203.0.114.10/hook", "events": ["api_key.created"] }),
        )
        .await,
        app.post(
            "/v1/organizations/ext:cus_1/members",
            &admin,
            json!({ "email": "grace@example.com", "role": "member" }),
        )
        .await,
    ];
    for answer in refused {
        answer.problem(403, "organization_suspended");
    }
    // Reading still works.
    let instances = app
        .call_for(Method::GET, "/v1/instances", &admin, "ext:cus_1", None)
        .await;
    assert_eq!(instances.status, StatusCode::OK, "{}", instances.body);
    assert_eq!(instances.body["data"].as_array().unwrap().len(), 0);
}
