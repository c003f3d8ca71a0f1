//! `/v1/members`: the dashboard's member rules through the API, and their audit events.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::dashboard::Visitor;
use crate::helpers::{TestApp, event};

#[tokio::test]
async fn members_are_added_changed_and_removed_with_the_dashboards_rules() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    // Grace has an account (her own organization) but is not in Acme.
    let mut grace = Visitor::new(&app);
    grace.sign_up("grace@example.com", "Grace's").await;

    let listed = app.get("/v1/members", &org.key).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let members = listed.body["data"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["role"], "owner");
    let owner = members[0]["user_id"].as_str().unwrap().to_owned();

    let added = app
        .post(
            "/v1/members",
            &org.key,
            json!({ "email": "grace@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.body["email"], "grace@example.com");
    assert_eq!(added.body["role"], "member");
    let grace_id = added.body["user_id"].as_str().unwrap().to_owned();
    assert_eq!(
        added.header("location"),
        Some(format!("/v1/members/{grace_id}").as_str())
    );
    app.post(
        "/v1/members",
        &org.key,
        json!({ "email": "grace@example.com", "role": "admin" }),
    )
    .await
    .problem(409, "conflict");
    let unknown = app
        .post(
            "/v1/members",
            &org.key,
            json!({ "email": "nobody@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(
        unknown.problem(422, "validation_failed")["errors"][0]["field"],
        "email"
    );
    let bad = app
        .post(
            "/v1/members",
            &org.key,
            json!({ "email": "x", "role": "root" }),
        )
        .await;
    assert_eq!(
        bad.problem(422, "validation_failed")["errors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let path = format!("/v1/members/{grace_id}");
    let promoted = app
        .call(
            Method::PATCH,
            &path,
            Some(&org.key),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    assert_eq!(promoted.body["role"], "admin");
    assert_eq!(app.get(&path, &org.key).await.body["role"], "admin");

    // A key never touches owners, nor makes one: people who are owners do, in the dashboard
    // (where the last owner stays, as dashboard::roles_limit_what_people_grant_see_and_revoke
    // shows).
    let owner_path = format!("/v1/members/{owner}");
    app.call(
        Method::PATCH,
        &owner_path,
        Some(&org.key),
        Some(json!({ "role": "member" })),
    )
    .await
    .problem(403, "forbidden");
    app.delete(&owner_path, &org.key)
        .await
        .problem(403, "forbidden");
    app.call(
        Method::PATCH,
        &path,
        Some(&org.key),
        Some(json!({ "role": "owner" })),
    )
    .await
    .problem(403, "forbidden");
    app.post(
        "/v1/members",
        &org.key,
        json!({ "email": "grace@example.com", "role": "owner" }),
    )
    .await
    .problem(403, "forbidden");

    assert_eq!(
        app.delete(&path, &org.key).await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&path, &org.key).await.problem(404, "not_found");
    app.delete(&path, &org.key).await.problem(404, "not_found");
    app.get("/v1/members/usr_nonsense", &org.key)
        .await
        .problem(404, "not_found");

    // One event per change, none for the refusals.
    let trail = app.audit_trail(org.id).await;
    assert_eq!(
        trail[2..],
        [
            event("member.added", &grace_id),
            event("member.role_changed", &grace_id),
            event("member.removed", &grace_id),
        ]
    );
}

#[tokio::test]
async fn members_need_their_scopes() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, reader) = app.create_key(&org.key, "Reader", &["members:read"]).await;
    assert_eq!(app.get("/v1/members", &reader).await.status, StatusCode::OK);
    let refused = app
        .post(
            "/v1/members",
            &reader,
            json!({ "email": "a@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(
        refused.problem(403, "insufficient_scope")["scope"],
        "members:write"
    );
}
