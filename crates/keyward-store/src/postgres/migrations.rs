//! Schema migrations for PostgreSQL, embedded in the binary and applied at start-up in one
//! transaction under an advisory lock, so several nodes starting at once apply them once.

use sqlx::PgPool;

use crate::StoreError;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Append only: a released migration is never edited or reordered.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "tokens need a live project",
        sql: include_str!("../../migrations/postgres/0002_tokens_need_a_live_project.sql"),
    },
];

/// Any number; the same on every node.
const MIGRATION_LOCK: i64 = 0x006b_6579_7761_7264;

pub(super) async fn run(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS keyward_migrations (
             version BIGINT PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM keyward_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    let latest_known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&newer) = applied.iter().find(|&&v| v > latest_known) {
        return Err(StoreError::Migration(format!(
            "the database has schema version {newer}, newer than this Keyward knows \
             ({latest_known}); run a newer Keyward"
        )));
    }
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                StoreError::Migration(format!("{} ({}): {e}", migration.version, migration.name))
            })?;
        sqlx::query(
            "INSERT INTO keyward_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(keyward_core::Timestamp::now().unix_seconds())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
