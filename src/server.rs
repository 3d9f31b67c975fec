//! Accepting and serving HTTP/1 connections.
//!
//! `axum::serve` runs hyper without a timer, so a client that sends half a
//! request head and then nothing holds its socket, and a file descriptor,
//! for ever; enough of them exhaust the process's descriptors and every
//! request fails, inserts included. Here each connection is watched:
//!
//! - a request head must arrive completely within the header-read timeout,
//!   counted from the connection's start or from the first byte of a later
//!   request;
//! - a kept-alive connection waiting between requests is closed after the
//!   idle timeout;
//! - at most `max_connections` are open at once; one more is answered 503
//!   and closed at once, never queued;
//! - a graceful shutdown closes connections that are not answering a
//!   request at once and lets requests in flight finish, but waits no
//!   longer than its deadline.
//!
//! A request being answered is never cut by these timeouts: the request
//! timeout of the data routes bounds it.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::metrics::METRICS;

/// How connections are held: timeouts for clients that are slow to send a
/// request or idle between requests, a cap on open connections, and how
/// long a graceful shutdown waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: std::time::Duration,
    /// `None`: every connection closes after one answer.
    pub keep_alive_timeout: Option<std::time::Duration>,
    pub max_connections: usize,
    pub shutdown_timeout: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_S),
            keep_alive_timeout: Some(std::time::Duration::from_secs(DEFAULT_KEEP_ALIVE_TIMEOUT_S)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_timeout: std::time::Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_S),
        }
    }
}

pub const DEFAULT_HEADER_READ_TIMEOUT_S: u64 = 10;
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_S: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 25;

/// Descriptors kept for everything but connections: the listener, the
/// data file and its lock, standard streams, the runtime's own.
const RESERVED_DESCRIPTORS: u64 = 64;
/// A connection may hold a second descriptor while it is answered (an
/// archived file being sent, the data file reopened).
const DESCRIPTORS_PER_CONNECTION: u64 = 2;

/// The pause after an accept error other than a vanished client (such as
/// running out of descriptors), so the loop does not spin on it.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(250);

/// The answer to a connection over the cap: the JSON and `Retry-After` of
/// any other overload answer.
const BUSY_BODY: &str = r#"{"detail":"Server busy, retry shortly"}"#;

/// Serves `router` on `listener` until `signal` completes, then shuts down
/// gracefully within `limits.shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    signal: impl std::future::Future<Output = ()> + Send,
) {
    let mut connections = JoinSet::new();
    let (shutdown, shutdown_seen) = watch::channel(());
    let mut signal = pin!(signal);
    loop {
        tokio::select! {
            () = &mut signal => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    while connections.try_join_next().is_some() {}
                    if connections.len() >= limits.max_connections {
                        refuse(stream);
                    } else {
                        let router = router.clone();
                        let shutdown = shutdown_seen.clone();
                        connections.spawn(serve_connection(stream, router, limits, shutdown));
                    }
                }
                Err(error) => pause_after(&error).await,
            },
        }
    }
    drop(listener);
    // Each connection finishes its request in flight, then closes.
    let _ = shutdown.send(());
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            deadline_s = limits.shutdown_timeout.as_secs(),
            "shutdown deadline passed; closing the connections still open"
        );
        connections.shutdown().await;
    }
}

/// Lowers `max_connections` when the process may not open enough file
/// descriptors for it (raising its own soft limit first, up to the hard
/// one), so connections cannot starve the data file of descriptors.
pub fn fit_descriptor_limit(max_connections: usize) -> usize {
    let needed = RESERVED_DESCRIPTORS + DESCRIPTORS_PER_CONNECTION * max_connections as u64;
    let Some(available) = raise_descriptor_limit(needed) else {
        return max_connections;
    };
    if available >= needed {
        return max_connections;
    }
    let fitted = (available.saturating_sub(RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_CONNECTION)
        .max(1) as usize;
    tracing::warn!(
        configured = max_connections,
        serving = fitted,
        descriptor_limit = available,
        "PIPELINE_MAX_CONNECTIONS needs more file descriptors than the process may open; \
         serving fewer connections (raise `ulimit -n` to serve more)"
    );
    fitted
}

/// The soft descriptor limit after trying to raise it to `needed`; `None`
/// when it cannot be read.
fn raise_descriptor_limit(needed: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur >= needed {
        return Some(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: needed.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Some(raised.rlim_cur);
    }
    Some(limit.rlim_cur)
}

async fn pause_after(error: &std::io::Error) {
    use std::io::ErrorKind;
    // The client gave up before it was accepted: nothing to do.
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// Answers 503 and closes, without waiting for anything: a refused
/// connection costs one short burst of system calls.
fn refuse(stream: TcpStream) {
    METRICS.http_connections_refused.inc();
    let Ok(mut stream) = stream.into_std() else {
        return;
    };
    // The stream is non-blocking. Reading what already arrived lets the
    // close end with a FIN rather than a reset that could discard the
    // answer before the client reads it.
    let mut scratch = [0u8; 4096];
    for _ in 0..4 {
        match stream.read(&mut scratch) {
            Ok(read) if read > 0 => continue,
            _ => break,
        }
    }
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
    );
    let _ = stream.write(answer.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Where a connection stands, which decides its deadline.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for the rest of a request head that started at `since` (or
    /// for the first request of a connection opened then).
    ReadingHead { since: Instant },
    /// Answering this many requests; no deadline here.
    Busy { requests: u32 },
    /// Kept alive with nothing to do since `since`.
    Idle { since: Instant },
}

/// Why a connection was closed by its watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    HeaderRead,
    Idle,
}

/// The phase of one connection, updated by its reads and its requests.
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    /// Wakes the connection's watcher when the phase changes, since its
    /// deadline changes with it.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::ReadingHead {
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    /// Bytes arrived: if the connection was idle, a new request starts.
    fn bytes_arrived(&self) {
        let mut phase = self.phase.lock();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::ReadingHead {
                since: Instant::now(),
            };
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>) -> RequestInFlight {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            Phase::ReadingHead { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        };
        self.changed.notify_one();
        RequestInFlight(self.clone())
    }

    fn request_finished(&self) {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            _ => Phase::Idle {
                since: Instant::now(),
            },
        };
        self.changed.notify_one();
    }

    /// When the connection is due to close, and why; `None` while busy.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Expiry)> {
        match *self.phase.lock() {
            Phase::ReadingHead { since } => {
                Some((since + limits.header_read_timeout, Expiry::HeaderRead))
            }
            Phase::Busy { .. } => None,
            Phase::Idle { since } => Some((
                since + limits.keep_alive_timeout.unwrap_or_default(),
                Expiry::Idle,
            )),
        }
    }
}

/// Held from a request's arrival until its answer's body is dropped (sent
/// or abandoned).
struct RequestInFlight(Arc<Activity>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// An answer body that keeps its request in flight until it is dropped.
struct TrackedBody {
    inner: Body,
    _request: RequestInFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, telling its connection's `Activity` when bytes arrive.
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
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
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

/// Counts a connection as open for as long as it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        METRICS.http_connections_open.inc();
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        METRICS.http_connections_open.dec();
    }
}

/// Serves one connection until it ends, its deadline passes, or shutdown
/// has let its request in flight finish.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<()>,
) {
    let _open = OpenConnection::new();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedStream {
        stream,
        activity: activity.clone(),
    });
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_flight = watched.request_started();
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(Body::new)).await;
            response.map(|response: Response| {
                response.map(|inner| TrackedBody {
                    inner,
                    _request: in_flight,
                })
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(limits.keep_alive_timeout.is_some());
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut shutting_down = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if !shutting_down => {
                // Without a request being answered there is nothing to
                // finish: close now rather than wait for a slow head.
                if activity.deadline(&limits).is_some() {
                    return;
                }
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline) => {
                if deadline.is_some_and(|(_, expiry)| expiry == Expiry::HeaderRead) {
                    METRICS.http_header_timeouts.inc();
                    tracing::debug!("closing a connection that sent no complete request head in time");
                }
                return;
            }
        }
    }
}

/// Sleeps until the deadline, if there is one.
async fn sleep_until(deadline: Option<(Instant, Expiry)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Some(Duration::from_secs(60)),
            ..ConnectionLimits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_follows_the_phase() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        let started = Instant::now();
        assert_eq!(
            activity.deadline(&limits),
            Some((started + limits.header_read_timeout, Expiry::HeaderRead)),
            "a new connection must send its head in time"
        );
        let request = activity.request_started();
        assert_eq!(activity.deadline(&limits), None, "a busy connection waits");
        tokio::time::advance(Duration::from_secs(100)).await;
        activity.bytes_arrived();
        assert_eq!(
            activity.deadline(&limits),
            None,
            "body bytes change nothing"
        );
        drop(request);
        let idle = Instant::now();
        assert_eq!(
            activity.deadline(&limits),
            Some((idle + Duration::from_secs(60), Expiry::Idle))
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        activity.bytes_arrived();
        assert_eq!(
            activity.deadline(&limits),
            Some((
                idle + Duration::from_secs(30) + limits.header_read_timeout,
                Expiry::HeaderRead
            )),
            "the next head is timed from its first byte"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_keep_alive_an_idle_connection_is_due_at_once() {
        let limits = ConnectionLimits {
            keep_alive_timeout: None,
            ..limits()
        };
        let activity = Arc::new(Activity::new());
        drop(activity.request_started());
        let (at, expiry) = activity.deadline(&limits).unwrap();
        assert_eq!((at, expiry), (Instant::now(), Expiry::Idle));
    }
}
