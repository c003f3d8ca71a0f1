//! PostgreSQL, for several stateless nodes sharing one database.
//!
//! Same tables and rules as the SQLite store. Writes use `READ COMMITTED` transactions with
//! explicit row locks where a check must hold until the write (owner counts, project
//! deletion, the log-in throttle). Changes that other nodes' caches must follow publish the
//! credential's digest with `pg_notify` in their own transaction; every node listens (see
//! [`follow_the_database`]).
//!
//! The listening connection is also how a node knows whether the database is there. When it
//! is lost (or a ping fails), the store counts as unavailable: every call fails at once with
//! [`StoreError::Unavailable`] instead of waiting for a connection (calls already waiting
//! for one fail then too), and [`Store::state`] says for how long, so that the verification
//! cache can keep serving what it verified before, for a bounded grace. A new listening connection is tried every [`RETRY_INTERVAL`]; once it
//! listens, the store's generation moves on (so that the cache trusts nothing it learned
//! before: it may have missed changes meanwhile), and only then is the store available.

mod migrations;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keyward_core::{KeyDigest, OrganizationId, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, Transaction};
use tokio::sync::broadcast;

use crate::migrate::Script;
use crate::sql::{Query, Write, key_events, sqlx_bind, sqlx_read};
use crate::store::{Backend, SqlStore};
use crate::{Clock, DatabaseState, Invalidation, KeyChange, StoreError};

/// The store on PostgreSQL.
pub(crate) type PgStore = SqlStore<PgBackend>;

/// The channel every node listens on; payloads are hex SHA-256 digests.
pub(crate) const INVALIDATION_CHANNEL: &str = "keyward_invalidations";
/// Carries the id of an organization with new key events, at their commit.
const KEY_EVENTS_CHANNEL: &str = "keyward_key_events";
/// Held by a transaction from taking its key events' ids to its commit; any number, the
/// same on every node.
const KEY_EVENTS_LOCK: i64 = 0x006b_6579_6576_6e74;
/// How long a request waits for a connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_CONNECTIONS: u32 = 10;
/// While the database is away, how often a node tries to listen again: this bounds how long
/// after its return a node can still be serving keys it verified before the outage.
const RETRY_INTERVAL: Duration = Duration::from_millis(25);
/// How long one attempt to reach the database again, or to listen, may take.
const LISTEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a node checks, on its listening connection, that the database still answers,
/// and how long it waits for the answer: a silent network partition is noticed within their
/// sum.
const PING_INTERVAL: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long closing the store waits for the follower and the connections to finish.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct PgBackend {
    pool: PgPool,
    health: Arc<Health>,
    /// Tells [`follow_the_database`] to stop, and waits for it.
    follower: std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<()>,
        )>,
    >,
    invalidations: broadcast::Sender<Invalidation>,
}

impl PgBackend {
    /// Connects, migrates, and starts listening for other nodes' invalidations.
    pub async fn open(url: &str, clock: Clock) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::unsupported(url, error.to_string()))?;
        // One connection first, so that a refused connection, a wrong password or a missing
        // database is reported at once and as such, not as a pool time-out.
        let mut first = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                let silent = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", ACQUIRE_TIMEOUT.as_secs()),
                );
                StoreError::open(url)(sqlx::Error::Io(silent))
            })?
            .map_err(StoreError::open(url))?;
        first.ping().await.map_err(StoreError::open(url))?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::open(url))?;
        migrations::run(&pool, clock.now()).await?;
        let (invalidations, _) = broadcast::channel(4096);
        let listen_options = pool.connect_options().as_ref().clone();
        let listener = listen(&listen_options)
            .await
            .map_err(StoreError::open(url))?;
        let health = Arc::new(Health::new(clock));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let follower = tokio::spawn(follow_the_database(
            listen_options,
            listener,
            health.clone(),
            invalidations.clone(),
            stopped,
        ));
        Ok(SqlStore::new(Self {
            pool,
            health,
            follower: std::sync::Mutex::new(Some((stop, follower))),
            invalidations,
        }))
    }

    /// The pool, unless the database is known to be away: then fail at once.
    fn pool(&self) -> Result<&PgPool, StoreError> {
        if self.health.down_since.load(Ordering::SeqCst) == UP {
            Ok(&self.pool)
        } else {
            Err(unreachable())
        }
    }
}

/// `down_since` while the database is reachable.
const UP: u64 = 0;

/// What a node knows of the database, shared by the store and the task that follows it.
struct Health {
    /// Since when the database is known to be away, in nanoseconds on the clock's monotonic
    /// time (at least 1), or [`UP`]: the outage grace is measured exactly, and a change of
    /// the wall clock moves nothing.
    down_since: AtomicU64,
    /// The store's clock: the time of changes, and of outages.
    clock: Clock,
    /// Tells work waiting for a connection that the database went away.
    went_down: tokio::sync::watch::Sender<bool>,
    /// Moves on every time the node starts listening again (see the module documentation).
    generation: AtomicU64,
}

impl Health {
    fn new(clock: Clock) -> Self {
        Self {
            down_since: AtomicU64::new(UP),
            clock,
            went_down: tokio::sync::watch::Sender::new(false),
            generation: AtomicU64::new(0),
        }
    }

    fn down(&self) {
        let now = self.clock.monotonic_nanos().max(1);
        if self
            .down_since
            .compare_exchange(UP, now, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.went_down.send_replace(true);
            tracing::warn!("the database is unreachable; verified keys are served for the grace");
        }
    }

    fn up(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.down_since.swap(UP, Ordering::SeqCst) != UP {
            self.went_down.send_replace(false);
            tracing::info!("the database is reachable again");
        }
    }

    /// How long the database has been known to be away.
    fn down_for(&self) -> Option<Duration> {
        match self.down_since.load(Ordering::SeqCst) {
            UP => None,
            since => Some(Duration::from_nanos(
                self.clock.monotonic_nanos().saturating_sub(since),
            )),
        }
    }

    /// `work` (which waits for a connection), unless the database is or becomes known to be
    /// away first: then the store is unavailable at once, rather than when the pool gives up
    /// waiting for a connection ([`ACQUIRE_TIMEOUT`]).
    async fn unless_down<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let mut went_down = self.went_down.subscribe();
        if *went_down.borrow_and_update() {
            return Err(unreachable());
        }
        tokio::select! {
            done = work => Ok(done?),
            _ = went_down.wait_for(|down| *down) => Err(unreachable()),
        }
    }
}

fn unreachable() -> StoreError {
    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the database is unreachable",
    )))
}

/// A connection listening on [`INVALIDATION_CHANNEL`], with reconnection left to the caller,
/// in a pool of its own: one listening connection per pool, so that a connection stuck on a
/// dead network (its `UNLISTEN` on drop never answered) holds up nothing but its own pool.
async fn listen(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(LISTEN_CONNECT_TIMEOUT)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.eager_reconnect(false);
    listener
        .listen_all([INVALIDATION_CHANNEL, KEY_EVENTS_CHANNEL])
        .await?;
    Ok(listener)
}

/// Whether the database accepts a connection now: one attempt, no retries, so that its
/// return is noticed within [`RETRY_INTERVAL`] (a pool would back off between attempts).
async fn reachable(options: &PgConnectOptions) -> bool {
    match tokio::time::timeout(LISTEN_CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(connection)) => {
            let _ = tokio::time::timeout(LISTEN_CONNECT_TIMEOUT, connection.close()).await;
            true
        }
        _ => false,
    }
}

/// What ended a spell of listening.
enum Interrupted {
    Lost,
    Stopped,
}

/// Follows the database until the store closes: forwards other nodes' changes to this
/// node's cache and pings on the listening connection; on losing the database marks the store
/// unavailable, then listens again as soon as it can, and only then makes the store
/// available, in a new generation.
async fn follow_the_database(
    options: PgConnectOptions,
    mut listener: PgListener,
    health: Arc<Health>,
    sender: broadcast::Sender<Invalidation>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        if let Interrupted::Stopped = listen_until_lost(&mut listener, &sender, &mut stop).await {
            return;
        }
        health.down();
        drop(listener);
        listener = loop {
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(RETRY_INTERVAL) => {}
            }
            if !reachable(&options).await {
                continue;
            }
            if let Ok(Ok(listener)) =
                tokio::time::timeout(LISTEN_CONNECT_TIMEOUT, listen(&options)).await
            {
                break listener;
            }
        };
        // Listening again: whatever changed meanwhile is either in the database for fresh
        // reads or on its way as a notification. Nothing learned before is trusted.
        health.up();
        let _ = sender.send(Invalidation::ForgetAll);
    }
}

/// Forwards notifications and pings, through the listening connection itself, until the
/// connection is lost, a ping goes unanswered, or the store stops.
async fn listen_until_lost(
    listener: &mut PgListener,
    sender: &broadcast::Sender<Invalidation>,
    stop: &mut tokio::sync::oneshot::Receiver<()>,
) -> Interrupted {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        // A notification that arrives during a ping is buffered by the listener.
        let due = tokio::select! {
            _ = &mut *stop => return Interrupted::Stopped,
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    let payload = notification.payload();
                    let change = if notification.channel() == KEY_EVENTS_CHANNEL {
                        uuid::Uuid::parse_str(payload).map_or(Invalidation::ForgetAll, |id| {
                            Invalidation::KeyEvents(OrganizationId::from_uuid(id))
                        })
                    } else {
                        parse_digest(payload).map_or(Invalidation::ForgetAll, Invalidation::Forget)
                    };
                    let _ = sender.send(change);
                    false
                }
                Ok(None) | Err(_) => return Interrupted::Lost,
            },
            _ = ping.tick() => true,
        };
        if due {
            let answered = tokio::time::timeout(
                PING_TIMEOUT,
                sqlx::query("SELECT 1").execute(&mut *listener),
            )
            .await;
            if !matches!(answered, Ok(Ok(_))) {
                return Interrupted::Lost;
            }
        }
    }
}

fn parse_digest(hex: &str) -> Option<KeyDigest> {
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeyDigest(digest))
}

impl Backend for PgBackend {
    type Reader<'a> = Reader<'a>;
    type Tx<'a> = Tx;

    fn reader(&self) -> Result<Reader<'_>, StoreError> {
        Ok(Reader {
            pool: self.pool()?,
            health: &self.health,
        })
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        let pool = self.pool()?;
        let tx = self.health.unless_down(pool.begin()).await?;
        Ok(Tx {
            tx,
            now: self.health.clock.now(),
            events: Vec::new(),
        })
    }

    async fn commit<'a>(tx: Tx) -> Result<(), StoreError>
    where
        Self: 'a,
    {
        tx.commit().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()?).await?;
        Ok(())
    }

    async fn close(&self) {
        let follower = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((stop, task)) = follower {
            let _ = stop.send(());
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, task).await;
        }
        if tokio::time::timeout(CLOSE_TIMEOUT, self.pool.close())
            .await
            .is_err()
        {
            tracing::warn!("closed the database connections without waiting for all of them");
        }
    }

    fn invalidations(&self) -> Option<broadcast::Receiver<Invalidation>> {
        Some(self.invalidations.subscribe())
    }

    fn state(&self) -> DatabaseState {
        DatabaseState {
            generation: self.health.generation.load(Ordering::SeqCst),
            down_for: self.health.down_for(),
        }
    }
}

/// Reads from the pool, one connection per query.
pub(crate) struct Reader<'a> {
    pool: &'a PgPool,
    health: &'a Health,
}

impl Reader<'_> {
    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<Postgres>, StoreError> {
        self.health.unless_down(self.pool.acquire()).await
    }
}

/// A `READ COMMITTED` write transaction, and when its change happens.
pub(crate) struct Tx {
    tx: Transaction<'static, Postgres>,
    now: Timestamp,
    /// Key events to write at the commit.
    events: Vec<key_events::Pending>,
}

sqlx_read!(
    Reader<'_>,
    Postgres,
    |this| &mut *this.connection().await?,
    |query: &Query| query.sql
);
sqlx_read!(Tx, Postgres, |this| &mut *this.tx, |query: &Query| query
    .locking_sql
    .unwrap_or(query.sql));

impl Write for Tx {
    fn now(&self) -> Timestamp {
        self.now
    }

    async fn execute(&mut self, query: Query<'_>) -> Result<u64, sqlx::Error> {
        let text = query.locking_sql.unwrap_or(query.sql);
        let done = sqlx_bind!(sqlx::query::<Postgres>(text), query.params)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
    }

    /// Publishes the digest (hex) on [`INVALIDATION_CHANNEL`]; PostgreSQL delivers it to
    /// every listening node when, and only if, the transaction commits. The key event is
    /// written at the commit ([`Tx::commit`]).
    async fn forget_on_commit(&mut self, change: KeyChange<'_>) -> Result<(), StoreError> {
        let hex: String = change
            .digest
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let notify = Query::new("SELECT pg_notify($1, $2)")
            .bind(INVALIDATION_CHANNEL)
            .bind(hex);
        self.execute(notify).await?;
        self.events.push(key_events::Pending::from(&change));
        Ok(())
    }
}

impl Tx {
    /// Commits. A transaction with key events takes their ids last, under a lock held to
    /// the commit, so that ids increase in commit order: a reader that has seen an event
    /// has seen every one before it. The lock is taken after every other lock the
    /// transaction holds, and nothing else waits while holding it, so it cannot deadlock.
    async fn commit(mut self) -> Result<(), StoreError> {
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            self.execute(Query::new("SELECT pg_advisory_xact_lock($1)").bind(KEY_EVENTS_LOCK))
                .await?;
            let now = self.now;
            key_events::insert(&mut self, &events, now).await?;
            for organization in key_events::organizations(&events) {
                let notify = Query::new("SELECT pg_notify($1, $2)")
                    .bind(KEY_EVENTS_CHANNEL)
                    .bind(organization.as_uuid().to_string());
                self.execute(notify).await?;
            }
        }
        Ok(self.tx.commit().await?)
    }
}

impl Script for Tx {
    async fn script(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(&mut *self.tx).await.map(drop)
    }
}
