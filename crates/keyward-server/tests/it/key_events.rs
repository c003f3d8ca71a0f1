//! `GET /v1/keys/events`: the changes verification must follow, as Server-Sent Events, in
//! commit order, replayed after `Last-Event-ID`, on every node.

use std::time::Duration;

use axum::http::StatusCode;
use keyward_core::Timestamp;
use keyward_server::Config;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, read};

/// One event of a stream.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// A client's side of an event stream, read event by event.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// Opens the stream with `key`, after `last_event_id` if given; the refusal otherwise.
    pub async fn open(
        app: &TestApp,
        key: &str,
        last_event_id: Option<&str>,
    ) -> Result<Self, Answer> {
        Self::open_with(app, key, last_event_id, &[]).await
    }

    /// As [`EventStream::open`], with `headers` added.
    pub async fn open_with(
        app: &TestApp,
        key: &str,
        last_event_id: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Self, Answer> {
        let mut request = app.client.get(app.url("/v1/keys/events")).bearer_auth(key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        if response.status() != StatusCode::OK {
            return Err(read(response).await);
        }
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next event (comments skipped), or `None` once the server has ended the stream.
    /// Fails the test if none comes within 10 s.
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(Duration::from_secs(10), self.next_event())
            .await
            .expect("an event within 10 s")
    }

    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(None) => return None,
                Err(error) => panic!("the stream broke instead of ending: {error}"),
            }
        }
    }

    /// The next event, which must be a `key` event: (id, key id, change).
    pub async fn next_key_event(&mut self) -> (i64, String, String) {
        let event = self.next().await.expect("a key event");
        assert_eq!(event.event, "key", "{event:?}");
        let id: i64 = event.id.as_deref().unwrap().parse().unwrap();
        assert_eq!(event.data["id"], id);
        (
            id,
            event.data["key_id"].as_str().unwrap().to_owned(),
            event.data["change"].as_str().unwrap().to_owned(),
        )
    }

    /// The next event, which must be `name` (`ready` or `reset`): its position.
    pub async fn next_position(&mut self, name: &str) -> (i64, Value) {
        let event = self.next().await.expect("a position event");
        assert_eq!(event.event, name, "{event:?}");
        let id: i64 = event.id.as_deref().unwrap().parse().unwrap();
        assert_eq!(event.data["last_event_id"], id);
        (id, event.data)
    }
}

fn parse(block: &str) -> Option<SseEvent> {
    let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
    let mut any = false;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "" => {}
            "event" => (event, any) = (value.to_owned(), true),
            "id" => (id, any) = (Some(value.to_owned()), true),
            "data" => (data, any) = (data + value, true),
            other => panic!("unexpected field {other}"),
        }
    }
    any.then(|| SseEvent {
        event,
        id,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
    })
}

#[tokio::test]
async fn every_change_to_the_organizations_keys_is_streamed_and_replayed_after_last_event_id() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let other = app.bootstrap("Other").await;
    let (_, watcher) = app.create_key(&org.key, "Watcher", &["keys:verify"]).await;
    let (one, _) = app.create_key(&org.key, "One", &["projects:read"]).await;
    let (two, _) = app.create_key(&org.key, "Two", &["projects:read"]).await;
    let (three, _) = app.create_key(&org.key, "Three", &["projects:read"]).await;
    let (elsewhere, _) = app
        .create_key(&other.key, "Elsewhere", &["projects:read"])
        .await;

    let mut stream = EventStream::open(&app, &watcher, None).await.unwrap();
    let (start, _) = stream.next_position("ready").await;

    let revoked = app.delete(&format!("/v1/api-keys/{one}"), &org.key).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let (first, key, change) = stream.next_key_event().await;
    assert!(first > start);
    assert_eq!((key.as_str(), change.as_str()), (one.as_str(), "revoked"));

    // Another organization's change is not sent; the next one of ours is.
    let revoked = app
        .delete(&format!("/v1/api-keys/{elsewhere}"), &other.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let limit = json!({ "rate_limit": { "requests": 100, "per_seconds": 60 } });
    let changed = app
        .patch(&format!("/v1/api-keys/{two}"), &org.key, limit)
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let (second, key, change) = stream.next_key_event().await;
    assert!(
        second > first + 1,
        "the other organization's event is between"
    );
    assert_eq!((key.as_str(), change.as_str()), (two.as_str(), "changed"));

    let rotated = app
        .post(
            &format!("/v1/api-keys/{two}/rotate"),
            &org.key,
            json!({ "grace_seconds": 60 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let (third, key, change) = stream.next_key_event().await;
    assert_eq!((key.as_str(), change.as_str()), (two.as_str(), "rotated"));

    // Disconnected, the client misses a change; reconnecting after its last id, it gets it.
    drop(stream);
    let revoked = app.delete(&format!("/v1/api-keys/{three}"), &org.key).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let mut stream = EventStream::open(&app, &watcher, Some(&third.to_string()))
        .await
        .unwrap();
    let (fourth, key, change) = stream.next_key_event().await;
    assert!(fourth > third);
    assert_eq!((key.as_str(), change.as_str()), (three.as_str(), "revoked"));
    assert_eq!(stream.next_position("ready").await.0, fourth);
    drop(stream);

    // From the start: everything, in order; the query parameter works as the header does.
    let answer = app
        .client
        .get(app.url(&format!("/v1/keys/events?last_event_id={start}")))
        .bearer_auth(&watcher)
        .send()
        .await
        .unwrap();
    let mut stream = EventStream {
        response: answer,
        buffer: String::new(),
    };
    for expected in [first, second, third, fourth] {
        assert_eq!(stream.next_key_event().await.0, expected);
    }
    assert_eq!(stream.next_position("ready").await.0, fourth);
    drop(stream);

    // An id the log never had: drop everything, then follow from now.
    let mut stream = EventStream::open(&app, &watcher, Some("999999999"))
        .await
        .unwrap();
    let (at, reset) = stream.next_position("reset").await;
    assert_eq!((at, &reset["reason"]), (fourth, &json!("unknown")));
    assert_eq!(stream.next_position("ready").await.0, fourth);
    drop(stream);

    // An id older than the log keeps: the same.
    let pruned = app
        .store
        .prune_key_events(Timestamp::now().plus_seconds(3_600), 100)
        .await
        .unwrap();
    assert!(pruned >= 5, "{pruned}");
    let mut stream = EventStream::open(&app, &watcher, Some(&start.to_string()))
        .await
        .unwrap();
    let (_, reset) = stream.next_position("reset").await;
    assert_eq!(reset["reason"], "pruned");
    stream.next_position("ready").await;
    drop(stream);

    // Bad ids, and keys without `keys:verify`.
    for bad in ["abc", "-1", ""] {
        EventStream::open(&app, &watcher, Some(bad))
            .await
            .err()
            .unwrap()
            .problem(422, "validation_failed");
    }
    let (_, reader) = app.create_key(&org.key, "Reader", &["projects:read"]).await;
    EventStream::open(&app, &reader, None)
        .await
        .err()
        .unwrap()
        .problem(403, "insufficient_scope");
    EventStream::open(&app, "kwk_nope", None)
        .await
        .err()
        .unwrap()
        .problem(401, "invalid_token");
}

#[tokio::test]
async fn a_stream_ends_when_its_own_key_changes_and_when_the_server_stops() {
    let mut config = Config::default();
    // Longer than the test waits: a stream that ends does so because it was told to.
    config.connection_limits.shutdown_timeout = Duration::from_secs(60);
    let mut app = TestApp::spawn_with(config).await;
    let org = app.bootstrap("Acme").await;
    let (watcher_id, watcher) = app.create_key(&org.key, "Watcher", &["keys:verify"]).await;

    let mut stream = EventStream::open(&app, &watcher, None).await.unwrap();
    stream.next_position("ready").await;
    let revoked = app
        .delete(&format!("/v1/api-keys/{watcher_id}"), &org.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let (_, key, change) = stream.next_key_event().await;
    assert_eq!(
        (key.as_str(), change.as_str()),
        (watcher_id.as_str(), "revoked")
    );
    assert!(stream.next().await.is_none(), "the stream ended");
    EventStream::open(&app, &watcher, None)
        .await
        .err()
        .unwrap()
        .problem(401, "invalid_token");

    // A key rotated away streams until its grace period ends, as long as it works.
    let (rotated_id, rotated) = app.create_key(&org.key, "Rotated", &["keys:verify"]).await;
    let rotation = app
        .post(
            &format!("/v1/api-keys/{rotated_id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 2 }),
        )
        .await;
    assert_eq!(rotation.status, StatusCode::CREATED, "{}", rotation.body);
    let mut stream = EventStream::open(&app, &rotated, None).await.unwrap();
    stream.next_position("ready").await;
    assert!(
        stream.next().await.is_none(),
        "the stream ended with the grace period"
    );
    EventStream::open(&app, &rotated, None)
        .await
        .err()
        .unwrap()
        .problem(401, "invalid_token");

    let (_, watcher) = app.create_key(&org.key, "Second", &["keys:verify"]).await;
    let mut stream = EventStream::open(&app, &watcher, None).await.unwrap();
    stream.next_position("ready").await;
    let stopping = tokio::spawn(async move {
        app.shutdown().await;
    });
    assert!(stream.next().await.is_none(), "ended cleanly at shutdown");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stopped without waiting for the stream")
        .unwrap();
}

/// Creates a key in `org_key`'s organization and revokes it: its id.
async fn a_key_revoked(app: &TestApp, org_key: &str) -> String {
    let (key_id, _) = app
        .create_key(org_key, "Short-lived", &["instances:read"])
        .await;
    let deleted = app.delete(&format!("/v1/api-keys/{key_id}"), org_key).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    key_id
}

#[tokio::test]
async fn an_admin_keys_stream_for_an_organization_ends_when_the_admin_key_changes() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    // It may rotate the keys it manages only if it holds what they hold.
    let (_, manager) = app
        .admin_key(&["admin_keys:write", "organizations:act", "keys:verify"])
        .await;
    let organization = org.id.to_string();
    let acting = [("keyward-organization", organization.as_str())];
    for change in ["revoked", "rotated"] {
        let (admin_id, admin) = app.admin_key(&["organizations:act", "keys:verify"]).await;
        let mut stream = EventStream::open_with(&app, &admin, None, &acting)
            .await
            .unwrap();
        stream.next_position("ready").await;
        // The organization's own changes come through.
        let key_id = a_key_revoked(&app, &org.key).await;
        let (_, key, _) = stream.next_key_event().await;
        assert_eq!(key, key_id);
        // The admin key's own change, logged for the installation, ends the stream.
        let changed = match change {
            "revoked" => {
                app.delete(&format!("/v1/admin-keys/{admin_id}"), &manager)
                    .await
            }
            _ => {
                app.post(
                    &format!("/v1/admin-keys/{admin_id}/rotate"),
                    &manager,
                    json!({ "grace_seconds": 600 }),
                )
                .await
            }
        };
        assert!(changed.status.is_success(), "{change}: {}", changed.body);
        assert!(stream.next().await.is_none(), "{change}: the stream ended");
    }

    // Another admin key's change, after the log was pruned past the stream's start (as a day
    // of other organizations' events does), leaves the stream alone.
    let (_, admin) = app.admin_key(&["organizations:act", "keys:verify"]).await;
    let mut stream = EventStream::open_with(&app, &admin, None, &acting)
        .await
        .unwrap();
    stream.next_position("ready").await;
    let other_org = app.bootstrap("Elsewhere").await;
    a_key_revoked(&app, &other_org.key).await;
    app.store
        .prune_key_events(Timestamp::now().plus_seconds(3_600), 100)
        .await
        .unwrap();
    let (other_admin, _) = app.admin_key(&["organizations:read"]).await;
    let revoked = app
        .delete(&format!("/v1/admin-keys/{other_admin}"), &manager)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let key_id = a_key_revoked(&app, &org.key).await;
    let (_, key, _) = stream.next_key_event().await;
    assert_eq!(key, key_id, "the stream goes on");
}

/// A stream is a request in progress: the idle timeout, which closes connections that send
/// nothing after their answer, leaves it open.
#[tokio::test]
async fn a_quiet_stream_outlives_the_idle_timeout() {
    let mut config = Config::default();
    config.connection_limits.idle_timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(config).await;
    let org = app.bootstrap("Acme").await;
    let (_, watcher) = app.create_key(&org.key, "Watcher", &["keys:verify"]).await;
    let (one, _) = app.create_key(&org.key, "One", &["projects:read"]).await;
    let mut stream = EventStream::open(&app, &watcher, None).await.unwrap();
    stream.next_position("ready").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let revoked = app.delete(&format!("/v1/api-keys/{one}"), &org.key).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let (_, key, _) = stream.next_key_event().await;
    assert_eq!(key, one);
}

/// Two nodes on one PostgreSQL database, keys revoked through both at once: each node's
/// stream carries every change, in the same order, and a client that moves to the other
/// node with `Last-Event-ID` misses nothing.
#[tokio::test]
async fn every_nodes_stream_carries_every_change_in_one_order() {
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let a = TestApp::spawn_on(&url).await;
    let b = TestApp::spawn_on(&url).await;
    let org = a.bootstrap("Acme").await;
    let (_, watcher) = a.create_key(&org.key, "Watcher", &["keys:verify"]).await;
    let mut ids = Vec::new();
    for n in 0..24 {
        ids.push(
            a.create_key(&org.key, &format!("Key {n}"), &["projects:read"])
                .await
                .0,
        );
    }
    let mut on_a = EventStream::open(&a, &watcher, None).await.unwrap();
    let mut on_b = EventStream::open(&b, &watcher, None).await.unwrap();
    let (start, _) = on_a.next_position("ready").await;
    on_b.next_position("ready").await;

    let revoke_through = |node: &TestApp, lane: usize| {
        let (client, base, key, ids) = (
            node.client.clone(),
            node.url("/v1/api-keys/"),
            org.key.clone(),
            ids.clone(),
        );
        tokio::spawn(async move {
            for id in ids.iter().skip(lane).step_by(4) {
                let answer = client
                    .delete(format!("{base}{id}"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), StatusCode::NO_CONTENT);
            }
        })
    };
    let lanes = [
        revoke_through(&a, 0),
        revoke_through(&b, 1),
        revoke_through(&a, 2),
        revoke_through(&b, 3),
    ];
    let mut seen_on_a = Vec::new();
    let mut seen_on_b = Vec::new();
    for _ in 0..ids.len() {
        seen_on_a.push(on_a.next_key_event().await);
        seen_on_b.push(on_b.next_key_event().await);
    }
    for lane in lanes {
        lane.await.unwrap();
    }
    assert_eq!(seen_on_a, seen_on_b, "one order on every node");
    assert!(seen_on_a.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let mut revoked: Vec<_> = seen_on_a.iter().map(|(_, key, _)| key.clone()).collect();
    revoked.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(revoked, expected);

    // Moving from A to B halfway: the rest, exactly.
    let (halfway, _, _) = seen_on_a[ids.len() / 2 - 1];
    let mut moved = EventStream::open(&b, &watcher, Some(&halfway.to_string()))
        .await
        .unwrap();
    for expected in &seen_on_a[ids.len() / 2..] {
        assert_eq!(&moved.next_key_event().await, expected);
    }
    moved.next_position("ready").await;
    assert!(start < seen_on_a[0].0);
    a.store.close().await;
    b.store.close().await;
}

/// A node that loses the database hears of no change meanwhile: its streams end, so that
/// their clients stop trusting what they cached (`keyward-verify` drops its cache), and
/// reconnecting fails until the database is back.
#[tokio::test]
async fn a_nodes_streams_end_when_it_loses_the_database() {
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let app = TestApp::spawn_on(&url).await;
    let org = app.bootstrap("Acme").await;
    let (_, watcher) = app.create_key(&org.key, "Watcher", &["keys:verify"]).await;
    let mut stream = EventStream::open(&app, &watcher, None).await.unwrap();
    let (position, _) = stream.next_position("ready").await;
    cluster.pause().unwrap();
    assert!(stream.next().await.is_none(), "the stream ended");
    EventStream::open(&app, &watcher, Some(&position.to_string()))
        .await
        .err()
        .unwrap()
        .problem(503, "unavailable");
    cluster.resume().unwrap();
    app.store.close().await;
}
