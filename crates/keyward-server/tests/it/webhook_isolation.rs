//! Webhook receivers that hang: each holds its endpoint's share of a node's deliveries, an
//! organization's together hold at most its share, and they delay no other organization's
//! endpoints (nor, within the organization's share, its own); a node that stops gives back
//! the deliveries it had under way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keyward_core::Timestamp;
use keyward_server::Config;
use tokio::sync::mpsc;

use crate::helpers::TestApp;
use crate::webhooks::{fast, register_at};

/// A receiver that accepts connections and never answers; counts the connections.
async fn hanging_receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (address, accepted)
}

/// A receiver that answers 204 at once and reports when each message arrived.
async fn prompt_receiver() -> (SocketAddr, mpsc::UnboundedReceiver<Instant>) {
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move || {
        let arrived = arrived.clone();
        async move {
            let _ = arrived.send(Instant::now());
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, arrivals)
}

/// How long after a key is created its `api_key.created` message reaches `arrivals`.
async fn latency(
    app: &TestApp,
    key: &str,
    arrivals: &mut mpsc::UnboundedReceiver<Instant>,
) -> Duration {
    let (_, _) = app.create_key(key, "measured", &["instances:read"]).await;
    let created = Instant::now();
    let arrived = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
        .await
        .expect("the message arrives")
        .unwrap();
    arrived.saturating_duration_since(created)
}

#[tokio::test]
async fn a_hanging_receiver_delays_no_other_endpoint() {
    let app = TestApp::spawn_with(fast(Config::default())).await;
    let stuck = app.bootstrap("Stuck").await;
    let other = app.bootstrap("Other").await;
    let events = ["api_key.created"];
    let (other_address, mut other_arrivals) = prompt_receiver().await;
    register_at(&app, &other.key, &other_address.to_string(), &events).await;
    let normal = latency(&app, &other.key, &mut other_arrivals).await;

    // Stuck's first endpoint never answers; its second does, at once. Every one of Flood's
    // six endpoints hangs.
    let (hanging, accepted) = hanging_receiver().await;
    register_at(&app, &stuck.key, &hanging.to_string(), &events).await;
    let (beside_address, mut beside_arrivals) = prompt_receiver().await;
    register_at(&app, &stuck.key, &beside_address.to_string(), &events).await;
    let flood = app.bootstrap("Flood").await;
    let mut flooded = Vec::new();
    for _ in 0..6 {
        let (address, accepted) = hanging_receiver().await;
        register_at(&app, &flood.key, &address.to_string(), &events).await;
        flooded.push(accepted);
    }
    for i in 0..40 {
        app.create_key(&stuck.key, &format!("key {i}"), &["instances:read"])
            .await;
        app.create_key(&flood.key, &format!("key {i}"), &["instances:read"])
            .await;
    }
    let created = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the hanging receiver is tried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Another organization's endpoint: as prompt as before.
    let meanwhile = latency(&app, &other.key, &mut other_arrivals).await;
    assert!(
        meanwhile < normal + Duration::from_secs(1),
        "normally {normal:?}, beside a hanging receiver {meanwhile:?}"
    );
    // The same organization's other endpoint gets all forty as promptly.
    let mut last = created;
    for _ in 0..40 {
        last = tokio::time::timeout(Duration::from_secs(30), beside_arrivals.recv())
            .await
            .expect("every message arrives")
            .unwrap();
    }
    let beside = last.saturating_duration_since(created);
    assert!(
        beside < normal + Duration::from_secs(1),
        "normally {normal:?}, forty beside a hanging receiver {beside:?}"
    );
    // The hanging receivers hold no more than their shares.
    let limits = keyward_server::webhooks::IN_FLIGHT;
    let stuck_held = accepted.load(Ordering::SeqCst);
    assert!(stuck_held <= limits.per_endpoint as usize, "{stuck_held}");
    let flood_held: usize = flooded.iter().map(|a| a.load(Ordering::SeqCst)).sum();
    assert!(
        flood_held <= limits.per_organization as usize,
        "{flood_held}"
    );
}

#[tokio::test]
async fn deliveries_under_way_at_shutdown_are_given_back() {
    let mut app = TestApp::spawn_with(fast(Config::default())).await;
    let org = app.bootstrap("Acme").await;
    let (hanging, accepted) = hanging_receiver().await;
    register_at(&app, &org.key, &hanging.to_string(), &["api_key.created"]).await;
    app.create_key(&org.key, "CI", &["instances:read"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the delivery is under way");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    app.shutdown().await;
    // Due again at once for the next node (or this one restarted), no attempt counted.
    let claimed = app
        .store
        .claim_webhook_deliveries(
            Timestamp::now(),
            60,
            10,
            keyward_server::webhooks::IN_FLIGHT,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the lease was given back");
    assert_eq!(claimed[0].attempts, 0);
}
