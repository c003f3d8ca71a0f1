//! Keyward's HTTP server: the REST API under `/v1`, Bearer authentication, health checks.
//!
//! [`app`] builds the router from an [`AppState`] without serving it, so tests can run it on
//! port 0; [`serve`] runs it until a shutdown signal and then writes pending last-use times.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod credentials;
pub mod error;
mod extract;
mod pagination;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use keyward_core::Brand;
use keyward_store::Store;
use tokio::net::TcpListener;

use crate::auth::UsageRecorder;

/// Settings that shape behaviour; every node of one installation must agree on `brand`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The prefix of every key this server issues and accepts.
    pub brand: Brand,
    /// How often last-use times are written to the database.
    pub usage_flush_interval: Duration,
    /// Where people and programs reach this server (`https://…` makes cookies Secure; the
    /// dashboard's ready-made `curl` lines use it).
    pub public_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brand: Brand::default(),
            usage_flush_interval: Duration::from_secs(5),
            public_url: "http://127.0.0.1:8080".to_owned(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub usage: Arc<UsageRecorder>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        Self {
            store,
            config: Arc::new(config),
            usage: Arc::new(UsageRecorder::default()),
        }
    }
}

/// The whole HTTP application: the API and the dashboard.
pub fn app(state: AppState) -> Router {
    api::router().merge(web::router()).with_state(state)
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes in-flight requests
/// and writes the last-use times still in memory.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_flusher, stopped) = tokio::sync::watch::channel(false);
    let flusher = tokio::spawn(flush_usage_periodically(state.clone(), stopped));
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    // Stop the periodic flush between batches (never in the middle of one), then write
    // whatever the last requests recorded.
    let _ = stop_flusher.send(true);
    let _ = flusher.await;
    if let Err(error) = state.usage.flush(state.store.as_ref()).await {
        tracing::error!(%error, "could not write last-use times at shutdown");
    }
    served
}

async fn flush_usage_periodically(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(state.config.usage_flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match state.usage.flush(state.store.as_ref()).await {
            Ok(0) => {}
            Ok(rows) => tracing::debug!(rows, "wrote last-use times"),
            Err(error) => tracing::warn!(%error, "could not write last-use times; will retry"),
        }
    }
}
