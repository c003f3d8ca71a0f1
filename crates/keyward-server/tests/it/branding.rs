//! `[branding]`: the product's name, accent colour and logo on every page, error pages
//! included, and the default look without it.

use std::sync::Arc;

use keyward_server::Config;
use keyward_server::branding::{Branding, Logo};

use crate::dashboard::Visitor;
use crate::helpers::TestApp;

const SVG: &[u8] = b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>";

fn acme() -> Branding {
    Branding {
        product_name: "Acme Cloud".into(),
        accent: Some(keyward_server::branding::Accent::parse("#0a7d5a").unwrap()),
        logo: Some(Logo::from_bytes(SVG.to_vec()).unwrap()),
    }
}

#[tokio::test]
async fn every_page_carries_the_platforms_name_colour_and_logo() {
    let app = TestApp::spawn_with(Config {
        branding: Arc::new(acme()),
        ..Config::default()
    })
    .await;
    let mut visitor = Visitor::new(&app);

    let login = visitor.get("/login").await;
    assert!(
        login.body.contains("<title>Log in · Acme Cloud</title>"),
        "{}",
        login.body
    );
    assert!(login.body.contains("<img src=\"/assets/logo\""));
    assert!(login.body.contains("href=\"/assets/brand.css\""));
    assert!(!login.body.contains("Keyward"), "{}", login.body);

    visitor.sign_up("ada@example.com", "Acme").await;
    let keys = visitor.get("/settings/api-keys").await;
    assert_eq!(keys.status, 200);
    assert!(keys.body.contains("· Acme Cloud</title>"));
    assert!(keys.body.contains("Acme Cloud</a>"));
    assert!(!keys.body.contains("Keyward"), "{}", keys.body);
    let created = visitor.create_key("ci", &["instances:read"]).await;
    assert!(created.body.contains("Acme Cloud keeps only a fingerprint"));

    // An error page, answered without the server's state, is branded all the same.
    let missing = visitor
        .get("/settings/projects/prj_00000000000000000000000000/edit")
        .await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("Back to Acme Cloud"),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("· Acme Cloud</title>"));
    assert!(!missing.body.contains("Keyward"));

    let css = reqwest::get(app.url("/assets/brand.css")).await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let css = css.text().await.unwrap();
    assert!(
        css.contains("--accent: #0a7d5a; --accent-ink: #ffffff;"),
        "{css}"
    );

    let logo = reqwest::get(app.url("/assets/logo")).await.unwrap();
    assert_eq!(logo.status(), 200);
    assert_eq!(logo.headers()["content-type"], "image/svg+xml");
    let policy = logo.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("sandbox") && policy.contains("default-src 'none'"));
    assert_eq!(&logo.bytes().await.unwrap()[..], SVG);

    let reference = reqwest::get(app.url("/docs"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(reference.contains("<h1>Acme Cloud API reference</h1>"));
}

#[tokio::test]
async fn without_branding_the_pages_are_keywards() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::new(&app);
    let login = visitor.get("/login").await;
    assert!(login.body.contains("<title>Log in · Keyward</title>"));
    assert!(!login.body.contains("/assets/logo"));
    let logo = reqwest::get(app.url("/assets/logo")).await.unwrap();
    assert_eq!(logo.status(), 404);
    let css = reqwest::get(app.url("/assets/brand.css")).await.unwrap();
    assert!(!css.text().await.unwrap().contains("--accent"));
    visitor.sign_up("ada@example.com", "Acme").await;
    let missing = visitor.get("/settings/projects/prj_x/edit").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("Back to Keyward"), "{}", missing.body);
}
