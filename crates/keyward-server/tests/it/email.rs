//! Email through a real SMTP server (Python's aiosmtpd, pinned by `.ci/run`, writing what it
//! receives to a maildir): password resets, and every message arriving once after the server
//! was away.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_server::Config;
use keyward_server::email::{Mailer, Security, SmtpSettings};
use reqwest::StatusCode;

use crate::dashboard::{PASSWORD, Visitor};
use crate::helpers::TestApp;

/// aiosmtpd on its own port, keeping every message in a maildir.
pub(crate) struct SmtpServer {
    child: Option<Child>,
    pub(crate) port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts it, or says why it cannot (and fails instead when `KEYWARD_REQUIRE_ALL=1`).
    pub(crate) async fn start() -> Option<Self> {
        let installed = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            let message = "email tests skipped: needs python3 -m pip install aiosmtpd==1.4.6";
            crate::helpers::unavailable(message);
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            maildir: tempfile::tempdir().unwrap(),
        };
        server.up().await;
        Some(server)
    }

    /// Starts it (again) on its port.
    pub(crate) async fn up(&mut self) {
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it: connections are refused until `up`.
    pub(crate) fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn mailer(&self) -> Arc<Mailer> {
        Arc::new(
            Mailer::new(SmtpSettings {
                host: "127.0.0.1".into(),
                port: self.port,
                security: Security::None,
                username: None,
                password: None,
                from: "keys@keyward.example".into(),
            })
            .unwrap(),
        )
    }

    /// Every message received, raw, with quoted-printable soft line breaks joined (in no
    /// particular order: maildir file names do not keep it).
    pub(crate) fn messages(&self) -> Vec<String> {
        let new: PathBuf = self.maildir.path().join("mail/new");
        let mut files: Vec<_> = std::fs::read_dir(&new)
            .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|file| {
                std::fs::read_to_string(file)
                    .unwrap()
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=")
            })
            .collect()
    }

    pub(crate) fn messages_to(&self, address: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.contains(&format!("To: {address}")))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.down();
    }
}

/// A server sending through `smtp`, which the test tells when to send (`deliver_due`).
pub(crate) fn config_with(smtp: &SmtpServer) -> Config {
    Config {
        smtp: Some(smtp.mailer()),
        email_poll_interval: Duration::from_secs(3_600),
        email_retry_delays: vec![Duration::ZERO; 5],
        ..Config::default()
    }
}

/// The link in a message that starts with `prefix` (a path).
pub(crate) fn link(message: &str, prefix: &str) -> String {
    let start = message.find(prefix).expect("a link");
    message[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

/// Asks for a reset link for `email` through the form, as a person would.
async fn ask_for_reset(visitor: &mut Visitor<'_>, email: &str) -> crate::dashboard::Page {
    let csrf = visitor.get("/password/forgot").await.csrf_token();
    visitor
        .post(
            "/password/forgot",
            &[("csrf_token", &csrf), ("email", email)],
        )
        .await
}

#[tokio::test]
async fn a_forgotten_password_is_reset_by_email_once_and_ends_every_session() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = TestApp::spawn_with(config_with(&smtp)).await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let mut other_session = Visitor::new(&app);
    other_session.log_in("ada@example.com", PASSWORD).await;
    assert_eq!(
        other_session.get("/settings/api-keys").await.status,
        StatusCode::OK
    );

    let mut forgetful = Visitor::new(&app);
    let login = forgetful.get("/login").await;
    assert!(login.body.contains("href=\"/password/forgot\""));
    let asked = ask_for_reset(&mut forgetful, "ada@example.com").await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(
        asked
            .body
            .contains("If an account has the address ada@example.com")
    );
    // An address without an account: the same answer, and nothing is sent.
    let unknown = ask_for_reset(&mut forgetful, "nobody@example.com").await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(
        unknown
            .body
            .replace("nobody@example.com", "ada@example.com"),
        asked.body,
        "the same page"
    );
    assert_eq!(
        keyward_server::email::deliver_due(&app.state)
            .await
            .unwrap(),
        1
    );
    let sent = smtp.messages_to("ada@example.com");
    assert_eq!(sent.len(), 1);
    assert!(smtp.messages_to("nobody@example.com").is_empty());
    assert!(
        sent[0].contains("Subject: Reset your Keyward password"),
        "{}",
        sent[0]
    );
    assert!(sent[0].contains("Message-ID: <"), "{}", sent[0]);

    // The link's token is in no row of the database.
    let reset_url = link(&sent[0], &app.url("/password/reset/"));
    let token = reset_url.rsplit('/').next().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    let database = std::fs::read(app.dir.path().join("keyward.db")).unwrap();
    assert!(
        !database.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is not stored"
    );

    let path = reset_url.strip_prefix(&app.url("")).unwrap().to_owned();
    let form = forgetful.get(&path).await;
    assert_eq!(form.status, StatusCode::OK);
    let weak = forgetful
        .post(
            &path,
            &[("csrf_token", &form.csrf_token()), ("password", "short")],
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let new_password = "a brand new long passphrase";
    let done = forgetful
        .post(
            &path,
            &[
                ("csrf_token", &form.csrf_token()),
                ("password", new_password),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/login?notice=password_changed");

    // Every session ended; the old password is refused, the new one works; the link is spent.
    assert_eq!(
        other_session.get("/settings/api-keys").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        ada.get("/settings/api-keys").await.status,
        StatusCode::SEE_OTHER
    );
    let old = Visitor::new(&app).log_in("ada@example.com", PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = Visitor::new(&app)
        .log_in("ada@example.com", new_password)
        .await;
    assert_eq!(new.location(), "/settings/api-keys");
    assert_eq!(forgetful.get(&path).await.status, StatusCode::GONE);

    // Per account: three links an hour (one is spent above), then the same page and nothing
    // more.
    for _ in 0..4 {
        let page = ask_for_reset(&mut forgetful, "ada@example.com").await;
        assert_eq!(page.status, StatusCode::OK);
    }
    assert_eq!(
        keyward_server::email::deliver_due(&app.state)
            .await
            .unwrap(),
        2
    );
    assert_eq!(smtp.messages_to("ada@example.com").len(), 3);
}

#[tokio::test]
async fn people_without_a_password_get_no_reset_link() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = TestApp::spawn_with(config_with(&smtp)).await;
    let (_, admin) = app.admin_key(&["organizations:write"]).await;
    let created = app
        .post(
            "/v1/organizations",
            &admin,
            serde_json::json!({"name": "Acme", "owner": {"email": "lin@example.com"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let page = ask_for_reset(&mut Visitor::new(&app), "lin@example.com").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("If an account has the address"));
    assert_eq!(
        keyward_server::email::deliver_due(&app.state)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_reset_link_expires_after_an_hour() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let (app, clock) = TestApp::spawn_with_manual_clock(config_with(&smtp)).await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    ask_for_reset(&mut ada, "ada@example.com").await;
    keyward_server::email::deliver_due(&app.state)
        .await
        .unwrap();
    let url = link(&smtp.messages()[0], &app.url("/password/reset/"));
    let path = url.strip_prefix(&app.url("")).unwrap().to_owned();
    clock.advance(Duration::from_secs(3_601));
    assert_eq!(ada.get(&path).await.status, StatusCode::GONE);
}

#[tokio::test]
async fn messages_wait_for_the_smtp_server_and_arrive_once() {
    let Some(mut smtp) = SmtpServer::start().await else {
        return;
    };
    let app = TestApp::spawn_with(config_with(&smtp)).await;
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        let mut visitor = Visitor::new(&app);
        visitor.sign_up(email, "Org").await;
        ask_for_reset(&mut visitor, email).await;
    }
    smtp.down();
    for _ in 0..3 {
        assert_eq!(
            keyward_server::email::deliver_due(&app.state)
                .await
                .unwrap(),
            0
        );
    }
    smtp.up().await;
    assert_eq!(
        keyward_server::email::deliver_due(&app.state)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        keyward_server::email::deliver_due(&app.state)
            .await
            .unwrap(),
        0
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3, "each once");
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        assert_eq!(smtp.messages_to(email).len(), 1, "{email}");
    }
}

#[tokio::test]
async fn a_leaked_key_is_told_to_its_maker_by_email() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = TestApp::spawn_with(config_with(&smtp)).await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let created = ada.create_key("Deploy", &["instances:read"]).await;
    let key = crate::dashboard::shown_key(&created);
    let reported = app
        .client
        .post(app.url("/v1/credentials/revoke"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "credentials": [key] }).to_string())
        .send()
        .await
        .unwrap();
    assert!(reported.status().is_success());
    assert_eq!(
        keyward_server::email::deliver_due(&app.state)
            .await
            .unwrap(),
        1
    );
    let sent = smtp.messages_to("ada@example.com");
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].contains("was found exposed") && sent[0].contains("Deploy"),
        "{}",
        sent[0]
    );
    assert!(sent[0].contains("It was revoked at once"), "{}", sent[0]);
    assert!(!sent[0].contains(&key), "never the key itself");
}

/// A key of `org` expiring in ten days, made with its key (so its owners hear of it).
async fn key_expiring_in_ten_days(app: &TestApp, org_key: &str, now: keyward_core::Timestamp) {
    let answer = app
        .post(
            "/v1/api-keys",
            org_key,
            serde_json::json!({
                "name": "Nightly export",
                "scopes": ["instances:read"],
                "expires_at": now.plus_seconds(10 * 86_400).to_string(),
            }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
}

#[tokio::test]
async fn expiry_warnings_go_once_each_from_two_postgres_nodes() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let clock = keyward_store::ManualClock::starting_now();
    let config = || Config {
        clock: clock.clock(),
        ..config_with(&smtp)
    };
    let one = TestApp::spawn_on_with(&url, config()).await;
    let two = TestApp::spawn_on_with(&url, config()).await;
    let acme = one.bootstrap("Acme").await;
    key_expiring_in_ten_days(&one, &acme.key, clock.clock().now()).await;

    let both = || async {
        let (a, b) = tokio::join!(
            keyward_server::webhooks::scan_expiring(&one.state),
            keyward_server::webhooks::scan_expiring(&two.state)
        );
        a.unwrap();
        b.unwrap();
        let (a, b) = tokio::join!(
            keyward_server::email::deliver_due(&one.state),
            keyward_server::email::deliver_due(&two.state)
        );
        a.unwrap() + b.unwrap()
    };
    assert_eq!(both().await, 0, "ten days left: nothing yet");
    clock.advance(Duration::from_secs(3 * 86_400 + 60));
    assert_eq!(both().await, 1, "within a week");
    assert_eq!(both().await, 0, "once");
    clock.advance(Duration::from_secs(6 * 86_400));
    assert_eq!(both().await, 1, "within a day");
    assert_eq!(both().await, 0, "once");
    let sent = smtp.messages_to("owner@acme.example");
    assert_eq!(sent.len(), 2, "{sent:?}");
    // (The maildir's file names do not keep the order the messages came in.)
    let count = |text: &str| sent.iter().filter(|m| m.contains(text)).count();
    assert_eq!(
        (count("within a week"), count("within a day")),
        (1, 1),
        "{sent:?}"
    );
    assert!(sent.iter().all(|m| m.contains("Nightly export")));
    one.store.close().await;
    two.store.close().await;
}
