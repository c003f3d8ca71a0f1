//! The gateway's threads: each runs an event loop of its own (a single-threaded tokio
//! runtime) that accepts connections from the shared listener, serves them, and keeps its own
//! pool of upstream connections.
//!
//! A proxied request is short and its work is all I/O: on the node's work-stealing runtime,
//! workers went to sleep and woke each other for nearly every request, and that cost more than
//! the request itself. A thread that does everything for its connections never hands a
//! request over; connections spread over the threads as they are accepted, the least busy
//! thread taking the next one.
//!
//! Work a request starts on a gateway thread (a connection the store opens on a cache miss, a
//! connection's last body bytes sent to the upstream) is driven by that thread: the threads
//! stop accepting when the node stops, finish their connections, and keep running until
//! [`Threads::finish`], after the node's own last writes. (Such a database connection, back
//! in the store's shared pool, is served by that thread's event loop for as long as it
//! lives; one still open when the threads end can no longer say goodbye to the database.)

use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::ProxyConfig;
use crate::AppState;
use crate::server::{self, ConnectionLimits};

/// The running gateway threads. Dropping this without [`Threads::finish`] (the node's task
/// was cancelled) stops them too: they stop accepting, finish their connections within the
/// shutdown timeout, and end.
pub(crate) struct Threads {
    /// `true`: the node is done; the threads may end. Dropped: the same, at once.
    release: watch::Sender<bool>,
    drained: Vec<oneshot::Receiver<()>>,
    handles: Vec<JoinHandle<()>>,
}

impl Threads {
    /// Starts `config.threads` threads serving the gateway on `listener` with `limits`
    /// (`max_connections` counts across all of them), each once the one before has started.
    /// They stop accepting once `state.stopping` is set.
    pub(crate) async fn start(
        listener: TcpListener,
        state: &AppState,
        config: &ProxyConfig,
        limits: ConnectionLimits,
    ) -> std::io::Result<Self> {
        let listener = listener.into_std()?;
        let slots = server::Slots::new(&limits);
        let (release, released) = watch::channel(false);
        let mut drained = Vec::new();
        let mut handles = Vec::new();
        // On an error, the threads started so far end as `release` goes.
        for index in 0..config.threads.max(1) {
            let listener = listener.try_clone()?;
            let (ready, started) = oneshot::channel::<std::io::Result<()>>();
            let (done, finished) = oneshot::channel();
            let state = state.clone();
            let config = config.clone();
            let slots = slots.clone();
            let mut released = released.clone();
            // The runtime is made, and dropped, on its own thread: never inside the node's.
            let serve = move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    // Registered with this thread's event loop.
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let service = super::service(state.clone(), config);
                    let mut stopping = state.stopping.subscribe();
                    let mut abandoned = released.clone();
                    let stop = async move {
                        tokio::select! {
                            _ = stopping.wait_for(|stopping| *stopping) => {}
                            // Only when the node's task is gone (`release` dropped).
                            _ = abandoned.wait_for(|released| *released) => {}
                        }
                    };
                    let metrics = state.metrics.clone();
                    server::accept_until(listener, service, limits, slots, metrics, stop).await;
                    let _ = done.send(());
                    let _ = released.wait_for(|released| *released).await;
                });
            };
            let handle = std::thread::Builder::new()
                .name(format!("keyward-gw-{index}"))
                .spawn(serve)?;
            handles.push(handle);
            drained.push(finished);
            match started.await {
                Ok(result) => result?,
                Err(_) => return Err(std::io::Error::other("a gateway thread failed to start")),
            }
        }
        Ok(Self {
            release,
            drained,
            handles,
        })
    }

    /// Waits until every thread has stopped accepting and finished (or closed) its
    /// connections.
    pub(crate) async fn drained(&mut self) {
        for finished in self.drained.drain(..) {
            // An error: that thread is gone already.
            let _ = finished.await;
        }
    }

    /// Lets the threads end, and waits until they have.
    pub(crate) async fn finish(self) {
        let _ = self.release.send(true);
        let handles = self.handles;
        let joined = tokio::task::spawn_blocking(move || {
            for handle in handles {
                if handle.join().is_err() {
                    tracing::error!("a gateway thread panicked");
                }
            }
        });
        let _ = joined.await;
    }
}
