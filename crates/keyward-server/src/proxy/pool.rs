//! The gateway's connections to its upstream: HTTP/1.1, kept alive between requests, each
//! driven by the task of the request using it.
//!
//! hyper's client connections usually run as tasks of their own, so that every request
//! crosses from its task to the connection's and back, twice per request with a waker and
//! often a thread in between. Here the request's own task polls the connection: while it
//! waits for the answer's head, and while the answer's body is sent on (see [`Driven`]). A
//! connection resting between requests is not polled; it is checked when it is next taken,
//! and a request that it could not take (the upstream had closed it) is sent on another, as
//! is one it took and closed on without an answer, if the request may be repeated
//! ([`Repeat`]).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use http_body::Body as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Idle connections kept at most; more are closed as they come back.
const MAX_IDLE: usize = 512;

/// Connections to one upstream.
pub(super) struct Pool {
    /// `host:port`, as connected to.
    address: String,
    /// To connect, to get an answer's head, and between two parts of an answer's body.
    timeout: Duration,
    idle_timeout: Duration,
    /// Resting connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
}

/// Why a request got no answer from the upstream.
#[derive(Debug)]
pub(super) enum Failure {
    Connect(std::io::Error),
    ConnectTimeout,
    Http(hyper::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "could not connect: {error}"),
            Self::ConnectTimeout => f.write_str("could not connect in time"),
            Self::Http(error) => write!(f, "{error}"),
        }
    }
}

impl Failure {
    /// Whether the request never left: no connection to the upstream could be made (and it
    /// had not gone out on one before).
    pub(super) fn never_sent(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ConnectTimeout)
    }

    /// Whether sending failed because the request body ran over `http_body_util::Limited`'s
    /// limit.
    pub(super) fn body_too_large(&self) -> bool {
        let Self::Http(error) = self else {
            return false;
        };
        causes(error).any(|cause| cause.is::<http_body_util::LengthLimitError>())
    }
}

/// What `error` was caused by, nearest first.
fn causes(error: &hyper::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(error), |cause| cause.source())
}

struct Idle {
    connection: Box<Connection>,
    since: Instant,
}

/// One connection: hyper's handle to send on it, and the connection itself (a future that
/// does its reading and writing when polled, and ends when the connection closes). Boxed
/// once, when connected: it goes from the pool to a request, to the answer's body and back
/// for every request, and that way each move is a pointer's, not some 700 bytes'.
struct Connection {
    sender: SendRequest<Body>,
    /// `None` once closed: dropping it fails what was sent on it and not yet answered, and
    /// gives back what it had not yet taken.
    io: Option<http1::Connection<TokioIo<TcpStream>, Body>>,
}

impl Connection {
    /// Lets the connection read and write what it can; drops it once it has closed.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(io) = &mut self.io
            && Pin::new(io).poll(cx).is_ready()
        {
            self.io = None;
        }
    }

    /// Waits until the connection can take a request; false if it closed instead.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            self.drive(cx);
            if self.io.is_none() {
                return Poll::Ready(false);
            }
            self.sender.poll_ready(cx).map(|outcome| outcome.is_ok())
        })
        .await
    }

    /// Sends `request` and waits for the answer's head, driving the connection meanwhile.
    async fn exchange(
        &mut self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Body>>> {
        let mut answer = std::pin::pin!(self.sender.try_send_request(request));
        poll_fn(|cx| {
            self.drive(cx);
            answer.as_mut().poll(cx)
        })
        .await
    }

    /// Whether the connection is idle and may carry the next request: one last poll lets it
    /// finish the answer it read and say so.
    fn reusable(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx);
        self.io.is_some() && self.sender.is_ready()
    }

    /// Drives the connection until it is idle (true) or closed (false): an upstream that
    /// answered before reading the whole request body still gets the rest of it.
    async fn finish(&mut self) -> bool {
        poll_fn(|cx| {
            if self.reusable(cx) {
                Poll::Ready(true)
            } else if self.io.is_none() {
                Poll::Ready(false)
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Pool {
    pub(super) fn new(address: String, timeout: Duration) -> Self {
        Self {
            address,
            timeout,
            idle_timeout: Duration::from_secs(60),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` (its target in origin form, with its `Host`) on a resting connection
    /// or a new one, and answers the response, whose body drives the connection until it
    /// has been read; the connection then rests in the pool again.
    pub(super) async fn send(
        self: &Arc<Self>,
        request: Request<Body>,
    ) -> Result<Response<Body>, Failure> {
        let mut request = request;
        // Kept to be sent once more on a new connection (see `Repeat`).
        let mut again = None;
        let mut resting_ones = true;
        // Once the request went out on a connection that then closed on it: the upstream may
        // have acted on it, so a failure to send it again is that first one, not a
        // connection never made.
        let mut sent_once: Option<hyper::Error> = None;
        loop {
            let taken = if resting_ones { self.take() } else { None };
            let (mut connection, reused) = match taken {
                Some(connection) => (connection, true),
                // A future of its own, as the connection is a box: inline, the two made this
                // future 2.6 KB rather than 1.2 KB, copied for every request as the
                // request's future is boxed and moved.
                None => match Box::pin(self.connect()).await {
                    Ok(connection) => (connection, false),
                    Err(failure) => return Err(sent_once.map_or(failure, Failure::Http)),
                },
            };
            if !connection.ready().await {
                if reused {
                    continue;
                }
                let closed = Failure::Connect(std::io::ErrorKind::ConnectionReset.into());
                return Err(sent_once.map_or(closed, Failure::Http));
            }
            // Only a resting connection can close as the request goes (a new one failing is
            // the upstream's trouble, not a race).
            if reused && resting_ones && again.is_none() {
                again = Repeat::of(&request);
            }
            match connection.exchange(request).await {
                Ok(response) => {
                    let pool = Arc::clone(self);
                    return Ok(response.map(|body| {
                        Body::new(Driven {
                            body,
                            connection: Some(connection),
                            pool,
                            finished: false,
                            silence: None,
                        })
                    }));
                }
                Err(mut refused) => {
                    // The connection closed before it took the request (the upstream ended
                    // a resting connection): nothing was sent, so it goes on another.
                    if let Some(unsent) = refused.take_message().filter(|_| reused) {
                        request = unsent;
                        continue;
                    }
                    // It closed after the request went, before a whole answer head: the
                    // upstream ended it as the request arrived. One that may be repeated
                    // goes once more, on a new connection.
                    let copy = again
                        .take()
                        .filter(|_| reused && closed_unanswered(refused.error()))
                        .and_then(Repeat::request);
                    match copy {
                        Some(copy) => {
                            tracing::debug!(
                                error = %refused.error(),
                                "a resting upstream connection closed on a request; sent again"
                            );
                            request = copy;
                            resting_ones = false;
                            sent_once = Some(refused.into_error());
                        }
                        _ => return Err(Failure::Http(refused.into_error())),
                    }
                }
            }
        }
    }

    /// The most recently rested connection; those that rested too long are closed.
    fn take(&self) -> Option<Box<Connection>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        self.sweep(&mut idle, Instant::now());
        idle.pop().map(|rested| rested.connection)
    }

    fn rest(&self, connection: Box<Connection>) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        self.sweep(&mut idle, now);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            connection,
            since: now,
        });
    }

    /// Closes the connections that rested longer than the idle timeout as of `now`: the
    /// oldest come first. (A resting connection is not polled, so one the upstream closed
    /// holds its socket until it is taken or swept.)
    fn sweep(&self, idle: &mut Vec<Idle>, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.idle_timeout) else {
            return;
        };
        // Most often none is: one comparison, no search.
        if idle.first().is_some_and(|oldest| oldest.since <= cutoff) {
            let stale = idle.partition_point(|rested| rested.since <= cutoff);
            idle.drain(..stale);
        }
    }

    /// Gives `connection` back once it is idle: at once when it is, or from a task of its
    /// own when it is still sending a request body the upstream answered early (for as long
    /// as the upstream's timeout).
    fn give_back(self: &Arc<Self>, mut connection: Box<Connection>, cx: &mut Context<'_>) {
        if connection.reusable(cx) {
            self.rest(connection);
            return;
        }
        if connection.io.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = Arc::clone(self);
        runtime.spawn(async move {
            let finished = tokio::time::timeout(pool.timeout, connection.finish()).await;
            if matches!(finished, Ok(true)) {
                pool.rest(connection);
            }
        });
    }

    async fn connect(&self) -> Result<Box<Connection>, Failure> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(self.address.as_str()))
            .await
            .map_err(|_| Failure::ConnectTimeout)?
            .map_err(Failure::Connect)?;
        stream.set_nodelay(true).map_err(Failure::Connect)?;
        let (sender, io) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Failure::Http)?;
        Ok(Box::new(Connection {
            sender,
            io: Some(io),
        }))
    }
}

/// What sending a request again takes, if a resting connection closes after taking it and
/// before answering (the upstream's keep-alive timeout ending it just then): only for a
/// request the upstream may get twice, an idempotent method without a body (RFC 9110
/// §9.2.2, RFC 9112 §9.3.1), as a proxy such as nginx repeats by default. Nearly every
/// request is kept so and never sent again: its headers are kept in one buffer, not as a
/// map of values of their own.
struct Repeat {
    method: axum::http::Method,
    uri: axum::http::Uri,
    version: axum::http::Version,
    /// Each header in order: its name and its value, each after its length (`u32`).
    headers: Vec<u8>,
}

impl Repeat {
    fn of(request: &Request<Body>) -> Option<Self> {
        if !request.method().is_idempotent() || !request.body().is_end_stream() {
            return None;
        }
        let size = request
            .headers()
            .iter()
            .map(|(name, value)| 8 + name.as_str().len() + value.len())
            .sum();
        let mut headers = Vec::with_capacity(size);
        for (name, value) in request.headers() {
            for part in [name.as_str().as_bytes(), value.as_bytes()] {
                headers.extend_from_slice(&u32::try_from(part.len()).ok()?.to_ne_bytes());
                headers.extend_from_slice(part);
            }
        }
        Some(Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers,
        })
    }

    /// The request again, without a body.
    fn request(self) -> Option<Request<Body>> {
        fn part<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
            let (length, after) = rest.split_first_chunk::<4>()?;
            let length = usize::try_from(u32::from_ne_bytes(*length)).ok()?;
            let (part, after) = after.split_at_checked(length)?;
            *rest = after;
            Some(part)
        }
        let mut request = Request::new(Body::empty());
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        let mut rest = self.headers.as_slice();
        while !rest.is_empty() {
            let name = axum::http::HeaderName::from_bytes(part(&mut rest)?).ok()?;
            let value = axum::http::HeaderValue::from_bytes(part(&mut rest)?).ok()?;
            request.headers_mut().append(name, value);
        }
        Some(request)
    }
}

/// Whether `error` says the connection closed (or was reset) before a whole answer head
/// came. (hyper gives a request back, see `take_message`, when it never went.)
fn closed_unanswered(error: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    error.is_incomplete_message()
        || causes(error)
            .find_map(|cause| cause.downcast_ref::<std::io::Error>())
            .is_some_and(|io| matches!(io.kind(), BrokenPipe | ConnectionAborted | ConnectionReset))
}

/// An answer's body from the upstream, which drives its connection as it is read and
/// returns it to the pool once read to its end. Dropped before its end (the client went
/// away), it closes the connection. An upstream that sends nothing more of it for the
/// upstream's timeout has it cut off there (an error: the client's connection closes, its
/// answer incomplete), as one that sends no head in time gets 504.
struct Driven {
    body: Incoming,
    connection: Option<Box<Connection>>,
    pool: Arc<Pool>,
    finished: bool,
    /// Armed while the upstream has nothing more to give: when it ends, the answer is cut
    /// off. (Most answers come whole with their head and never arm it.)
    silence: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The upstream sent nothing of an answer's body for its timeout.
#[derive(Debug)]
struct Silent(Duration);

impl std::fmt::Display for Silent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the upstream sent nothing of its answer for {} s",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for Silent {}

impl Driven {
    fn release(&mut self, cx: &mut Context<'_>) {
        if let Some(connection) = self.connection.take() {
            self.pool.give_back(connection, cx);
        }
    }
}

impl http_body::Body for Driven {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Some(connection) = &mut this.connection {
            connection.drive(cx);
        }
        let frame = match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.silence = None;
                frame.map(|frame| frame.map_err(axum::BoxError::from))
            }
            Poll::Pending => {
                let timeout = this.pool.timeout;
                let silence = this
                    .silence
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if silence.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                tracing::warn!(
                    timeout_seconds = timeout.as_secs(),
                    "cut off an upstream answer that stopped coming"
                );
                Some(Err(Silent(timeout).into()))
            }
        };
        match &frame {
            // Trailers end a body: nothing is read after them.
            None => {
                this.finished = true;
                this.release(cx);
            }
            Some(Ok(frame)) if frame.is_trailers() => {
                this.finished = true;
                this.release(cx);
            }
            Some(Err(_)) => this.connection = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        // A body known to be empty, or read to its end, may not be polled again.
        if self.finished || self.body.is_end_stream() {
            self.release(&mut Context::from_waker(Waker::noop()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_request_is_the_same_request_without_a_body() {
        let request = Request::builder()
            .method("DELETE")
            .uri("/v1/things/1?force=yes")
            .header("host", "upstream:9000")
            .header("accept", "application/json")
            .header("x-many", "one")
            .header("x-many", "two")
            .header("keyward-meta", "")
            .header("x-long", "v".repeat(70_000))
            .body(Body::empty())
            .unwrap();
        let again = Repeat::of(&request).unwrap().request().unwrap();
        assert_eq!(again.method(), request.method());
        assert_eq!(again.uri(), request.uri());
        assert_eq!(again.version(), request.version());
        assert_eq!(again.headers(), request.headers());
        let many: Vec<_> = again.headers().get_all("x-many").iter().collect();
        assert_eq!(many, ["one", "two"]);
        assert!(again.body().is_end_stream());

        let with = |method: &str, body: Body| {
            let request = Request::builder().method(method).uri("/x").body(body);
            Repeat::of(&request.unwrap()).is_some()
        };
        assert!(with("GET", Body::empty()));
        assert!(with("PUT", Body::empty()));
        assert!(!with("POST", Body::empty()));
        assert!(!with("PATCH", Body::empty()));
        assert!(!with("GET", Body::from("a body")));
    }

    #[tokio::test]
    async fn connections_resting_past_the_idle_timeout_are_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let mut pool = Pool::new(address, Duration::from_secs(5));
        pool.idle_timeout = Duration::from_millis(50);
        for _ in 0..3 {
            let resting = pool.connect().await.unwrap();
            pool.rest(resting);
        }
        assert_eq!(pool.idle.lock().unwrap().len(), 3);
        tokio::time::sleep(Duration::from_millis(80)).await;
        // A connection coming back closes those that rested too long, below it too.
        let fresh = pool.connect().await.unwrap();
        pool.rest(fresh);
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        assert!(pool.take().is_some());
        assert!(pool.take().is_none());
        // And so does taking one.
        let resting = pool.connect().await.unwrap();
        pool.rest(resting);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(pool.take().is_none());
        assert!(pool.idle.lock().unwrap().is_empty());
    }
}
