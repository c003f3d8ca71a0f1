//! A full disk under SQLite: writes fail with 503 (never 500), `/readyz` says why, and once
//! space is back the next write succeeds without a restart. Runs on a small tmpfs, which
//! needs root (as in CI); elsewhere it is skipped with one line, unless
//! `KEYWARD_REQUIRE_ALL=1`.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use keyward_store::testing::require_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tempfile::TempDir;

use crate::helpers::TestApp;

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "keyward-test"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self { dir }),
            other => {
                let why = match other {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                    Err(error) => error.to_string(),
                };
                let message = format!("disk-full tests skipped: cannot mount a tmpfs ({why})");
                assert!(!require_all(), "{message}, and KEYWARD_REQUIRE_ALL=1");
                eprintln!("{message}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a failed test may still hold the database open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test]
async fn a_full_disk_fails_writes_with_503_and_they_resume_when_space_returns() {
    let Some(disk) = Tmpfs::mount("4m") else {
        return;
    };
    let url = format!("sqlite://{}", disk.path().join("keyward.db").display());
    let mut app = TestApp::spawn_on(&url).await;
    let org = app.bootstrap("Acme").await;
    let (first_id, first_key) = app
        .create_key(&org.key, "Before", &["instances:read"])
        .await;
    let filler = disk.path().join("filler");
    fill(&filler);

    // Writes fail, as a 503 that says why, never a 500; reads go on.
    let mut refused = None;
    for n in 0..200 {
        let answer = app
            .post(
                "/v1/api-keys",
                &org.key,
                json!({ "name": format!("k{n}"), "scopes": ["instances:read"] }),
            )
            .await;
        if answer.status != StatusCode::CREATED {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a write failed once the disk was full");
    refused.problem(503, "unavailable");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{}",
        refused.body
    );
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    ready.problem(503, "unavailable");
    assert!(
        ready.body["detail"]
            .as_str()
            .unwrap()
            .contains("disk is full")
    );
    assert_eq!(app.get("/v1/me", &first_key).await.status, StatusCode::OK);

    // Space returns: the next write succeeds, no restart.
    std::fs::remove_file(&filler).unwrap();
    let revoked = app
        .delete(&format!("/v1/api-keys/{first_id}"), &org.key)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    app.get("/v1/me", &first_key)
        .await
        .problem(401, "invalid_token");
    app.create_key(&org.key, "After", &["instances:read"]).await;
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    app.shutdown().await;
    app.store.close().await;
}

#[tokio::test]
async fn readiness_notices_when_a_full_disk_has_room_again_without_any_other_write() {
    let Some(disk) = Tmpfs::mount("4m") else {
        return;
    };
    let url = format!("sqlite://{}", disk.path().join("keyward.db").display());
    let mut app = TestApp::spawn_on(&url).await;
    let org = app.bootstrap("Acme").await;
    let filler = disk.path().join("filler");
    fill(&filler);
    for n in 0..200 {
        let answer = app
            .post("/v1/projects", &org.key, json!({ "name": format!("p{n}") }))
            .await;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    std::fs::remove_file(&filler).unwrap();
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    app.shutdown().await;
    app.store.close().await;
}
