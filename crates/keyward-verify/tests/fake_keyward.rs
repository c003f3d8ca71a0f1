//! The client against a Keyward whose answers the test decides: what it keeps, and what it
//! must not (an answer given by a node that has not heard of a change yet, unknown keys),
//! and that it stops keeping anything when its stream stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::routing::{get, post};
use keyward_verify::{Refusal, Verifier, VerifierConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

/// A Keyward that answers `VALID` (cacheable) for `kwk_valid` as `key_1` and `NOT_FOUND` for
/// anything else, whatever the stream has said, and whose stream sends what the test pushes.
struct Fake {
    url: String,
    events: Arc<Mutex<Option<mpsc::Sender<String>>>>,
    verifications: Arc<AtomicU64>,
}

async fn fake() -> Fake {
    let events: Arc<Mutex<Option<mpsc::Sender<String>>>> = Arc::default();
    let verifications = Arc::new(AtomicU64::new(0));
    let (streams, counted) = (events.clone(), verifications.clone());
    let app = axum::Router::new()
        .route(
            "/v1/keys/verify",
            post(move |Json(body): Json<Value>| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Json(match body["key"].as_str() {
                        Some("kwk_valid") => json!({
                            "valid": true, "code": "VALID", "key_id": "key_1",
                            "kind": "api_key", "organization_id": "org_1", "project_id": null,
                            "scopes": ["databases:read"], "expires_at": null,
                            "external_id": null, "meta": null, "cacheable": true,
                        }),
                        _ => json!({ "valid": false, "code": "NOT_FOUND", "cacheable": true }),
                    })
                }
            }),
        )
        .route(
            "/v1/keys/events",
            get(move || {
                let streams = streams.clone();
                async move {
                    let (sender, receiver) = mpsc::channel(16);
                    sender
                        .send("event: ready\nid: 1\ndata: {\"last_event_id\":1}\n\n".into())
                        .await
                        .unwrap();
                    *streams.lock().unwrap() = Some(sender);
                    axum::response::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from_stream(
                            ReceiverStream::new(receiver).map(Ok::<_, std::io::Error>),
                        ))
                        .unwrap()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake {
        url,
        events,
        verifications,
    }
}

impl Fake {
    async fn send(&self, event: &str) {
        let sender = self.events.lock().unwrap().clone().unwrap();
        sender.send(event.to_owned()).await.unwrap();
    }

    /// Ends the stream, as a broken connection would.
    fn end_stream(&self) {
        self.events.lock().unwrap().take();
    }
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_key_just_changed_is_not_kept_and_unknown_keys_never_are() {
    let keyward = fake().await;
    let verifier = Verifier::new(VerifierConfig::new(&keyward.url, "kwk_verifier"));
    verifier.follow();
    until("caught up", || verifier.synced()).await;

    let identity = verifier.verify("kwk_valid", None).await.unwrap();
    assert_eq!(identity.key_id, "key_1");
    verifier.verify("kwk_valid", None).await.unwrap();
    assert_eq!(verifier.keyward_calls(), 1, "kept");

    // The key changes; the node that answers has not heard yet and still says VALID. That
    // answer is given to the request, but not kept.
    keyward
        .send("event: key\nid: 2\ndata: {\"id\":2,\"key_id\":\"key_1\",\"change\":\"revoked\",\"at\":\"2026-12-05T18:00:00Z\"}\n\n")
        .await;
    until("forgotten", || verifier.cached() == 0).await;
    for expected in 2..=4 {
        verifier.verify("kwk_valid", None).await.unwrap();
        assert_eq!(
            verifier.keyward_calls(),
            expected,
            "asked every time while it settles"
        );
    }
    assert_eq!(verifier.cached(), 0);

    // Unknown keys are asked about each time, and never fill the memory.
    for _ in 0..3 {
        assert_eq!(
            verifier.verify("kwk_unknown", None).await,
            Err(Refusal::Refused {
                code: "NOT_FOUND".into(),
                retry_after: None
            })
        );
    }
    assert_eq!(verifier.keyward_calls(), 7);
    assert_eq!(verifier.cached(), 0);
    assert_eq!(keyward.verifications.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn nothing_is_kept_once_the_stream_stops_however_it_stops() {
    let keyward = fake().await;
    let verifier = Verifier::new(VerifierConfig::new(&keyward.url, "kwk_verifier"));
    let following = verifier.follow();
    until("caught up", || verifier.synced()).await;
    verifier.verify("kwk_valid", None).await.unwrap();
    assert_eq!(verifier.cached(), 1);

    // Keyward ends the stream: the cache goes, and it reconnects and catches up again.
    keyward.end_stream();
    until("dropped", || verifier.cached() == 0).await;
    until("caught up again", || verifier.synced()).await;
    verifier.verify("kwk_valid", None).await.unwrap();
    assert_eq!(verifier.cached(), 1);

    // The task that follows it is stopped: nothing is trusted any more.
    following.abort();
    until("not synced", || !verifier.synced()).await;
    assert_eq!(verifier.cached(), 0);
    let asked = verifier.keyward_calls();
    verifier.verify("kwk_valid", None).await.unwrap();
    verifier.verify("kwk_valid", None).await.unwrap();
    assert_eq!(verifier.keyward_calls(), asked + 2, "asked every time");
}
