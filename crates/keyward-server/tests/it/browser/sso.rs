//! Single sign-on through a real OpenID provider (`tests/oidc/provider.mjs`, the npm package
//! oidc-provider, OpenID Certified) in a real Chromium: the first and second sign-in are one
//! person, the organization and role come from the claims and follow them, log-out ends the
//! provider's session too, and a signing key rotated at the provider between two sign-ins
//! works. (`sso.rs` covers every bad token against a provider the test controls.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_server::Config;
use keyward_server::oidc::{Oidc, OidcSettings};
use reqwest::StatusCode;
use serde_json::json;

use super::webdriver::Browser;
use crate::helpers::TestApp;

fn provider_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc"))
}

/// oidc-provider under Node, on its own port, with the accounts of `accounts_file`.
struct OpenIdProvider {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    keyward: String,
}

impl OpenIdProvider {
    /// Starts it, or says why it cannot (and fails instead when `KEYWARD_REQUIRE_ALL=1`).
    async fn start(keyward: &str, key_id: &str) -> Option<Self> {
        let installed = provider_dir().join("node_modules/oidc-provider").is_dir();
        let node = Command::new("node").arg("--version").output().is_ok();
        if !installed || !node {
            let message = "single sign-on browser test skipped: needs node and `npm ci` in \
                           crates/keyward-server/tests/oidc";
            crate::helpers::unavailable(message);
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(dir.path(), port, keyward, key_id).await;
        Some(Self {
            child,
            port,
            dir,
            keyward: keyward.to_owned(),
        })
    }

    // The child is returned to its owner, whose `Drop` kills and waits for it.
    #[allow(clippy::zombie_processes)]
    async fn spawn(dir: &std::path::Path, port: u16, keyward: &str, key_id: &str) -> Child {
        let config = dir.join("provider.json");
        std::fs::write(
            &config,
            json!({
                "port": port,
                "issuer": format!("http://127.0.0.1:{port}"),
                "key_id": key_id,
                "client_id": "keyward",
                "client_secret": "a-client-secret",
                "redirect_uri": format!("{keyward}/login/oidc/callback"),
                "post_logout_redirect_uri": format!("{keyward}/login"),
                "accounts_file": dir.join("accounts.json"),
            })
            .to_string(),
        )
        .unwrap();
        if !dir.join("accounts.json").exists() {
            std::fs::write(dir.join("accounts.json"), "{}").unwrap();
        }
        let log = dir.join("provider.log");
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg(&config)
            .current_dir(provider_dir())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("node starts");
        // Generous: Node starts slowly on a busy two-core machine.
        let deadline = Instant::now() + Duration::from_secs(60);
        let discovery = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
        loop {
            if reqwest::get(&discovery)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return child;
            }
            let said = || std::fs::read_to_string(&log).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the OpenID provider stopped ({status}): {}", said());
            }
            assert!(
                Instant::now() < deadline,
                "the OpenID provider did not start: {}",
                said()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_accounts(&self, accounts: serde_json::Value) {
        std::fs::write(self.dir.path().join("accounts.json"), accounts.to_string()).unwrap();
    }

    /// Stops it and starts it again with a new signing key.
    async fn rotate_key(&mut self, key_id: &str) {
        self.stop();
        self.child = Self::spawn(self.dir.path(), self.port, &self.keyward, key_id).await;
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Signs in at the provider's own log-in page as `login`, and comes back to Keyward.
async fn sign_in(browser: &Browser, app: &TestApp, login: &str) {
    browser.goto(&app.url("/login")).await;
    browser.click("#single-sign-on").await;
    browser.fill("input[name=login]", login).await;
    browser.fill("input[name=password]", "any password").await;
    browser.click("button[type=submit]").await;
}

#[tokio::test]
async fn people_sign_in_with_a_real_openid_provider() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // Keyward's address must be known before the provider registers its redirect URI.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let keyward = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let Some(mut provider) = OpenIdProvider::start(&keyward, "key-1").await else {
        return;
    };
    let settings = OidcSettings {
        name: "Acme ID".into(),
        issuer: provider.issuer(),
        client_id: "keyward".into(),
        client_secret: "a-client-secret".into(),
        organization_claim: Some("org_id".into()),
        role_claim: Some("keyward_role".into()),
        password_login: true,
    };
    let app = TestApp::spawn_listening(
        keyward.trim_start_matches("http://"),
        Config {
            oidc: Some(Arc::new(Oidc::new(settings).unwrap())),
            ..Config::default()
        },
    )
    .await;
    let (_, admin) = app.admin_key(&["organizations:write"]).await;
    let created = app
        .post(
            "/v1/organizations",
            &admin,
            json!({"name": "Acme", "external_id": "acme"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let ada = |role: Option<&str>| {
        let mut claims =
            json!({"email": "ada@acme.example", "email_verified": true, "name": "Ada"});
        if let Some(role) = role {
            claims["org_id"] = json!("acme");
            claims["keyward_role"] = json!(role);
        }
        json!({ "ada": claims })
    };

    // First sign-in: the person is made, in Acme, as an admin.
    provider.set_accounts(ada(Some("admin")));
    sign_in(&browser, &app, "ada").await;
    browser.wait_for_url("/settings/api-keys").await;
    let page = browser.wait_for_text("ada@acme.example · admin").await;
    assert!(page.contains(">Acme<"), "{page}");
    browser.screenshot("sso-signed-in").await;

    // Log-out ends the provider's session too: its log-out page, then back to Keyward.
    browser.click("form[action=\"/logout\"] button").await;
    browser.wait_for_text("Do you want to sign-out").await;
    browser.click("button[name=logout]").await;
    browser.wait_for_url("/login").await;

    // The role changed at the provider: the next sign-in, the same person, a member now.
    provider.set_accounts(ada(Some("member")));
    sign_in(&browser, &app, "ada").await;
    browser.wait_for_text("ada@acme.example · member").await;
    let people = app
        .store
        .find_user_by_email(&keyward_core::Email::parse("ada@acme.example").unwrap())
        .await
        .unwrap()
        .expect("one person");
    assert_eq!(people.external_id.as_ref().map(|e| e.as_str()), Some("ada"));

    // The provider rotates its signing key between two sign-ins: Keyward reads it again.
    browser.click("form[action=\"/logout\"] button").await;
    browser.wait_for_text("Do you want to sign-out").await;
    browser.click("button[name=logout]").await;
    browser.wait_for_url("/login").await;
    provider.rotate_key("key-2").await;
    sign_in(&browser, &app, "ada").await;
    browser.wait_for_text("ada@acme.example · member").await;

    // The claim no longer names Acme: the membership it gave is gone.
    browser.click("form[action=\"/logout\"] button").await;
    browser.wait_for_text("Do you want to sign-out").await;
    browser.click("button[name=logout]").await;
    browser.wait_for_url("/login").await;
    provider.set_accounts(ada(None));
    sign_in(&browser, &app, "ada").await;
    browser
        .wait_for_text("You no longer belong to any organization")
        .await;

    browser.quit().await;
}
