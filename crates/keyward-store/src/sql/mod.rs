//! Every statement Keyward runs, written once for both backends, and the row types that read
//! their results back.
//!
//! A statement is a [`Query`]: its text (with `$1`, `$2` … placeholders, which PostgreSQL and
//! SQLite both understand), the row lock PostgreSQL needs where a check must hold until the
//! write (SQLite's single writer makes it needless there), and its parameters as [`Value`]s.
//! A backend runs it through [`Read`] and [`Write`]; rows come back through [`Columns`], so
//! that one function per table decodes them whichever way they were read.

pub(crate) mod audit;
pub(crate) mod credentials;
pub(crate) mod credits;
pub(crate) mod email;
pub(crate) mod idempotency;
pub(crate) mod identities;
pub(crate) mod instances;
pub(crate) mod invitations;
pub(crate) mod key_events;
pub(crate) mod organizations;
pub(crate) mod portal;
pub(crate) mod projects;
pub(crate) mod rates;
pub(crate) mod sessions;
pub(crate) mod sso;
pub(crate) mod usage;
pub(crate) mod webhooks;

use std::borrow::Cow;
use std::future::Future;

use keyward_core::KeyDigest;
use uuid::Uuid;

use crate::{KeyChange, StoreError};

/// A statement parameter. The `Opt…` variants keep the type of a NULL, which PostgreSQL needs.
#[derive(Clone, Debug)]
pub(crate) enum Value<'a> {
    Uuid(Uuid),
    OptUuid(Option<Uuid>),
    Int(i64),
    OptInt(Option<i64>),
    Text(Cow<'a, str>),
    OptText(Option<Cow<'a, str>>),
    Bytes(&'a [u8]),
    Bool(bool),
}

impl From<Uuid> for Value<'_> {
    fn from(value: Uuid) -> Self {
        Value::Uuid(value)
    }
}

impl From<Option<Uuid>> for Value<'_> {
    fn from(value: Option<Uuid>) -> Self {
        Value::OptUuid(value)
    }
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(value: Option<i64>) -> Self {
        Value::OptInt(value)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Text(Cow::Borrowed(value))
    }
}

impl From<String> for Value<'_> {
    fn from(value: String) -> Self {
        Value::Text(Cow::Owned(value))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Value::OptText(value.map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Value<'_> {
    fn from(value: Option<String>) -> Self {
        Value::OptText(value.map(Cow::Owned))
    }
}

impl<'a> From<&'a KeyDigest> for Value<'a> {
    fn from(value: &'a KeyDigest) -> Self {
        Value::Bytes(value.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(value: &'a [u8]) -> Self {
        Value::Bytes(value)
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

/// One statement and its parameters, numbered from `$1` in the order they are bound.
#[derive(Debug)]
pub(crate) struct Query<'a> {
    pub sql: &'static str,
    /// The same statement with the row lock PostgreSQL takes, if it needs one.
    pub locking_sql: Option<&'static str>,
    pub params: Vec<Value<'a>>,
}

impl<'a> Query<'a> {
    pub fn new(sql: &'static str) -> Self {
        Self {
            sql,
            locking_sql: None,
            params: Vec::new(),
        }
    }

    pub fn bind(mut self, value: impl Into<Value<'a>>) -> Self {
        self.params.push(value.into());
        self
    }
}

/// A statement that PostgreSQL runs with a row lock (`FOR UPDATE`, `FOR SHARE`) appended,
/// and SQLite without: `locking!("FOR UPDATE", "SELECT …")`.
macro_rules! locking {
    ($lock:literal, $sql:literal) => {
        $crate::sql::Query {
            sql: $sql,
            locking_sql: Some(concat!($sql, " ", $lock)),
            params: Vec::new(),
        }
    };
}
pub(crate) use locking;

/// One row of a result, by column name. Every backend's rows implement it, so each table has
/// one decoding function.
pub(crate) trait Columns {
    fn uuid(&self, column: &str) -> Result<Uuid, StoreError>;
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
}

/// Turns one row into a value.
pub(crate) type Decode<T> = fn(&dyn Columns) -> Result<T, StoreError>;

/// What reads: a backend's readers, and any write transaction.
pub(crate) trait Read: Send {
    fn optional<T: Send>(
        &mut self,
        query: Query<'_>,
        decode: Decode<T>,
    ) -> impl Future<Output = Result<Option<T>, StoreError>> + Send;

    fn all<T: Send>(
        &mut self,
        query: Query<'_>,
        decode: Decode<T>,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>> + Send;
}

/// A write transaction: nothing is visible to others until the store commits it.
pub(crate) trait Write: Read {
    /// When the change this transaction makes happens: the store's clock, read once when
    /// the transaction began.
    fn now(&self) -> keyward_core::Timestamp;

    /// Runs a statement and returns the number of rows it changed. The error is the
    /// database's own, so that the caller can tell a conflict from a failure.
    fn execute(
        &mut self,
        query: Query<'_>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Records a change verification must follow: once the transaction commits, every
    /// node's verification cache forgets the credential (this node's is told by its caller),
    /// and the key-event log has the change, numbered after every change committed before.
    fn forget_on_commit(
        &mut self,
        change: KeyChange<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One page of a list: `query` with the page's cursor and limit bound as its last two
/// parameters (`id < $n-1`, `LIMIT $n`), newest first.
pub(crate) async fn page<T: Send>(
    db: &mut impl Read,
    query: Query<'_>,
    decode: Decode<T>,
    page: crate::Page,
) -> Result<crate::Paged<T>, StoreError> {
    let query = query.bind(page.before).bind(page.fetch_limit());
    let items = db.all(query, decode).await?;
    Ok(crate::Paged::from_rows(items, page))
}

/// Decodes nothing: the row's existence is the answer.
pub(crate) fn exists(_: &dyn Columns) -> Result<(), StoreError> {
    Ok(())
}

/// Reads a sqlx row (either backend's) by column name.
macro_rules! sqlx_columns {
    ($row:ty) => {
        impl $crate::sql::Columns for $row {
            fn uuid(&self, column: &str) -> Result<uuid::Uuid, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_uuid(&self, column: &str) -> Result<Option<uuid::Uuid>, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}
sqlx_columns!(sqlx::sqlite::SqliteRow);
sqlx_columns!(sqlx::postgres::PgRow);

/// Binds parameters to a sqlx query, either backend's.
macro_rules! sqlx_bind {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for value in $params {
            query = match value {
                $crate::sql::Value::Uuid(v) => query.bind(v),
                $crate::sql::Value::OptUuid(v) => query.bind(v),
                $crate::sql::Value::Int(v) => query.bind(v),
                $crate::sql::Value::OptInt(v) => query.bind(v),
                $crate::sql::Value::Text(v) => query.bind(v.into_owned()),
                $crate::sql::Value::OptText(v) => query.bind(v.map(std::borrow::Cow::into_owned)),
                $crate::sql::Value::Bytes(v) => query.bind(v.to_vec()),
                $crate::sql::Value::Bool(v) => query.bind(v),
            };
        }
        query
    }};
}
pub(crate) use sqlx_bind;

/// Implements [`Read`] for something sqlx executes on: `|this| $executor` names the executor
/// given `this` (`&mut Self`), and `$sql` (a `fn(&Query) -> &'static str`) chooses the
/// statement's text (with or without its row lock).
macro_rules! sqlx_read {
    ($ty:ty, $db:ty, |$this:ident| $executor:expr, $sql:expr) => {
        impl $crate::sql::Read for $ty {
            async fn optional<T: Send>(
                &mut self,
                query: $crate::sql::Query<'_>,
                decode: $crate::sql::Decode<T>,
            ) -> Result<Option<T>, $crate::StoreError> {
                let text = $sql(&query);
                let $this = self;
                let row = $crate::sql::sqlx_bind!(sqlx::query::<$db>(text), query.params)
                    .fetch_optional($executor)
                    .await?;
                row.as_ref().map(|row| decode(row)).transpose()
            }

            async fn all<T: Send>(
                &mut self,
                query: $crate::sql::Query<'_>,
                decode: $crate::sql::Decode<T>,
            ) -> Result<Vec<T>, $crate::StoreError> {
                let text = $sql(&query);
                let $this = self;
                let rows = $crate::sql::sqlx_bind!(sqlx::query::<$db>(text), query.params)
                    .fetch_all($executor)
                    .await?;
                rows.iter().map(|row| decode(row)).collect()
            }
        }
    };
}
pub(crate) use sqlx_read;
