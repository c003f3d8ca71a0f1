//! Provisioning through the API, as a platform's backend does with one admin key: on SQLite
//! (a fresh file) and on a throw-away PostgreSQL, one node each,
//!
//! PostgreSQL runs with its defaults (every commit flushed), as SQLite runs with
//! `synchronous = FULL`: the numbers include durability on both.
//!
//! 1. `POST /v1/organizations` throughput: `CONCURRENCY` clients creating organizations with
//!    distinct external ids for `KEYWARD_PROVISION_SECONDS` (default 10): requests/s, p50,
//!    p99;
//! 2. the time to provision `KEYWARD_PROVISION_ORGANIZATIONS` (default 10,000) organizations
//!    with one key each: `POST /v1/organizations`, then `POST /v1/api-keys` acting for it.
//!
//! Client and server share the machine (127.0.0.1), as with the wrk benchmarks.
//! `bench/provision.sh` runs it: `cargo bench -p keyward-server --bench provision`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keyward_core::{Brand, ScopeCatalog, Timestamp};
use keyward_server::{AppState, Config};
use keyward_store::testing::TempPostgres;
use serde_json::json;

const CONCURRENCY: usize = 16;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A node on `url` and an admin key for it.
async fn node(url: &str) -> (String, String) {
    let store = keyward_store::open(url).await.unwrap();
    let scopes: Vec<String> = [
        "organizations:write",
        "organizations:act",
        "api_keys:write",
        "api_keys:read",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let admin = keyward_server::admin_keys::create_admin_key(
        store.as_ref(),
        &Brand::default(),
        &ScopeCatalog::builtin(),
        "bench",
        &scopes,
        None,
        Timestamp::now(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = AppState::new(store, Config::default());
    tokio::spawn(keyward_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    (
        format!("http://{address}"),
        admin.key.expose_secret().to_owned(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

async fn create_organization(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    external_id: &str,
) -> String {
    let answer = client
        .post(format!("{base}/v1/organizations"))
        .bearer_auth(admin)
        .json(&json!({ "name": "Bench customer", "external_id": external_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
    let body: serde_json::Value = answer.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// Organizations created per second by `CONCURRENCY` clients for `seconds`.
async fn throughput(base: &str, admin: &str, seconds: u64) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next, base, admin) = (
            client.clone(),
            next.clone(),
            base.to_owned(),
            admin.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                create_organization(&client, &base, &admin, &format!("load_{n}")).await;
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "  POST /v1/organizations: {} in {elapsed:.1} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms \
         ({CONCURRENCY} clients)",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
}

/// `count` organizations with one key each, by `CONCURRENCY` clients.
async fn provision(base: &str, admin: &str, count: usize) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next, base, admin) = (
            client.clone(),
            next.clone(),
            base.to_owned(),
            admin.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let external_id = format!("cus_{n}");
                let organization = create_organization(&client, &base, &admin, &external_id).await;
                let key = client
                    .post(format!("{base}/v1/api-keys"))
                    .bearer_auth(&admin)
                    .header("keyward-organization", organization)
                    .json(&json!({
                        "name": "Production",
                        "scopes": ["api_keys:read"],
                        "external_id": format!("user_{n}"),
                        "meta": { "plan": "pro" },
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(key.status(), 201, "{}", key.text().await.unwrap());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "  {count} organizations with one key each: {elapsed:.1} s ({:.0} organizations/s, \
         {:.0} requests/s)",
        count as f64 / elapsed,
        2.0 * count as f64 / elapsed,
    );
}

fn main() {
    let seconds = setting("KEYWARD_PROVISION_SECONDS", 10);
    let count = setting("KEYWARD_PROVISION_ORGANIZATIONS", 10_000) as usize;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("keyward.db").display());
    // Durable, as SQLite is here (`synchronous = FULL`): every commit reaches the disk.
    let cluster = TempPostgres::start_durable()
        .unwrap_or_else(|error| panic!("{error}"))
        .expect("this benchmark needs PostgreSQL (Debian package postgresql)");
    runtime.block_on(async {
        for (backend, url) in [
            ("SQLite", sqlite.clone()),
            ("PostgreSQL", cluster.create_database().await.unwrap()),
        ] {
            println!("{backend}:");
            let (base, admin) = node(&url).await;
            throughput(&base, &admin, seconds).await;
            let (base, admin) = node(&match backend {
                "SQLite" => format!("sqlite://{}", dir.path().join("provision.db").display()),
                _ => cluster.create_database().await.unwrap(),
            })
            .await;
            provision(&base, &admin, count).await;
        }
    });
}
