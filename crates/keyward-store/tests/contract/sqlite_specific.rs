//! What only the SQLite backend has to show: its schema guards and its migrations.

use keyward_core::Timestamp;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{TestDb, organization};

async fn raw_connection(db: &TestDb) -> sqlx::SqliteConnection {
    db.url
        .parse::<SqliteConnectOptions>()
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_schema_refuses_to_unrevoke_or_rewrite_a_digest() {
    let db = TestDb::sqlite().await;
    let (org, key) = organization(db.store.as_ref(), "Acme").await;
    db.store
        .revoke_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            key,
            Timestamp::now(),
        )
        .await
        .unwrap();

    let mut connection = raw_connection(&db).await;
    let unrevoke = sqlx::query("UPDATE credentials SET revoked_at = NULL")
        .execute(&mut connection)
        .await;
    assert!(
        unrevoke
            .unwrap_err()
            .to_string()
            .contains("revocation is permanent"),
        "un-revoking must fail"
    );
    let rewrite = sqlx::query("UPDATE credentials SET secret_sha256 = zeroblob(32)")
        .execute(&mut connection)
        .await;
    assert!(rewrite.is_err());
    connection.close().await.unwrap();
    let stored = db.store.get_credential(org, key).await.unwrap().unwrap();
    assert!(stored.revoked_at.is_some());
}

#[tokio::test]
async fn migrations_run_once_and_refuse_a_newer_schema() {
    let db = TestDb::sqlite().await;
    organization(db.store.as_ref(), "Acme").await;
    // Opening again applies nothing and loses nothing.
    let again = keyward_store::open(&db.url).await.unwrap();
    again.ping().await.unwrap();
    again.close().await;

    let mut connection = raw_connection(&db).await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM keyward_migrations")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert_eq!(versions, (1..=28).collect::<Vec<i64>>());
    sqlx::query(
        "INSERT INTO keyward_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    let refused = keyward_store::open(&db.url).await;
    let message = refused
        .err()
        .expect("a newer schema is refused")
        .to_string();
    assert!(message.contains("newer"), "{message}");
}

#[tokio::test]
async fn an_edited_migration_is_refused_and_older_databases_get_checksums() {
    let db = TestDb::sqlite().await;
    db.store.close().await;
    let mut connection = raw_connection(&db).await;
    let checksums: Vec<String> =
        sqlx::query_scalar("SELECT checksum FROM keyward_migrations ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(checksums.len(), 28);
    assert!(checksums.iter().all(|c| c.len() == 64), "{checksums:?}");

    // A database from before checksums: they are recorded on the next start.
    sqlx::query("ALTER TABLE keyward_migrations DROP COLUMN checksum")
        .execute(&mut connection)
        .await
        .unwrap();
    keyward_store::open(&db.url).await.unwrap().close().await;
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT checksum FROM keyward_migrations ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(recorded, checksums);

    // The text of an applied migration changed (here, its record): refuse to start.
    sqlx::query("UPDATE keyward_migrations SET checksum = 'edited' WHERE version = 2")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    let message = keyward_store::open(&db.url)
        .await
        .err()
        .expect("an edited migration is refused")
        .to_string();
    assert!(
        message.contains("migration 2 (dashboard) differs"),
        "{message}"
    );
}

#[tokio::test]
async fn in_memory_and_other_urls_are_refused_with_a_clear_error() {
    for url in ["sqlite::memory:", "mysql://localhost/keyward", "keyward.db"] {
        let refused = keyward_store::open(url).await;
        let message = refused.err().expect("refused").to_string();
        assert!(message.contains("sqlite://"), "{url}: {message}");
    }
}

#[tokio::test]
async fn a_change_whose_audit_event_fails_is_rolled_back() {
    let db = TestDb::sqlite().await;
    let (org, _) = organization(db.store.as_ref(), "Acme").await;
    let mut connection = raw_connection(&db).await;
    sqlx::query(
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events \
         BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    crate::audit::a_change_whose_event_fails_is_not_kept(db.store.as_ref(), org).await;
}

#[tokio::test]
async fn the_schema_refuses_to_move_a_rotations_end() {
    let db = TestDb::sqlite().await;
    crate::credentials::rotate_first_key(db.store.as_ref()).await;
    let mut connection = raw_connection(&db).await;
    let moved = sqlx::query(
        "UPDATE credentials SET rotation_ends_at = rotation_ends_at + 3600 \
         WHERE rotation_ends_at IS NOT NULL",
    )
    .execute(&mut connection)
    .await;
    assert!(
        moved
            .unwrap_err()
            .to_string()
            .contains("a rotation cannot be changed"),
        "moving a rotation's end must fail"
    );
}

#[tokio::test]
async fn counts_made_before_routes_keep_through_the_migration_that_adds_them() {
    let db = TestDb::sqlite().await;
    let (org, key) = organization(db.store.as_ref(), "Acme").await;
    db.store.close().await;
    // The database as migration 23 left it, with a count in it.
    let mut connection = raw_connection(&db).await;
    sqlx::raw_sql("DROP TABLE usage_hours")
        .execute(&mut connection)
        .await
        .unwrap();
    sqlx::raw_sql(include_str!("../../migrations/sqlite/0023_usage.sql"))
        .execute(&mut connection)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO usage_hours (credential_id, organization_id, hour, outcome, count) \
         VALUES ($1, $2, 3600, 'allowed', 7)",
    )
    .bind(key.as_uuid())
    .bind(org.as_uuid())
    .execute(&mut connection)
    .await
    .unwrap();
    sqlx::query("DELETE FROM keyward_migrations WHERE version = 24")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    let store = keyward_store::open(&db.url).await.unwrap();
    let rows = store
        .credential_usage(
            org,
            key,
            Timestamp::from_unix_seconds(0),
            Timestamp::from_unix_seconds(7_200),
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        [keyward_store::UsageRow {
            hour: Timestamp::from_unix_seconds(3_600),
            outcome: "allowed".into(),
            route: None,
            count: 7,
        }]
    );
    store.close().await;
}
