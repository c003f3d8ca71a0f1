//! The anonymous forms cannot be turned into a memory or CPU amplifier: password hashing is
//! bounded, and one address can sign up and try to log in only so often.

use std::time::Duration;

use keyward_server::Config;
use keyward_server::passwords::PasswordLimits;
use reqwest::StatusCode;

use crate::dashboard::{PASSWORD, Visitor};
use crate::helpers::TestApp;

#[tokio::test]
async fn a_log_in_flood_hashes_within_the_bound_and_the_rest_is_told_to_retry() {
    let app = TestApp::spawn_with(Config {
        password_limits: PasswordLimits {
            workers: 1,
            queue: 1,
            wait: Duration::from_millis(20),
        },
        ..Config::default()
    })
    .await;
    let mut attacker = Visitor::new(&app);
    let csrf = attacker.get("/login").await.csrf_token();
    let cookie = attacker.cookie_header();
    // Distinct emails, so that the per-email throttle plays no part.
    let mut tries = Vec::new();
    for n in 0..24 {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("csrf_token", csrf.as_str()),
                ("email", &format!("victim{n}@example.com")),
                ("password", "a wrong password"),
            ])
            .finish();
        let request = attacker
            .http
            .post(app.url("/login"))
            .header("cookie", cookie.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        tries.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (response.status(), retry_after)
        }));
    }
    let (mut checked, mut busy) = (0, 0);
    for attempt in tries {
        match attempt.await.unwrap() {
            (StatusCode::UNAUTHORIZED, _) => checked += 1,
            (StatusCode::SERVICE_UNAVAILABLE, Some(retry_after)) => {
                assert_eq!(retry_after, "1");
                busy += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(checked >= 1 && busy >= 1, "{checked} checked, {busy} busy");
    assert_eq!(app.state.passwords.peak_concurrency(), 1);
}

#[tokio::test]
async fn one_address_signs_up_ten_times_an_hour_at_most() {
    let app = TestApp::spawn().await;
    for n in 0..10 {
        let page = Visitor::new(&app)
            .sign_up(&format!("person{n}@example.com"), &format!("Org {n}"))
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "sign-up {n}");
    }
    let refused = Visitor::new(&app)
        .sign_up("one.more@example.com", "One more")
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=360).contains(&retry_after), "{retry_after}");
    assert!(refused.body.contains("Too many sign-ups"));
    assert!(
        app.store
            .find_user_by_email(&keyward_core::Email::parse("one.more@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn one_address_tries_thirty_log_ins_a_minute_whatever_the_emails() {
    let app = TestApp::spawn().await;
    Visitor::new(&app).sign_up("ada@example.com", "Acme").await;
    let mut visitor = Visitor::new(&app);
    for n in 0..29 {
        let page = visitor
            .log_in(&format!("guess{n}@example.com"), "a wrong password")
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "try {n}");
    }
    assert_eq!(
        visitor.log_in("ada@example.com", PASSWORD).await.status,
        StatusCode::SEE_OTHER,
        "the 30th"
    );
    let refused = Visitor::new(&app).log_in("ada@example.com", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key("retry-after"));
}
