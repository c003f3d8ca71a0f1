//! What only the PostgreSQL backend has to show: its schema guards, its migrations, and the
//! notifications that keep other nodes' caches honest.

use std::time::Duration;

use keyward_core::{RateLimit, Timestamp};
use keyward_store::{CredentialChanges, Invalidation};
use sqlx::Connection;

use crate::{TestDb, organization};

#[tokio::test]
async fn the_schema_refuses_to_unrevoke_or_rewrite_a_digest() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
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
    let mut connection = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let unrevoke = sqlx::query("UPDATE credentials SET revoked_at = NULL")
        .execute(&mut connection)
        .await;
    assert!(
        unrevoke
            .unwrap_err()
            .to_string()
            .contains("revocation is permanent")
    );
    let rewrite = sqlx::query("UPDATE credentials SET secret_sha256 = '\\x00'::bytea")
        .execute(&mut connection)
        .await;
    assert!(rewrite.is_err());
    connection.close().await.unwrap();
    assert!(
        db.store
            .get_credential(org, key)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    db.store.close().await;
}

#[tokio::test]
async fn migrations_run_once_even_when_nodes_start_together() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (a, b) = tokio::join!(keyward_store::open(&db.url), keyward_store::open(&db.url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut connection = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM keyward_migrations")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert_eq!(versions, (1..=25).collect::<Vec<i64>>());
    connection.close().await.unwrap();
    for store in [a, b, db.store] {
        store.close().await;
    }
}

#[tokio::test]
async fn an_edited_migration_is_refused() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    db.store.close().await;
    let mut connection = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let checksums: Vec<String> =
        sqlx::query_scalar("SELECT checksum FROM keyward_migrations ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert!(checksums.len() == 25 && checksums.iter().all(|c| c.len() == 64));
    sqlx::query("ALTER TABLE keyward_migrations DROP COLUMN checksum")
        .execute(&mut connection)
        .await
        .unwrap();
    keyward_store::open(&db.url).await.unwrap().close().await;
    sqlx::query("UPDATE keyward_migrations SET checksum = 'edited' WHERE version = 1")
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
        message.contains("migration 1 (initial) differs"),
        "{message}"
    );
}

async fn next(receiver: &mut tokio::sync::broadcast::Receiver<Invalidation>) -> Invalidation {
    tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("a notification within 5 s")
        .expect("the channel is open")
}

#[tokio::test]
async fn changes_reach_every_node_as_notifications() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let other_node = keyward_store::open(&db.url).await.unwrap();
    // Listening has begun by the time `open` returns.
    let mut received = other_node.invalidations().expect("PostgreSQL notifies");

    let (org, key) = organization(db.store.as_ref(), "Acme").await;
    let record = db
        .store
        .update_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            key,
            CredentialChanges {
                name: None,
                rate_limit: Some(Some(RateLimit::new(10, 60).unwrap())),
                allowed_cidrs: None,
                ..CredentialChanges::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next(&mut received).await,
        Invalidation::Forget(record.digest)
    );
    // Then, at the commit, the organization's new key event.
    assert_eq!(next(&mut received).await, Invalidation::KeyEvents(org));
    db.store
        .revoke_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            key,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut received).await,
        Invalidation::Forget(record.digest)
    );
    // Then, at the commit, the organization's new key event.
    assert_eq!(next(&mut received).await, Invalidation::KeyEvents(org));
    other_node.close().await;
    db.store.close().await;
}

#[tokio::test]
async fn a_change_whose_audit_event_fails_is_rolled_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (org, _) = organization(db.store.as_ref(), "Acme").await;
    let mut connection = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for statement in [
        "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$",
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events \
         FOR EACH ROW EXECUTE FUNCTION no_audit()",
    ] {
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    crate::audit::a_change_whose_event_fails_is_not_kept(db.store.as_ref(), org).await;
    db.store.close().await;
}

#[tokio::test]
async fn one_node_prunes_the_audit_log_at_a_time() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    organization(db.store.as_ref(), "Acme").await;
    let later = Timestamp::now().plus_seconds(10);
    // Another node is pruning: it holds the lock, and this one skips its turn.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(x'006b776175646974'::bigint)")
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(db.store.prune_audit_events(later, 100).await.unwrap(), 0);
    sqlx::query("SELECT pg_advisory_unlock(x'006b776175646974'::bigint)")
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(db.store.prune_audit_events(later, 100).await.unwrap(), 2);
    db.store.close().await;
}

#[tokio::test]
async fn the_schema_refuses_to_move_a_rotations_end() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    crate::credentials::rotate_first_key(db.store.as_ref()).await;
    let mut connection = sqlx::PgConnection::connect(&db.url).await.unwrap();
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
    db.store.close().await;
}
