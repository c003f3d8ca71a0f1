//! A key's usage page in a real Chromium: the chart drawn on the server shows, with bars of
//! the right proportions, and needs no script.

use reqwest::StatusCode;

use super::webdriver::Browser;
use super::{EMAIL, PASSWORD, create_credential};
use crate::helpers::TestApp;

#[tokio::test]
async fn a_keys_usage_is_charted_by_day_and_by_hour() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    browser.goto(&app.url("/signup")).await;
    browser.fill("#email", EMAIL).await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#organization", "Acme").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/settings/api-keys").await;
    let key = create_credential(&browser, &app, "/settings/api-keys", "Reader", "usage-key").await;
    let call = |path: &'static str| {
        let request = app.client.get(app.url(path)).bearer_auth(&key);
        async move { request.send().await.unwrap().status() }
    };
    for _ in 0..3 {
        assert_eq!(call("/v1/instances").await, StatusCode::OK);
    }
    assert_eq!(call("/v1/projects").await, StatusCode::FORBIDDEN);
    app.state.flush_usage().await.unwrap();

    browser.goto(&app.url("/settings/api-keys")).await;
    browser.screenshot("keys-list-7-days").await;
    // The list's sparkline: today's bar (the last) as tall as the line, a quarter refused.
    let spark = browser
        .run(
            "const svg = document.querySelector('td.recent svg.sparkline'); \
             const rects = [...svg.querySelectorAll('rect')]; \
             return [svg.getBoundingClientRect().height, \
                     rects.map(r => [r.getAttribute('fill'), r.getBBox().height])];",
        )
        .await;
    let drawn = spark[0].as_f64().expect("a sparkline");
    let rects = spark[1].as_array().expect("bars");
    assert_eq!(rects.len(), 2, "{spark}");
    let allowed = rects[0][1].as_f64().unwrap();
    let refused = rects[1][1].as_f64().unwrap();
    assert!((drawn - 18.0).abs() < 0.5, "{spark}");
    assert!((allowed + refused - 18.0).abs() < 0.01, "{spark}");
    assert!(refused > 0.0 && refused < allowed, "{spark}");
    let recent = browser.text("td.recent").await;
    assert!(recent.contains("4 (1 refused)"), "{recent}");

    browser.click("a[aria-label=\"Usage of Reader\"]").await;
    browser.wait_for_text("Usage of Reader").await;
    browser.screenshot("key-usage").await;
    // Today's bar: allowed three times as tall as refused, in the by-day chart.
    let heights = browser
        .run(
            "const bars = [...document.querySelectorAll('#days-heading ~ svg rect[fill]')] \
             .filter(r => r.getAttribute('fill') !== 'transparent' && r.getBBox().height > 0); \
             return bars.map(r => [r.getAttribute('fill'), r.getBBox().height]);",
        )
        .await;
    let bars = heights.as_array().expect("bars");
    assert_eq!(bars.len(), 2, "{heights}");
    let height = |fill: &str| {
        bars.iter()
            .find(|bar| bar[0] == fill)
            .and_then(|bar| bar[1].as_f64())
            .unwrap_or_else(|| panic!("a {fill} bar: {heights}"))
    };
    let (allowed, lacking) = (height("#2f7d32"), height("#7c3aed"));
    assert!(
        (allowed / lacking - 3.0).abs() < 0.05,
        "{allowed} / {lacking}"
    );
    // (Headers show in capitals: WebDriver reads the text as rendered.)
    let table = browser.text("#days-table").await.to_lowercase();
    assert!(table.contains("insufficient_scope"), "{table}");

    // Settings > Usage, from the navigation: the organization's, with the key among the most
    // used (the person's own requests are not a key's).
    browser.click("a[href=\"/settings/usage\"]").await;
    browser.wait_for_text("Most used, last 30 days").await;
    browser.screenshot("organization-usage").await;
    let top = browser.text("#top-table").await;
    assert!(top.contains("Reader"), "{top}");
    let bars = browser
        .run(
            "return [...document.querySelectorAll('#days-heading ~ svg rect[fill]')] \
             .filter(r => r.getAttribute('fill') !== 'transparent' && r.getBBox().height > 0) \
             .length;",
        )
        .await;
    assert_eq!(bars, 2, "today's allowed and refused");
    browser.quit().await;
}
