//! Where the REST API and the dashboard do the same thing, they apply the same rules, with
//! the same messages: both go through one service per resource and the core types' parsers.

use reqwest::StatusCode;
use serde_json::json;

use crate::dashboard::Visitor;
use crate::helpers::TestApp;

/// The API key of Ada's organization, made from her dashboard session.
async fn signed_up(app: &TestApp) -> (Visitor<'_>, String, String) {
    let mut ada = Visitor::new(app);
    ada.sign_up("ada@example.com", "Acme").await;
    let csrf = ada.get("/settings/projects").await.csrf_token();
    let form = ada.get("/settings/api-keys/new").await;
    let request_id = form.request_id();
    let created = ada
        .post(
            "/settings/api-keys",
            &[
                ("csrf_token", &csrf),
                ("request_id", &request_id),
                ("name", "all"),
                ("expires_in", "never"),
                ("scopes", "projects:read"),
                ("scopes", "projects:write"),
                ("scopes", "instances:read"),
                ("scopes", "instances:write"),
            ],
        )
        .await;
    let marker = "kwk_";
    let start = created.body.find(marker).expect("the key is shown");
    let key = created.body[start..start + 42].to_owned();
    (ada, csrf, key)
}

#[tokio::test]
async fn descriptions_refuse_carriage_returns_on_both_front_ends() {
    let app = TestApp::spawn().await;
    let (mut ada, csrf, key) = signed_up(&app).await;
    let message = "must not contain control characters other than newlines and tabs";

    // The API takes the text as sent: a carriage return is refused.
    let refused = app
        .post(
            "/v1/projects",
            &key,
            json!({ "name": "Web", "description": "one\r\ntwo" }),
        )
        .await;
    refused.problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "description");
    assert_eq!(refused.body["errors"][0]["message"], message);

    // A form sends every line break as CRLF: those are line breaks, stored as "\n". A lone
    // carriage return is refused with the API's message.
    let lone = ada
        .post(
            "/settings/projects",
            &[
                ("csrf_token", &csrf),
                ("name", "Web"),
                ("description", "one\rtwo"),
            ],
        )
        .await;
    assert_eq!(lone.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(lone.body.contains(message), "{}", lone.body);
    let created = ada
        .post(
            "/settings/projects",
            &[
                ("csrf_token", &csrf),
                ("name", "Web"),
                ("description", " one\r\n\ttwo \r\n"),
            ],
        )
        .await;
    assert_eq!(created.location(), "/settings/projects");
    let listed = app.get("/v1/projects", &key).await;
    assert_eq!(listed.body["data"][0]["description"], "one\n\ttwo");
}

#[tokio::test]
async fn instance_statuses_and_taken_names_read_the_same_on_both_front_ends() {
    let app = TestApp::spawn().await;
    let (mut ada, csrf, key) = signed_up(&app).await;
    let project = app.create_project(&key, "Web").await;
    let statuses = "must be one of provisioning, running, stopped";

    let refused = app
        .post(
            "/v1/instances",
            &key,
            json!({ "name": "web-1", "project_id": project, "region": "eu-west-1", "status": "paused" }),
        )
        .await;
    refused.problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["message"], statuses);
    let instances = format!("/settings/projects/{project}/instances");
    let form = |status| {
        [
            ("csrf_token", csrf.as_str()),
            ("name", "web-1"),
            ("region", "eu-west-1"),
            ("status", status),
        ]
    };
    let page = ada.post(&instances, &form("paused")).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains(statuses), "{}", page.body);

    // The same name twice in a project: one conflict, one sentence.
    let created = ada.post(&instances, &form("stopped")).await;
    assert_eq!(created.location(), instances);
    let taken = "an instance with this name already exists in the project";
    let again = ada.post(&instances, &form("stopped")).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.body.contains(taken), "{}", again.body);
    let conflict = app
        .post(
            "/v1/instances",
            &key,
            json!({ "name": "WEB-1", "project_id": project, "region": "eu-west-1" }),
        )
        .await;
    conflict.problem(409, "conflict");
    assert_eq!(conflict.body["detail"], taken);
}
