//! Schema migrations for SQLite, embedded in the binary and applied at start-up in one
//! `BEGIN IMMEDIATE` transaction, so two processes starting at once do not race.

use sqlx::SqlitePool;

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
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "dashboard",
        sql: include_str!("../../migrations/sqlite/0002_dashboard.sql"),
    },
    Migration {
        version: 3,
        name: "rate limits",
        sql: include_str!("../../migrations/sqlite/0003_rate_limits.sql"),
    },
    Migration {
        version: 4,
        name: "tokens need a live project",
        sql: include_str!("../../migrations/sqlite/0004_tokens_need_a_live_project.sql"),
    },
    Migration {
        version: 5,
        name: "write probe",
        sql: include_str!("../../migrations/sqlite/0005_write_probe.sql"),
    },
];

pub(super) async fn run(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS keyward_migrations (
             version INTEGER PRIMARY KEY NOT NULL,
             name TEXT NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .execute(pool)
    .await?;

    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
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
            "INSERT INTO keyward_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
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
