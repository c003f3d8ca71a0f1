//! Accepting connections, with limits no client can wear down.
//!
//! - A request head must arrive whole within `header_read_timeout`, counted from the
//!   connection's start for the first request and from the head's first byte for later ones:
//!   silent and byte-a-second clients are closed.
//! - A kept-alive connection that sends nothing after a response is closed after
//!   `idle_timeout`, and so is one whose client reads nothing of an answer for as long (its
//!   writes waiting all that time).
//! - A request must be read and answered within `request_timeout`: a body sent slowly (or
//!   not at all) gets 408 and the connection is closed.
//! - At most `max_connections` are served at once (by one listener, however many loops
//!   accept from it); past that, a new connection waits unserved (the next ones in the
//!   listen backlog), one warning is logged each time the limit is reached, and `/metrics`
//!   counts it.
//! - Shutdown stops accepting, lets in-flight requests finish, and closes whatever is left
//!   after `shutdown_timeout`, whatever clients do.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::{Service, ServiceExt};

use crate::metrics::Metrics;

/// Connection limits; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            request_timeout: Duration::from_secs(30),
            max_connections: 1_000,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// The permits of `limits.max_connections` open connections, for one or more
/// [`accept_until`] loops to share.
pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    /// Whether the limit has been reached since a connection last found a free slot: one
    /// warning for each time it is.
    at_limit: AtomicBool,
}

impl Slots {
    pub(crate) fn new(limits: &ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            at_limit: AtomicBool::new(false),
        })
    }
}

/// What a listener serves: the node's API (an axum `Router`) or its gateway.
pub(crate) trait App:
    Service<Request, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> App for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Accepts connections on `listener` and serves `app` on each until `shutdown`
/// completes; returns once every connection has finished or been closed at the deadline.
/// Each connection holds one of `slots` while it is open; a connection accepted when none is
/// free waits for one (and the loop with it: the next wait in the listen backlog).
pub(crate) async fn accept_until<S: App>(
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    slots: Arc<Slots>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::error!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let slot = match slots.permits.clone().try_acquire_owned() {
            Ok(slot) => {
                slots.at_limit.store(false, Ordering::Relaxed);
                slot
            }
            Err(_) => {
                if !slots.at_limit.swap(true, Ordering::Relaxed) {
                    metrics
                        .connection_limit_reached
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.permits.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let app = app.clone();
        let metrics = metrics.clone();
        let stopping = stopping.clone();
        connections.spawn(async move {
            metrics.open_connections.fetch_add(1, Ordering::Relaxed);
            serve_connection(stream, remote, app, limits, stopping).await;
            metrics.open_connections.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "closing connections still open after the shutdown timeout"
        );
        connections.shutdown().await;
    }
}

/// What a connection is doing, for its timers. Times are in ms on the process clock.
struct Activity {
    connected_ms: u64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// When the last request ended.
    last_done_ms: AtomicU64,
    /// When the first byte of the next request head arrived; 0 while none has.
    head_started_ms: AtomicU64,
    /// Since when a write to the client has waited for room (the client reading nothing);
    /// 0 while writes go through.
    write_waiting_ms: AtomicU64,
}

/// Which limit a connection ran into.
enum Expired {
    HeaderRead,
    Idle,
    /// The client read nothing of an answer for the idle timeout.
    NotReading,
}

fn now_ms() -> u64 {
    keyward_store::clock::monotonic_nanos() / 1_000_000
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Activity {
    fn new() -> Self {
        Self {
            connected_ms: now_ms(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_done_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            write_waiting_ms: AtomicU64::new(0),
        }
    }

    /// Notes how a write to the client went: waiting for room, or through.
    fn wrote<T>(&self, polled: &Poll<T>) {
        let waiting = self.write_waiting_ms.load(Ordering::Relaxed);
        match polled {
            Poll::Pending if waiting == 0 => {
                self.write_waiting_ms
                    .store(now_ms().max(1), Ordering::Relaxed);
            }
            Poll::Ready(_) if waiting != 0 => self.write_waiting_ms.store(0, Ordering::Relaxed),
            _ => {}
        }
    }

    fn bytes_arrived(&self) {
        if self.head_started_ms.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started_ms.compare_exchange(
                0,
                now_ms().max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// When the connection runs into a limit, as things stand now; `None` while a request
    /// is being handled and its answer goes out.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(u64, Expired)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            // An answer in progress may take its time (an event stream has no end), as long
            // as the client takes what is written.
            let waiting = self.write_waiting_ms.load(Ordering::Relaxed);
            return (waiting != 0).then(|| {
                (
                    waiting.saturating_add(millis(limits.idle_timeout)),
                    Expired::NotReading,
                )
            });
        }
        let head_started = self.head_started_ms.load(Ordering::Relaxed);
        Some(if head_started != 0 {
            (
                head_started.saturating_add(millis(limits.header_read_timeout)),
                Expired::HeaderRead,
            )
        } else if self.requests.load(Ordering::Relaxed) == 0 {
            // A new connection must send its first head within the header timeout.
            (
                self.connected_ms
                    .saturating_add(millis(limits.header_read_timeout)),
                Expired::HeaderRead,
            )
        } else {
            (
                self.last_done_ms
                    .load(Ordering::Relaxed)
                    .saturating_add(millis(limits.idle_timeout)),
                Expired::Idle,
            )
        })
    }

    /// Completes when the connection has run into a limit.
    async fn expired(&self, limits: &ConnectionLimits) -> Expired {
        // Waking at least this often notices a head that starts during an idle wait.
        let step = millis(limits.header_read_timeout.min(limits.idle_timeout) / 4).clamp(5, 1_000);
        loop {
            let now = now_ms();
            let wait = match self.deadline(limits) {
                Some((at, expired)) if at <= now => return expired,
                Some((at, _)) => (at - now).min(step),
                None => step,
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// Marks a request in progress for as long as it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.requests.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.last_done_ms.store(now_ms(), Ordering::Relaxed);
        // Body bytes do not start the next head.
        activity.head_started_ms.store(0, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until it is sent (or dropped).
struct UntilSent {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl http_body::Body for UntilSent {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The client's socket, noting when bytes arrive.
struct WatchedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.activity.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.activity.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// 408, and the connection closes: what is left of the request is never read.
fn request_timed_out(limit: Duration) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = crate::error::ApiError::RequestTimeout(limit.as_secs()).into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

async fn serve_connection<S: App>(
    stream: TcpStream,
    remote: SocketAddr,
    app: S,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = InFlight::start(&activity);
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            let answer = tokio::time::timeout(limits.request_timeout, app.clone().oneshot(request));
            async move {
                let response = match answer.await {
                    Ok(response) => response,
                    Err(_) => Ok(request_timed_out(limits.request_timeout)),
                };
                // In flight until its body is sent: an event stream is not an idle connection.
                response.map(|response| {
                    response.map(|body| {
                        axum::body::Body::new(UntilSent {
                            body,
                            _in_flight: in_flight,
                        })
                    })
                })
            }
        })
    };
    let stream = WatchedStream {
        stream,
        activity: activity.clone(),
    };
    // The timers are this module's (see `Activity`): hyper's own header timer would also
    // close kept-alive connections that are merely idle.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = *stopping.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            // The connection first: the others are rarely ready, and no random order to draw.
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %remote, "connection ended with an error");
                }
                return;
            }
            expired = activity.expired(&limits) => {
                match expired {
                    Expired::HeaderRead => {
                        tracing::debug!(%remote, "closed a connection that did not send a request head in time");
                    }
                    // Its answer is lost on a client that stopped taking it.
                    Expired::NotReading => {
                        tracing::debug!(%remote, "closed a connection whose client read nothing of its answer in time");
                    }
                    // Nothing is in progress: closing loses no answer.
                    Expired::Idle => {}
                }
                return;
            }
            changed = stopping.changed(), if !closing => {
                if changed.is_err() || *stopping.borrow() {
                    // Finish the request in progress, if any, then close.
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
