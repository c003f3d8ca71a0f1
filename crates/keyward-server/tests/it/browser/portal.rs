//! The portal inside a platform's console, in a real Chromium: a page on an allowed origin
//! (`localhost`, another site than Keyward's `127.0.0.1`) frames a portal link, and the
//! person creates a key whose shown-once value is read in the frame; a page on another
//! origin is refused framing; a cross-site form posted into the frame is refused.

use std::sync::Arc;

use keyward_server::Config;
use keyward_server::portal::PortalSettings;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Mutex;

use super::webdriver::Browser;
use crate::helpers::TestApp;

/// A stand-in for the platform's console: serves whatever page it is given, on its own port.
struct Console {
    port: u16,
    page: Arc<Mutex<String>>,
}

impl Console {
    async fn start() -> Self {
        let page = Arc::new(Mutex::new(String::new()));
        let served = page.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().fallback(move || {
            let served = served.clone();
            async move { axum::response::Html(served.lock().await.clone()) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, page }
    }

    /// Its origin, by name: `localhost` is another site than Keyward's `127.0.0.1`.
    fn origin(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    async fn show(&self, html: String) {
        *self.page.lock().await = html;
    }
}

async fn portal_link(app: &TestApp, key: &str, console: &Console, external_id: &str) -> String {
    let made = app
        .post(
            "/v1/portal-sessions",
            key,
            json!({
                "user": {"external_id": external_id, "email": format!("{external_id}@acme.example")},
                "role": "admin",
                "return_url": format!("{}/settings", console.origin()),
            }),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    made.body["url"].as_str().unwrap().to_owned()
}

fn frame_page(src: &str, extra: &str) -> String {
    format!(
        "<!doctype html><title>Acme console</title><h1>Acme console</h1>\
         <iframe id=\"portal\" name=\"portal\" src=\"{src}\" allow=\"clipboard-write\" \
         width=\"1100\" height=\"760\"></iframe>{extra}"
    )
}

#[tokio::test]
async fn the_portal_works_inside_the_platforms_console() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let console = Console::start().await;
    let stranger = Console::start().await;
    let app = TestApp::spawn_with(Config {
        portal: Arc::new(PortalSettings {
            return_origins: vec![console.origin()],
            frame_ancestors: vec![console.origin()],
            ..PortalSettings::default()
        }),
        ..Config::default()
    })
    .await;
    let acme = app.bootstrap("Acme").await;

    // The console frames a fresh link; the person makes a key inside the frame.
    let url = portal_link(&app, &acme.key, &console, "u-1").await;
    let keys_url = app.url("/settings/api-keys");
    let forge = format!(
        "<form id=\"forge\" method=\"post\" action=\"{keys_url}\" target=\"portal\">\
         <input type=\"hidden\" name=\"name\" value=\"forged\">\
         <input type=\"hidden\" name=\"expires_in\" value=\"never\">\
         <input type=\"hidden\" name=\"scopes\" value=\"instances:read\">\
         <button id=\"forge-submit\">Go</button></form>"
    );
    console.show(frame_page(&url, &forge)).await;
    browser.goto(&console.origin()).await;
    browser.enter_frame("#portal").await;
    let page = browser.wait_for_text("Back to localhost").await;
    assert!(page.contains("u-1@acme.example · admin"), "{page}");
    browser.click("#create-credential").await;
    browser.fill("#name", "Console key").await;
    browser.click("#scope-instances-read").await;
    browser.click("#submit-credential").await;
    let key = browser.text("#new-key").await;
    assert!(key.starts_with("kwk_"), "{key}");
    // The Copy button works in the frame (a secure context, allowed clipboard-write).
    assert_eq!(
        browser
            .run("return document.querySelector('button[data-copy]').hidden")
            .await,
        json!(false)
    );
    browser.leave_frames().await;
    browser.screenshot("portal-embedded").await;
    let used = app
        .client
        .get(app.url("/v1/instances"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), StatusCode::OK);

    // A cross-site form posted into the frame carries the portal cookie but not the
    // session's CSRF token: refused, nothing made.
    browser.click("#forge-submit").await;
    browser.enter_frame("#portal").await;
    let refused = browser.wait_for_text("was not sent from this page").await;
    assert!(!refused.contains("forged"), "{refused}");
    browser.leave_frames().await;
    let listed = app.get("/v1/api-keys", &acme.key).await;
    let names: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Console key") && !names.contains(&"forged"),
        "{names:?}"
    );

    // Another origin may not frame the portal: the frame shows nothing of it.
    let other = portal_link(&app, &acme.key, &console, "u-2").await;
    stranger.show(frame_page(&other, "")).await;
    browser.goto(&stranger.origin()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    browser.enter_frame("#portal").await;
    let blocked = browser.source().await;
    assert!(!blocked.contains("Back to"), "{blocked}");
    assert!(!blocked.contains("API Keys"), "{blocked}");
    browser.leave_frames().await;
    browser.screenshot("portal-refused-framing").await;

    browser.quit().await;
}
