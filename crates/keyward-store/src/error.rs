use thiserror::Error;

/// What can go wrong in storage. The server maps these to HTTP answers: `Conflict` to 409,
/// `NotFound` to 404, `Unavailable` to 503, the rest to 500.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique name is taken; the string says which kind of thing.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The organization is suspended: nothing may be created in it until it is resumed.
    #[error("the organization is suspended")]
    Suspended,
    /// Too many of something in too short a time (emails to one address, say); the message
    /// says what, and when to try again.
    #[error("{message}")]
    Throttled {
        message: &'static str,
        retry_after_seconds: u64,
    },
    /// A field of the change cannot apply to what is stored (found inside the writing
    /// transaction): the server answers 422 for `field`.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
    /// A new credential's expiry breaks its organization's policy.
    #[error("the credential breaks the organization's policy")]
    Policy(crate::OrganizationPolicy),
    /// Something the write refers to does not exist (in this organization).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The database answers but cannot write (a full disk, an I/O error): reads work, writes
    /// fail until the cause goes away.
    #[error("the database cannot write: {0}")]
    Unwritable(&'static str),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A read from the embedded database failed; the message is SQLite's.
    #[error("database read failed: {0}")]
    Read(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// The URL (password hidden) names no database Keyward can use; `reason` says why.
    #[error(
        "cannot use the database URL {url}: {reason}; use sqlite://PATH for the embedded \
         database (for example sqlite://./keyward-data/keyward.db) or \
         postgres://USER:PASSWORD@HOST:PORT/DATABASE for several nodes"
    )]
    UnsupportedUrl { url: String, reason: String },
    /// The database could not be opened or reached when Keyward started.
    #[error("cannot open the database {url}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("could not create the data directory {path}")]
    DataDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the database file {path}")]
    DatabaseFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn unsupported(url: &str, reason: impl Into<String>) -> Self {
        Self::UnsupportedUrl {
            url: crate::redact(url),
            reason: reason.into(),
        }
    }

    pub(crate) fn open(url: &str) -> impl FnOnce(sqlx::Error) -> Self {
        let url = crate::redact(url);
        move |source| Self::Open { url, source }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error),
            // PostgreSQL's connection exceptions (class 08) and shutdowns (57P01–57P03).
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")) =>
            {
                StoreError::Unavailable(error)
            }
            // SQLite's primary result codes (the low byte of the extended one).
            sqlx::Error::Database(db) => match db
                .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .and_then(|sqlite| {
                    sqlite_primary_code(sqlx::error::DatabaseError::code(sqlite).as_deref())
                }) {
                Some(13) => StoreError::Unwritable("the disk is full"),
                Some(10) => StoreError::Unwritable("the disk reported an I/O error"),
                Some(8) => StoreError::Unwritable("the database file is read-only"),
                _ => StoreError::Database(error),
            },
            _ => StoreError::Database(error),
        }
    }
}

fn sqlite_primary_code(code: Option<&str>) -> Option<i64> {
    code?.parse::<i64>().ok().map(|extended| extended & 0xff)
}

/// Turns a unique-constraint violation into `Conflict(what)`.
pub(crate) fn conflict_on_unique(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::from(error),
    }
}

/// What the `credentials_need_a_live_project` trigger says, on both backends.
const PROJECT_NOT_LIVE: &str = "keyward: the project is deleted";

/// Turns a failed credential insert into `Conflict("credential")` for a taken id or digest
/// and `NotFound("project")` when the database refused a token for a project that is not
/// live (deleted, perhaps by a concurrent request).
pub(crate) fn credential_insert_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.message().contains(PROJECT_NOT_LIVE) => {
            StoreError::NotFound("project")
        }
        _ => conflict_on_unique("credential")(error),
    }
}
