//! Portal links over plain HTTP: who may open what, the one-time code, the confined session,
//! framing headers and cookies, and the races (the browser test embeds it for real).

use std::sync::Arc;

use keyward_server::Config;
use keyward_server::portal::PortalSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::dashboard::Visitor;
use crate::helpers::TestApp;

const CONSOLE: &str = "https://console.example.com";

fn settings(frame_ancestors: &[&str]) -> Config {
    Config {
        portal: Arc::new(PortalSettings {
            return_origins: vec![CONSOLE.into()],
            frame_ancestors: frame_ancestors.iter().map(|s| (*s).to_owned()).collect(),
            ..PortalSettings::default()
        }),
        ..Config::default()
    }
}

fn link_for(external_id: &str, email: &str, role: &str) -> Value {
    json!({
        "user": {"external_id": external_id, "email": email, "name": "Ada"},
        "role": role,
        "return_url": format!("{CONSOLE}/settings"),
    })
}

/// The email of the person who did the latest `action`, from the audit log.
async fn actor_of(app: &TestApp, key: &str, action: &str) -> String {
    let events = app.get("/v1/audit-events", key).await;
    events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == action)
        .and_then(|e| e["actor"]["email"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The path of a link's URL (`/portal/<code>`).
fn path_of(url: &str, app: &TestApp) -> String {
    url.strip_prefix(&app.url(""))
        .expect("on the server")
        .to_owned()
}

#[tokio::test]
async fn a_link_opens_one_confined_session_once() {
    let (app, clock) = TestApp::spawn_with_manual_clock(settings(&[])).await;
    let acme = app.bootstrap("Acme").await;
    let other = app.bootstrap("Other").await;
    let made = app
        .post(
            "/v1/portal-sessions",
            &acme.key,
            link_for("u-1", "ada@acme.example", "admin"),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let url = made.body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.url("/portal/")), "{url}");
    assert_eq!(made.body["session_expires_in_seconds"], 3600);
    let code = url.rsplit('/').next().unwrap().to_owned();
    assert_eq!(code.len(), 32);

    // Only the code's digest is stored.
    let dump: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT code_sha256, pages FROM portal_links")
            .fetch_all(
                &sqlx::SqlitePool::connect(&format!(
                    "sqlite://{}",
                    app.dir.path().join("keyward.db").display()
                ))
                .await
                .unwrap(),
            )
            .await
            .unwrap();
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].1, "api_keys tokens");
    assert!(!String::from_utf8_lossy(&dump[0].0).contains(&code));

    // An organization's key names people in its own namespace, never a platform's person.
    let person = app
        .store
        .find_user_by_email(&keyward_core::Email::parse("ada@acme.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        person.external_id.map(|e| e.as_str().to_owned()),
        Some(format!("{}:u-1", acme.id))
    );

    let mut visitor = Visitor::new(&app);
    let opened = visitor.get(&path_of(&url, &app)).await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER);
    assert_eq!(opened.location(), "/settings/api-keys");
    let cookie = opened.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("keyward_portal="), "{cookie}");
    assert!(cookie.contains("SameSite=Lax") && cookie.contains("Max-Age=3600"));

    let keys = visitor.get("/settings/api-keys").await;
    assert_eq!(keys.status, StatusCode::OK);
    assert!(
        keys.body.contains("Back to console.example.com"),
        "{}",
        keys.body
    );
    assert!(
        keys.body
            .contains("href=\"https://console.example.com/settings\"")
    );
    assert!(!keys.body.contains("organization-switcher"), "no switcher");
    assert!(!keys.body.contains("action=\"/logout\""), "no log-out");
    assert!(
        !keys.body.contains("href=\"/settings/members\""),
        "not a page of it"
    );
    assert!(keys.body.contains("ada@acme.example · admin"));
    // Not framed: no frame-ancestors configured.
    let policy = keys.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");

    // The session makes keys in its organization, as the person.
    let created = visitor
        .create_key("From the console", &["instances:read"])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(
        actor_of(&app, &acme.key, "api_key.created").await,
        "ada@acme.example"
    );

    // Pages not listed, other sections, and switching are refused.
    for path in [
        "/settings/members",
        "/settings/projects",
        "/settings/audit-log",
        "/settings/webhooks",
        "/settings/organization/policy",
    ] {
        assert_eq!(
            visitor.get(path).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let tokens = visitor.get("/settings/tokens").await;
    assert_eq!(tokens.status, StatusCode::OK);
    let csrf = visitor.get("/settings/api-keys/new").await.csrf_token();
    let switch = visitor
        .post(
            "/settings/organization",
            &[
                ("csrf_token", &csrf),
                ("organization_id", &other.id.to_string()),
            ],
        )
        .await;
    assert_eq!(switch.status, StatusCode::FORBIDDEN);
    // Another organization's key is not found from here.
    let others = app.get("/v1/api-keys", &other.key).await;
    let other_key = others.body["data"][0]["id"].as_str().unwrap();
    let foreign = visitor
        .get(&format!("/settings/api-keys/{other_key}/revoke"))
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    // A second use is a clear page and no session.
    let mut stranger = Visitor::new(&app);
    let again = stranger.get(&path_of(&url, &app)).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.body.contains("has been used already or has expired"));
    assert!(again.headers.get("set-cookie").is_none());
    assert_eq!(
        stranger.get("/settings/api-keys").await.status,
        StatusCode::SEE_OTHER
    );

    // A link left for more than a minute no longer opens anything.
    let late = app
        .post(
            "/v1/portal-sessions",
            &acme.key,
            link_for("u-1", "ada@acme.example", "admin"),
        )
        .await;
    clock.advance(std::time::Duration::from_secs(61));
    let expired = stranger
        .get(&path_of(late.body["url"].as_str().unwrap(), &app))
        .await;
    assert_eq!(expired.status, StatusCode::GONE);
    // A made-up code is the same page.
    let made_up = stranger
        .get("/portal/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(made_up.status, StatusCode::GONE);
    assert_eq!(stranger.get("/portal/x").await.status, StatusCode::GONE);

    // The session ends when its time is up.
    clock.advance(std::time::Duration::from_secs(3600));
    let ended = visitor.get("/settings/api-keys").await;
    assert_eq!(ended.status, StatusCode::FORBIDDEN);
    assert!(ended.body.contains("This session has ended"));
}

#[tokio::test]
async fn the_same_person_on_every_link_with_the_role_the_platform_gives() {
    let app = TestApp::spawn_with(settings(&[])).await;
    let acme = app.bootstrap("Acme").await;
    let first = app
        .post(
            "/v1/portal-sessions",
            &acme.key,
            link_for("u-7", "grace@acme.example", "member"),
        )
        .await;
    let again = app
        .post(
            "/v1/portal-sessions",
            &acme.key,
            link_for("u-7", "grace@acme.example", "admin"),
        )
        .await;
    assert_eq!(first.body["user_id"], again.body["user_id"]);
    let members = app.get("/v1/members", &acme.key).await;
    let grace: Vec<&Value> = members.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["email"] == "grace@acme.example")
        .collect();
    assert_eq!(grace.len(), 1);
    assert_eq!(grace[0]["role"], "admin", "the role of the latest link");

    // The email of another account, under another id: refused, nothing linked.
    let taken = app
        .post(
            "/v1/portal-sessions",
            &acme.key,
            link_for("u-8", "owner@acme.example", "member"),
        )
        .await;
    taken.problem(409, "conflict");

    // Another organization's "u-7" is another person: its key names people in a namespace
    // of its own, and can neither pull Grace in nor change her email.
    let other = app.bootstrap("Other").await;
    let elsewhere = app
        .post(
            "/v1/portal-sessions",
            &other.key,
            link_for("u-7", "grace@evil.example", "owner"),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::CREATED, "{}", elsewhere.body);
    assert_ne!(elsewhere.body["user_id"], first.body["user_id"]);
    let members = app.get("/v1/members", &acme.key).await;
    assert!(members.body.to_string().contains("grace@acme.example"));
    assert!(!members.body.to_string().contains("grace@evil.example"));
}

#[tokio::test]
async fn a_key_opens_no_more_than_it_holds() {
    let app = TestApp::spawn_with(settings(&[])).await;
    let acme = app.bootstrap("Acme").await;
    // Without portal:write.
    let (_, reader) = app
        .create_key(&acme.key, "reader", &["api_keys:read"])
        .await;
    app.post(
        "/v1/portal-sessions",
        &reader,
        link_for("u-1", "a@x.example", "member"),
    )
    .await
    .problem(403, "insufficient_scope");
    // With portal:write but not everything a member may grant.
    let (_, narrow) = app.create_key(&acme.key, "narrow", &["portal:write"]).await;
    let refused = app
        .post(
            "/v1/portal-sessions",
            &narrow,
            link_for("u-1", "a@x.example", "member"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("member role"),
        "{}",
        refused.body
    );
    // Bad input, each named.
    let bad = app
        .post(
            "/v1/portal-sessions",
            &acme.key,
            json!({
                "user": {"external_id": "", "email": "nope"},
                "role": "king",
                "return_url": "https://console.example.com/",
                "pages": ["api_keys", "billing"],
            }),
        )
        .await;
    let fields: Vec<&str> = bad.problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user.external_id", "user.email", "role", "pages"]);
    for return_url in [
        "https://evil.example.com/",
        "http://console.example.com/",
        "/x",
    ] {
        let mut body = link_for("u-1", "a@x.example", "member");
        body["return_url"] = json!(return_url);
        let refused = app.post("/v1/portal-sessions", &acme.key, body).await;
        assert_eq!(
            refused.problem(422, "validation_failed")["errors"][0]["field"],
            "return_url"
        );
    }
    let mut long = link_for("u-1", "a@x.example", "member");
    long["expires_in_seconds"] = json!(86_400);
    app.post("/v1/portal-sessions", &acme.key, long)
        .await
        .problem(422, "validation_failed");
    // Without any return origin configured, every link is refused, saying why.
    let bare = TestApp::spawn().await;
    let bare_org = bare.bootstrap("Acme").await;
    let refused = bare
        .post(
            "/v1/portal-sessions",
            &bare_org.key,
            link_for("u-1", "a@x.example", "member"),
        )
        .await;
    assert!(
        refused.problem(422, "validation_failed")["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("return_origins")
    );
}

#[tokio::test]
async fn an_admin_key_acting_for_an_organization_opens_its_portal() {
    let app = TestApp::spawn_with(settings(&[])).await;
    let (_, admin) = app
        .admin_key(&[
            "organizations:write",
            "organizations:act",
            "portal:write",
            "api_keys:read",
            "api_keys:write",
            "tokens:read",
            "tokens:write",
            "projects:read",
            "instances:read",
            "instances:write",
            "audit:read",
        ])
        .await;
    let created = app
        .post(
            "/v1/organizations",
            &admin,
            json!({"name": "Customer", "external_id": "cust-1"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    // An account that signed up by itself, with the email: an admin key links it.
    let mut visitor = Visitor::new(&app);
    visitor.sign_up("lin@customer.example", "Lin's own").await;
    let made = app
        .call_for(
            Method::POST,
            "/v1/portal-sessions",
            &admin,
            "ext:cust-1",
            Some(link_for("p-42", "lin@customer.example", "member")),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    // Not an owner: the admin key holds no members:write.
    let owner = app
        .call_for(
            Method::POST,
            "/v1/portal-sessions",
            &admin,
            "ext:cust-1",
            Some(link_for("p-43", "boss@customer.example", "owner")),
        )
        .await;
    assert_eq!(owner.status, StatusCode::FORBIDDEN, "{}", owner.body);
    let mut browser = Visitor::new(&app);
    let opened = browser
        .get(&path_of(made.body["url"].as_str().unwrap(), &app))
        .await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER);
    let page = browser.get("/settings/api-keys").await;
    assert!(
        page.body.contains("lin@customer.example · member"),
        "{}",
        page.body
    );
    // The platform's id names one person everywhere: provisioning a member by it finds the
    // person the portal made.
    let added = app
        .post(
            "/v1/organizations/ext:cust-1/members",
            &admin,
            json!({"email": "other-address@customer.example", "external_id": "p-42", "role": "member"}),
        )
        .await;
    assert_eq!(
        added.status.as_u16() / 100,
        4,
        "already a member: {}",
        added.body
    );
    let events = app
        .call_for(Method::GET, "/v1/audit-events", &admin, "ext:cust-1", None)
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.body);
    let events = events.body["data"].as_array().unwrap();
    let created_link = events
        .iter()
        .find(|e| e["action"] == "portal_link.created")
        .expect("the link is audited");
    assert_eq!(created_link["actor"]["type"], "credential");
    let signed_in = events
        .iter()
        .find(|e| e["action"] == "user.logged_in")
        .expect("the sign-in is audited");
    assert_eq!(signed_in["actor"]["email"], "lin@customer.example");
}

#[tokio::test]
async fn a_link_never_leaves_an_organization_without_an_owner() {
    let app = TestApp::spawn_with(settings(&[])).await;
    let every_organization_scope = [
        "organizations:write",
        "organizations:act",
        "instances:read",
        "instances:write",
        "projects:read",
        "projects:write",
        "api_keys:read",
        "api_keys:write",
        "tokens:read",
        "tokens:write",
        "members:read",
        "members:write",
        "audit:read",
        "keys:verify",
        "organization:write",
        "webhooks:read",
        "webhooks:write",
        "portal:write",
    ];
    let (_, admin) = app.admin_key(&every_organization_scope).await;
    let created = app
        .post(
            "/v1/organizations",
            &admin,
            json!({"name": "Solo", "external_id": "solo",
                   "owner": {"email": "boss@solo.example", "external_id": "boss"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let lowered = app
        .call_for(
            Method::POST,
            "/v1/portal-sessions",
            &admin,
            "ext:solo",
            Some(link_for("boss", "boss@solo.example", "member")),
        )
        .await;
    assert!(
        lowered.problem(409, "conflict")["detail"]
            .as_str()
            .unwrap()
            .contains("at least one owner")
    );
    // As an owner, the link opens.
    let kept = app
        .call_for(
            Method::POST,
            "/v1/portal-sessions",
            &admin,
            "ext:solo",
            Some(link_for("boss", "boss@solo.example", "owner")),
        )
        .await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.body);
    let members = app
        .call_for(Method::GET, "/v1/members", &admin, "ext:solo", None)
        .await;
    assert_eq!(members.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(members.body["data"][0]["role"], "owner");
}

#[tokio::test]
async fn portal_pages_alone_are_framed_and_their_cookie_is_partitioned() {
    let app = TestApp::spawn_with(settings(&[CONSOLE])).await;
    let acme = app.bootstrap("Acme").await;
    let made = app
        .post(
            "/v1/portal-sessions",
            &acme.key,
            link_for("u-1", "ada@acme.example", "member"),
        )
        .await;
    let mut visitor = Visitor::new(&app);
    let opened = visitor
        .get(&path_of(made.body["url"].as_str().unwrap(), &app))
        .await;
    let cookie = opened.headers["set-cookie"].to_str().unwrap();
    for attribute in ["SameSite=None", "Secure", "Partitioned", "HttpOnly"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let page = visitor.get("/settings/api-keys").await;
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains(&format!("frame-ancestors {CONSOLE};")),
        "{policy}"
    );
    assert!(page.headers.get("x-frame-options").is_none());
    // Every other page stays unframeable: outside the portal's pages, and with a made-up
    // portal cookie.
    let projects = visitor.get("/settings/projects").await;
    let policy = projects.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let forged = app
        .client
        .get(app.url("/login"))
        .header("cookie", "keyward_portal=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .await
        .unwrap();
    let policy = forged.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let login = Visitor::new(&app).get("/login").await;
    let policy = login.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(login.headers["x-frame-options"], "DENY");
    // A form without the session's CSRF token is refused inside the portal too.
    let forged = visitor
        .post(
            "/settings/api-keys",
            &[("name", "forged"), ("expires_in", "never")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

/// Eight links for one new external id at once, then eight redemptions of one link at
/// once, spread over `nodes`: one person, one session.
async fn race(nodes: &[&TestApp], key: &str) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = nodes[i % nodes.len()];
        let request = node
            .client
            .post(node.url("/v1/portal-sessions"))
            .bearer_auth(key)
            .json(&link_for("u-new", "new@acme.example", "member"));
        tasks.push(tokio::spawn(async move {
            crate::helpers::read(request.send().await.unwrap()).await
        }));
    }
    let mut people = std::collections::HashSet::new();
    let mut urls = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        people.insert(answer.body["user_id"].as_str().unwrap().to_owned());
        urls.push(answer.body["url"].as_str().unwrap().to_owned());
    }
    assert_eq!(people.len(), 1, "one person for one external id");

    let path = path_of(&urls[0], nodes[0]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let request = client.get(nodes[i % nodes.len()].url(&path));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let opened = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::GONE).count();
    assert_eq!((opened, refused), (1, 7), "{statuses:?}");
}

#[tokio::test]
async fn concurrent_links_make_one_person_and_a_link_opens_once_on_sqlite() {
    let app = TestApp::spawn_with(settings(&[])).await;
    let acme = app.bootstrap("Acme").await;
    race(&[&app], &acme.key).await;
}

#[tokio::test]
async fn concurrent_links_make_one_person_and_a_link_opens_once_on_two_postgres_nodes() {
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let one = TestApp::spawn_on_with(&url, settings(&[])).await;
    let two = TestApp::spawn_on_with(&url, settings(&[])).await;
    let acme = one.bootstrap("Acme").await;
    race(&[&one, &two], &acme.key).await;
    one.store.close().await;
    two.store.close().await;
}

#[tokio::test]
async fn a_portal_link_someone_sends_never_locks_a_person_out_of_their_own_dashboard() {
    let app = TestApp::spawn_with(settings(&[])).await;
    let stranger = app.bootstrap("Stranger").await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Ada's").await;
    let made = app
        .post(
            "/v1/portal-sessions",
            &stranger.key,
            link_for("bait", "bait@stranger.example", "member"),
        )
        .await;
    let opened = ada
        .get(&path_of(made.body["url"].as_str().unwrap(), &app))
        .await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER);
    // The portal's own pages show the portal; the rest is Ada's own dashboard.
    let projects = ada.get("/settings/projects").await;
    assert_eq!(projects.status, StatusCode::OK);
    assert!(
        projects.body.contains("ada@example.com · owner"),
        "{}",
        projects.body
    );
    // Log-out ends both.
    let csrf = projects.csrf_token();
    let out = ada.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(out.location(), "/login");
    let cleared: Vec<&str> = out
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert!(
        cleared.iter().any(|c| c.starts_with("keyward_portal=;")),
        "{cleared:?}"
    );
    assert_eq!(
        ada.get("/settings/api-keys").await.status,
        StatusCode::SEE_OTHER,
        "signed out"
    );
}

#[tokio::test]
async fn a_portal_link_is_never_kept_for_an_idempotent_retry() {
    let app = TestApp::spawn_with(settings(&[])).await;
    let acme = app.bootstrap("Acme").await;
    let send = || {
        app.client
            .post(app.url("/v1/portal-sessions"))
            .bearer_auth(&acme.key)
            .header("idempotency-key", "portal-1")
            .json(&link_for("u-1", "ada@acme.example", "member"))
            .send()
    };
    let first = crate::helpers::read(send().await.unwrap()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = crate::helpers::read(send().await.unwrap()).await;
    again.problem(409, "secret_already_shown");
    let url = first.body["url"].as_str().unwrap();
    let code = url.rsplit('/').next().unwrap();
    let database = std::fs::read(app.dir.path().join("keyward.db")).unwrap();
    assert!(
        !database.windows(code.len()).any(|w| w == code.as_bytes()),
        "the code is not stored"
    );
}

#[tokio::test]
async fn revoking_the_key_ends_its_portal_sessions_and_links() {
    let app = TestApp::spawn_with(settings(&[])).await;
    let acme = app.bootstrap("Acme").await;
    let (key_id, key) = app
        .create_key(
            &acme.key,
            "portal maker",
            &[
                "portal:write",
                "instances:read",
                "instances:write",
                "projects:read",
                "api_keys:read",
                "tokens:read",
            ],
        )
        .await;
    let opened_link = app
        .post(
            "/v1/portal-sessions",
            &key,
            link_for("u-1", "ada@acme.example", "member"),
        )
        .await;
    assert_eq!(
        opened_link.status,
        StatusCode::CREATED,
        "{}",
        opened_link.body
    );
    let waiting_link = app
        .post(
            "/v1/portal-sessions",
            &key,
            link_for("u-1", "ada@acme.example", "member"),
        )
        .await;
    let mut visitor = Visitor::new(&app);
    visitor
        .get(&path_of(opened_link.body["url"].as_str().unwrap(), &app))
        .await;
    assert_eq!(
        visitor.get("/settings/api-keys").await.status,
        StatusCode::OK
    );

    let revoked = app
        .delete(&format!("/v1/api-keys/{key_id}"), &acme.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let ended = visitor.get("/settings/api-keys").await;
    assert_eq!(ended.status, StatusCode::FORBIDDEN);
    assert!(ended.body.contains("This session has ended"));
    let late = Visitor::new(&app)
        .get(&path_of(waiting_link.body["url"].as_str().unwrap(), &app))
        .await;
    assert_eq!(late.status, StatusCode::GONE);
}
