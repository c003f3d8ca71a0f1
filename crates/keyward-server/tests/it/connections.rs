//! Connections: clients that send nothing, send slowly, idle or pile up cannot hold the
//! server, and shutdown ends on time whatever clients do.

use std::time::{Duration, Instant};

use keyward_core::{CredentialId, CredentialKind};
use keyward_server::{Config, ConnectionLimits};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

fn limits(header: u64, idle: u64, max_connections: usize, shutdown: u64) -> Config {
    Config {
        connection_limits: ConnectionLimits {
            header_read_timeout: Duration::from_millis(header),
            idle_timeout: Duration::from_millis(idle),
            request_timeout: Duration::from_secs(30),
            max_connections,
            shutdown_timeout: Duration::from_millis(shutdown),
        },
        ..Config::default()
    }
}

/// Reads until the server closes the connection (or 5 s pass, which fails the test), and
/// returns what it sent and how long it took.
async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: keyward\r\n\r\n";

#[tokio::test]
async fn a_client_that_sends_nothing_is_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(limits(300, 10_000, 100, 1_000)).await;
    let mut silent = TcpStream::connect(app.address).await.unwrap();
    let (sent, after) = until_closed(&mut silent).await;
    assert_eq!(sent, "");
    assert!(after >= Duration::from_millis(250), "{after:?}");
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    let app = TestApp::spawn_with(limits(400, 10_000, 100, 1_000)).await;
    let mut slow = TcpStream::connect(app.address).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in HEALTHZ.iter().cycle().take(200) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickled head was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_idle_but_not_while_in_use() {
    let app = TestApp::spawn_with(limits(300, 1_500, 100, 1_000)).await;
    let mut client = TcpStream::connect(app.address).await.unwrap();
    // Requests 200 ms apart keep it open well past the header timeout.
    for _ in 0..6 {
        client.write_all(HEALTHZ).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (sent, after) = until_closed(&mut client).await;
    assert_eq!(sent, "");
    assert!(after >= Duration::from_millis(1_000), "{after:?}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_slot_and_are_counted() {
    let app = TestApp::spawn_with(limits(10_000, 10_000, 3, 1_000)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(app.address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The fourth is accepted by the kernel but not served while the three are open.
    let waiting = tokio::spawn({
        let url = app.url("/healthz");
        async move {
            let started = Instant::now();
            let status = reqwest::get(url).await.unwrap().status();
            (status, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "served beyond the cap");
    held.clear();
    let (status, waited) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    let metrics = app.call(reqwest::Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("keyward_connection_limit_reached_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_ends_on_time_with_a_stuck_client_and_writes_last_use_first() {
    let mut app = TestApp::spawn_with(limits(60_000, 60_000, 100, 500)).await;
    let org = app.bootstrap("Acme").await;
    assert_eq!(app.get("/v1/me", &org.key).await.status, StatusCode::OK);
    // A client stuck half-way through a head, which no timeout will end soon.
    let mut stuck = TcpStream::connect(app.address).await.unwrap();
    stuck
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), app.shutdown())
        .await
        .expect("shutdown waited for the stuck client");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let (_, _) = until_closed(&mut stuck).await;
    let key = app
        .store
        .get_credential(
            org.id,
            CredentialId::parse(&org.key_id, CredentialKind::ApiKey).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        key.last_used_at.is_some(),
        "last use was written at shutdown"
    );
}

const SLOW_LOGIN: &[u8] = b"POST /login HTTP/1.1\r\nHost: keyward\r\n\
    Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\nemail=";

#[tokio::test]
async fn a_body_sent_slowly_or_never_gets_408_and_the_connection_closes() {
    let mut config = limits(10_000, 10_000, 100, 1_000);
    config.connection_limits.request_timeout = Duration::from_millis(500);
    let app = TestApp::spawn_with(config).await;

    // Never: the head, a few bytes of the body, then nothing.
    let mut silent = TcpStream::connect(app.address).await.unwrap();
    silent.write_all(SLOW_LOGIN).await.unwrap();
    let (answer, after) = until_closed(&mut silent).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(after < Duration::from_secs(3), "{after:?}");

    // Slowly: a byte every 20 ms, which would take 80 s.
    let (mut reader, mut writer) = TcpStream::connect(app.address).await.unwrap().into_split();
    writer.write_all(SLOW_LOGIN).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..4_000 {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let started = Instant::now();
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut received)).await;
    trickle.abort();
    assert!(read.is_ok(), "the connection stayed open");
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
