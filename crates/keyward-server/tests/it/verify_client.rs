//! `keyward-verify` against a real server: the example service verifies keys in its own
//! memory, follows revocations through `GET /v1/keys/events`, and drops its cache when the
//! stream drops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyward_verify::{Verifier, VerifierConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::forward_auth::platform;
use crate::helpers::{Answer, TestApp, read, serve_beside};

/// The example service, with `verifier`, on a free port.
async fn example_service(verifier: Verifier) -> String {
    let address = serve_beside(keyward_verify::example::router(verifier)).await;
    format!("http://{address}")
}

/// A node, an organization on it, and a verifier with the organization's `keys:verify` key
/// that follows its changes and has caught up.
async fn followed() -> (TestApp, crate::helpers::Org, Verifier) {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;
    let (_, service_key) = app
        .create_key(&org.key, "Example service", &["keys:verify"])
        .await;
    let verifier = Verifier::new(VerifierConfig::new(app.url(""), service_key));
    verifier.follow();
    until_synced(&verifier, true).await;
    (app, org, verifier)
}

async fn until_synced(verifier: &Verifier, synced: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while verifier.synced() != synced {
        assert!(Instant::now() < deadline, "synced never became {synced}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The whole answer to `GET url` with `key`.
async fn answer(client: &reqwest::Client, url: &str, key: &str) -> Answer {
    read(client.get(url).bearer_auth(key).send().await.unwrap()).await
}

async fn status(client: &reqwest::Client, url: &str, key: &str) -> StatusCode {
    client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_example_service_answers_from_memory_and_refuses_a_revoked_key_within_100_ms() {
    let (app, org, verifier) = followed().await;
    let service = example_service(verifier.clone()).await;
    let databases = format!("{service}/databases");
    let client = reqwest::Client::new();

    // Keyward's refusals and scopes, as its own API gives them.
    let (reader_id, reader) = app
        .create_key(&org.key, "Reader", &["databases:read"])
        .await;
    let missing = read(client.get(&databases).send().await.unwrap()).await;
    missing.problem(401, "missing_credentials");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    answer(&client, &databases, "kwk_unknown")
        .await
        .problem(401, "invalid_token");
    let listed = answer(&client, &databases, &reader).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["key_id"], reader_id.as_str());
    assert_eq!(listed.body["organization_id"], org.id.to_string().as_str());
    let creating = client
        .post(format!("{service}/databases/prj_x"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    read(creating).await.problem(403, "insufficient_scope");

    // A project token reaches its own project only.
    let project = app.create_project(&org.key, "Mine").await;
    let token = app
        .create_token(&org.key, &project, &["databases:write"])
        .await;
    let create = |project: String| {
        client
            .post(format!("{service}/databases/{project}"))
            .bearer_auth(&token)
            .send()
    };
    let own = read(create(project.clone()).await.unwrap()).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.body["project_id"], project.as_str());
    read(create("prj_someone_elses".into()).await.unwrap())
        .await
        .problem(403, "forbidden");

    // A warm key never reaches Keyward.
    let asked = verifier.keyward_calls();
    for _ in 0..50 {
        assert_eq!(status(&client, &databases, &reader).await, StatusCode::OK);
    }
    assert_eq!(verifier.keyward_calls(), asked, "answered from memory");

    // Revoked in Keyward: refused by the service within 100 ms, every time.
    let mut latencies = Vec::new();
    for round in 0..20 {
        let (id, key) = app
            .create_key(&org.key, &format!("Round {round}"), &["databases:read"])
            .await;
        assert_eq!(status(&client, &databases, &key).await, StatusCode::OK);
        assert_eq!(status(&client, &databases, &key).await, StatusCode::OK);
        let revoked = app.delete(&format!("/v1/api-keys/{id}"), &org.key).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT);
        let revoked_at = Instant::now();
        loop {
            let answer = status(&client, &databases, &key).await;
            if answer == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(answer, StatusCode::OK);
            assert!(
                revoked_at.elapsed() < Duration::from_secs(5),
                "still accepted 5 s after its revocation"
            );
        }
        latencies.push(revoked_at.elapsed());
    }
    latencies.sort();
    eprintln!(
        "revocation to refusal through the stream: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(
        latencies[latencies.len() - 1] <= Duration::from_millis(100),
        "{latencies:?}"
    );

    // A key whose uses Keyward counts is asked about every time: its rate limit holds.
    let limited = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "Limited", "scopes": ["databases:read"], "rate_limit": { "requests": 2, "per_seconds": 3600 } }),
        )
        .await;
    let limited = limited.body["key"].as_str().unwrap().to_owned();
    let asked = verifier.keyward_calls();
    assert_eq!(status(&client, &databases, &limited).await, StatusCode::OK);
    assert_eq!(status(&client, &databases, &limited).await, StatusCode::OK);
    let refused = answer(&client, &databases, &limited).await;
    refused.problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(verifier.keyward_calls(), asked + 3);
}

/// A TCP relay to `target` that the test can cut.
struct Relay {
    address: SocketAddr,
    blocked: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn to(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let blocked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (is_blocked, tasks) = (blocked.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if is_blocked.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        });
        Self {
            address,
            blocked,
            connections,
        }
    }

    /// Breaks every open connection and refuses new ones until `restore`.
    fn cut(&self) {
        self.blocked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.blocked
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_dropped_stream_drops_the_cache_until_it_is_back_and_misses_nothing() {
    let app = TestApp::spawn_with(platform()).await;
    let org = app.bootstrap("Acme").await;
    let (_, service_key) = app
        .create_key(&org.key, "Example service", &["keys:verify"])
        .await;
    let relay = Relay::to(app.address).await;
    let verifier = Verifier::new(VerifierConfig::new(
        format!("http://{}", relay.address),
        service_key,
    ));
    verifier.follow();
    until_synced(&verifier, true).await;
    let service = example_service(verifier.clone()).await;
    let databases = format!("{service}/databases");
    let client = reqwest::Client::new();
    let (one_id, one) = app.create_key(&org.key, "One", &["databases:read"]).await;
    let (_, two) = app.create_key(&org.key, "Two", &["databases:read"]).await;
    for key in [&one, &two] {
        assert_eq!(status(&client, &databases, key).await, StatusCode::OK);
    }
    assert_eq!(verifier.cached(), 2);

    // The stream drops: so does the cache, and with Keyward out of reach, keys are refused
    // (503), never let through on an old answer.
    relay.cut();
    until_synced(&verifier, false).await;
    assert_eq!(verifier.cached(), 0);
    answer(&client, &databases, &one)
        .await
        .problem(503, "unavailable");
    // A change made meanwhile...
    let revoked = app
        .delete(&format!("/v1/api-keys/{one_id}"), &org.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);

    // ...is honoured once the stream is back; the other key is cached again.
    relay.restore();
    until_synced(&verifier, true).await;
    answer(&client, &databases, &one)
        .await
        .problem(401, "invalid_token");
    let asked = verifier.keyward_calls();
    for _ in 0..3 {
        assert_eq!(status(&client, &databases, &two).await, StatusCode::OK);
    }
    assert_eq!(
        verifier.keyward_calls(),
        asked + 1,
        "cached after the first"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_keys_networks_are_checked_against_the_client_it_forwards_for() {
    let (app, org, verifier) = followed().await;
    // The proxy's own network is where the key may be used from; its clients are elsewhere.
    let created = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "Office", "scopes": ["databases:read"], "allowed_cidrs": ["127.0.0.0/8"] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let office = created.body["key"].as_str().unwrap().to_owned();
    let who = |caller: keyward_verify::Caller| async move { caller.key_id.clone() };
    let service = |layer: keyward_verify::VerifyLayer| {
        serve_beside(
            axum::Router::new()
                .route("/who", axum::routing::get(who))
                .layer(layer),
        )
    };
    let behind = service(
        keyward_verify::VerifyLayer::new(verifier.clone())
            .trusted_proxies([keyward_verify::Cidr::parse("127.0.0.1").unwrap()]),
    )
    .await;
    let direct = service(keyward_verify::VerifyLayer::new(verifier.clone())).await;
    let client = reqwest::Client::new();
    let from = |address: SocketAddr, forwarded: &'static str| {
        let request = client
            .get(format!("http://{address}/who"))
            .bearer_auth(&office)
            .header("x-forwarded-for", forwarded);
        async move { read(request.send().await.unwrap()).await }
    };

    // Through the proxy, the client forwarded for is the one checked.
    from(behind, "203.0.113.9")
        .await
        .problem(403, "ip_not_allowed");
    assert_eq!(from(behind, "127.0.0.9").await.status, StatusCode::OK);
    // A client behind the proxy cannot pass as the proxy's network, whatever it sends.
    from(behind, "127.0.0.9, 203.0.113.9")
        .await
        .problem(403, "ip_not_allowed");
    // Without trusted proxies, the header is the client's word and is not believed.
    assert_eq!(from(direct, "203.0.113.9").await.status, StatusCode::OK);
}
