use crate::helpers::TestApp;

/// Reads every file of the database (main file, WAL and shared memory) as bytes.
pub(crate) fn database_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    bytes
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_key_is_ever_stored_in_plain_text() {
    let mut app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let mut keys = vec![org.key.clone()];
    for n in 0..3 {
        let (_, key) = app
            .create_key(&org.key, &format!("key {n}"), &["instances:read"])
            .await;
        assert_eq!(
            app.get("/v1/me", &key).await.status,
            reqwest::StatusCode::OK
        );
        keys.push(key);
    }
    app.shutdown().await;

    let bytes = database_bytes(&app);
    assert!(
        contains(&bytes, b"key 2"),
        "the test must see the stored rows"
    );
    for key in &keys {
        let random_part = &key.as_bytes()[4..36];
        assert!(!contains(&bytes, key.as_bytes()), "a whole key is stored");
        assert!(
            !contains(&bytes, random_part),
            "a key's random part is stored"
        );
        // The digest is what is stored.
        let digest = keyward_core::KeyDigest::of(key);
        assert!(contains(&bytes, digest.as_bytes()));
    }
}

#[tokio::test]
async fn the_data_directory_and_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh").join("data");
    let url = format!("sqlite://{}", data.join("keyward.db").display());
    let store = keyward_store::open(&url).await.unwrap();
    store.ping().await.unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "the database and its WAL");
    store.close().await;
}
