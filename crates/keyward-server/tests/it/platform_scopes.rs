//! Scopes the platform defines (`[[scopes]]`): listed, granted and checked like Keyward's own,
//! in the API, the dashboard and the served OpenAPI document; and what happens to keys that
//! hold a scope a later configuration no longer defines.

use std::sync::Arc;

use keyward_core::{ScopeCatalog, ScopeDefinition, ScopeLevel};
use keyward_server::Config;
use keyward_server::services::credentials::unknown_scope_holders;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::{Visitor, add_and_switch, shown_key};
use crate::forward_auth::platform;
use crate::helpers::TestApp;

#[tokio::test]
async fn the_catalog_lists_keywards_scopes_then_the_platforms() {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;
    let project = app.create_project(&org.key, "Main").await;
    let token = app
        .post(
            &format!("/v1/projects/{project}/tokens"),
            &org.key,
            json!({ "name": "deploy", "scopes": ["databases:read"] }),
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);

    // Any valid credential may read it, a project token too.
    for key in [&org.key, token.body["key"].as_str().unwrap()] {
        let catalog = app.get("/v1/scopes", key).await;
        assert_eq!(catalog.status, StatusCode::OK, "{}", catalog.body);
        let data = catalog.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 24);
        assert_eq!(
            data[0],
            json!({
                "name": "instances:read",
                "description": "List and read instances.",
                "level": "project",
                "min_role": "member",
                "builtin": true,
            })
        );
        assert_eq!(data[9]["name"], "members:write");
        assert_eq!(data[9]["min_role"], "owner");
        assert_eq!(data[17]["name"], "organizations:act");
        assert_eq!(data[17]["level"], "installation");
        assert_eq!(data[17]["min_role"], Value::Null);
        assert_eq!(
            data[21],
            json!({
                "name": "databases:read",
                "description": "List and read databases.",
                "level": "project",
                "min_role": "member",
                "builtin": false,
            })
        );
        assert_eq!(data[23]["name"], "billing:read");
        assert_eq!(data[23]["level"], "organization");
        assert_eq!(data[23]["min_role"], "admin");
    }
    let refused = app
        .call(reqwest::Method::GET, "/v1/scopes", None, None)
        .await;
    refused.problem(401, "missing_credentials");

    // The served document's enums are the catalog in force; the reference page shows them.
    let document = app
        .call(reqwest::Method::GET, "/v1/openapi.json", None, None)
        .await
        .body;
    let schemas = &document["components"]["schemas"];
    let all = schemas["Scope"]["enum"].as_array().unwrap();
    assert_eq!(all.len(), 24);
    assert_eq!(all[21], "databases:read");
    let project_level = schemas["ProjectScope"]["enum"].as_array().unwrap();
    assert_eq!(
        project_level,
        &[
            "instances:read",
            "instances:write",
            "projects:read",
            "databases:read",
            "databases:write"
        ]
    );
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("billing:read"));
}

#[tokio::test]
async fn platform_scopes_are_granted_and_checked_like_keywards_own() {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;

    let (id, reader) = app
        .create_key(&org.key, "db reader", &["databases:read", "instances:read"])
        .await;
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(
        shown.body["scopes"],
        json!(["instances:read", "databases:read"])
    );
    assert_eq!(shown.body["unknown_scopes"], json!([]));
    let me = app.get("/v1/me", &reader).await;
    assert_eq!(
        me.body["scopes"],
        json!(["instances:read", "databases:read"])
    );

    // Verification for another service checks platform scopes by name.
    let (_, verifier) = app.create_key(&org.key, "gateway", &["keys:verify"]).await;
    let verdict = |scopes: serde_json::Value| {
        app.post(
            "/v1/keys/verify",
            &verifier,
            json!({ "key": reader, "scopes": scopes }),
        )
    };
    let valid = verdict(json!(["databases:read"])).await;
    assert_eq!(valid.body["code"], "VALID", "{}", valid.body);
    let lacking = verdict(json!(["databases:write"])).await;
    assert_eq!(lacking.body["code"], "INSUFFICIENT_SCOPE");
    verdict(json!(["databases:admin"]))
        .await
        .problem(422, "validation_failed");

    // A key cannot grant a platform scope it lacks; unknown names are refused.
    let (_, granter) = app
        .create_key(&org.key, "granter", &["api_keys:write", "databases:read"])
        .await;
    let escalation = app
        .post(
            "/v1/api-keys",
            &granter,
            json!({ "name": "more", "scopes": ["databases:write"] }),
        )
        .await;
    assert_eq!(
        escalation.problem(403, "insufficient_scope")["scope"],
        "databases:write"
    );
    app.post(
        "/v1/api-keys",
        &granter,
        json!({ "name": "typo", "scopes": ["database:read"] }),
    )
    .await
    .problem(422, "validation_failed");

    // Project tokens hold project-level platform scopes, never organization-level ones.
    let project = app.create_project(&org.key, "Main").await;
    let tokens = format!("/v1/projects/{project}/tokens");
    let billing = app
        .post(
            &tokens,
            &org.key,
            json!({ "name": "billing", "scopes": ["billing:read"] }),
        )
        .await;
    let problem = billing.problem(422, "validation_failed");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("billing:read is not a project-level scope"),
        "{problem}"
    );
    let token = app
        .post(
            &tokens,
            &org.key,
            json!({ "name": "db", "scopes": ["databases:write"] }),
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
}

#[tokio::test]
async fn the_dashboard_grid_offers_platform_scopes_by_resource_and_role() {
    let app = TestApp::spawn_with(platform()).await;
    let mut owner = Visitor::new(&app);
    owner.sign_up("ada@example.com", "Acme").await;
    let form = owner.get("/settings/api-keys/new").await;
    let body = &form.body;
    // One row per resource, Keyward's first, each scope with its description.
    let databases = body
        .find("<th scope=\"row\">Databases</th>")
        .expect("a Databases row");
    let billing = body
        .find("<th scope=\"row\">Billing</th>")
        .expect("a Billing row");
    let instances = body.find("<th scope=\"row\">Instances</th>").unwrap();
    assert!(instances < databases && databases < billing);
    assert!(body.contains("value=\"databases:read\""));
    assert!(body.contains(">List and read databases.</span>"));
    assert!(body.contains(">Read invoices and usage.</span>"));

    let created = owner
        .create_key("Database reader", &["databases:read"])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(
        created
            .body
            .contains("<span class=\"scope\">databases:read</span>")
    );
    let key = shown_key(&created);
    let me = app.get("/v1/me", &key).await;
    assert_eq!(me.body["scopes"], json!(["databases:read"]));

    // Project tokens are offered only project-level scopes.
    let project = app
        .create_project(&key_with_projects(&app, &mut owner).await, "Main")
        .await;
    let token_form = owner
        .get(&format!("/settings/projects/{project}/tokens/new"))
        .await;
    assert_eq!(token_form.status, StatusCode::OK, "{}", token_form.body);
    assert!(token_form.body.contains("value=\"databases:write\""));
    assert!(!token_form.body.contains("value=\"billing:read\""));
}

/// An owner's key that may create projects, made in the dashboard.
async fn key_with_projects(app: &TestApp, owner: &mut Visitor<'_>) -> String {
    let page = owner.create_key("Projects", &["projects:write"]).await;
    let key = shown_key(&page);
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);
    key
}

#[tokio::test]
async fn members_grant_project_level_platform_scopes_and_admins_the_rest() {
    let app = TestApp::spawn_with(platform()).await;
    let mut owner = Visitor::new(&app);
    owner.sign_up("ada@example.com", "Acme").await;
    let mut member = Visitor::new(&app);
    member.sign_up("bob@example.com", "Bob's own").await;
    add_and_switch(&mut owner, &mut member, "bob@example.com", "member", "Acme").await;
    let mut admin = Visitor::new(&app);
    admin.sign_up("cy@example.com", "Cy's own").await;
    add_and_switch(&mut owner, &mut admin, "cy@example.com", "admin", "Acme").await;

    let form = member.get("/settings/api-keys/new").await;
    assert!(form.body.contains("value=\"databases:read\""));
    assert!(!form.body.contains("value=\"billing:read\""));
    let refused = member.create_key("Billing", &["billing:read"]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("cannot grant billing:read"),
        "{}",
        refused.body
    );
    let granted = member.create_key("Reader", &["databases:read"]).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);

    let granted = admin.create_key("Billing", &["billing:read"]).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
}

#[tokio::test]
async fn a_scope_removed_from_the_configuration_grants_nothing_and_is_shown_as_unknown() {
    let mut first = TestApp::spawn_with(platform()).await;
    let org = first.bootstrap("Acme").await;
    let (id, key) = first
        .create_key(&org.key, "reader", &["instances:read", "databases:read"])
        .await;
    let url = format!("sqlite://{}", first.dir.path().join("keyward.db").display());
    first.shutdown().await;

    // The same database under Keyward's own scopes alone.
    let without = TestApp::spawn_on_with(&url, Config::default()).await;
    let shown = without.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(shown.body["scopes"], json!(["instances:read"]));
    assert_eq!(shown.body["unknown_scopes"], json!(["databases:read"]));
    let me = without.get("/v1/me", &key).await;
    assert_eq!(me.body["scopes"], json!(["instances:read"]));
    // The bootstrap key held every platform scope; the reader one of them.
    let holders = unknown_scope_holders(&without.state).await.unwrap();
    assert_eq!(
        holders,
        [
            ("billing:read".to_owned(), 1),
            ("databases:read".to_owned(), 2),
            ("databases:write".to_owned(), 1)
        ]
    );
    drop(without);

    // Defined again, it grants again.
    let again = TestApp::spawn_on_with(&url, platform()).await;
    let me = again.get("/v1/me", &key).await;
    assert_eq!(
        me.body["scopes"],
        json!(["instances:read", "databases:read"])
    );
    assert!(
        unknown_scope_holders(&again.state)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_scope_moved_to_the_organization_level_leaves_project_tokens() {
    let mut first = TestApp::spawn_with(platform()).await;
    let org = first.bootstrap("Acme").await;
    let project = first.create_project(&org.key, "Main").await;
    let created = first
        .post(
            &format!("/v1/projects/{project}/tokens"),
            &org.key,
            json!({ "name": "deploy", "scopes": ["instances:read", "databases:read"] }),
        )
        .await;
    let (id, token) = (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["key"].as_str().unwrap().to_owned(),
    );
    let url = format!("sqlite://{}", first.dir.path().join("keyward.db").display());
    first.shutdown().await;

    // databases:read is now an organization-level scope: the token no longer holds it.
    let moved = ScopeCatalog::new(&[ScopeDefinition {
        name: "databases:read".into(),
        description: "List and read databases.".into(),
        level: Some(ScopeLevel::Organization),
        min_role: None,
    }])
    .unwrap();
    let app = TestApp::spawn_on_with(
        &url,
        Config {
            scopes: Arc::new(moved),
            ..Config::default()
        },
    )
    .await;
    let shown = app
        .get(&format!("/v1/projects/{project}/tokens/{id}"), &org.key)
        .await;
    assert_eq!(shown.body["scopes"], json!(["instances:read"]));
    assert_eq!(shown.body["unknown_scopes"], json!(["databases:read"]));
    let me = app.get("/v1/me", &token).await;
    assert_eq!(me.body["scopes"], json!(["instances:read"]));
    // The organization's key still holds it.
    let me = app.get("/v1/me", &org.key).await;
    assert!(
        me.body["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("databases:read"))
    );
}
