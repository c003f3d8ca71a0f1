//! Revocation reaching a service that verifies keys in its own memory: one Keyward node (on
//! SQLite, or on `DATABASE_URL`'s PostgreSQL) and the `keyward-verify` example service,
//! following `GET /v1/keys/events`. Each round creates a key, uses it on the service until
//! it is cached, revokes it through Keyward, and polls the service until it refuses the key.
//! Prints p50 / p99 / max of the time from Keyward's revocation answer to the service's first
//! refusal, and how often the service asked Keyward about a warm key (it must never).
//!
//! `bench/stream-revocation.sh` runs it:
//! `cargo bench -p keyward-server --bench stream_revocation`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keyward_core::Brand;
use keyward_core::password::Password;
use keyward_server::bootstrap::bootstrap_organization;
use keyward_server::{AppState, Config};
use keyward_verify::{Verifier, VerifierConfig};
use serde_json::{Value, json};

const ROUNDS: usize = 200;

fn main() {
    let rounds: usize = std::env::var("KEYWARD_REVOCATION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("keyward.db").display()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = keyward_store::open(&url).await.unwrap();
        let admin = bootstrap_organization(
            store.as_ref(),
            &Brand::default(),
            &Default::default(),
            "Bench",
            "bench@example.com",
            Some(Password::parse("a long bench password".into()).unwrap()),
            keyward_core::Timestamp::now(),
        )
        .await
        .unwrap();
        let admin = admin.key.expose_secret().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let keyward = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(store.clone(), Config::default());
        tokio::spawn(keyward_server::serve(
            listener,
            state,
            std::future::pending(),
        ));
        let client = reqwest::Client::new();
        let create = |name: String, scopes: Vec<&'static str>| {
            let (client, keyward, admin) = (client.clone(), keyward.clone(), admin.clone());
            async move {
                let created: Value = client
                    .post(format!("{keyward}/v1/api-keys"))
                    .bearer_auth(&admin)
                    .json(&json!({ "name": name, "scopes": scopes }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (
                    created["id"].as_str().unwrap().to_owned(),
                    created["key"].as_str().unwrap().to_owned(),
                )
            }
        };
        let (_, service_key) = create("Service".into(), vec!["keys:verify"]).await;
        let verifier = Verifier::new(VerifierConfig::new(keyward.clone(), service_key));
        verifier.follow();
        while !verifier.synced() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let service_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = format!(
            "http://{}/databases",
            service_listener.local_addr().unwrap()
        );
        let app = keyward_verify::example::router(verifier.clone());
        tokio::spawn(async move {
            axum::serve(
                service_listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        // The example service's scope, which the built-in catalog lacks: it answers 403
        // for a valid key without it, 401 once the key is revoked.
        let warm_calls = verifier.keyward_calls();
        let mut millis = Vec::with_capacity(rounds);
        let mut warm_asks = 0;
        for round in 0..rounds {
            let (id, key) = create(format!("round {round}"), vec!["instances:read"]).await;
            let status = |key: String| {
                let (client, service) = (client.clone(), service.clone());
                async move {
                    client
                        .get(&service)
                        .bearer_auth(key)
                        .send()
                        .await
                        .unwrap()
                        .status()
                }
            };
            assert_eq!(
                status(key.clone()).await,
                403,
                "verified, lacking the scope"
            );
            let before = verifier.keyward_calls();
            assert_eq!(status(key.clone()).await, 403, "warm");
            warm_asks += verifier.keyward_calls() - before;
            let revoked = client
                .delete(format!("{keyward}/v1/api-keys/{id}"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(revoked.status(), 204);
            let started = Instant::now();
            loop {
                if status(key.clone()).await == 401 {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(10), "never refused");
            }
            millis.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        millis.sort_by(f64::total_cmp);
        let at = |p: f64| millis[((millis.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "revocation reaching a keyward-verify service, {rounds} rounds: p50 {:.2} ms, \
             p99 {:.2} ms, max {:.2} ms; Keyward asked about a warm key {warm_asks} times \
             ({} calls in all since the stream was caught up)",
            at(0.5),
            at(0.99),
            millis[millis.len() - 1],
            verifier.keyward_calls() - warm_calls,
        );
        store.close().await;
    });
}
