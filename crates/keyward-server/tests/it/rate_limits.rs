//! Rate limits shared by several nodes on one PostgreSQL database: what every node allows
//! together stays within the documented bound (docs/deploy.md), with requests spread evenly
//! or unevenly over the nodes; and with the database away, each node limits on its own.

use std::time::{Duration, Instant};

use keyward_store::testing::TempPostgres;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

/// The limit under test: 100 requests per 5 s (a burst of 100, then 20 a second).
const REQUESTS: usize = 100;
const PER_SECONDS: u64 = 5;
const RUN: Duration = Duration::from_secs(60);
/// Requests a second each key is sent: five times its sustained rate.
const SENT_PER_SECOND: u64 = 100;

async fn limited_key(app: &TestApp, with: &str, name: &str) -> String {
    let created = app
        .post(
            "/v1/api-keys",
            with,
            json!({
                "name": name,
                "scopes": ["instances:read"],
                "rate_limit": { "requests": REQUESTS, "per_seconds": PER_SECONDS },
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["key"].as_str().unwrap().to_owned()
}

/// Sends `key` [`SENT_PER_SECOND`] requests a second for [`RUN`], request `i` to the node
/// `weights` picks for it (node `n` gets `weights[n]` of every `sum(weights)`); returns when
/// each allowed request was answered, in seconds from the start.
async fn drive(nodes: &[TestApp], key: &str, weights: &[usize]) -> Vec<f64> {
    let cycle: Vec<usize> = weights
        .iter()
        .enumerate()
        .flat_map(|(node, &weight)| std::iter::repeat_n(node, weight))
        .collect();
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / SENT_PER_SECOND));
    let mut sent = tokio::task::JoinSet::new();
    let mut i = 0;
    while start.elapsed() < RUN {
        ticker.tick().await;
        let node = &nodes[cycle[i % cycle.len()]];
        i += 1;
        let request = node.client.get(node.url("/v1/instances")).bearer_auth(key);
        sent.spawn(async move {
            let status = request.send().await.map(|answer| answer.status());
            (status, start.elapsed().as_secs_f64())
        });
    }
    let mut allowed = Vec::new();
    while let Some(done) = sent.join_next().await {
        let (status, at) = done.unwrap();
        match status.unwrap() {
            StatusCode::OK => allowed.push(at),
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    allowed.sort_by(f64::total_cmp);
    allowed
}

/// What one run allowed, by window of the limit's length.
#[derive(Debug)]
struct Windows {
    /// The most allowed in any window, wherever it starts.
    most: usize,
    /// The most and the fewest in the windows that start once the first burst has been spent
    /// (from two windows in), every 100 ms.
    steady_most: usize,
    steady_fewest: usize,
}

fn windows(allowed: &[f64]) -> Windows {
    let length = PER_SECONDS as f64;
    let in_window = |from: f64| {
        allowed
            .iter()
            .filter(|&&at| at >= from && at < from + length)
            .count()
    };
    let most = allowed.iter().map(|&at| in_window(at)).max().unwrap_or(0);
    let starts: Vec<f64> = (0..)
        .map(|step| 2.0 * length + f64::from(step) * 0.1)
        .take_while(|from| from + length <= RUN.as_secs_f64())
        .collect();
    let steady: Vec<usize> = starts.iter().map(|&from| in_window(from)).collect();
    Windows {
        most,
        steady_most: steady.iter().copied().max().unwrap_or(0),
        steady_fewest: steady.iter().copied().min().unwrap_or(0),
    }
}

/// `count` nodes on one database; two keys driven at once, one spread evenly and one as
/// `uneven` says; every window of the run within the bound.
async fn nodes_share_the_limit(count: usize, uneven: &[usize]) {
    let Some(cluster) = TempPostgres::start().unwrap_or_else(|error| panic!("{error}")) else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let mut nodes = Vec::new();
    for _ in 0..count {
        nodes.push(TestApp::spawn_on(&url).await);
    }
    let org = nodes[0].bootstrap("Acme").await;
    let even_key = limited_key(&nodes[0], &org.key, "Even").await;
    let uneven_key = limited_key(&nodes[0], &org.key, "Uneven").await;
    let even_weights = vec![1; count];
    let (even, uneven) = tokio::join!(
        drive(&nodes, &even_key, &even_weights),
        drive(&nodes, &uneven_key, uneven)
    );
    // Over any window as long as the limit's: at most the allowance plus the burst plus a
    // tenth (docs/deploy.md). Once the burst is spent: the allowance, give or take a tenth.
    let bound = 2 * REQUESTS + REQUESTS / 10;
    for (spread, allowed) in [("even", &even), ("uneven", &uneven)] {
        let seen = windows(allowed);
        eprintln!(
            "{count} nodes, {spread}: {} allowed of {}; {seen:?}",
            allowed.len(),
            RUN.as_secs() * SENT_PER_SECOND
        );
        assert!(seen.most <= bound, "{count} nodes, {spread}: {seen:?}");
        assert!(
            seen.steady_most <= REQUESTS + REQUESTS / 10,
            "{count} nodes, {spread}: {seen:?}"
        );
        assert!(
            seen.steady_fewest >= REQUESTS - REQUESTS / 10,
            "{count} nodes, {spread}: {seen:?}"
        );
    }
    for node in nodes {
        node.store.close().await;
    }
}

#[tokio::test]
async fn two_nodes_share_one_rate_limit_over_a_minute() {
    nodes_share_the_limit(2, &[9, 1]).await;
}

#[tokio::test]
async fn three_nodes_share_one_rate_limit_over_a_minute() {
    nodes_share_the_limit(3, &[7, 2, 1]).await;
}

/// Waits up to 15 s for `app`'s `/readyz` to answer `status`.
async fn wait_until(app: &TestApp, status: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while app
        .call(reqwest::Method::GET, "/readyz", None, None)
        .await
        .status
        != status
    {
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many of `count` requests with `key` `node` allows (`/v1/me`, which needs no database
/// once the key is cached).
async fn allowed_of(node: &TestApp, key: &str, count: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..count {
        let answer = node.get("/v1/me", key).await;
        match answer.status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    allowed
}

/// A key limited to five an hour.
async fn five_an_hour(app: &TestApp, with: &str) -> String {
    let created = app
        .post(
            "/v1/api-keys",
            with,
            json!({
                "name": "Five an hour",
                "scopes": ["instances:read"],
                "rate_limit": { "requests": 5, "per_seconds": 3600 },
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn with_the_database_away_each_node_limits_on_its_own_and_shares_again_after() {
    let Some(cluster) = TempPostgres::start().unwrap_or_else(|error| panic!("{error}")) else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let (a, b) = (TestApp::spawn_on(&url).await, TestApp::spawn_on(&url).await);
    let org = a.bootstrap("Acme").await;
    // Shared: five in all, whichever node they reach.
    let shared = five_an_hour(&a, &org.key).await;
    assert_eq!(allowed_of(&a, &shared, 3).await, 3);
    assert_eq!(allowed_of(&b, &shared, 5).await, 2);
    assert_eq!(allowed_of(&a, &shared, 2).await, 0);

    // Known to both nodes (one request each: two of its five) before the database goes.
    let key = five_an_hour(&a, &org.key).await;
    assert_eq!(allowed_of(&a, &key, 1).await, 1);
    assert_eq!(allowed_of(&b, &key, 1).await, 1);

    // Away: each node counts alone, from a whole quota (as before limits were shared), and
    // answers 429, not 503.
    cluster.pause().unwrap();
    wait_until(&a, StatusCode::SERVICE_UNAVAILABLE).await;
    wait_until(&b, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(allowed_of(&a, &key, 8).await, 5);
    assert_eq!(allowed_of(&b, &key, 8).await, 5);
    // A node that knows the shared quota is spent keeps refusing.
    assert_eq!(allowed_of(&a, &shared, 2).await, 0);

    // Back: shared again, with the three the shared state still has.
    cluster.resume().unwrap();
    wait_until(&a, StatusCode::OK).await;
    wait_until(&b, StatusCode::OK).await;
    let after = allowed_of(&a, &key, 5).await + allowed_of(&b, &key, 5).await;
    assert_eq!(after, 3);
    a.store.close().await;
    b.store.close().await;
}
