//! The dashboard as a person uses it, in a real headless Chromium: sign up, create a project
//! and an instance, create an API key and a project token, see each once, use them with an
//! HTTP client, revoke them through the confirmation, and see them refused.

mod invitations;
mod portal;
mod sso;
mod usage;
mod webdriver;

use reqwest::StatusCode;

use crate::helpers::TestApp;
use webdriver::Browser;

pub(crate) const EMAIL: &str = "ada@example.com";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// The "Last used" cell of the first row of a credentials table.
const LAST_USED: &str = "tbody tr td:nth-child(5)";

async fn instances_status(app: &TestApp, key: &str) -> (StatusCode, String) {
    let answer = app
        .client
        .get(app.url("/v1/instances"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    (status, answer.text().await.unwrap())
}

/// Creates a credential through the form at `list_url` and returns the secret shown once.
async fn create_credential(
    browser: &Browser,
    app: &TestApp,
    list_url: &str,
    name: &str,
    shot: &str,
) -> String {
    browser.goto(&app.url(list_url)).await;
    browser.click("#create-credential").await;
    browser.screenshot(&format!("{shot}-new")).await;
    browser.fill("#name", name).await;
    browser.click("#scope-instances-read").await;
    browser.click("#submit-credential").await;
    let key = browser.text("#new-key").await;
    let page = browser.wait_for_text("It will not be shown again").await;
    assert!(
        page.contains(&format!("Authorization: Bearer {key}")),
        "a ready curl line"
    );
    browser.screenshot(&format!("{shot}-created")).await;
    key
}

/// Reloading and going back never show the secret again, and create nothing more.
async fn never_shown_again(
    browser: &Browser,
    app: &TestApp,
    list_url: &str,
    key: &str,
    name: &str,
) {
    browser.refresh().await;
    assert!(
        !browser.source().await.contains(key),
        "a reload must not show the key"
    );
    browser.goto(&app.url(list_url)).await;
    browser.back().await;
    assert!(
        !browser.source().await.contains(key),
        "going back must not show the key"
    );
    browser.goto(&app.url(list_url)).await;
    let list = browser.source().await;
    assert!(!list.contains(key));
    assert_eq!(
        list.matches(&format!(">{name}<")).count(),
        1,
        "exactly one {name}"
    );
}

/// Revokes through the confirmation page.
async fn revoke(browser: &Browser, app: &TestApp, list_url: &str, name: &str, shot: &str) {
    browser.goto(&app.url(list_url)).await;
    browser
        .click(&format!("a[aria-label=\"Revoke {name}\"]"))
        .await;
    browser.wait_for_text("will lose access at once").await;
    browser.screenshot(&format!("{shot}-revoke")).await;
    browser.click("#confirm").await;
    browser.wait_for_text("revoked-badge").await;
    browser.screenshot(&format!("{shot}-revoked")).await;
}

#[tokio::test]
async fn a_person_manages_keys_and_tokens_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;

    // Sign up: straight to Settings > API Keys.
    browser.goto(&app.url("/")).await;
    assert!(browser.url().await.ends_with("/login"));
    browser.screenshot("login").await;
    browser.goto(&app.url("/signup")).await;
    browser.fill("#email", EMAIL).await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#organization", "Acme").await;
    browser.screenshot("signup").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/settings/api-keys").await;
    browser.screenshot("api-keys-empty").await;

    // A project with an instance, so the keys have something to read.
    browser.goto(&app.url("/settings/projects")).await;
    browser.fill("#project-name", "Web").await;
    browser.click("#create-project").await;
    browser.screenshot("projects").await;
    let project = browser.attribute("tbody tr", "id").await;
    assert!(project.starts_with("prj_"), "{project}");
    browser
        .goto(&app.url(&format!("/settings/projects/{project}/instances")))
        .await;
    browser.fill("#instance-name", "web-1").await;
    browser.click("#create-instance").await;
    browser.wait_for_text(">web-1<").await;
    browser.screenshot("instances").await;

    // An API key: shown once, works, never shown again, last use visible, revoked.
    let keys = "/settings/api-keys";
    let key = create_credential(&browser, &app, keys, "CI/CD Pipeline", "api-key").await;
    assert!(key.starts_with("kwk_"));
    browser.goto(&app.url(keys)).await;
    assert_eq!(browser.text(LAST_USED).await, "Never", "not used yet");
    let (status, body) = instances_status(&app, &key).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("web-1"));
    never_shown_again(&browser, &app, keys, &key, "CI/CD Pipeline").await;
    let last_used = browser.text(LAST_USED).await;
    assert_ne!(last_used, "Never", "the use shows at once");
    assert!(last_used.contains(':'), "a time: {last_used}");
    browser.screenshot("api-keys").await;
    revoke(&browser, &app, keys, "CI/CD Pipeline", "api-key").await;
    assert_eq!(
        instances_status(&app, &key).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A project token, the same way.
    browser.goto(&app.url("/settings/tokens")).await;
    browser.screenshot("tokens-pick").await;
    browser.click("a[aria-label=\"Tokens of Web\"]").await;
    let tokens = format!("/settings/projects/{project}/tokens");
    browser.wait_for_url(&tokens).await;
    let token = create_credential(&browser, &app, &tokens, "Web deploy", "token").await;
    assert!(token.starts_with("kwp_"));
    let (status, body) = instances_status(&app, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("web-1"));
    never_shown_again(&browser, &app, &tokens, &token, "Web deploy").await;
    browser.screenshot("tokens").await;
    revoke(&browser, &app, &tokens, "Web deploy", "token").await;
    assert_eq!(
        instances_status(&app, &token).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Members, then out and back in.
    browser.goto(&app.url("/settings/members")).await;
    browser.wait_for_text(EMAIL).await;
    browser.screenshot("members").await;
    browser.click("form[action=\"/logout\"] button").await;
    browser.wait_for_url("/login").await;
    browser.goto(&app.url("/settings/api-keys")).await;
    assert!(browser.url().await.ends_with("/login"), "signed out");
    browser.fill("#email", EMAIL).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/settings/api-keys").await;

    browser.quit().await;
}
