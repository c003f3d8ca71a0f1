//! Revocation across nodes: two Keyward nodes (each with its own connection pool, listener and
//! verification cache) share one throw-away PostgreSQL. Each round creates a key through node
//! A, uses it on both nodes so both cache it, revokes it through A, and polls node B until it
//! refuses the key. Prints p50 / p99 / max of the time from A's revocation answer to B's
//! first refusal.
//!
//! `bench/revocation.sh` runs it: `cargo bench -p keyward-server --bench revocation`.

use std::time::{Duration, Instant};

use keyward_core::Brand;
use keyward_core::password::Password;
use keyward_server::bootstrap::bootstrap_organization;
use keyward_server::{AppState, Config};
use keyward_store::testing::TempPostgres;
use serde_json::{Value, json};

const ROUNDS: usize = 200;

async fn node(url: &str) -> String {
    let store = keyward_store::open(url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = AppState::new(store, Config::default());
    tokio::spawn(keyward_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    format!("http://{address}")
}

fn main() {
    let rounds: usize = std::env::var("KEYWARD_REVOCATION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    let cluster = TempPostgres::start()
        .unwrap_or_else(|error| panic!("{error}"))
        .expect("this benchmark needs PostgreSQL (Debian package postgresql)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = cluster.create_database().await.unwrap();
        let a = node(&url).await;
        let b = node(&url).await;
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
        let client = reqwest::Client::new();
        // Let both nodes' listeners start before the first round.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let mut millis = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let created: Value = client
                .post(format!("{a}/v1/api-keys"))
                .bearer_auth(&admin)
                .json(&json!({ "name": format!("round {round}"), "scopes": ["instances:read"] }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let key = created["key"].as_str().unwrap();
            let id = created["id"].as_str().unwrap();
            for node in [&a, &b] {
                let status = client.get(format!("{node}/v1/me")).bearer_auth(key).send().await.unwrap().status();
                assert_eq!(status, 200, "warm");
            }
            let revoked = client
                .delete(format!("{a}/v1/api-keys/{id}"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(revoked.status(), 204);
            let started = Instant::now();
            loop {
                let status = client.get(format!("{b}/v1/me")).bearer_auth(key).send().await.unwrap().status();
                if status == 401 {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(10), "never propagated");
            }
            millis.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        millis.sort_by(f64::total_cmp);
        let at = |p: f64| millis[((millis.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "revocation reaching the other node, {rounds} rounds: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            at(0.5),
            at(0.99),
            millis[millis.len() - 1]
        );
        store.close().await;
    });
}
