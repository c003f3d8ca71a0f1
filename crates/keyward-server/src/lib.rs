//! Keyward's HTTP server: the REST API under `/v1` (`api/`) and the dashboard (`web/`), both
//! thin front ends over `services/`, which hold every rule and take a `Caller`; Bearer
//! authentication and the verification cache (`auth/`); forward authentication,
//! introspection and verification for the platform's other services; webhooks (delivery and
//! expiry notices, `webhooks.rs`) and leak reports; health, readiness and metrics.
//!
//! [`app`] builds the router from an [`AppState`] without serving it, so tests can run it on
//! port 0; [`serve`] runs it until a shutdown signal, with the background tasks (last-use
//! batches, audit pruning, webhook delivery, the expiry scan, other nodes' invalidations), and
//! then finishes in-flight requests, gives back webhook deliveries under way and writes
//! pending last-use times.

pub mod admin_keys;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod branding;
pub mod client_address;
pub mod email;
pub mod error;
mod extract;
mod field_error;
pub mod idempotency;
pub mod metrics;
pub mod oidc;
mod pagination;
pub mod passwords;
pub mod portal;
pub mod proxy;
pub mod rate_limit;
pub mod secret_scanning;
mod server;
pub mod services;
pub mod throttle;
mod web;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use keyward_core::{Brand, ScopeCatalog};
use keyward_store::Store;
use tokio::net::TcpListener;

use crate::auth::{UsageRecorder, Verifier};
use crate::metrics::Metrics;
pub use crate::server::ConnectionLimits;

/// Settings that shape behaviour; every node of one installation must agree on `brand`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The prefix of every key this server issues and accepts.
    pub brand: Brand,
    /// How often last-use times are written to the database.
    pub usage_flush_interval: Duration,
    /// How long the audit log keeps an event.
    pub audit_retention: Duration,
    /// How long hourly usage counts are kept.
    pub usage_retention: Duration,
    /// How long a verified credential may be answered from memory before it is read again.
    /// Revocation does not wait for this: it clears the entry at once.
    pub cache_max_age: Duration,
    /// While the database is unreachable, how long after it went away the keys this node
    /// verified before keep working (see docs/deploy.md for what that can cost).
    pub outage_grace: Duration,
    /// Where people and programs reach this server (`https://…` makes cookies Secure; the
    /// dashboard's ready-made `curl` lines use it).
    pub public_url: String,
    /// How much password hashing (log-in, sign-up) may run and wait at once.
    pub password_limits: passwords::PasswordLimits,
    /// Timeouts and the connection cap; see [`ConnectionLimits`].
    pub connection_limits: ConnectionLimits,
    /// Where verification and the credential services read the time.
    pub clock: keyward_store::Clock,
    /// The scopes in force: Keyward's own and the platform's (`[[scopes]]` in the
    /// configuration file). Every node of one installation should agree on it.
    pub scopes: Arc<ScopeCatalog>,
    /// What `/v1/forward-auth` lets through: the route rules of the configuration file, whose
    /// scopes are of `scopes`.
    pub routes: keyward_core::route::RouteTable,
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`): a request from one
    /// of them is from the right-most forwarded address that is not one of them.
    pub trusted_proxies: Vec<keyward_core::Cidr>,
    /// The key every endpoint's webhook secret is derived from (`--webhooks-key-file`); the
    /// same on every node. Without it, endpoints cannot be registered and nothing is sent.
    pub webhook_signing_key: Option<Arc<keyward_core::webhook::SigningKey>>,
    /// Whether webhooks may go to loopback, private and link-local addresses.
    pub webhooks_allow_private_networks: bool,
    /// The waits between failed attempts; after the last, a delivery is given up.
    pub webhook_retry_delays: Vec<Duration>,
    /// How often each node looks for due deliveries.
    pub webhook_poll_interval: Duration,
    /// How often each node looks for credentials to warn about (`.expiring`, `.expired`).
    pub expiry_scan_interval: Duration,
    /// GitHub's secret-scanning public keys (`--github-keys-file`); without them, reports
    /// to `/v1/secret-scanning/github` are refused.
    pub github_keys: Option<Arc<secret_scanning::GithubKeys>>,
    /// The dashboard's name, accent colour and logo (`[branding]`).
    pub branding: Arc<branding::Branding>,
    /// Portal sessions: return origins, framing, session length (`[portal]`).
    pub portal: Arc<portal::PortalSettings>,
    /// Single sign-on with the platform's OpenID provider (`[oidc]`), if configured.
    pub oidc: Option<Arc<oidc::Oidc>>,
    /// Where email goes (`[smtp]`); without it, nothing is emailed.
    pub smtp: Option<Arc<email::Mailer>>,
    /// How often each node looks for email to send.
    pub email_poll_interval: Duration,
    /// The waits between failed attempts to send an email; after the last, it is given up.
    pub email_retry_delays: Vec<Duration>,
    /// Gateway mode (`[proxy]`): the upstream served on the proxy listener, if any.
    pub proxy: Option<proxy::ProxyConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brand: Brand::default(),
            usage_flush_interval: Duration::from_secs(5),
            audit_retention: Duration::from_secs(365 * 86_400),
            usage_retention: Duration::from_secs(90 * 86_400),
            cache_max_age: Duration::from_secs(60),
            outage_grace: Duration::from_secs(60),
            public_url: "http://127.0.0.1:8080".to_owned(),
            password_limits: passwords::PasswordLimits::default(),
            connection_limits: ConnectionLimits::default(),
            clock: keyward_store::Clock::system(),
            scopes: Arc::default(),
            routes: keyward_core::route::RouteTable::default(),
            trusted_proxies: Vec::new(),
            // A fresh key per process: enough for one node and for tests; `serve` reads the
            // installation's from its file.
            webhook_signing_key: keyward_core::webhook::SigningKey::generate()
                .ok()
                .map(Arc::new),
            webhooks_allow_private_networks: false,
            webhook_retry_delays: webhooks::RETRY_DELAYS.to_vec(),
            webhook_poll_interval: Duration::from_secs(1),
            expiry_scan_interval: Duration::from_secs(60),
            github_keys: None,
            branding: Arc::default(),
            portal: Arc::default(),
            oidc: None,
            smtp: None,
            email_poll_interval: Duration::from_secs(1),
            email_retry_delays: email::RETRY_DELAYS.to_vec(),
            proxy: None,
        }
    }
}

/// What every handler can reach. Cloned for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The state behind [`AppState`].
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub usage: Arc<UsageRecorder>,
    pub verifier: Arc<Verifier>,
    pub metrics: Arc<Metrics>,
    pub passwords: passwords::PasswordWork,
    pub signup_throttle: throttle::AddressThrottle,
    pub login_throttle: throttle::AddressThrottle,
    /// Password reset requests per client address.
    pub reset_throttle: throttle::AddressThrottle,
    /// Reports of exposed keys per client address (`POST /v1/credentials/revoke`).
    pub report_throttle: throttle::AddressThrottle,
    /// The OpenAPI document served, made on first request (it lists the catalog in force).
    pub openapi: std::sync::OnceLock<axum::body::Bytes>,
    /// The reference page at `/docs`, likewise.
    pub reference: std::sync::OnceLock<axum::body::Bytes>,
    /// Set when the server stops: open event streams end, so that shutdown waits for none.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, mut config: Config) -> Self {
        // Route rules read scopes by position: make them the catalog's in force.
        config.routes = config.routes.bound_to(&config.scopes);
        let usage = Arc::new(UsageRecorder::default());
        let metrics = Arc::new(Metrics::default());
        let verifier = Arc::new(Verifier::new(
            store.clone(),
            &config,
            usage.clone(),
            metrics.clone(),
        ));
        Self(Arc::new(Shared {
            store,
            passwords: passwords::PasswordWork::new(config.password_limits),
            signup_throttle: throttle::AddressThrottle::new(throttle::SIGNUPS_PER_ADDRESS),
            login_throttle: throttle::AddressThrottle::new(throttle::LOGINS_PER_ADDRESS),
            reset_throttle: throttle::AddressThrottle::new(throttle::RESETS_PER_ADDRESS),
            report_throttle: throttle::AddressThrottle::new(throttle::REPORTS_PER_ADDRESS),
            openapi: std::sync::OnceLock::new(),
            reference: std::sync::OnceLock::new(),
            stopping: tokio::sync::watch::Sender::new(false),
            config,
            usage,
            verifier,
            metrics,
        }))
    }

    /// Writes pending last-use times in one batch, counted failed authentications in
    /// another, and usage counts in a third (each is tried even if the others fail).
    pub async fn flush_usage(&self) -> Result<u64, keyward_store::StoreError> {
        let rows = self.usage.flush(self.store.as_ref()).await;
        if let Ok(Some(rows)) = rows {
            self.metrics.flush_batches.fetch_add(1, Ordering::Relaxed);
            self.metrics.flush_rows.fetch_add(rows, Ordering::Relaxed);
        }
        let events = self.verifier.failures().flush(self.store.as_ref()).await;
        if let Ok(Some(events)) = events {
            self.metrics.failure_batches.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .failure_events
                .fetch_add(events, Ordering::Relaxed);
        }
        self.verifier.absorb_usage();
        let counts = self
            .verifier
            .usage_counts()
            .flush(self.store.as_ref())
            .await;
        events?;
        counts?;
        Ok(rows?.unwrap_or(0))
    }

    /// Gives back what this node's leases hold unspent: the credits of credentials idle for a
    /// few seconds and the requests of void rate-limit leases, or all of them (`all`, as the
    /// node stops). Returns how many credits went back.
    pub async fn give_back_leases(&self, all: bool) -> i64 {
        let clock = &self.config.clock;
        let monotonic = clock.monotonic_nanos();
        let store = self.store.as_ref();
        let rates = self.verifier.cache().rate_accounts();
        rates.give_back(store, clock, all).await;
        self.verifier
            .credit_accounts()
            .give_back(store, monotonic, all)
            .await
    }
}

/// The whole HTTP application: the API and the dashboard.
pub fn app(state: AppState) -> Router {
    let creating_paths = api::creating_paths();
    let acting_paths = creating_paths
        .iter()
        .filter(|path| api::is_an_organizations(path))
        .cloned()
        .collect();
    let idempotency = idempotency::Guard {
        state: state.clone(),
        creating_paths: std::sync::Arc::new(creating_paths),
        acting_paths: std::sync::Arc::new(acting_paths),
        max_body_bytes: api::MAX_BODY_BYTES,
    };
    api::router()
        .route_layer(axum::middleware::from_fn_with_state(
            idempotency,
            idempotency::guard,
        ))
        .merge(web::router(&state))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            every_request,
        ))
        .with_state(state)
}

/// Around every request: time it for `/metrics` (and the debug log), add the credential's
/// rate-limit headers, and mark API answers (per credential, some carrying a key)
/// `Cache-Control: no-store`.
async fn every_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let api = request.uri().path().starts_with("/v1/");
    around(state, request, |request| next.run(request), api).await
}

/// See [`every_request`]: `run` answers the request. `api`: the answer is Keyward's API's
/// (`Cache-Control: no-store`); the gateway's (`[proxy]`) keep the upstream's own caching
/// headers.
async fn around<F: Future<Output = axum::response::Response>>(
    state: AppState,
    request: axum::extract::Request,
    run: impl FnOnce(axum::extract::Request) -> F,
    api: bool,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let mut request = request;
    let request_id = keyward_core::RequestId::next();
    request.extensions_mut().insert(request_id);
    let client_ip = client_address::resolve(&mut request, &state.config.trusted_proxies);
    // Paths hold no secret (keys travel in headers and bodies only) but the one-time codes
    // of links, which are left out; the rest may be logged.
    let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| {
        let path = request.uri().path();
        // One-time codes and tokens travel in these paths: never logged.
        let secret = ["/portal/", "/password/reset/", "/invitations/"]
            .into_iter()
            .find(|prefix| path.starts_with(prefix));
        let path = match secret {
            Some(prefix) => format!("{prefix}…"),
            None => path.to_owned(),
        };
        (request.method().clone(), path)
    });
    let mut response = auth::with_rate_limit_headers(run(request)).await;
    if api {
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    if let Some(refusal) = response.extensions().get::<error::ScopeRefusal>() {
        let now = state.config.clock.now();
        let reason = auth::FailureReason::InsufficientScope;
        state.verifier.failures().record(
            Some(refusal.organization),
            Some(refusal.credential),
            client_ip,
            reason,
            now,
        );
        // Counted as allowed when its key was verified.
        let route = response.extensions().get::<auth::CountedRoute>();
        state.verifier.usage_counts().reclassify(
            refusal.credential,
            reason.as_str(),
            route.map(|route| &route.0),
            now,
        );
    }
    if let Ok(value) = axum::http::HeaderValue::from_str(request_id.write(&mut [0; 40])) {
        response
            .headers_mut()
            .insert(axum::http::HeaderName::from_static("x-request-id"), value);
    }
    let elapsed = started.elapsed();
    state.metrics.request(elapsed);
    if let Some((method, path)) = logged {
        tracing::debug!(%method, %path, status = response.status().as_u16(), ?elapsed, "request");
    }
    response
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes in-flight requests
/// (closing what is left after the shutdown timeout) and writes the last-use times still in
/// memory.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_proxy(listener, None, state, shutdown).await
}

/// As [`serve`], and serves the gateway (`config.proxy`) on `proxy_listener` too, until the
/// same shutdown.
pub async fn serve_with_proxy(
    listener: TcpListener,
    proxy_listener: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connection_limits;
    let mut gateway = match (proxy_listener, state.config.proxy.as_ref()) {
        (Some(listener), Some(config)) => {
            // The upstream's own timeout decides first: a slow upstream is 504, not 408.
            let limits = server::ConnectionLimits {
                request_timeout: limits
                    .request_timeout
                    .max(config.timeout + Duration::from_secs(1)),
                ..limits
            };
            Some(proxy::Threads::start(listener, &state, config, limits).await?)
        }
        _ => None,
    };
    let (stop_background, stopped) = tokio::sync::watch::channel(false);
    let flusher = tokio::spawn(flush_usage_periodically(state.clone(), stopped.clone()));
    let pruner = tokio::spawn(prune_audit_log_periodically(state.clone()));
    let deliverer = tokio::spawn(webhooks::deliver_until(state.clone(), stopped.clone()));
    let mailer = tokio::spawn(email::deliver_until(state.clone(), stopped));
    let scanner = tokio::spawn(webhooks::scan_periodically(state.clone()));
    let follower = state
        .store
        .invalidations()
        .map(|changes| tokio::spawn(follow_other_nodes(state.clone(), changes)));
    let stopping = state.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.stopping.send_replace(true);
    };
    server::accept_until(
        listener,
        app(state.clone()),
        limits,
        server::Slots::new(&limits),
        state.metrics.clone(),
        shutdown,
    )
    .await;
    if let Some(gateway) = &mut gateway {
        gateway.drained().await;
    }
    // Stop the periodic flush between batches (never in the middle of one), then write
    // whatever the last requests recorded; stop sending webhooks and give back the
    // deliveries under way, so that they go at once after a restart (or from another node).
    let _ = stop_background.send(true);
    let _ = flusher.await;
    let mut deliverer = deliverer;
    if tokio::time::timeout(limits.shutdown_timeout, &mut deliverer)
        .await
        .is_err()
    {
        deliverer.abort();
        tracing::error!("gave up giving back webhook deliveries at shutdown: too slow");
    }
    if tokio::time::timeout(limits.shutdown_timeout, mailer)
        .await
        .is_err()
    {
        tracing::error!("gave up finishing the emails under way at shutdown: too slow");
    }
    pruner.abort();
    scanner.abort();
    if let Some(follower) = follower {
        follower.abort();
    }
    match tokio::time::timeout(limits.shutdown_timeout, state.flush_usage()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "could not write last-use times at shutdown"),
        Err(_) => tracing::error!("gave up writing last-use times at shutdown: too slow"),
    }
    let giving_back = state.give_back_leases(true);
    if tokio::time::timeout(limits.shutdown_timeout, giving_back)
        .await
        .is_err()
    {
        tracing::error!("gave up giving back unspent credits and requests at shutdown: too slow");
    }
    if let Some(gateway) = gateway {
        gateway.finish().await;
    }
    Ok(())
}

/// Applies other nodes' changes to this node's verification cache: a revoked key is
/// forgotten as soon as its notification arrives; when notifications may have been lost, the
/// whole cache is.
async fn follow_other_nodes(
    state: AppState,
    mut changes: tokio::sync::broadcast::Receiver<keyward_store::Invalidation>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            Ok(keyward_store::Invalidation::Forget(digest)) => state.verifier.invalidate(&digest),
            Ok(keyward_store::Invalidation::ForgetAll) | Err(RecvError::Lagged(_)) => {
                state.verifier.cache().clear();
            }
            // For event streams (`GET /v1/keys/events`); the digests come as `Forget`.
            Ok(keyward_store::Invalidation::KeyEvents(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Events pruned per transaction, so a large backlog never holds the writer for long.
const PRUNE_BATCH: i64 = 5_000;
/// How often the audit log is pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3_600);

impl AppState {
    /// Deletes the audit events (and finished webhook messages) older than the retention,
    /// usage counts older than theirs, and idempotency keys older than a day, batch by batch;
    /// returns how many audit events went.
    /// Several nodes may call this at once: one prunes, the others find nothing to do.
    pub async fn prune_audit_log(&self) -> Result<u64, keyward_store::StoreError> {
        let retention = i64::try_from(self.config.audit_retention.as_secs()).unwrap_or(i64::MAX);
        let before = self.config.clock.now().plus_seconds(-retention);
        let mut total = 0;
        loop {
            let pruned = self.store.prune_audit_events(before, PRUNE_BATCH).await?;
            total += pruned;
            if pruned < PRUNE_BATCH as u64 {
                break;
            }
        }
        // Webhook messages (with their deliveries and attempts) are kept as long, unless
        // still pending.
        loop {
            let pruned = self
                .store
                .prune_webhook_messages(before, PRUNE_BATCH)
                .await?;
            if pruned < PRUNE_BATCH as u64 {
                break;
            }
        }
        // Usage counts, by their own retention.
        let retention = i64::try_from(self.config.usage_retention.as_secs()).unwrap_or(i64::MAX);
        let usage_before = self.config.clock.now().plus_seconds(-retention);
        loop {
            let pruned = self.store.prune_usage(usage_before, PRUNE_BATCH).await?;
            if pruned < PRUNE_BATCH as u64 {
                break;
            }
        }
        // Rate-limit states a day old: whole, as a missing one reads.
        let now_nanos = self.config.clock.unix_nanos();
        loop {
            let pruned = self
                .store
                .prune_rate_buckets(now_nanos, PRUNE_BATCH)
                .await?;
            if pruned < PRUNE_BATCH as u64 {
                break;
            }
        }
        // Idempotency keys and their answers are kept a day, and so is the key-event log.
        let day_ago = self
            .config
            .clock
            .now()
            .plus_seconds(-idempotency::KEEP_SECONDS);
        loop {
            let pruned = self.store.prune_key_events(day_ago, PRUNE_BATCH).await?;
            if pruned < PRUNE_BATCH as u64 {
                break;
            }
        }
        loop {
            let pruned = self
                .store
                .prune_idempotency_keys(day_ago, PRUNE_BATCH)
                .await?;
            if pruned < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// Prunes the audit log at start, then every hour.
async fn prune_audit_log_periodically(state: AppState) {
    let mut ticker = tokio::time::interval(PRUNE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match state.prune_audit_log().await {
            Ok(0) => {}
            Ok(events) => tracing::info!(events, "pruned the audit log"),
            Err(error) => tracing::warn!(%error, "could not prune the audit log; will retry"),
        }
        state.metrics.prune_runs.fetch_add(1, Ordering::Relaxed);
    }
}

async fn flush_usage_periodically(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(state.config.usage_flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match state.flush_usage().await {
            Ok(0) => {}
            Ok(rows) => tracing::debug!(rows, "wrote last-use times"),
            Err(error) => tracing::warn!(%error, "could not write last-use times; will retry"),
        }
        state.give_back_leases(false).await;
        state.verifier.sweep();
    }
}
