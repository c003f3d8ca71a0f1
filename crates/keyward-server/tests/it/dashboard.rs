//! The dashboard over plain HTTP: CSRF, cookies, the log-in throttle, roles and the other
//! rules a browser test would be slow to cover one by one.

use std::collections::HashMap;

use keyward_core::{Email, OrganizationId, Timestamp};
use keyward_server::Config;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::helpers::TestApp;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A person's browser, minus the rendering: cookies kept by hand, redirects not followed.
pub(crate) struct Visitor<'a> {
    app: &'a TestApp,
    pub(crate) http: reqwest::Client,
    cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The id a create form was rendered with.
    pub(crate) fn request_id(&self) -> String {
        let marker = "name=\"request_id\" value=\"";
        let start = self.body.find(marker).expect("a create form") + marker.len();
        self.body[start..start + 30].to_owned()
    }

    pub(crate) fn csrf_token(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        self.body[start..start + 32].to_owned()
    }
}

impl<'a> Visitor<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            app,
            http,
            cookies: HashMap::new(),
        }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn keep(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        Page {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    pub(crate) async fn sign_up(&mut self, email: &str, organization: &str) -> Page {
        let csrf = self.get("/signup").await.csrf_token();
        self.post(
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("email", email),
                ("password", PASSWORD),
                ("organization", organization),
            ],
        )
        .await
    }

    pub(crate) async fn log_in(&mut self, email: &str, password: &str) -> Page {
        let csrf = self.get("/login").await.csrf_token();
        self.post(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Creates an API key through the form and returns the page that shows it.
    pub(crate) async fn create_key(&mut self, name: &str, scopes: &[&str]) -> Page {
        let form = self.get("/settings/api-keys/new").await;
        let csrf = form.csrf_token();
        let request_id = form.request_id();
        let mut fields = vec![
            ("csrf_token", csrf.as_str()),
            ("request_id", request_id.as_str()),
            ("name", name),
            ("expires_in", "never"),
        ];
        fields.extend(scopes.iter().map(|s| ("scopes", *s)));
        self.post("/settings/api-keys", &fields).await
    }
}

/// The owner (`owner`, signed in) invites `email` (signed up, signed in as `member`) to their
/// organization called `organization` with `role`; the member accepts on their invitations
/// page (the installation sends no email) and works in it from then on. Returns the member's
/// key list page there.
pub(crate) async fn add_and_switch(
    owner: &mut Visitor<'_>,
    member: &mut Visitor<'_>,
    email: &str,
    role: &str,
    organization: &str,
) -> Page {
    let csrf = owner.get("/settings/members").await.csrf_token();
    let invited = owner
        .post(
            "/settings/members",
            &[("csrf_token", &csrf), ("email", email), ("role", role)],
        )
        .await;
    assert_eq!(invited.location(), "/settings/members?notice=invited");
    accept_invitation(member, organization).await;
    let page = member.get("/settings/api-keys").await;
    assert!(
        page.body.contains(&format!("selected>{organization}<")),
        "working in {organization}: {}",
        page.body
    );
    page
}

/// The signed-in `person` accepts their open invitation to `organization` on their
/// invitations page.
pub(crate) async fn accept_invitation(person: &mut Visitor<'_>, organization: &str) {
    let list = person.get("/invitations").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let row = list
        .body
        .find(&format!("<th scope=\"row\">{organization}</th>"))
        .expect("the invitation is listed");
    let marker = "<tr id=\"";
    let start = list.body[..row].rfind(marker).expect("its row") + marker.len();
    let id = list.body[start..start + 30].to_owned();
    let accepted = person
        .post(
            &format!("/invitations/{id}/accept"),
            &[("csrf_token", &list.csrf_token())],
        )
        .await;
    assert_eq!(
        accepted.location(),
        "/settings/api-keys",
        "{}",
        accepted.body
    );
}

pub(crate) fn shown_key(page: &Page) -> String {
    let marker = "<code id=\"new-key\">";
    let start = page.body.find(marker).expect("the key is shown") + marker.len();
    let end = page.body[start..].find('<').unwrap() + start;
    page.body[start..end].to_owned()
}

#[tokio::test]
async fn sign_up_sets_a_safe_session_cookie_and_pages_are_not_cached() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    let signed_up = ada.sign_up("ada@example.com", "Acme").await;
    assert_eq!(signed_up.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_up.location(), "/settings/api-keys");
    let cookie = signed_up
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("keyward_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    let page = ada.get("/settings/api-keys").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(page.body.contains("ada@example.com"));
    assert!(!page.body.contains("https://"), "no external assets");

    // The database holds the session's digest, never the cookie value.
    let session = ada.cookies["keyward_session"].clone();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        !bytes
            .windows(session.len())
            .any(|w| w == session.as_bytes())
    );

    assert_eq!(ada.get("/").await.location(), "/settings/api-keys");
    let csrf = page.csrf_token();
    let out = ada.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(out.location(), "/login");
    assert_eq!(ada.get("/settings/api-keys").await.location(), "/login");
    assert_eq!(ada.get("/").await.location(), "/login");
}

#[tokio::test]
async fn https_public_urls_make_cookies_secure() {
    let app = TestApp::spawn_with(Config::default()).await;
    let secure = TestApp::spawn_with_exact(Config {
        public_url: "https://keys.example.com".into(),
        ..Config::default()
    })
    .await;
    let mut visitor = Visitor::new(&secure);
    let page = visitor.get("/login").await;
    let cookie = page.headers[SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with("keyward_csrf=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    let mut plain = Visitor::new(&app);
    let page = plain.get("/login").await;
    assert!(
        !page.headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let form = ada.get("/settings/api-keys/new").await;
    let refused = ada
        .post(
            "/settings/api-keys",
            &[
                ("csrf_token", "0123456789abcdefghijABCDEFGHIJ01"),
                ("name", "forged"),
                ("scopes", "instances:read"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("not sent from this page"));
    let missing = ada.post("/settings/projects", &[("name", "forged")]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let list = ada.get("/settings/api-keys").await;
    assert!(!list.body.contains("forged"), "nothing was created");
    assert!(form.status.is_success());

    // Before signing in: the token must match the visitor's own CSRF cookie.
    let mut mallory = Visitor::new(&app);
    let no_cookie = mallory
        .post(
            "/login",
            &[
                ("csrf_token", "x"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    let mut other = Visitor::new(&app);
    let theirs = other.get("/signup").await.csrf_token();
    mallory.get("/signup").await;
    let crossed = mallory
        .post(
            "/signup",
            &[
                ("csrf_token", &theirs),
                ("email", "mallory@example.com"),
                ("password", PASSWORD),
                ("organization", "Evil"),
            ],
        )
        .await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_up_explains_every_invalid_field() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::new(&app);
    let csrf = visitor.get("/signup").await.csrf_token();
    let page = visitor
        .post(
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("email", "not-an-email"),
                ("password", "short"),
                ("organization", " "),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for id in ["email-error", "password-error", "organization-error"] {
        assert!(page.body.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(page.body.contains("at least 10 characters"));
    assert!(
        page.body.contains("value=\"not-an-email\""),
        "what was typed stays"
    );

    visitor.sign_up("ada@example.com", "Acme").await;
    let mut again = Visitor::new(&app);
    let taken = again.sign_up("ADA@example.com", "Other").await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.body.contains("already exists"));
    // Names need not be unique: two customers may both be "Acme".
    let same_name = again.sign_up("bob@example.com", "acme").await;
    assert!(!same_name.body.contains("id=\"organization-error\""));
    assert_eq!(
        same_name.status,
        StatusCode::SEE_OTHER,
        "{}",
        same_name.body
    );
}

#[tokio::test]
async fn five_failed_log_ins_make_the_next_ones_wait_a_minute() {
    let app = TestApp::spawn().await;
    Visitor::new(&app).sign_up("ada@example.com", "Acme").await;
    let mut attacker = Visitor::new(&app);
    for _ in 0..5 {
        let wrong = attacker.log_in("ada@example.com", "wrong password!").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.body.contains("not right"));
    }
    let locked = attacker.log_in("ada@example.com", PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.body.contains("Wait a minute"), "{}", locked.body);
    // Another email from the same address is not affected.
    Visitor::new(&app)
        .sign_up("bob@example.com", "Globex")
        .await;
    let bob = Visitor::new(&app).log_in("bob@example.com", PASSWORD).await;
    assert_eq!(bob.status, StatusCode::SEE_OTHER);

    // A minute after the last failure, the right password works and clears the count.
    let email = Email::parse("ada@example.com").unwrap();
    let long_ago = Timestamp::now().plus_seconds(-61);
    app.store
        .clear_login_failures(&email, "127.0.0.1")
        .await
        .unwrap();
    for _ in 0..5 {
        app.store
            .begin_login_attempt(&email, "127.0.0.1", long_ago, 5, 60)
            .await
            .unwrap();
    }
    let ok = attacker.log_in("ada@example.com", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(
        app.store
            .login_failures(&email, "127.0.0.1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_resubmitted_create_form_makes_one_key_and_never_shows_it_again() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let form = ada.get("/settings/api-keys/new").await;
    let csrf = form.csrf_token();
    let request_id = form.request_id();
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("request_id", request_id.as_str()),
        ("name", "Deploy"),
        ("expires_in", "30"),
        ("scopes", "instances:read"),
    ];
    let created = ada.post("/settings/api-keys", &fields).await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.headers["cache-control"], "no-store");
    let key = shown_key(&created);
    let again = ada.post("/settings/api-keys", &fields).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(!again.body.contains(&key));
    let list = ada.get("/settings/api-keys").await;
    assert_eq!(list.body.matches(">Deploy<").count(), 1);
    assert!(!list.body.contains(&key));
    assert!(list.body.contains("Never"), "never used yet");
    // One key, one event, by Ada.
    let organization = OrganizationId::parse(&acme_id(&mut ada).await).unwrap();
    let created: Vec<_> = app
        .audit_trail(organization)
        .await
        .into_iter()
        .filter(|(action, _)| action == "api_key.created")
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
}

#[tokio::test]
async fn the_create_form_explains_errors_next_to_fields() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let form = ada.get("/settings/api-keys/new").await;
    let csrf = form.csrf_token();
    let page = ada
        .post(
            "/settings/api-keys",
            &[
                ("csrf_token", &csrf),
                ("request_id", "key_00000000000000000000000000"),
                ("name", ""),
                ("expires_in", "custom"),
                ("expires_on", "2001-01-01"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for id in ["name-error", "expires-error", "scopes-error"] {
        assert!(page.body.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(
        page.body.contains("too old"),
        "an id from no recent form is refused"
    );
}

#[tokio::test]
async fn roles_limit_what_people_grant_see_and_revoke() {
    let app = TestApp::spawn().await;
    let mut owner = Visitor::new(&app);
    owner.sign_up("ada@example.com", "Acme").await;
    let owners_key = owner.create_key("Owner key", &["instances:read"]).await;
    assert_eq!(owners_key.status, StatusCode::OK);
    let mut member = Visitor::new(&app);
    member.sign_up("bob@example.com", "Bob's own").await;

    // The owner adds Bob as a member of Acme, and Bob switches to it.
    let page = add_and_switch(&mut owner, &mut member, "bob@example.com", "member", "Acme").await;
    let csrf = owner.get("/settings/members").await.csrf_token();
    // An address without an account is invited the same way: the answer tells nothing.
    let unknown = owner
        .post(
            "/settings/members",
            &[
                ("csrf_token", &csrf),
                ("email", "nobody@example.com"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(unknown.location(), "/settings/members?notice=invited");
    let members = owner.get("/settings/members").await;
    assert!(
        members
            .body
            .contains("<th scope=\"row\">nobody@example.com</th>")
    );

    let list = member.get("/settings/api-keys").await;
    assert!(list.body.contains(">Owner key<"));
    assert!(
        !list.body.contains("aria-label=\"Revoke Owner"),
        "members cannot revoke others' keys"
    );

    // Members grant only their cap, see no Members page, and revoke their own keys.
    let form = member.get("/settings/api-keys/new").await;
    assert!(form.body.contains("value=\"instances:read\""));
    assert!(!form.body.contains("value=\"api_keys:write\""));
    let escalation = member.create_key("Sneaky", &["api_keys:write"]).await;
    assert_eq!(escalation.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(escalation.body.contains("cannot grant api_keys:write"));
    assert_eq!(
        member.get("/settings/members").await.status,
        StatusCode::FORBIDDEN
    );
    let refused = member
        .post(
            "/settings/projects",
            &[
                ("csrf_token", &page.csrf_token()),
                ("name", "Bob's project"),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .body
            .contains("Your role (member) cannot do this: it needs the projects:write permission."),
        "{}",
        refused.body
    );
    let own = member.create_key("Bob key", &["instances:read"]).await;
    assert_eq!(own.status, StatusCode::OK);
    let list = member.get("/settings/api-keys").await;
    assert!(list.body.contains("aria-label=\"Revoke Bob"));

    // The last owner can be neither demoted nor removed.
    let members = owner.get("/settings/members").await;
    let ada_id = {
        let marker = "<tr id=\"";
        let start = members.body.find(marker).unwrap() + marker.len();
        members.body[start..start + 30].to_owned()
    };
    let demoted = owner
        .post(
            &format!("/settings/members/{ada_id}/role"),
            &[("csrf_token", &csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(demoted.location(), "/settings/members?notice=last-owner");
    let removed = owner
        .post(
            &format!("/settings/members/{ada_id}/remove"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(removed.location(), "/settings/members?notice=last-owner");

    // The audit log has the one membership change (the refusals left nothing), by Bob who
    // accepted, and Ada's two invitations.
    let organization = OrganizationId::parse(&acme_id(&mut owner).await).unwrap();
    let events = |action: &str| {
        let filter = keyward_store::AuditFilter {
            action: Some(action.into()),
            ..Default::default()
        };
        let store = app.store.clone();
        async move {
            store
                .list_audit_events(organization, &filter, keyward_store::Page::first(10))
                .await
                .unwrap()
                .items
        }
    };
    let added = events("member.added").await;
    assert_eq!(added.len(), 1);
    assert!(
        matches!(&added[0].actor, keyward_store::Actor::User { email, .. } if email == "bob@example.com")
    );
    let invited = events("invitation.created").await;
    assert_eq!(invited.len(), 2);
    assert!(invited.iter().all(
        |e| matches!(&e.actor, keyward_store::Actor::User { email, .. } if email == "ada@example.com")
    ));
    let changes = app
        .store
        .list_audit_events(
            organization,
            &keyward_store::AuditFilter {
                action: Some("member.role_changed".into()),
                ..Default::default()
            },
            keyward_store::Page::first(10),
        )
        .await
        .unwrap();
    assert!(changes.items.is_empty());
}

/// The organization the visitor works in, from the switcher's selected option.
async fn acme_id(visitor: &mut Visitor<'_>) -> String {
    let page = visitor.get("/settings/api-keys").await;
    let marker = "<option value=\"";
    page.body
        .match_indices(marker)
        .map(|(i, _)| &page.body[i + marker.len()..i + marker.len() + 30])
        .find(|id| page.body.contains(&format!("{id}\" selected")))
        .expect("the selected organization")
        .to_owned()
}

#[tokio::test]
async fn deleting_a_project_in_the_dashboard_revokes_its_tokens() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let projects = ada.get("/settings/projects").await;
    let csrf = projects.csrf_token();
    let created = ada
        .post(
            "/settings/projects",
            &[("csrf_token", &csrf), ("name", "Web"), ("description", "")],
        )
        .await;
    assert_eq!(created.location(), "/settings/projects");
    let projects = ada.get("/settings/projects").await;
    let marker = "<tr id=\"";
    let start = projects.body.find(marker).unwrap() + marker.len();
    let project = projects.body[start..start + 30].to_owned();

    // A token for the project, through its own form.
    let tokens = format!("/settings/projects/{project}/tokens");
    let form = ada.get(&format!("{tokens}/new")).await;
    assert!(
        !form.body.contains("value=\"api_keys:read\""),
        "project-level scopes only"
    );
    let request_id = form.request_id();
    let created = ada
        .post(
            &tokens,
            &[
                ("csrf_token", &csrf),
                ("request_id", &request_id),
                ("name", "deploy"),
                ("expires_in", "never"),
                ("scopes", "projects:read"),
            ],
        )
        .await;
    let token = shown_key(&created);
    assert!(token.starts_with("kwp_"));
    assert_eq!(app.get("/v1/projects", &token).await.status, StatusCode::OK);

    // An instance blocks deletion; deleting it (through its confirmation) unblocks it.
    let instances = format!("/settings/projects/{project}/instances");
    ada.post(
        &instances,
        &[
            ("csrf_token", &csrf),
            ("name", "web-1"),
            ("region", "eu-west-1"),
            ("status", "running"),
        ],
    )
    .await;
    let page = ada.get(&instances).await;
    assert!(page.body.contains(">web-1<"));
    let confirm = ada
        .get(&format!("/settings/projects/{project}/delete"))
        .await;
    assert!(
        confirm
            .body
            .contains("revokes its 1 active project token(s) at once"),
        "{}",
        confirm.body
    );
    let blocked = ada
        .post(
            &format!("/settings/projects/{project}/delete"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(blocked.status, StatusCode::CONFLICT);
    let marker = "/instances/";
    let start = page.body.find(marker).unwrap() + marker.len();
    let instance = page.body[start..start + 30].to_owned();
    let deleted = ada
        .post(
            &format!("{instances}/{instance}/delete"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(deleted.location(), instances);
    let gone = ada
        .post(
            &format!("/settings/projects/{project}/delete"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(gone.location(), "/settings/projects");
    app.get("/v1/projects", &token)
        .await
        .problem(401, "invalid_token");

    // One event per change; the deletion names the token it revoked with the project.
    let organization = OrganizationId::parse(&acme_id(&mut ada).await).unwrap();
    let trail = app.audit_trail(organization).await;
    let actions: Vec<&str> = trail[2..].iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "project.created",
            "project_token.created",
            "instance.created",
            "instance.deleted",
            "project.deleted"
        ]
    );
    let deletion = app
        .store
        .list_audit_events(
            organization,
            &keyward_store::AuditFilter {
                action: Some("project.deleted".into()),
                ..Default::default()
            },
            keyward_store::Page::first(1),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    let changes: serde_json::Value = serde_json::from_str(&deletion.changes).unwrap();
    assert_eq!(
        changes["revoked_tokens"]["after"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn parallel_log_ins_share_the_same_limit() {
    let app = TestApp::spawn().await;
    Visitor::new(&app).sign_up("ada@example.com", "Acme").await;
    let mut attacker = Visitor::new(&app);
    let csrf = attacker.get("/login").await.csrf_token();
    let cookie = attacker.cookie_header();
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf_token", csrf.as_str()),
            ("email", "ada@example.com"),
            ("password", "a wrong password"),
        ])
        .finish();
    let mut tries = Vec::new();
    for _ in 0..12 {
        let request = attacker
            .http
            .post(app.url("/login"))
            .header("cookie", cookie.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        tries.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut checked = 0;
    for attempt in tries {
        let status = attempt.await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
        if status == StatusCode::UNAUTHORIZED {
            checked += 1;
        }
    }
    assert_eq!(checked, 5, "exactly five passwords were checked");
}

#[tokio::test]
async fn a_form_id_tells_nothing_about_other_organizations_credentials() {
    let app = TestApp::spawn().await;
    let other = app.bootstrap("Globex").await;
    let (theirs, _) = app
        .create_key(&other.key, "Their key", &["instances:read"])
        .await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let csrf = ada.get("/settings/api-keys/new").await.csrf_token();
    // A form sent with another organization's key id as its own id is a form like any
    // other: it creates a key, and the other key is untouched.
    let created = ada
        .post(
            "/settings/api-keys",
            &[
                ("csrf_token", csrf.as_str()),
                ("request_id", theirs.as_str()),
                ("name", "Probe"),
                ("expires_in", "30"),
                ("scopes", "instances:read"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(!created.body.contains(&theirs));
    let listed = app.get("/v1/api-keys", &other.key).await;
    let names: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Their key") && !names.contains(&"Probe"));
}

#[tokio::test]
async fn sign_up_refuses_common_passwords_and_the_email_as_password() {
    let app = TestApp::spawn().await;
    for (email, password, expected) in [
        ("ada@example.com", "1234567890", "most common"),
        ("ada@example.com", "Password123", "most common"),
        (
            "ada.lovelace@example.com",
            "ada.lovelace@example.com",
            "email",
        ),
    ] {
        let mut visitor = Visitor::new(&app);
        let csrf = visitor.get("/signup").await.csrf_token();
        let page = visitor
            .post(
                "/signup",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("email", email),
                    ("password", password),
                    ("organization", "Acme"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{password}");
        assert!(page.body.contains(expected), "{password}: {}", page.body);
    }
    assert_eq!(
        Visitor::new(&app)
            .sign_up("ada@example.com", "Acme")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}
