//! Network rules of credentials (`allowed_cidrs`) and the client address behind trusted
//! proxies (`--trusted-proxies`): who may use a key from where, through the cache, the
//! verification endpoints, forward authentication, the log-in throttle and the dashboard.

use keyward_core::{Cidr, Email};
use keyward_server::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::{Visitor, shown_key};
use crate::helpers::{Answer, TestApp, read};

fn trusting(ranges: &[&str]) -> Config {
    Config {
        trusted_proxies: ranges.iter().map(|r| Cidr::parse(r).unwrap()).collect(),
        ..Config::default()
    }
}

/// `GET /v1/me` with `key`, saying it forwards for `forwarded` (if any).
async fn me_from(app: &TestApp, key: &str, forwarded: Option<&str>) -> Answer {
    let mut request = app.client.get(app.url("/v1/me")).bearer_auth(key);
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    read(request.send().await.unwrap()).await
}

/// Creates an API key limited to `ranges` and returns (id, key).
async fn limited_key(app: &TestApp, with: &str, ranges: &[&str]) -> (String, String) {
    let created = app
        .post(
            "/v1/api-keys",
            with,
            json!({ "name": "limited", "scopes": ["instances:read"], "allowed_cidrs": ranges }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn an_ipv4_rule_admits_its_range_and_refuses_the_rest_through_the_cache() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, key) = limited_key(&app, &org.key, &["127.0.0.0/8", "2001:db8::/32"]).await;
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(
        shown.body["allowed_cidrs"],
        json!(["127.0.0.0/8", "2001:db8::/32"])
    );
    assert_eq!(me_from(&app, &key, None).await.status, StatusCode::OK);

    // Narrowed while the key sits in the cache: the next request is refused.
    let narrowed = app
        .patch(
            &format!("/v1/api-keys/{id}"),
            &org.key,
            json!({ "allowed_cidrs": ["192.0.2.0/24"] }),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.body);
    assert_eq!(narrowed.body["allowed_cidrs"], json!(["192.0.2.0/24"]));
    let refused = me_from(&app, &key, None).await;
    let problem = refused.problem(403, "ip_not_allowed");
    assert!(
        problem["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{problem}"
    );
    // Without trusted proxies, X-Forwarded-For is the client's own claim: ignored.
    me_from(&app, &key, Some("192.0.2.7"))
        .await
        .problem(403, "ip_not_allowed");

    // `null` allows every address again.
    let lifted = app
        .patch(
            &format!("/v1/api-keys/{id}"),
            &org.key,
            json!({ "allowed_cidrs": null }),
        )
        .await;
    assert_eq!(lifted.body["allowed_cidrs"], Value::Null);
    assert_eq!(me_from(&app, &key, None).await.status, StatusCode::OK);

    // The refusals were counted for the audit log, with the reason.
    app.state.flush_usage().await.unwrap();
    let events = app
        .get("/v1/audit-events?action=auth.failed", &org.key)
        .await;
    let failure = &events.body["data"][0];
    assert_eq!(
        failure["changes"]["reason"]["after"], "ip_not_allowed",
        "{failure}"
    );
    assert_eq!(failure["changes"]["count"]["after"], 2, "{failure}");
}

#[tokio::test]
async fn an_ipv6_rule_admits_its_range_and_refuses_the_rest() {
    let app = TestApp::spawn_listening("[::1]:0", Config::default()).await;
    let org = app.bootstrap("Acme").await;
    let (_, inside) = limited_key(&app, &org.key, &["::1"]).await;
    let (_, outside) = limited_key(&app, &org.key, &["2001:db8::/32", "127.0.0.0/8"]).await;
    assert_eq!(me_from(&app, &inside, None).await.status, StatusCode::OK);
    let refused = me_from(&app, &outside, None).await;
    refused.problem(403, "ip_not_allowed");
    assert!(refused.body["detail"].as_str().unwrap().contains("::1"));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_right_most_untrusted_address_is_the_client() {
    let app = TestApp::spawn_with(trusting(&["127.0.0.1", "10.0.0.0/8"])).await;
    let org = app.bootstrap("Acme").await;
    let (id, v4) = limited_key(&app, &org.key, &["203.0.113.0/24"]).await;
    let (_, v6) = limited_key(&app, &org.key, &["2001:db8:1::/48"]).await;

    let cases = [
        (&v4, "203.0.113.9", StatusCode::OK),
        // The proxy chain: client, then an inner trusted proxy.
        (&v4, "203.0.113.9, 10.1.2.3", StatusCode::OK),
        // A client's own forged entry sits left of the one its proxy appended.
        (&v4, "203.0.113.9, 198.51.100.1", StatusCode::FORBIDDEN),
        (&v4, "198.51.100.1", StatusCode::FORBIDDEN),
        (&v6, "2001:db8:1::42", StatusCode::OK),
        (&v6, "[2001:db8:1::42]:51000", StatusCode::OK),
        (&v6, "2001:db8:2::42", StatusCode::FORBIDDEN),
        (&v6, "203.0.113.9", StatusCode::FORBIDDEN),
    ];
    for (key, forwarded, status) in cases {
        let answer = me_from(&app, key, Some(forwarded)).await;
        assert_eq!(answer.status, status, "{forwarded}: {}", answer.body);
    }
    // A client's entry that is not text does not hide the one its proxy appended.
    let raw = reqwest::header::HeaderValue::from_bytes(b"\xc3\xa9, 198.51.100.7").unwrap();
    let (_, internal) = limited_key(&app, &org.key, &["127.0.0.0/8"]).await;
    let request = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(&internal)
        .header("x-forwarded-for", raw);
    read(request.send().await.unwrap())
        .await
        .problem(403, "ip_not_allowed");
    // No X-Forwarded-For: the proxy itself is the client.
    me_from(&app, &v4, None)
        .await
        .problem(403, "ip_not_allowed");

    // The address behind the proxy is what the credential's last addresses record.
    app.state.flush_usage().await.unwrap();
    let shown = app.get(&format!("/v1/api-keys/{id}"), &org.key).await;
    assert_eq!(
        shown.body["last_addresses"][0]["ip"], "203.0.113.9",
        "{}",
        shown.body
    );
}

#[tokio::test]
async fn bad_ranges_are_refused_with_what_is_wrong() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let too_many: Vec<String> = (0..65).map(|i| format!("10.0.{i}.0/24")).collect();
    let cases = [
        (json!(["10.1.2.3/8"]), "10.0.0.0/8"),
        (json!(["192.0.2.0/33"]), "0 to 32"),
        (json!(["example.com"]), "not an IPv4 or IPv6"),
        (json!([]), "at least one range"),
        (json!(too_many), "at most 64"),
    ];
    for (ranges, said) in cases {
        let answer = app
            .post(
                "/v1/api-keys",
                &org.key,
                json!({ "name": "x", "scopes": ["instances:read"], "allowed_cidrs": ranges }),
            )
            .await;
        let problem = answer.problem(422, "validation_failed");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert_eq!(problem["errors"][0]["field"], "allowed_cidrs");
        assert!(message.contains(said), "{ranges}: {message}");
    }
    let wrong_type = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "x", "scopes": ["instances:read"], "allowed_cidrs": "10.0.0.0/8" }),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        app.store
            .scope_usage(keyward_core::Timestamp::now())
            .await
            .unwrap()
            .len()
            == 1
    );
}

#[tokio::test]
async fn a_limited_key_grants_only_ranges_inside_its_own_and_cannot_lift_its_own() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({
                "name": "limited admin",
                "scopes": ["api_keys:write", "api_keys:read", "instances:read"],
                "allowed_cidrs": ["127.0.0.0/8"],
            }),
        )
        .await;
    let own_id = created.body["id"].as_str().unwrap().to_owned();
    let limited = created.body["key"].as_str().unwrap().to_owned();
    for ranges in [
        Value::Null,
        json!(["0.0.0.0/0"]),
        json!(["127.0.0.0/8", "10.0.0.1"]),
    ] {
        let refused = app
            .post(
                "/v1/api-keys",
                &limited,
                json!({ "name": "x", "scopes": ["instances:read"], "allowed_cidrs": ranges }),
            )
            .await;
        let problem = refused.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "allowed_cidrs", "{ranges}");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("127.0.0.0/8")
        );
    }
    let inside = app
        .post(
            "/v1/api-keys",
            &limited,
            json!({ "name": "x", "scopes": ["instances:read"], "allowed_cidrs": ["127.0.0.1"] }),
        )
        .await;
    assert_eq!(inside.status, StatusCode::CREATED, "{}", inside.body);
    let child = inside.body["id"].as_str().unwrap();
    // It cannot widen a key it made beyond its own ranges, nor lift its own.
    let widened = app
        .patch(
            &format!("/v1/api-keys/{child}"),
            &limited,
            json!({ "allowed_cidrs": null }),
        )
        .await;
    widened.problem(422, "validation_failed");
    let own = app
        .patch(
            &format!("/v1/api-keys/{own_id}"),
            &limited,
            json!({ "allowed_cidrs": null }),
        )
        .await;
    let problem = own.problem(422, "validation_failed");
    assert!(problem["detail"].as_str().unwrap().contains("its own"));
    let stored = app.get(&format!("/v1/api-keys/{own_id}"), &org.key).await;
    assert_eq!(stored.body["allowed_cidrs"], json!(["127.0.0.0/8"]));

    // Nor can it bring in a person, who would sign in from anywhere.
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({
                "name": "limited members", "scopes": ["members:write"],
                "allowed_cidrs": ["127.0.0.0/8"],
            }),
        )
        .await;
    let members_key = created.body["key"].as_str().unwrap();
    let refused = app
        .post(
            "/v1/members",
            members_key,
            json!({ "email": "grace@example.com", "role": "admin" }),
        )
        .await;
    let problem = refused.problem(403, "forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("limited to networks")
    );
}

#[tokio::test]
async fn rotation_keeps_the_network_rules_and_changes_are_audited() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (id, _) = limited_key(&app, &org.key, &["192.0.2.0/24"]).await;
    let rotated = app
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 0 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(rotated.body["allowed_cidrs"], json!(["192.0.2.0/24"]));
    let new_key = rotated.body["key"].as_str().unwrap();
    me_from(&app, new_key, None)
        .await
        .problem(403, "ip_not_allowed");

    let events = app
        .get("/v1/audit-events?action=api_key.created", &org.key)
        .await;
    assert_eq!(
        events.body["data"][0]["changes"]["allowed_cidrs"]["after"],
        json!(["192.0.2.0/24"]),
        "{}",
        events.body
    );
    let new_id = rotated.body["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/api-keys/{new_id}"),
        &org.key,
        json!({ "allowed_cidrs": ["192.0.2.0/25"] }),
    )
    .await;
    let updated = app
        .get("/v1/audit-events?action=api_key.updated", &org.key)
        .await;
    let changes = &updated.body["data"][0]["changes"];
    assert_eq!(changes["allowed_cidrs"]["before"], json!(["192.0.2.0/24"]));
    assert_eq!(changes["allowed_cidrs"]["after"], json!(["192.0.2.0/25"]));
}

#[tokio::test]
async fn verification_endpoints_check_the_address_they_are_given() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = limited_key(&app, &org.key, &["192.0.2.0/24", "2001:db8::/32"]).await;
    let verify = |client_ip: Value| {
        let mut body = json!({ "key": key });
        if !client_ip.is_null() {
            body["client_ip"] = client_ip;
        }
        app.post("/v1/keys/verify", &org.key, body)
    };
    for (client_ip, code) in [
        (json!("192.0.2.7"), "VALID"),
        (json!("2001:db8::9"), "VALID"),
        (json!("198.51.100.1"), "IP_NOT_ALLOWED"),
        // The caller's own address is not the client's: no address, no pass.
        (Value::Null, "IP_NOT_ALLOWED"),
    ] {
        let answer = verify(client_ip.clone()).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body["code"], code, "{client_ip}: {}", answer.body);
        assert_eq!(answer.body["valid"], code == "VALID");
    }
    verify(json!("not an address"))
        .await
        .problem(422, "validation_failed");

    let inside = introspect(
        &app,
        &org.key,
        &[("token", &key), ("client_ip", "192.0.2.8")],
    )
    .await;
    assert_eq!(inside.body["active"], true, "{}", inside.body);
    let outside = introspect(
        &app,
        &org.key,
        &[("token", &key), ("client_ip", "198.51.100.1")],
    )
    .await;
    assert_eq!(outside.body, json!({ "active": false }));
    let without = introspect(&app, &org.key, &[("token", &key)]).await;
    assert_eq!(without.body, json!({ "active": false }));
    let bad = introspect(&app, &org.key, &[("token", &key), ("client_ip", "x")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn introspect(app: &TestApp, caller: &str, form: &[(&str, &str)]) -> Answer {
    app.call_form(
        reqwest::Method::POST,
        "/oauth/introspect",
        Some(caller),
        form,
    )
    .await
}

#[tokio::test]
async fn forward_authentication_sees_the_client_behind_the_gateway() {
    let app = TestApp::spawn_with(Config {
        trusted_proxies: trusting(&["127.0.0.1"]).trusted_proxies,
        ..crate::forward_auth::platform()
    })
    .await;
    let org = app.bootstrap("Acme").await;
    let (_, key) = limited_key(&app, &org.key, &["203.0.113.0/24"]).await;
    let ask = |forwarded: &'static str| {
        let request = app
            .client
            .get(app.url("/v1/forward-auth"))
            .bearer_auth(&key)
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", "/status/ok")
            .header("x-forwarded-for", forwarded);
        async move { read(request.send().await.unwrap()).await }
    };
    assert_eq!(ask("203.0.113.50").await.status, StatusCode::OK);
    ask("198.51.100.1").await.problem(403, "ip_not_allowed");
}

#[tokio::test]
async fn the_log_in_throttle_tells_clients_behind_a_trusted_proxy_apart() {
    for trusted in [false, true] {
        let config = if trusted {
            trusting(&["127.0.0.1"])
        } else {
            Config::default()
        };
        let app = TestApp::spawn_with(config).await;
        Visitor::new(&app).sign_up("ada@example.com", "Acme").await;
        let from = |address: &str| {
            let mut visitor = Visitor::new(&app);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("x-forwarded-for", address.parse().unwrap());
            visitor.http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers)
                .build()
                .unwrap();
            visitor
        };
        let mut attacker = from("198.51.100.1");
        for _ in 0..5 {
            let wrong = attacker.log_in("ada@example.com", "wrong password!").await;
            assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        }
        let ada = from("203.0.113.9")
            .log_in("ada@example.com", crate::dashboard::PASSWORD)
            .await;
        let email = Email::parse("ada@example.com").unwrap();
        if trusted {
            assert_eq!(ada.status, StatusCode::SEE_OTHER, "{}", ada.body);
            let failures = app.store.login_failures(&email, "198.51.100.1").await;
            assert!(
                failures.unwrap().is_some(),
                "counted for the attacker's address"
            );
        } else {
            // Without trusting the proxy, everyone behind it is one client.
            assert_eq!(ada.status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
}

#[tokio::test]
async fn the_dashboard_sets_shows_and_changes_network_rules() {
    let app = TestApp::spawn().await;
    let mut ada = Visitor::new(&app);
    ada.sign_up("ada@example.com", "Acme").await;
    let form = ada.get("/settings/api-keys/new").await;
    assert!(form.body.contains("id=\"allowed_cidrs\""));
    let csrf = form.csrf_token();
    let request_id = form.request_id();
    let mut fields = vec![
        ("csrf_token", csrf.as_str()),
        ("request_id", request_id.as_str()),
        ("name", "office only"),
        ("expires_in", "never"),
        ("scopes", "instances:read"),
        ("allowed_cidrs", "10.0.0.0/33"),
    ];
    let refused = ada.post("/settings/api-keys", &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("id=\"networks-error\""));
    assert!(refused.body.contains("10.0.0.0/33"), "what was typed stays");

    fields[5] = ("allowed_cidrs", "192.0.2.0/24\r\n2001:db8::/32");
    let created = ada.post("/settings/api-keys", &fields).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let key = shown_key(&created);
    me_from(&app, &key, None)
        .await
        .problem(403, "ip_not_allowed");

    let list = ada.get("/settings/api-keys").await;
    assert!(
        list.body.contains("192.0.2.0/24, 2001:db8::/32"),
        "{}",
        list.body
    );
    let marker = "/edit\"";
    let end = list.body.find(marker).expect("an Edit link");
    let start = list.body[..end].rfind("href=\"").unwrap() + 6;
    let page_url = format!("{}/edit", &list.body[start..end]);
    let page = ada.get(&page_url).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("192.0.2.0/24\n2001:db8::/32"),
        "{}",
        page.body
    );

    let csrf = page.csrf_token();
    let bad = ada
        .post(
            &page_url,
            &[("csrf_token", &csrf), ("allowed_cidrs", "nope")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("`nope`"));
    let saved = ada
        .post(
            &page_url,
            &[("csrf_token", &csrf), ("allowed_cidrs", "127.0.0.1")],
        )
        .await;
    assert_eq!(saved.location(), "/settings/api-keys?notice=saved");
    assert_eq!(me_from(&app, &key, None).await.status, StatusCode::OK);
    let cleared = ada
        .post(&page_url, &[("csrf_token", &csrf), ("allowed_cidrs", "  ")])
        .await;
    assert_eq!(cleared.location(), "/settings/api-keys?notice=saved");
    let list = ada.get("/settings/api-keys").await;
    assert!(!list.body.contains("Only from"));
}
