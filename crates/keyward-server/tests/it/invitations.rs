//! Invitations: adding a member by email asks the person, who joins only by accepting. With
//! `[smtp]` through the emailed link (a real SMTP server, aiosmtpd); without, at their next
//! sign-in or sign-up.

use std::time::Duration;

use keyward_server::Config;
use reqwest::StatusCode;
use serde_json::json;

use crate::dashboard::{PASSWORD, Visitor, accept_invitation};
use crate::email::{SmtpServer, config_with, link};
use crate::helpers::TestApp;
use crate::members::member_id;

/// Sends what is due and returns the path of the one invitation link sent to `to`.
async fn emailed_link(app: &TestApp, smtp: &SmtpServer, to: &str) -> String {
    keyward_server::email::deliver_due(&app.state)
        .await
        .unwrap();
    let sent = smtp.messages_to(to);
    assert_eq!(sent.len(), 1, "{sent:?}");
    link(&sent[0], &app.url("/invitations/"))
        .strip_prefix(&app.url(""))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_emailed_link_lets_a_new_person_set_a_password_and_join() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let app = TestApp::spawn_with(config_with(&smtp)).await;
    let org = app.bootstrap("Acme").await;
    let invited = app
        .post(
            "/v1/members",
            &org.key,
            json!({ "email": "grace@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    assert_eq!(invited.body["emailed"], true);
    let id = invited.body["invitation_id"].as_str().unwrap().to_owned();

    let path = emailed_link(&app, &smtp, "grace@example.com").await;
    let message = &smtp.messages_to("grace@example.com")[0];
    assert!(
        message.contains("Subject: Join Acme on Keyward"),
        "{message}"
    );
    assert!(
        message.contains("You are invited to join Acme on Keyward as a member"),
        "{message}"
    );
    // The link's token is kept nowhere.
    let token = path.rsplit('/').next().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    let database = std::fs::read(app.dir.path().join("keyward.db")).unwrap();
    assert!(!database.windows(token.len()).any(|w| w == token.as_bytes()));

    let mut grace = Visitor::new(&app);
    let page = grace.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Join Acme"));
    assert!(page.body.contains("id=\"join\""), "{}", page.body);
    let weak = grace
        .post(
            &path,
            &[
                ("csrf_token", &page.csrf_token()),
                ("action", "create"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(
        weak.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        weak.body
    );
    assert!(
        app.store
            .find_user_by_email(&keyward_core::Email::parse("grace@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let joined = grace
        .post(
            &path,
            &[
                ("csrf_token", &page.csrf_token()),
                ("action", "create"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.location(), "/settings/api-keys", "{}", joined.body);
    let keys = grace.get("/settings/api-keys").await;
    assert_eq!(keys.status, StatusCode::OK);
    assert!(keys.body.contains("Acme"));

    let grace_id = member_id(&app, &org, "grace@example.com").await;
    let shown = app.get(&format!("/v1/invitations/{id}"), &org.key).await;
    assert_eq!(shown.body["status"], "accepted");
    assert!(
        app.get("/v1/invitations", &org.key).await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Once only; and the password works from now on.
    assert_eq!(Visitor::new(&app).get(&path).await.status, StatusCode::GONE);
    let again = Visitor::new(&app)
        .post(
            &path,
            &[
                ("csrf_token", &page.csrf_token()),
                ("action", "create"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    let login = Visitor::new(&app)
        .log_in("grace@example.com", PASSWORD)
        .await;
    assert_eq!(login.location(), "/settings/api-keys");
    // Removed from her only organization and invited again: the email is the way back (the
    // list shows nothing a sign-up with her address could see), and she can still log out.
    let removed = app
        .delete(&format!("/v1/members/{grace_id}"), &org.key)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let again = app
        .post(
            "/v1/members",
            &org.key,
            json!({ "email": "grace@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let away = grace.get("/settings/api-keys").await;
    assert_eq!(away.status, StatusCode::FORBIDDEN);
    assert!(away.body.contains("no longer belong to any organization"));
    let listed = grace.get("/invitations").await;
    assert!(listed.body.contains("id=\"by-email\""), "{}", listed.body);
    assert!(!listed.body.contains("Acme"), "{}", listed.body);
    // Resent at once: refused, the email went a moment ago.
    let resent = app
        .post(
            &format!(
                "/v1/invitations/{}/resend",
                again.body["invitation_id"].as_str().unwrap()
            ),
            &org.key,
            json!({}),
        )
        .await;
    resent.problem(429, "throttled");
    assert!(resent.header("retry-after").is_some());
    let out = grace
        .post("/logout", &[("csrf_token", &listed.csrf_token())])
        .await;
    assert_eq!(out.location(), "/login");
    assert_eq!(grace.get("/invitations").await.location(), "/login");
    // A made-up link is the same page as a spent one.
    let made_up = Visitor::new(&app)
        .get(&format!("/invitations/{}", "x".repeat(43)))
        .await;
    assert_eq!(made_up.status, StatusCode::GONE);
}

#[tokio::test]
async fn an_account_holder_accepts_the_link_after_signing_in_as_its_email() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let (app, clock) = TestApp::spawn_with_manual_clock(config_with(&smtp)).await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let mut bob = Visitor::new(&app);
    bob.sign_up("bob@example.com", "Bob's").await;
    let mut carol = Visitor::new(&app);
    carol.sign_up("carol@example.com", "Carol's").await;

    let csrf = ada.get("/settings/members").await.csrf_token();
    let invited = ada
        .post(
            "/settings/members",
            &[
                ("csrf_token", &csrf),
                ("email", "bob@example.com"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(invited.location(), "/settings/members?notice=invited");
    let members = ada.get("/settings/members").await;
    assert!(
        members
            .body
            .contains("<th scope=\"row\">bob@example.com</th>"),
        "{}",
        members.body
    );
    assert!(members.body.contains("We email them a link"));
    let path = emailed_link(&app, &smtp, "bob@example.com").await;
    assert!(
        smtp.messages_to("bob@example.com")[0]
            .contains("ada@example.com invited you to join Acme on Keyward as an admin")
    );

    // With email, only the link accepts: it shows the address is Bob's.
    let listed = bob.get("/invitations").await;
    assert!(listed.body.contains("id=\"by-email\""), "{}", listed.body);
    assert!(!listed.body.contains("Acme"), "{}", listed.body);
    let id = app
        .store
        .invitations_for(
            &keyward_core::Email::parse("bob@example.com").unwrap(),
            keyward_core::Timestamp::now(),
        )
        .await
        .unwrap()[0]
        .invitation
        .id;
    let bobs_csrf = bob.get("/settings/api-keys").await.csrf_token();
    let by_id = bob
        .post(
            &format!("/invitations/{id}/accept"),
            &[("csrf_token", &bobs_csrf)],
        )
        .await;
    assert_eq!(by_id.status, StatusCode::NOT_FOUND, "{}", by_id.body);

    // Someone else signed in cannot take it.
    let seen = carol.get(&path).await;
    assert!(seen.body.contains("id=\"other-account\""), "{}", seen.body);
    let taken = carol
        .post(
            &path,
            &[("csrf_token", &seen.csrf_token()), ("action", "accept")],
        )
        .await;
    assert_eq!(taken.status, StatusCode::FORBIDDEN, "{}", taken.body);
    assert!(
        taken
            .body
            .contains("This invitation is for bob@example.com")
    );

    // Signed out, Bob is asked to log in, and comes back to the link once he has.
    let mut browser = Visitor::new(&app);
    let first = browser.get(&path).await;
    assert!(first.body.contains("id=\"log-in-first\""), "{}", first.body);
    let logged_in = browser.log_in("bob@example.com", PASSWORD).await;
    assert_eq!(logged_in.location(), path);
    let page = browser.get(&path).await;
    assert!(page.body.contains("id=\"accept\""), "{}", page.body);
    let accepted = browser
        .post(
            &path,
            &[("csrf_token", &page.csrf_token()), ("action", "accept")],
        )
        .await;
    assert_eq!(
        accepted.location(),
        "/settings/api-keys",
        "{}",
        accepted.body
    );
    let keys = browser.get("/settings/api-keys").await;
    assert!(keys.body.contains("selected>Acme<"), "{}", keys.body);
    // The next sign-in goes on as usual: the way back was forgotten.
    assert_eq!(
        Visitor::new(&app)
            .log_in("bob@example.com", PASSWORD)
            .await
            .location(),
        "/settings/api-keys"
    );
    let members = ada.get("/settings/members").await;
    assert!(
        members.body.contains("No open invitations"),
        "{}",
        members.body
    );

    // A resend spends the link before; a cancel ends the invitation.
    ada.post(
        "/settings/members",
        &[
            ("csrf_token", &csrf),
            ("email", "dan@example.com"),
            ("role", "member"),
        ],
    )
    .await;
    let first = emailed_link(&app, &smtp, "dan@example.com").await;
    let members = ada.get("/settings/members").await;
    let dan = {
        let row = members
            .body
            .find("<th scope=\"row\">dan@example.com</th>")
            .unwrap();
        let marker = "<tr id=\"";
        let start = members.body[..row].rfind(marker).unwrap() + marker.len();
        members.body[start..start + 30].to_owned()
    };
    // A minute after the first email, a resend may go.
    clock.advance(Duration::from_secs(61));
    let resent = ada
        .post(
            &format!("/settings/members/invitations/{dan}/resend"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(resent.location(), "/settings/members?notice=resent");
    keyward_server::email::deliver_due(&app.state)
        .await
        .unwrap();
    let links: Vec<String> = smtp
        .messages_to("dan@example.com")
        .iter()
        .map(|m| {
            link(m, &app.url("/invitations/"))
                .strip_prefix(&app.url(""))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(links.len(), 2);
    let second = links.iter().find(|l| **l != first).unwrap().clone();
    assert_eq!(
        Visitor::new(&app).get(&first).await.status,
        StatusCode::GONE
    );
    assert_eq!(Visitor::new(&app).get(&second).await.status, StatusCode::OK);
    let cancelled = ada
        .post(
            &format!("/settings/members/invitations/{dan}/cancel"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(cancelled.location(), "/settings/members?notice=cancelled");
    assert_eq!(
        Visitor::new(&app).get(&second).await.status,
        StatusCode::GONE
    );

    // Carol declines hers: she does not join.
    ada.post(
        "/settings/members",
        &[
            ("csrf_token", &csrf),
            ("email", "carol@example.com"),
            ("role", "member"),
        ],
    )
    .await;
    let hers = emailed_link(&app, &smtp, "carol@example.com").await;
    let page = carol.get(&hers).await;
    let declined = carol
        .post(
            &hers,
            &[("csrf_token", &page.csrf_token()), ("action", "decline")],
        )
        .await;
    assert_eq!(declined.location(), "/invitations?notice=declined");
    assert!(
        carol
            .get("/invitations?notice=declined")
            .await
            .body
            .contains("Invitation declined.")
    );
    let members = ada.get("/settings/members").await;
    assert!(
        !members.body.contains("carol@example.com"),
        "{}",
        members.body
    );
    assert_eq!(carol.get(&hers).await.status, StatusCode::GONE);
}

#[tokio::test]
async fn without_email_an_invitation_waits_for_the_next_sign_up_or_sign_in() {
    let (app, clock) = TestApp::spawn_with_manual_clock(Config::default()).await;
    let org = app.bootstrap("Acme").await;
    let mut dave = Visitor::new(&app);
    dave.sign_up("dave@example.com", "Dave's").await;
    let invite = async |email: &str| {
        let invited = app
            .post(
                "/v1/members",
                &org.key,
                json!({ "email": email, "role": "member" }),
            )
            .await;
        assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
        assert_eq!(invited.body["emailed"], false);
        invited.body["invitation_id"].as_str().unwrap().to_owned()
    };
    let for_new = invite("new@example.com").await;
    let for_dave = invite("dave@example.com").await;

    // Someone signed in with another email cannot accept it by its id.
    let listed = dave.get("/invitations").await;
    let stolen = dave
        .post(
            &format!("/invitations/{for_new}/accept"),
            &[("csrf_token", &listed.csrf_token())],
        )
        .await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN, "{}", stolen.body);

    // Sign-up with the address: straight to the invitations.
    let mut newcomer = Visitor::new(&app);
    let signed_up = newcomer.sign_up("new@example.com", "New's").await;
    assert_eq!(signed_up.location(), "/invitations");
    accept_invitation(&mut newcomer, "Acme").await;
    member_id(&app, &org, "new@example.com").await;

    // Sign-in with it: the same, until the invitation expires (seven days).
    let signed_in = Visitor::new(&app)
        .log_in("dave@example.com", PASSWORD)
        .await;
    assert_eq!(signed_in.location(), "/invitations");
    clock.advance(Duration::from_secs(7 * 86_400 + 1));
    let shown = app
        .get(&format!("/v1/invitations/{for_dave}"), &org.key)
        .await;
    assert_eq!(shown.body["status"], "expired");
    let mut dave = Visitor::new(&app);
    let late = dave.log_in("dave@example.com", PASSWORD).await;
    assert_eq!(late.location(), "/settings/api-keys");
    let listed = dave.get("/invitations").await;
    assert!(
        listed.body.contains("No open invitations"),
        "{}",
        listed.body
    );
    let csrf = dave.get("/settings/api-keys").await.csrf_token();
    let refused = dave
        .post(
            &format!("/invitations/{for_dave}/accept"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::GONE);

    // Renewed, it waits again; cancelled, it is gone for good.
    let renewed = app
        .post(
            &format!("/v1/invitations/{for_dave}/resend"),
            &org.key,
            json!({}),
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_eq!(renewed.body["status"], "pending");
    assert_eq!(
        Visitor::new(&app)
            .log_in("dave@example.com", PASSWORD)
            .await
            .location(),
        "/invitations"
    );
    let path = format!("/v1/invitations/{for_dave}");
    assert_eq!(
        app.delete(&path, &org.key).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&path, &org.key).await.body["status"], "cancelled");
    app.delete(&path, &org.key).await.problem(404, "not_found");
    app.post(&format!("{path}/resend"), &org.key, json!({}))
        .await
        .problem(404, "not_found");
    app.get("/v1/invitations/inv_nonsense", &org.key)
        .await
        .problem(404, "not_found");
    let cancelled = dave
        .post(
            &format!("/invitations/{for_dave}/accept"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::GONE);
    let members = app.get("/v1/members", &org.key).await;
    assert!(!members.body.to_string().contains("dave@example.com"));

    // The audit log tells the story, with who did each part.
    let trail = app.audit_trail(org.id).await;
    let actions: Vec<&str> = trail.iter().map(|(action, _)| action.as_str()).collect();
    for action in [
        "invitation.created",
        "member.added",
        "invitation.resent",
        "invitation.cancelled",
    ] {
        assert!(actions.contains(&action), "{actions:?}");
    }
}
