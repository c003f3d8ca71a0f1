//! Usage: every verification of a credential counted by hour and outcome, written with the
//! last-use batch, and read back by hour or day; two nodes' counts add up.

use keyward_store::testing::TempPostgres;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// The usage of the API key `id`, by the hour, as `key` sees it.
async fn hourly(app: &TestApp, key: &str, id: &str) -> Value {
    let usage = app
        .get(&format!("/v1/api-keys/{id}/usage?granularity=hour"), key)
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    usage.body
}

#[tokio::test]
async fn verifications_are_counted_by_hour_and_outcome() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (reader_id, reader) = app
        .create_key(&org.key, "Reader", &["instances:read"])
        .await;

    // Through the API: three allowed, one lacking a scope.
    for _ in 0..3 {
        assert_eq!(
            app.get("/v1/instances", &reader).await.status,
            StatusCode::OK
        );
    }
    app.get("/v1/projects", &reader)
        .await
        .problem(403, "insufficient_scope");
    // Through /v1/keys/verify: one good, one lacking a scope.
    let verified = app
        .post("/v1/keys/verify", &org.key, json!({ "key": reader }))
        .await;
    assert_eq!(verified.body["code"], "VALID", "{}", verified.body);
    let lacking = app
        .post(
            "/v1/keys/verify",
            &org.key,
            json!({ "key": reader, "scopes": ["projects:read"] }),
        )
        .await;
    assert_eq!(lacking.body["code"], "INSUFFICIENT_SCOPE");

    // A rate-limited key: one allowed, one refused.
    let (limited_id, limited) = app
        .create_key(&org.key, "Limited", &["instances:read"])
        .await;
    let patched = app
        .patch(
            &format!("/v1/api-keys/{limited_id}"),
            &org.key,
            json!({ "rate_limit": { "requests": 1, "per_seconds": 3600 } }),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        app.get("/v1/instances", &limited).await.status,
        StatusCode::OK
    );
    app.get("/v1/instances", &limited)
        .await
        .problem(429, "rate_limited");
    // A revoked key: refused as revoked.
    let (gone_id, gone) = app.create_key(&org.key, "Gone", &["instances:read"]).await;
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{gone_id}"), &org.key)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get("/v1/instances", &gone)
        .await
        .problem(401, "invalid_token");

    // The counts arrive with the next flush (every 5 s, and here at once).
    app.state.flush_usage().await.unwrap();

    let usage = hourly(&app, &org.key, &reader_id).await;
    assert_eq!(usage["credential_id"], reader_id.as_str());
    assert_eq!(usage["granularity"], "hour");
    assert_eq!(
        usage["totals"],
        json!({ "allowed": 4, "insufficient_scope": 2 }),
        "{usage}"
    );
    assert_eq!(usage["total"], 6);
    let buckets = usage["data"].as_array().unwrap();
    assert_eq!(buckets.len(), 48, "the last 48 hours, empty ones too");
    assert_eq!(
        buckets.last().unwrap()["total"],
        6,
        "all in the current hour"
    );
    assert_eq!(
        hourly(&app, &org.key, &limited_id).await["totals"],
        json!({ "allowed": 1, "rate_limited": 1 })
    );
    assert_eq!(
        hourly(&app, &org.key, &gone_id).await["totals"],
        json!({ "revoked": 1 })
    );
    // By the day (the default): the last 30 days, today's the same counts.
    let daily = app
        .get(&format!("/v1/api-keys/{reader_id}/usage"), &org.key)
        .await;
    assert_eq!(daily.body["granularity"], "day");
    assert_eq!(daily.body["data"].as_array().unwrap().len(), 30);
    assert_eq!(daily.body["data"][29]["outcomes"]["allowed"], 4);
    // The organization key's own requests are counted as its own.
    let own = hourly(&app, &org.key, &org.key_id).await;
    assert!(own["totals"]["allowed"].as_u64().unwrap() >= 4, "{own}");

    // The organization's usage: every credential's together, and the most used.
    let whole = app.get("/v1/usage?granularity=hour", &org.key).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.body);
    assert!(whole.body.get("credential_id").is_none());
    let top = whole.body["top"].as_array().unwrap();
    let reader_row = top
        .iter()
        .find(|c| c["credential_id"] == reader_id.as_str())
        .expect("the reader is among the most used");
    assert_eq!(reader_row["name"], "Reader");
    assert_eq!(reader_row["total"], 6);
    let totals: Vec<u64> = top.iter().map(|c| c["total"].as_u64().unwrap()).collect();
    assert!(
        totals.windows(2).all(|w| w[0] >= w[1]),
        "most first: {totals:?}"
    );
    assert_eq!(
        whole.body["total"].as_u64().unwrap(),
        totals.iter().sum::<u64>(),
        "fewer than ten credentials: the top is all of them"
    );
    assert_eq!(whole.body["totals"]["revoked"], 1);
    assert_eq!(whole.body["totals"]["rate_limited"], 1);
    app.get("/v1/usage", &reader)
        .await
        .problem(403, "insufficient_scope");

    // Bad periods are refused by field; other keys are not found.
    let bad = app
        .get(
            &format!("/v1/api-keys/{reader_id}/usage?granularity=week&from=soon"),
            &org.key,
        )
        .await;
    let fields: Vec<&str> = bad.problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["granularity", "from"]);
    let other = app.bootstrap("Globex").await;
    app.get(&format!("/v1/api-keys/{reader_id}/usage"), &other.key)
        .await
        .problem(404, "not_found");
    app.get("/v1/api-keys/key_nonsense/usage", &org.key)
        .await
        .problem(404, "not_found");
    app.get(&format!("/v1/api-keys/{reader_id}/usage"), &reader)
        .await
        .problem(403, "insufficient_scope");

    // A project token's usage, under its project.
    let project = app.create_project(&org.key, "Web").await;
    let token = app
        .post(
            &format!("/v1/projects/{project}/tokens"),
            &org.key,
            json!({ "name": "deploy", "scopes": ["instances:read"] }),
        )
        .await;
    let token_id = token.body["id"].as_str().unwrap();
    let secret = token.body["key"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/instances", secret).await.status,
        StatusCode::OK
    );
    app.state.flush_usage().await.unwrap();
    let usage = app
        .get(
            &format!("/v1/projects/{project}/tokens/{token_id}/usage?granularity=hour"),
            &org.key,
        )
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    assert_eq!(usage.body["totals"], json!({ "allowed": 1 }));
}

#[tokio::test]
async fn two_nodes_counts_add_up_on_postgres() {
    let Some(cluster) = TempPostgres::start().unwrap_or_else(|error| panic!("{error}")) else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let a = TestApp::spawn_on(&url).await;
    let b = TestApp::spawn_on(&url).await;
    let org = a.bootstrap("Acme").await;
    let (id, key) = a.create_key(&org.key, "Shared", &["instances:read"]).await;
    for _ in 0..5 {
        assert_eq!(a.get("/v1/instances", &key).await.status, StatusCode::OK);
    }
    for _ in 0..7 {
        assert_eq!(b.get("/v1/instances", &key).await.status, StatusCode::OK);
    }
    b.get("/v1/projects", &key)
        .await
        .problem(403, "insufficient_scope");
    a.state.flush_usage().await.unwrap();
    b.state.flush_usage().await.unwrap();
    // Flushing again adds nothing twice.
    a.state.flush_usage().await.unwrap();
    for node in [&a, &b] {
        assert_eq!(
            hourly(node, &org.key, &id).await["totals"],
            json!({ "allowed": 12, "insufficient_scope": 1 })
        );
    }
}

#[tokio::test]
async fn the_dashboard_charts_a_keys_usage_with_its_numbers_beside() {
    let app = TestApp::spawn().await;
    let mut ada = crate::dashboard::Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let created = ada.create_key("Reader", &["instances:read"]).await;
    let key = crate::dashboard::shown_key(&created);
    for _ in 0..2 {
        assert_eq!(app.get("/v1/instances", &key).await.status, StatusCode::OK);
    }
    app.get("/v1/projects", &key)
        .await
        .problem(403, "insufficient_scope");
    app.state.flush_usage().await.unwrap();

    let list = ada.get("/settings/api-keys").await;
    // The list's last 7 days: the total, the refused, and a bar for today (the last).
    let recent = {
        let start = list
            .body
            .find("<td class=\"recent\">")
            .expect("a 7-day cell");
        let end = start + list.body[start..].find("</td>").unwrap();
        list.body[start..end].to_owned()
    };
    assert!(
        recent.contains("<span class=\"recent-total\">3</span> <span class=\"recent-refused\">(1 refused)</span>"),
        "{recent}"
    );
    assert!(recent.contains("class=\"sparkline\""), "{recent}");
    assert!(
        recent.contains("by day, oldest first: 0, 0, 0, 0, 0, 0, 3"),
        "{recent}"
    );
    // Today's bar is the whole height (18): 12 allowed (from 6 down) below 6 refused.
    assert!(
        recent.contains("<rect x=\"48\" y=\"6\" width=\"6\" height=\"12\" fill=\"#2f7d32\"/><rect x=\"48\" y=\"0\" width=\"6\" height=\"6\""),
        "{recent}"
    );
    let end = list.body.find("/usage\" aria-label").expect("a usage link") + "/usage".len();
    let begin = list.body[..end].rfind('"').unwrap() + 1;
    let usage_link = list.body[begin..end].to_owned();
    assert!(usage_link.ends_with("/usage"), "{usage_link}");
    let page = ada.get(&usage_link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Usage of Reader"));
    assert!(
        page.body
            .contains("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "drawn on the server"
    );
    assert!(page.body.contains("role=\"img\""));
    // The numbers beside the chart: today's row, by the day and by the hour.
    let today = &keyward_core::Timestamp::now().to_string()[5..10];
    let table = |id: &str| {
        let start = page
            .body
            .find(&format!("id=\"{id}-table\""))
            .expect("the table");
        let end = start + page.body[start..].find("</table>").unwrap();
        page.body[start..end].to_owned()
    };
    let days = table("days");
    assert!(
        days.contains("<th scope=\"col\">allowed</th><th scope=\"col\">insufficient_scope</th>"),
        "{days}"
    );
    assert!(
        days.contains(&format!(
            "<tr><th scope=\"row\">{today}</th><td>3</td><td>2</td><td>1</td></tr>"
        )),
        "{days}"
    );
    assert!(table("hours").contains("<td>3</td><td>2</td><td>1</td>"));
    // Another organization's key is not found.
    let mut eve = crate::dashboard::Visitor::new(&app);
    eve.sign_up("eve@example.com", "Eve's").await;
    assert_eq!(eve.get(&usage_link).await.status, StatusCode::NOT_FOUND);

    // Settings > Usage: the organization's keys together, and the most used linked to their
    // own pages. Ada's session counts nothing; the key's 3 are the organization's.
    let whole = ada.get("/settings/usage").await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.body);
    assert!(
        whole
            .body
            .contains("href=\"/settings/usage\" aria-current=\"page\""),
        "in the navigation"
    );
    assert!(
        whole.body.contains("Last 30 days, by day (UTC): 3"),
        "{}",
        whole.body
    );
    let top = {
        let start = whole.body.find("id=\"top-table\"").expect("the most used");
        let end = start + whole.body[start..].find("</table>").unwrap();
        whole.body[start..end].to_owned()
    };
    assert!(
        top.contains(&format!(
            "<tr><th scope=\"row\"><a href=\"{usage_link}\">Reader</a></th><td>API key</td><td>3</td><td>1</td></tr>"
        )),
        "{top}"
    );
    // Eve's organization used nothing.
    let empty = eve.get("/settings/usage").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(
        empty
            .body
            .contains("No key or token was used in this period.")
    );
}
