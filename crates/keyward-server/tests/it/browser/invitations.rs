//! An invitation in a real Chromium, through a real SMTP server: an owner invites from
//! Settings > Members, the emailed link opens in the browser, the new person sets a password
//! and lands in the organization, and the owner sees them among the members.

use super::webdriver::Browser;
use super::{EMAIL, PASSWORD};
use crate::email::{SmtpServer, config_with, link};
use crate::helpers::TestApp;

#[tokio::test]
async fn an_invited_person_joins_through_the_emailed_link() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn_with(config_with(&smtp)).await;

    browser.goto(&app.url("/signup")).await;
    browser.fill("#email", EMAIL).await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#organization", "Acme").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/settings/api-keys").await;

    browser.goto(&app.url("/settings/members")).await;
    browser.fill("#member-email", "grace@example.com").await;
    browser.click("#add-member").await;
    browser.wait_for_text("Invitation sent").await;
    browser.wait_for_text("grace@example.com").await;
    browser.screenshot("members-invitations").await;
    browser.click("form[action=\"/logout\"] button").await;
    browser.wait_for_url("/login").await;

    keyward_server::email::deliver_due(&app.state)
        .await
        .unwrap();
    let sent = smtp.messages_to("grace@example.com");
    assert_eq!(sent.len(), 1);
    browser
        .goto(&link(&sent[0], &app.url("/invitations/")))
        .await;
    browser.wait_for_text("Join Acme").await;
    browser.screenshot("invitation").await;
    browser
        .fill("#password", "grace's own long passphrase")
        .await;
    browser.click("#join").await;
    browser.wait_for_url("/settings/api-keys").await;
    let working_in = browser
        .text("#organization-switcher option[selected]")
        .await;
    assert_eq!(working_in.trim(), "Acme");

    let grace = app
        .store
        .find_user_by_email(&keyward_core::Email::parse("grace@example.com").unwrap())
        .await
        .unwrap()
        .expect("Grace has an account");
    let memberships = app.store.memberships_of(grace.id).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].role, keyward_core::Role::Member);

    browser.quit().await;
}
