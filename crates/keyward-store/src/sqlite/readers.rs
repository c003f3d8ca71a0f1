//! Reads from SQLite, run in place on the calling thread.
//!
//! A read here is an indexed look-up in pages that are almost always in memory: a few
//! microseconds of work. Going through sqlx cost far more than that: each query crossed to
//! the connection's own worker thread and back, behind a pool acquisition
//! (`docs/performance.md` has the measurements). So reads use a few read-only connections
//! directly, with prepared statements kept per connection, each behind a mutex; a read takes
//! a free one (or waits briefly for one) and runs on the caller's thread, without any
//! hand-off. Writes, which wait for the disk, stay on sqlx's own thread.
//!
//! WAL mode lets these readers run beside the writer: each statement reads the last
//! committed state, never a partial transaction.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use uuid::Uuid;

use crate::StoreError;
use crate::sql::{Columns, Decode, Query, Read, Value};

/// Prepared statements kept per connection: more than Keyward has reads.
const STATEMENT_CACHE: usize = 64;

pub(crate) struct Readers {
    /// `None` once closed.
    connections: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
}

impl Readers {
    /// Opens `count` read-only connections to the database file (which the writer has
    /// created and migrated already).
    pub(crate) fn open(path: &Path, count: usize, busy: Duration) -> Result<Self, StoreError> {
        let connections = (0..count.max(1))
            .map(|_| {
                let connection = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                connection.busy_timeout(busy)?;
                // Plans that do not depend on bound values. Without this, a statement with a
                // bound LIMIT is compiled again on every run, since the value could change
                // the plan: a third of the CPU time of a list request.
                connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
                connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(Mutex::new(Some(connection)))
            })
            .collect::<Result<_, rusqlite::Error>>()
            .map_err(read_error)?;
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
        })
    }

    /// A free connection, or, if every one is busy, the next in turn once it is free.
    fn connection(&self) -> MutexGuard<'_, Option<Connection>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.connections.len();
        for offset in 0..count {
            if let Ok(connection) = self.connections[(start + offset) % count].try_lock() {
                return connection;
            }
        }
        // A panic while a connection was held cannot have left it in a state that matters:
        // every statement is reset before the guard is released or dropped.
        self.connections[start % count]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `query` and hands each row to `each` until it returns `false`.
    fn run(
        &self,
        query: &Query<'_>,
        mut each: impl FnMut(&dyn Columns) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let connection = self.connection();
        let connection = connection
            .as_ref()
            .ok_or_else(|| StoreError::Read("the store is closed".into()))?;
        let mut statement = connection.prepare_cached(query.sql).map_err(read_error)?;
        for index in 1..=statement.parameter_count() {
            let value = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|number| number.parse::<usize>().ok())
                .and_then(|number| query.params.get(number.checked_sub(1)?))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("statement parameter {index} is not bound"))
                })?;
            statement
                .raw_bind_parameter(index, Param(value))
                .map_err(read_error)?;
        }
        let mut rows = statement.raw_query();
        while let Some(row) = rows.next().map_err(read_error)? {
            if !each(&Row(row))? {
                break;
            }
        }
        Ok(())
    }

    /// Closes every connection (waiting for those in use); reads fail afterwards.
    pub(crate) fn close(&self) {
        for connection in &self.connections {
            let connection = connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(Err((_, error))) = connection.map(Connection::close) {
                tracing::warn!(%error, "could not close a database reader");
            }
        }
    }

    /// Whether the database answers.
    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        self.run(&Query::new("SELECT 1"), |_| Ok(false))
    }
}

/// A failed read: the database busy or locked past the busy timeout, or not readable at all
/// (an I/O error), is unavailable for now, which the caller may retry; anything else is an
/// error.
fn read_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{CannotOpen, DatabaseBusy, DatabaseLocked, SystemIoFailure};
    match error.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | CannotOpen) => {
            StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(error.to_string())))
        }
        _ => StoreError::Read(error.to_string()),
    }
}

impl Read for &Readers {
    async fn optional<T: Send>(
        &mut self,
        query: Query<'_>,
        decode: Decode<T>,
    ) -> Result<Option<T>, StoreError> {
        let mut found = None;
        self.run(&query, |row| {
            found = Some(decode(row)?);
            Ok(false)
        })?;
        Ok(found)
    }

    async fn all<T: Send>(
        &mut self,
        query: Query<'_>,
        decode: Decode<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut all = Vec::new();
        self.run(&query, |row| {
            all.push(decode(row)?);
            Ok(true)
        })?;
        Ok(all)
    }
}

/// A parameter as SQLite takes it, the way sqlx stores it: UUIDs as 16-byte blobs, booleans
/// as 0 and 1.
struct Param<'v, 'a>(&'v Value<'a>);

impl rusqlite::ToSql for Param<'_, '_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let value = match self.0 {
            Value::Uuid(uuid) | Value::OptUuid(Some(uuid)) => ValueRef::Blob(uuid.as_bytes()),
            Value::Int(n) | Value::OptInt(Some(n)) => return Ok(ToSqlOutput::from(*n)),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::OptText(Some(text)) => ValueRef::Text(text.as_bytes()),
            Value::Bytes(bytes) => ValueRef::Blob(bytes),
            Value::Bool(b) => return Ok(ToSqlOutput::from(i64::from(*b))),
            Value::OptUuid(None) | Value::OptInt(None) | Value::OptText(None) => ValueRef::Null,
        };
        Ok(ToSqlOutput::Borrowed(value))
    }
}

struct Row<'r, 's>(&'r rusqlite::Row<'s>);

impl Row<'_, '_> {
    fn value(&self, column: &str) -> Result<ValueRef<'_>, StoreError> {
        self.0.get_ref(column).map_err(read_error)
    }

    fn column_error(column: &str, wanted: &str) -> StoreError {
        StoreError::Corrupt(format!("column {column} is not {wanted}"))
    }
}

impl Columns for Row<'_, '_> {
    fn uuid(&self, column: &str) -> Result<Uuid, StoreError> {
        self.opt_uuid(column)?
            .ok_or_else(|| Self::column_error(column, "a UUID"))
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        match self.value(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(bytes) => Uuid::from_slice(bytes)
                .map(Some)
                .map_err(|_| Self::column_error(column, "a UUID")),
            _ => Err(Self::column_error(column, "a UUID")),
        }
    }

    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| Self::column_error(column, "an integer"))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        match self.value(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            _ => Err(Self::column_error(column, "an integer")),
        }
    }

    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| Self::column_error(column, "text"))
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        match self.value(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(text) => String::from_utf8(text.to_vec())
                .map(Some)
                .map_err(|_| Self::column_error(column, "UTF-8 text")),
            _ => Err(Self::column_error(column, "text")),
        }
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        match self.value(column)? {
            ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
            _ => Err(Self::column_error(column, "a blob")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readers() -> (tempfile::TempDir, Readers) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("readers.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER, b BLOB);")
            .unwrap();
        let readers = Readers::open(&path, 2, Duration::from_secs(1)).unwrap();
        (dir, readers)
    }

    #[tokio::test]
    async fn parameters_bind_by_their_number_whatever_their_order_of_appearance() {
        let (_dir, readers) = readers();
        let uuid = Uuid::now_v7();
        let query = Query::new("SELECT $3 AS c, $1 AS a, $2 AS b, $1 + 1 AS d")
            .bind(41_i64)
            .bind(Some("two"))
            .bind(uuid);
        let row = (&readers)
            .optional(query, |row| {
                Ok((row.int("a")?, row.text("b")?, row.uuid("c")?, row.int("d")?))
            })
            .await
            .unwrap();
        assert_eq!(row, Some((41, "two".to_owned(), uuid, 42)));
    }

    #[tokio::test]
    async fn nulls_mismatched_columns_and_a_closed_store_are_errors_not_panics() {
        let (_dir, readers) = readers();
        let query = Query::new("SELECT $1 AS missing, 'text' AS t").bind(None::<Uuid>);
        let row = (&readers)
            .optional(query, |row| {
                Ok((row.opt_uuid("missing")?, row.int("t").is_err()))
            })
            .await
            .unwrap();
        assert_eq!(row, Some((None, true)));
        let unbound = (&readers)
            .all(Query::new("SELECT $1 AS n"), |row| row.int("n"))
            .await;
        assert!(
            matches!(unbound, Err(StoreError::Corrupt(_))),
            "{unbound:?}"
        );
        readers.close();
        let closed = (&readers)
            .all(Query::new("SELECT 1 AS n"), |row| row.int("n"))
            .await;
        assert!(matches!(closed, Err(StoreError::Read(_))), "{closed:?}");
    }
}
