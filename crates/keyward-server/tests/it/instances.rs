use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn instances_are_created_validated_filtered_and_paged() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let web = app.create_project(&org.key, "Web").await;
    let db = app.create_project(&org.key, "Databases").await;

    let created = app
        .post(
            "/v1/instances",
            &org.key,
            json!({ "name": "web-1", "project_id": web, "region": "eu-west-1", "status": "provisioning" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let body = &created.body;
    assert!(body["id"].as_str().unwrap().starts_with("ins_"));
    assert_eq!(body["project_id"], web.as_str());
    assert_eq!(body["region"], "eu-west-1");
    assert_eq!(body["status"], "provisioning");
    app.create_instance(&org.key, &web, "web-2").await;
    app.create_instance(&org.key, &db, "db-1").await;

    let all = app.get("/v1/instances", &org.key).await;
    let names: Vec<_> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["db-1", "web-2", "web-1"]);
    assert_eq!(
        all.body["data"][0]["status"], "running",
        "the default status"
    );

    let only_web = app
        .get(&format!("/v1/instances?project_id={web}"), &org.key)
        .await;
    assert_eq!(only_web.body["data"].as_array().unwrap().len(), 2);
    let first = app
        .get(&format!("/v1/instances?project_id={web}&limit=1"), &org.key)
        .await;
    assert_eq!(first.body["data"][0]["name"], "web-2");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/v1/instances?project_id={web}&limit=1&cursor={cursor}"),
            &org.key,
        )
        .await;
    assert_eq!(second.body["data"][0]["name"], "web-1");
    assert_eq!(second.body["next_cursor"], json!(null));
    app.get("/v1/instances?project_id=nonsense", &org.key)
        .await
        .problem(422, "validation_failed");

    let invalid = app
        .post(
            "/v1/instances",
            &org.key,
            json!({ "name": "", "project_id": "prj_x", "region": "EU WEST", "status": "exploded" }),
        )
        .await;
    invalid.problem(422, "validation_failed");
    let fields: Vec<_> = invalid.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["name", "project_id", "region", "status"]);

    app.post(
        "/v1/instances",
        &org.key,
        json!({ "name": "WEB-1", "project_id": web, "region": "eu-west-1" }),
    )
    .await
    .problem(409, "conflict");

    // Three instances made, three events; the refusals left none.
    let trail = app.audit_trail(org.id).await;
    let created: Vec<&str> = trail
        .iter()
        .filter(|(action, _)| action.starts_with("instance."))
        .map(|(action, _)| action.as_str())
        .collect();
    assert_eq!(created, ["instance.created"; 3]);
    let web_1 = body["id"].as_str().unwrap().to_owned();
    assert!(trail.contains(&("instance.created".to_owned(), web_1)));
}

#[tokio::test]
async fn instances_of_other_organizations_are_out_of_reach() {
    let app = TestApp::spawn().await;
    let acme = app.bootstrap("Acme").await;
    let globex = app.bootstrap("Globex").await;
    let their_project = app.create_project(&globex.key, "Theirs").await;
    let their_instance = app
        .create_instance(&globex.key, &their_project, "secret-1")
        .await;

    let path = format!("/v1/instances/{their_instance}");
    app.get(&path, &acme.key).await.problem(404, "not_found");
    app.delete(&path, &acme.key).await.problem(404, "not_found");
    let planted = app
        .post(
            "/v1/instances",
            &acme.key,
            json!({ "name": "mine", "project_id": their_project, "region": "eu-west-1" }),
        )
        .await;
    planted.problem(404, "not_found");
    let filtered = app
        .get(
            &format!("/v1/instances?project_id={their_project}"),
            &acme.key,
        )
        .await;
    assert_eq!(filtered.body["data"], json!([]));
    assert_eq!(app.get(&path, &globex.key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn instances_need_their_scopes() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let project = app.create_project(&org.key, "Web").await;
    let instance = app.create_instance(&org.key, &project, "web-1").await;
    let (_, reader) = app
        .create_key(&org.key, "Reader", &["instances:read"])
        .await;
    let path = format!("/v1/instances/{instance}");
    assert_eq!(app.get(&path, &reader).await.body["name"], "web-1");
    let refused = app.delete(&path, &reader).await;
    refused.problem(403, "insufficient_scope");
    assert_eq!(refused.body["scope"], "instances:write");
    app.post(
        "/v1/instances",
        &reader,
        json!({ "name": "web-2", "project_id": project, "region": "eu-west-1" }),
    )
    .await
    .problem(403, "insufficient_scope");
    assert_eq!(
        app.delete(&path, &org.key).await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&path, &reader).await.problem(404, "not_found");
}
