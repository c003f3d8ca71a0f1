use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn projects_can_be_created_listed_renamed_and_deleted() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let created = app
        .post(
            "/v1/projects",
            &org.key,
            json!({ "name": "Web", "description": "The site" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("prj_"));
    assert_eq!(created.body["organization_id"], org.id.to_string());
    assert_eq!(created.body["description"], "The site");
    app.create_project(&org.key, "Mobile").await;

    let listed = app.get("/v1/projects", &org.key).await;
    let names: Vec<_> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Mobile", "Web"]);

    let path = format!("/v1/projects/{id}");
    let renamed = app
        .call(
            Method::PATCH,
            &path,
            Some(&org.key),
            Some(json!({ "name": "Website" })),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Website");
    assert_eq!(renamed.body["description"], "The site");
    assert_eq!(app.get(&path, &org.key).await.body["name"], "Website");

    app.call(Method::PATCH, &path, Some(&org.key), Some(json!({})))
        .await
        .problem(422, "validation_failed");
    app.call(
        Method::PATCH,
        &path,
        Some(&org.key),
        Some(json!({ "name": "mobile" })),
    )
    .await
    .problem(409, "conflict");
    app.post("/v1/projects", &org.key, json!({ "name": "WEBSITE" }))
        .await
        .problem(409, "conflict");

    assert_eq!(
        app.delete(&path, &org.key).await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&path, &org.key).await.problem(404, "not_found");
    app.delete(&path, &org.key).await.problem(404, "not_found");
    // The name is free again once the project is gone.
    let again = app.create_project(&org.key, "Website").await;

    // One event per change; the refused requests (422, 409, 404) left none.
    let trail = app.audit_trail(org.id).await;
    let actions: Vec<&str> = trail[2..].iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "project.created",
            "project.created",
            "project.updated",
            "project.deleted",
            "project.created"
        ]
    );
    assert_eq!(trail[2].1, id);
    assert_eq!(trail[5].1, id);
    assert_eq!(trail[6].1, again);
}

#[tokio::test]
async fn projects_with_instances_are_not_deleted() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let project = app.create_project(&org.key, "Web").await;
    let instance = app.create_instance(&org.key, &project, "web-1").await;
    let path = format!("/v1/projects/{project}");
    app.delete(&path, &org.key).await.problem(409, "conflict");
    assert_eq!(app.get(&path, &org.key).await.status, StatusCode::OK);
    app.delete(&format!("/v1/instances/{instance}"), &org.key)
        .await;
    assert_eq!(
        app.delete(&path, &org.key).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn projects_need_their_scopes_and_stay_in_their_organization() {
    let app = TestApp::spawn().await;
    let acme = app.bootstrap("Acme").await;
    let globex = app.bootstrap("Globex").await;
    let theirs = app.create_project(&globex.key, "Secret").await;

    let (_, reader) = app
        .create_key(&acme.key, "Reader", &["projects:read"])
        .await;
    assert_eq!(
        app.get("/v1/projects", &reader).await.status,
        StatusCode::OK
    );
    let refused = app
        .post("/v1/projects", &reader, json!({ "name": "x" }))
        .await;
    refused.problem(403, "insufficient_scope");
    assert_eq!(refused.body["scope"], "projects:write");

    let path = format!("/v1/projects/{theirs}");
    app.get(&path, &acme.key).await.problem(404, "not_found");
    app.call(
        Method::PATCH,
        &path,
        Some(&acme.key),
        Some(json!({ "name": "Mine" })),
    )
    .await
    .problem(404, "not_found");
    app.delete(&path, &acme.key).await.problem(404, "not_found");
    assert_eq!(app.get(&path, &globex.key).await.body["name"], "Secret");
    let listed = app.get("/v1/projects", &acme.key).await;
    assert_eq!(listed.body["data"], json!([]));
}
