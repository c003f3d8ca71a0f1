//! Schema migrations, embedded in the binary and applied at start-up in one transaction
//! that the backend serializes (`BEGIN IMMEDIATE` on SQLite, an advisory lock on
//! PostgreSQL), so that several processes starting at once apply them once.
//!
//! Each applied migration is recorded with the SHA-256 of its text. A migration is never
//! edited once released: if the text in the binary no longer matches the record, Keyward
//! refuses to start rather than run on a schema it cannot vouch for. Databases from before
//! checksums were recorded get them on their first start with this version.

use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::sql::{Query, Write};

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub(crate) fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// What the database says it has applied: the version, and the checksum if the column
/// exists (`Err` when it does not yet).
type Applied = (i64, Result<Option<String>, ()>);

/// Applies the migrations `tx` has not seen, in order, inside `tx` (which the caller
/// commits). `migrations` is append-only.
pub(crate) async fn run<W: Write + Script>(
    tx: &mut W,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    tx.script(
        "CREATE TABLE IF NOT EXISTS keyward_migrations (
             version BIGINT PRIMARY KEY NOT NULL,
             name TEXT NOT NULL,
             applied_at BIGINT NOT NULL,
             checksum TEXT
         )",
    )
    .await?;
    let applied: Vec<Applied> = tx
        .all(
            Query::new("SELECT * FROM keyward_migrations ORDER BY version"),
            |row| Ok((row.int("version")?, row.opt_text("checksum").map_err(drop))),
        )
        .await?;
    if applied.iter().any(|(_, checksum)| checksum.is_err()) {
        tx.script("ALTER TABLE keyward_migrations ADD COLUMN checksum TEXT")
            .await?;
    }

    let latest_known = migrations.last().map_or(0, |m| m.version);
    for (version, recorded) in &applied {
        let Some(migration) = migrations.iter().find(|m| m.version == *version) else {
            return Err(StoreError::Migration(format!(
                "the database has schema version {version}, newer than this Keyward knows \
                 ({latest_known}); run a newer Keyward"
            )));
        };
        let checksum = migration.checksum();
        match recorded {
            Ok(Some(recorded)) if *recorded == checksum => {}
            Ok(Some(_)) => {
                return Err(StoreError::Migration(format!(
                    "migration {version} ({}) differs from the one applied to this database: \
                     a released migration must never be edited; restore it and add a new one",
                    migration.name
                )));
            }
            // Applied before checksums were recorded: record it now.
            Ok(None) | Err(()) => {
                let record =
                    Query::new("UPDATE keyward_migrations SET checksum = $1 WHERE version = $2")
                        .bind(checksum)
                        .bind(*version);
                tx.execute(record).await?;
            }
        }
    }

    for migration in migrations
        .iter()
        .filter(|m| !applied.iter().any(|(version, _)| *version == m.version))
    {
        tx.script(migration.sql).await.map_err(|e| {
            StoreError::Migration(format!("{} ({}): {e}", migration.version, migration.name))
        })?;
        let record = Query::new(
            "INSERT INTO keyward_migrations (version, name, applied_at, checksum) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(tx.now().unix_seconds())
        .bind(migration.checksum());
        tx.execute(record).await?;
    }
    Ok(())
}

/// Runs a script of several statements, without parameters.
pub(crate) trait Script {
    fn script(
        &mut self,
        sql: &'static str,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
}
