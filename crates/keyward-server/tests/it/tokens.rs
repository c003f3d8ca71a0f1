use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

fn ids(body: &serde_json::Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_project_token_works_in_its_project_and_nowhere_else() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let web = app.create_project(&org.key, "Web").await;
    let db = app.create_project(&org.key, "Databases").await;
    let web_1 = app.create_instance(&org.key, &web, "web-1").await;
    let db_1 = app.create_instance(&org.key, &db, "db-1").await;

    // Create: shown once, kwp_ prefix, project-level scopes only.
    let created = app
        .post(
            &format!("/v1/projects/{web}/tokens"),
            &org.key,
            json!({ "name": "Web deploy", "scopes": ["instances:read", "instances:write", "projects:read"] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let token_id = created.body["id"].as_str().unwrap().to_owned();
    let token = created.body["key"].as_str().unwrap().to_owned();
    assert!(token_id.starts_with("tok_"));
    assert!(token.starts_with("kwp_"));
    assert_eq!(created.body["project_id"], web.as_str());
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/projects/{web}/tokens/{token_id}").as_str())
    );

    let me = app.get("/v1/me", &token).await;
    assert_eq!(me.body["kind"], "project_token");
    assert_eq!(me.body["project_id"], web.as_str());

    // Its own project's instances, and only those.
    let listed = app.get("/v1/instances", &token).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(ids(&listed.body), [web_1.as_str()]);
    let asked_elsewhere = app
        .get(&format!("/v1/instances?project_id={db}"), &token)
        .await;
    assert_eq!(ids(&asked_elsewhere.body), Vec::<String>::new());
    assert_eq!(
        app.get(&format!("/v1/instances/{web_1}"), &token)
            .await
            .status,
        StatusCode::OK
    );
    app.get(&format!("/v1/instances/{db_1}"), &token)
        .await
        .problem(404, "not_found");
    app.delete(&format!("/v1/instances/{db_1}"), &token)
        .await
        .problem(404, "not_found");
    app.post(
        "/v1/instances",
        &token,
        json!({ "name": "sneaky", "project_id": db, "region": "eu-west-1" }),
    )
    .await
    .problem(404, "not_found");
    let web_2 = app.create_instance(&token, &web, "web-2").await;
    assert_eq!(
        app.delete(&format!("/v1/instances/{web_2}"), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    let projects = app.get("/v1/projects", &token).await;
    assert_eq!(ids(&projects.body), [web.as_str()]);
    app.get(&format!("/v1/projects/{db}"), &token)
        .await
        .problem(404, "not_found");

    // Organization-level endpoints: 403, naming the scope.
    for (method, path) in [
        (Method::GET, "/v1/api-keys".to_owned()),
        (Method::POST, "/v1/api-keys".to_owned()),
        (Method::GET, format!("/v1/projects/{web}/tokens")),
        (Method::POST, format!("/v1/projects/{web}/tokens")),
        (
            Method::DELETE,
            format!("/v1/projects/{web}/tokens/{token_id}"),
        ),
        (Method::POST, "/v1/projects".to_owned()),
        (Method::PATCH, format!("/v1/projects/{web}")),
        (Method::DELETE, format!("/v1/projects/{web}")),
    ] {
        let body = json!({ "name": "x", "scopes": ["instances:read"] });
        let answer = app
            .call(method.clone(), &path, Some(&token), Some(body))
            .await;
        answer.problem(403, "insufficient_scope");
        assert!(
            answer
                .header("www-authenticate")
                .unwrap()
                .contains("insufficient_scope"),
            "{method} {path}"
        );
    }

    // Listed with the same columns and statuses as API keys; revoked at once and for good.
    let tokens = app
        .get(&format!("/v1/projects/{web}/tokens"), &org.key)
        .await;
    assert_eq!(ids(&tokens.body), [token_id.as_str()]);
    assert_eq!(tokens.body["data"][0]["status"], "active");
    assert!(tokens.body["data"][0]["last_used_at"].is_string());
    assert!(!tokens.body.to_string().contains(&token));
    let revoked = app
        .delete(&format!("/v1/projects/{web}/tokens/{token_id}"), &org.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    app.get("/v1/instances", &token)
        .await
        .problem(401, "invalid_token");
    let shown = app
        .get(&format!("/v1/projects/{web}/tokens/{token_id}"), &org.key)
        .await;
    assert_eq!(shown.body["status"], "revoked");

    // One event per change (the token's own instance made and deleted, by the token); the
    // refusals left none.
    let trail = app.audit_trail(org.id).await;
    let actions: Vec<&str> = trail[2..].iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "project.created",
            "project.created",
            "instance.created",
            "instance.created",
            "project_token.created",
            "instance.created",
            "instance.deleted",
            "project_token.revoked",
        ]
    );
    assert_eq!(trail[6].1, token_id);
    assert_eq!(trail[7].1, web_2);
    assert_eq!(trail[9].1, token_id);
}

#[tokio::test]
async fn tokens_hold_project_level_scopes_only() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let web = app.create_project(&org.key, "Web").await;
    for scope in [
        "projects:write",
        "api_keys:read",
        "tokens:write",
        "members:read",
        "keys:verify",
    ] {
        let answer = app
            .post(
                &format!("/v1/projects/{web}/tokens"),
                &org.key,
                json!({ "name": "t", "scopes": ["instances:read", scope] }),
            )
            .await;
        answer.problem(422, "validation_failed");
        assert_eq!(answer.body["errors"][0]["field"], "scopes");
        assert!(
            answer.body["detail"].as_str().unwrap().contains(scope),
            "{}",
            answer.body
        );
    }
    // The creating key must hold what it grants.
    let (_, manager) = app
        .create_key(
            &org.key,
            "Token manager",
            &["tokens:write", "instances:read"],
        )
        .await;
    let escalation = app
        .post(
            &format!("/v1/projects/{web}/tokens"),
            &manager,
            json!({ "name": "t", "scopes": ["instances:write"] }),
        )
        .await;
    escalation.problem(403, "insufficient_scope");
    assert_eq!(escalation.body["scope"], "instances:write");
    let allowed = app
        .post(
            &format!("/v1/projects/{web}/tokens"),
            &manager,
            json!({ "name": "t", "scopes": ["instances:read"] }),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.body);
}

#[tokio::test]
async fn tokens_stay_with_their_project_and_organization() {
    let app = TestApp::spawn().await;
    let acme = app.bootstrap("Acme").await;
    let globex = app.bootstrap("Globex").await;
    let web = app.create_project(&acme.key, "Web").await;
    let db = app.create_project(&acme.key, "Databases").await;
    let theirs = app.create_project(&globex.key, "Theirs").await;
    let created = app
        .post(
            &format!("/v1/projects/{web}/tokens"),
            &acme.key,
            json!({ "name": "t", "scopes": ["instances:read"] }),
        )
        .await;
    let token_id = created.body["id"].as_str().unwrap().to_owned();

    // Through another project, or another organization, the token does not exist.
    app.get(&format!("/v1/projects/{db}/tokens/{token_id}"), &acme.key)
        .await
        .problem(404, "not_found");
    app.delete(&format!("/v1/projects/{db}/tokens/{token_id}"), &acme.key)
        .await
        .problem(404, "not_found");
    app.get(
        &format!("/v1/projects/{web}/tokens/{token_id}"),
        &globex.key,
    )
    .await
    .problem(404, "not_found");
    app.get(&format!("/v1/projects/{web}/tokens"), &globex.key)
        .await
        .problem(404, "not_found");
    app.post(
        &format!("/v1/projects/{theirs}/tokens"),
        &acme.key,
        json!({ "name": "t", "scopes": ["instances:read"] }),
    )
    .await
    .problem(404, "not_found");
    let db_tokens = app
        .get(&format!("/v1/projects/{db}/tokens"), &acme.key)
        .await;
    assert_eq!(db_tokens.body["data"], json!([]));
    // An API key id is not a token id.
    app.get(
        &format!("/v1/projects/{web}/tokens/{}", acme.key_id),
        &acme.key,
    )
    .await
    .problem(404, "not_found");
    let still = app
        .get(&format!("/v1/projects/{web}/tokens/{token_id}"), &acme.key)
        .await;
    assert_eq!(still.body["status"], "active");
}

#[tokio::test]
async fn deleting_a_project_revokes_all_its_tokens_at_once() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let web = app.create_project(&org.key, "Web").await;
    let mut tokens = Vec::new();
    for n in 0..3 {
        let created = app
            .post(
                &format!("/v1/projects/{web}/tokens"),
                &org.key,
                json!({ "name": format!("t{n}"), "scopes": ["projects:read"] }),
            )
            .await;
        tokens.push(created.body["key"].as_str().unwrap().to_owned());
    }
    for token in &tokens {
        assert_eq!(app.get("/v1/projects", token).await.status, StatusCode::OK);
    }
    assert_eq!(
        app.delete(&format!("/v1/projects/{web}"), &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    for token in &tokens {
        app.get("/v1/projects", token)
            .await
            .problem(401, "invalid_token");
    }
    app.get(&format!("/v1/projects/{web}/tokens"), &org.key)
        .await
        .problem(404, "not_found");
}

/// Creates tokens while their project is deleted, many times over: a token the API created
/// works only if the project is still live, and is refused everywhere once it is deleted.
/// Each can still be revoked by its id.
pub async fn race_token_creation_against_project_deletion(app: &TestApp, rounds: usize) {
    let org = app.bootstrap("Racers").await;
    let mut created = 0;
    for round in 0..rounds {
        let project = app
            .create_project(&org.key, &format!("Doomed {round}"))
            .await;
        let tokens = format!("/v1/projects/{project}/tokens");
        let project_path = format!("/v1/projects/{project}");
        let create = |n: usize| {
            app.post(
                &tokens,
                &org.key,
                json!({ "name": format!("t{n}"), "scopes": ["instances:read"] }),
            )
        };
        let (a, b, c, deletion, d, e, f) = tokio::join!(
            create(1),
            create(2),
            create(3),
            app.delete(&project_path, &org.key),
            create(4),
            create(5),
            create(6),
        );
        assert_eq!(deletion.status, StatusCode::NO_CONTENT, "{}", deletion.body);
        for answer in [a, b, c, d, e, f] {
            if answer.status == StatusCode::NOT_FOUND {
                continue;
            }
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
            created += 1;
            let key = answer.body["key"].as_str().unwrap();
            let id = answer.body["id"].as_str().unwrap();
            app.get("/v1/me", key).await.problem(401, "invalid_token");
            let verified = app
                .post("/v1/keys/verify", &org.key, json!({ "key": key }))
                .await;
            assert_ne!(verified.body["code"], "VALID", "round {round}");
            let revoked = app.delete(&format!("{tokens}/{id}"), &org.key).await;
            assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
        }
    }
    eprintln!(
        "{created} of {} token creations beat the deletion",
        rounds * 6
    );
}

#[tokio::test]
async fn tokens_never_outlive_a_project_deleted_while_they_are_created() {
    let app = TestApp::spawn().await;
    race_token_creation_against_project_deletion(&app, 40).await;
}
