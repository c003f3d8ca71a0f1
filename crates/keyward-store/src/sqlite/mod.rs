//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes go through a pool of one connection and start with `BEGIN IMMEDIATE`, so writers
//! queue instead of failing with "database is locked" (another process, such as
//! `keyward bootstrap` next to a running server, waits up to the busy timeout). Reads use a
//! few read-only connections of their own (see [`readers`]), which WAL lets run beside the
//! writer.
//! `synchronous = FULL`: a transaction is on disk before its response is sent.

mod migrations;
mod readers;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keyward_core::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};
use tokio::sync::broadcast;

use crate::migrate::Script;
use crate::sql::{Query, Write, key_events, sqlx_bind, sqlx_read};
use crate::store::{Backend, SqlStore};
use crate::{Clock, Invalidation, KeyChange, StoreError};
use readers::Readers;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read-only connections: enough that a read seldom waits for one (reads run on the
/// runtime's worker threads, one per core).
const READ_CONNECTIONS: usize = 8;

/// The store on SQLite.
pub(crate) type SqliteStore = SqlStore<SqliteBackend>;

pub(crate) struct SqliteBackend {
    clock: Clock,
    writer: SqlitePool,
    writer_health: WriterHealth,
    readers: Readers,
    /// Tells this node of committed key events (one node per file: nobody else writes).
    key_events: broadcast::Sender<Invalidation>,
}

impl SqliteBackend {
    /// Opens (creating the file and its directory if needed) and migrates the database.
    pub async fn open(url: &str, clock: Clock) -> Result<SqliteStore, StoreError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::unsupported(
                url,
                "an in-memory database would lose every key at restart",
            ));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::unsupported(url, error.to_string()))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        create_private_file(options.get_filename())?;

        let writer_health = WriterHealth::default();
        let replace = writer_health.replace_connection.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            // A connection whose last transaction failed is closed, and a fresh one opened.
            .before_acquire(move |_, _| {
                let keep = !replace.swap(false, Ordering::SeqCst);
                Box::pin(async move { Ok(keep) })
            })
            .connect_with(options.clone().create_if_missing(true))
            .await
            .map_err(StoreError::open(url))?;
        migrations::run(&writer, &writer_health, clock.now()).await?;
        let readers = Readers::open(options.get_filename(), READ_CONNECTIONS, BUSY_TIMEOUT)?;
        Ok(SqlStore::new(Self {
            clock,
            writer,
            writer_health,
            readers,
            key_events: broadcast::channel(1024).0,
        }))
    }

    async fn write(&self) -> Result<WriteTx<'_>, StoreError> {
        let mut tx = WriteTx::begin(&self.writer, &self.writer_health, self.clock.now()).await?;
        tx.key_events = Some(&self.key_events);
        Ok(tx)
    }

    /// After a failed write, whether the database can write again: rewrites one row.
    async fn probe_write(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let probe =
            Query::new("INSERT OR REPLACE INTO keyward_write_probe (id, at) VALUES (1, $1)")
                .bind(tx.now().unix_seconds());
        tx.execute(probe).await?;
        tx.commit().await
    }
}

/// What the store knows of its writer connection.
#[derive(Default)]
struct WriterHealth {
    /// Set when a commit or a `BEGIN` failed: the pool replaces the connection before its next
    /// use. After a failed commit (a full disk, say), SQLite may have rolled the transaction
    /// back by itself, and the connection's idea of it would be wrong; a new connection is
    /// cheap and certain. (A transaction abandoned for an ordinary reason, a name conflict
    /// say, is rolled back on the same connection.)
    replace_connection: Arc<AtomicBool>,
    /// Set by a write that did not commit, cleared by one that did; readiness checks probe
    /// with a write while it is set.
    last_write_failed: AtomicBool,
}

impl WriterHealth {
    fn failed(&self) {
        self.replace_connection.store(true, Ordering::SeqCst);
        self.last_write_failed.store(true, Ordering::SeqCst);
    }
}

/// A write transaction that, unless committed, counts as a failed write (see
/// [`WriterHealth`]).
pub(crate) struct WriteTx<'s> {
    tx: Transaction<'static, sqlx::Sqlite>,
    unfinished: Unfinished<'s>,
    now: Timestamp,
    /// Key events to write at the commit, and whom to tell once they are committed.
    events: Vec<key_events::Pending>,
    key_events: Option<&'s broadcast::Sender<Invalidation>>,
}

/// Marks the write failed when dropped; `commit` disarms it.
struct Unfinished<'s>(&'s WriterHealth);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        self.0.last_write_failed.store(true, Ordering::SeqCst);
    }
}

impl<'s> WriteTx<'s> {
    /// Begins with `BEGIN IMMEDIATE`, so that writers queue for the lock at the start.
    async fn begin(
        writer: &SqlitePool,
        health: &'s WriterHealth,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let begun = match writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => Ok(tx),
            Err(_) => {
                // The connection may be the one that is confused: try once on a fresh one.
                health.failed();
                writer.begin_with("BEGIN IMMEDIATE").await
            }
        };
        match begun {
            Ok(tx) => Ok(WriteTx {
                tx,
                unfinished: Unfinished(health),
                now,
                events: Vec::new(),
                key_events: None,
            }),
            Err(error) => {
                health.failed();
                Err(error.into())
            }
        }
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            // SQLite has one writer: ids increase in commit order.
            let now = self.now;
            key_events::insert(&mut self, &events, now).await?;
        }
        let WriteTx {
            tx,
            unfinished,
            key_events: wakes,
            ..
        } = self;
        let health = unfinished.0;
        std::mem::forget(unfinished);
        match tx.commit().await {
            Ok(()) => {
                health.last_write_failed.store(false, Ordering::SeqCst);
                if let Some(wakes) = wakes {
                    for organization in key_events::organizations(&events) {
                        let _ = wakes.send(Invalidation::KeyEvents(organization));
                    }
                }
                Ok(())
            }
            Err(error) => {
                health.failed();
                Err(error.into())
            }
        }
    }
}

/// Creates the database file's directory (0700) and the file itself (0600) if they do not
/// exist: they hold key digests and password hashes, which are nobody else's business.
/// SQLite gives its `-wal` and `-shm` files the database file's mode. Existing files and
/// directories keep the mode the operator gave them. Opening the file here also turns
/// SQLite's vague "unable to open database file" into the operating system's reason.
fn create_private_file(file: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::DataDirectory {
                path: dir.display().to_string(),
                source,
            })?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)
        .map(drop)
        .map_err(|source| StoreError::DatabaseFile {
            path: file.display().to_string(),
            source,
        })
}

impl Backend for SqliteBackend {
    type Reader<'a> = &'a Readers;
    type Tx<'a> = WriteTx<'a>;

    fn reader(&self) -> Result<&Readers, StoreError> {
        Ok(&self.readers)
    }

    async fn begin(&self) -> Result<WriteTx<'_>, StoreError> {
        self.write().await
    }

    async fn commit<'a>(tx: WriteTx<'a>) -> Result<(), StoreError>
    where
        Self: 'a,
    {
        tx.commit().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers.ping()?;
        if self.writer_health.last_write_failed.load(Ordering::SeqCst) {
            self.probe_write().await?;
        }
        Ok(())
    }

    fn invalidations(&self) -> Option<broadcast::Receiver<Invalidation>> {
        Some(self.key_events.subscribe())
    }

    async fn close(&self) {
        // Readers first: the last connection to close checkpoints the WAL into the file.
        self.readers.close();
        self.writer.close().await;
    }
}

sqlx_read!(
    WriteTx<'_>,
    sqlx::Sqlite,
    |this| &mut *this.tx,
    |query: &Query| query.sql
);

impl Write for WriteTx<'_> {
    fn now(&self) -> Timestamp {
        self.now
    }

    async fn execute(&mut self, query: Query<'_>) -> Result<u64, sqlx::Error> {
        let done = sqlx_bind!(sqlx::query::<sqlx::Sqlite>(query.sql), query.params)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
    }

    /// One node per SQLite file: its cache is told directly; the key event is written at
    /// the commit.
    async fn forget_on_commit(&mut self, change: KeyChange<'_>) -> Result<(), StoreError> {
        self.events.push(key_events::Pending::from(&change));
        Ok(())
    }
}

impl Script for WriteTx<'_> {
    async fn script(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(&mut *self.tx).await.map(drop)
    }
}
