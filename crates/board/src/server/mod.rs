//! The accept loop: hyper-util's server with per-connection deadlines, a
//! cap on open connections and a cap per client address.
//!
//! One job: decide which connections are served and for how long. What a
//! request does is the router's (`http`); shedding load inside a request
//! is `shed`, static files `files`.
//!
//! Each bound keeps an abusive client from holding a resource forever:
//!
//! - **Header read** (`--header-read-timeout`): a new connection must
//!   deliver its first request head within the timeout from accept, and a
//!   later request its head within the timeout from its first byte. A
//!   slowloris client that trickles header lines is closed.
//! - **Idle** (`--idle-timeout`): a keep-alive connection with no request
//!   in flight and no bytes coming is closed after it.
//! - **Total** (`--max-connections`, never over 80% of the open-files
//!   limit, which is raised to its hard limit at start: see
//!   [`raise_open_files_limit`]): at it a new connection is admitted by
//!   closing the oldest idle one (see `server/shed.rs`); when every
//!   connection is serving a request, the new one is accepted and closed
//!   at once, so the listen backlog drains instead of holding sockets, and
//!   `accept` never fails for want of file descriptors.
//! - **Per address** (`--max-connections-per-address`): one client cannot
//!   take every slot; `--trusted-proxies` are exempt (many clients share
//!   their address).
//!
//! The deadlines are enforced here rather than by hyper's
//! `header_read_timeout` alone: hyper 1.x starts that clock as soon as an
//! HTTP/1 connection goes idle (so it would also be the idle timeout), and
//! hyper-util's auto builder runs no timer while it sniffs HTTP/1 from
//! HTTP/2. A watchdog per connection sees requests start and end (through
//! the service and the response body) and bytes arrive (through the
//! socket), and drops the connection when a deadline passes with nothing
//! in flight.
//!
//! The watchdog costs nothing per request: requests and bytes only write
//! down when they happened (an uncontended lock), and nobody wakes the
//! watchdog. Its one timer is armed at or before every deadline the
//! connection could have (the current one, or `min(header, idle)` from
//! now, whichever comes first: no later request or byte can set an
//! earlier one), so when it fires the watchdog reads the state, closes
//! the connection if the deadline has passed, or arms itself again. A
//! busy connection therefore wakes its watchdog once per
//! `min(header, idle)`, not once per request: waking a task per request,
//! and a timer entry per request in Tokio's shared timer wheel, cost the
//! board a fifth of its throughput on small cached pages.
//!
//! Stopping: accepting ends, every connection is asked to finish (idle ones
//! close at once, requests in flight complete), and the loop returns once
//! every connection has given its slot back.

mod files;
mod shed;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use std::convert::Infallible;

use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::net::TrustedProxies;

pub use files::{OpenFiles, connection_cap, raise_open_files_limit};

/// The connection bounds.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Time allowed for a request head (see the module docs).
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may sit idle.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once per client address.
    pub max_per_address: usize,
    /// Peers exempt from the per-address cap.
    pub trusted_proxies: Arc<TrustedProxies>,
}

/// What the accept loop did, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnStats {
    open: AtomicU64,
    accepted: AtomicU64,
    refused_total: AtomicU64,
    refused_address: AtomicU64,
    timed_out: AtomicU64,
    shed: AtomicU64,
}

impl ConnStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
    /// Connections accepted and served.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Connections closed at once because `--max-connections` were open.
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }
    /// Connections closed at once because their address had
    /// `--max-connections-per-address` open.
    pub fn refused_address(&self) -> u64 {
        self.refused_address.load(Ordering::Relaxed)
    }
    /// Connections closed by the header-read or idle deadline.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }
    /// Idle connections closed at the cap to admit a new one.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`serve`] serves: a tower service of requests, cloned per
/// connection and per request (a `Router`, or [`crate::http::App`]).
///
/// ```
/// fn servable<S: board::server::AppService<B>, B>() {}
/// servable::<axum::Router, axum::body::Body>();
/// ```
pub trait AppService<B>:
    tower::Service<
        axum::extract::Request,
        Response = axum::http::Response<B>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> AppService<B> for S where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::http::Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// A response body hyper can send.
///
/// ```
/// fn sendable<B: board::server::ResponseBody>() {}
/// sendable::<axum::body::Body>();
/// ```
pub trait ResponseBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

/// Serves `app` (a `Router`, or the board's whole stack, [`crate::http::App`],
/// which is served as it is rather than boxed behind a router) on
/// `listener` within `limits` until `shutdown` completes, then waits for
/// the open connections to finish.
///
/// # Errors
/// None today; `io::Result` for the signature `axum::serve` had.
pub async fn serve<S: AppService<B>, B: ResponseBody>(
    listener: TcpListener,
    app: S,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let addresses = Arc::new(PerAddress::default());
    let registry = Arc::new(shed::Registry::default());
    let (stop, stopping) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog enforces it (see the module docs); hyper's own
        // would add a timer entry to every request.
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let timeouts = Timeouts {
        header: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        // Over the per-address cap the socket is dropped (closed) at once.
        let ip = peer.ip().to_canonical();
        let share = if limits.trusted_proxies.contains(ip) {
            None
        } else {
            match PerAddress::enter(&addresses, ip, limits.max_per_address) {
                Some(share) => Some(share),
                None => {
                    drop(stream);
                    stats.refused_address.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "connection refused: --max-connections-per-address open");
                    continue;
                }
            }
        };
        // At the total cap the oldest idle connection makes room; when
        // every one is serving a request, the socket is closed at once.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            // Entered among the connections that may be shed at once, not
            // when its task first runs: a burst of accepts must find the
            // connections before it (a fresh one is idle until its head
            // is read, and goes if asked before its task starts).
            Ok(slot) => Admission::Now(Entered::new(slot, &registry)),
            Err(_) => match registry.shed_oldest_idle() {
                Some(handoff) => Admission::AfterShed(handoff),
                None => {
                    drop(stream);
                    stats.refused_total.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "connection refused: --max-connections serving requests");
                    continue;
                }
            },
        };
        let admit = Admit {
            slot,
            share,
            stats: Arc::clone(&stats),
            registry: Arc::clone(&registry),
        };
        tokio::spawn(admitted(
            admit,
            Arc::clone(&builder),
            stream,
            peer,
            app.clone(),
            timeouts,
            stopping.clone(),
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot: when all are back, all are done.
    let _all = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// Like `axum::serve`: errors of one connection are not the listener's;
/// anything else (out of file descriptors) waits a moment before trying
/// again rather than spinning.
async fn accept_failed(error: &io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

impl Timeouts {
    /// When the watchdog should look next, at `now`, given the current
    /// deadline: never after it, and never after the earliest deadline a
    /// request or byte arriving from now on could set (see the module
    /// docs).
    fn alarm(self, deadline: Option<Instant>, now: Instant) -> Instant {
        let soonest_new = now + self.header.min(self.idle);
        deadline.map_or(soonest_new, |d| d.min(soonest_new))
    }
}

/// A connection let in, with its slot, or without one when it is to take
/// the slot of the idle connection shed for it.
struct Admit {
    slot: Admission,
    share: Option<AddressShare>,
    stats: Arc<ConnStats>,
    registry: Arc<shed::Registry>,
}

/// How a connection gets its slot.
enum Admission {
    /// A free one, at accept.
    Now(Entered),
    /// The slot of the idle connection shed for it, handed over by that
    /// connection's task once its socket is closed (never through the
    /// semaphore, where the accept loop could take it for a later
    /// connection that then sheds nobody).
    AfterShed(oneshot::Receiver<OwnedSemaphorePermit>),
}

/// A connection with its slot, entered among those that may be shed.
struct Entered {
    slot: OwnedSemaphorePermit,
    activity: Arc<Activity>,
    entry: shed::Entry,
}

impl Entered {
    fn new(slot: OwnedSemaphorePermit, registry: &Arc<shed::Registry>) -> Self {
        let activity = Arc::new(Activity::new());
        Self {
            slot,
            entry: shed::Registry::enter(registry, Arc::clone(&activity)),
            activity,
        }
    }
}

/// Serves an admitted connection once it has a slot.
async fn admitted<S: AppService<B>, B: ResponseBody>(
    admit: Admit,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    app: S,
    timeouts: Timeouts,
    stopping: watch::Receiver<bool>,
) {
    let Admit {
        slot,
        share,
        stats,
        registry,
    } = admit;
    let entered = match slot {
        Admission::Now(entered) => entered,
        Admission::AfterShed(handoff) => match tokio::time::timeout(shed::SHED_WAIT, handoff).await
        {
            Ok(Ok(slot)) => Entered::new(slot, &registry),
            // The idle connection began a request and stays (or the
            // server stops): no room after all.
            _ => {
                drop(stream);
                stats.refused_total.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "connection refused: no slot freed in time");
                return;
            }
        },
    };
    stats.accepted.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    let Entered {
        slot,
        activity,
        entry,
    } = entered;
    let held = Held {
        _entry: entry,
        slot: Some(slot),
        _share: share,
        stats,
    };
    connection(
        builder, stream, peer, app, timeouts, stopping, activity, held,
    )
    .await;
}

/// What a connection holds while open: its slot, its address's share, its
/// place among the connections that may be shed, and its place in the
/// `open` gauge.
struct Held {
    _entry: shed::Entry,
    /// Taken out to hand it to the connection this one is shed for.
    slot: Option<OwnedSemaphorePermit>,
    _share: Option<AddressShare>,
    stats: Arc<ConnStats>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)] // one call site, each part distinct
async fn connection<S: AppService<B>, B: ResponseBody>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    app: S,
    timeouts: Timeouts,
    mut stopping: watch::Receiver<bool>,
    activity: Arc<Activity>,
    mut held: Held,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::begin(&activity);
            let response = app.clone().oneshot(request);
            // Busy until the body is sent, not only until the handler ends.
            async move {
                response
                    .await
                    .map(|r| r.map(|body| Tracked { body, _busy: busy }))
            }
        })
    };
    // The slot goes to the newcomer only once the socket is closed (the
    // block drops the connection), so the open-files count holds.
    let handoff = {
        let conn = builder.serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        let now = Instant::now();
        let mut alarm = std::pin::pin!(tokio::time::sleep_until(
            timeouts.alarm(activity.deadline(timeouts), now)
        ));
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    break None;
                }
                () = alarm.as_mut() => {
                    let now = Instant::now();
                    let deadline = activity.deadline(timeouts);
                    if deadline.is_some_and(|d| d <= now) {
                        // Nothing in flight: no request in the router, no
                        // body being sent. At most a request head is half
                        // read, and hyper would finish that first on a
                        // graceful shutdown, so the connection is dropped.
                        held.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "connection closed: header-read or idle deadline");
                        break None;
                    }
                    alarm.as_mut().reset(timeouts.alarm(deadline, now));
                }
                () = activity.kicked.notified() => {
                    // Asked to make room at the cap (see `shed`): gone if
                    // still idle, as a deadline would close it.
                    if let Some(handoff) = activity.go_if_idle() {
                        held.stats.shed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "connection closed: idle, shed at --max-connections");
                        break Some(handoff);
                    }
                }
                _ = stopping.wait_for(|stop| *stop), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    };
    // Asked to go but gone by itself meanwhile (the client closed, a
    // deadline): the slot still goes to the newcomer.
    let handoff = handoff.or_else(|| activity.closed());
    if let (Some(handoff), Some(slot)) = (handoff, held.slot.take()) {
        // A newcomer that gave up meanwhile drops it: back to the pool.
        let _ = handoff.send(slot);
    }
    drop(held);
}

/// When a connection last did something, as its deadlines need it, and
/// whether it was asked to make room (see [`shed`]).
struct Activity {
    state: Mutex<ActivityState>,
    /// Wakes the connection's task when it is asked to go.
    kicked: Notify,
}

struct ActivityState {
    /// Requests in the router now.
    in_flight: usize,
    /// Requests ever started on this connection.
    started: u64,
    /// Accept, or when the last request in flight ended.
    idle_since: Instant,
    /// The first byte read since `idle_since`.
    reading_since: Option<Instant>,
    /// Asked to go at the cap, and not yet gone or withdrawn: where its
    /// slot is to go.
    asked_to_go: Option<oneshot::Sender<OwnedSemaphorePermit>>,
    /// Going or gone: never asked again (a second newcomer would wait for
    /// a slot already handed to the first).
    closing: bool,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                started: 0,
                idle_since: Instant::now(),
                reading_since: None,
                asked_to_go: None,
                closing: false,
            }),
            kicked: Notify::new(),
        }
    }

    /// Asks the connection to go, its slot to `handoff`, if it is idle
    /// and not yet asked (its task is woken); else gives `handoff` back.
    fn ask_to_go(
        &self,
        handoff: oneshot::Sender<OwnedSemaphorePermit>,
    ) -> Result<(), oneshot::Sender<OwnedSemaphorePermit>> {
        let mut state = self.state.lock();
        if state.in_flight > 0 || state.asked_to_go.is_some() || state.closing {
            return Err(handoff);
        }
        state.asked_to_go = Some(handoff);
        drop(state);
        self.kicked.notify_one();
        Ok(())
    }

    /// The connection's answer to the ask: where its slot goes (close it)
    /// if it is still idle; `None` if a request began meanwhile, which
    /// withdraws the ask (the newcomer is refused).
    fn go_if_idle(&self) -> Option<oneshot::Sender<OwnedSemaphorePermit>> {
        let mut state = self.state.lock();
        let handoff = state.asked_to_go.take()?;
        state.closing = state.in_flight == 0;
        state.closing.then_some(handoff)
    }

    /// The connection is closed: never asked again; where its slot goes
    /// if it was asked meanwhile.
    fn closed(&self) -> Option<oneshot::Sender<OwnedSemaphorePermit>> {
        let mut state = self.state.lock();
        state.closing = true;
        state.asked_to_go.take()
    }

    #[cfg(test)]
    fn asked_to_go(&self) -> bool {
        self.state.lock().asked_to_go.is_some()
    }

    /// When to close the connection if nothing changes; `None` while a
    /// request is in flight.
    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        let state = self.state.lock();
        if state.in_flight > 0 {
            return None;
        }
        Some(match state.reading_since {
            _ if state.started == 0 => state.idle_since + timeouts.header,
            None => state.idle_since + timeouts.idle,
            Some(first_byte) => first_byte + timeouts.header,
        })
    }

    fn read(&self) {
        let mut state = self.state.lock();
        if state.in_flight == 0 && state.reading_since.is_none() {
            state.reading_since = Some(Instant::now());
        }
    }
}

/// A request in the router; its drop ends it.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        {
            let mut state = activity.state.lock();
            state.in_flight += 1;
            state.started += 1;
            state.reading_since = None;
        }
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.reading_since = None;
        }
    }
}

/// A response body that keeps its request [`Busy`] until hyper drops it
/// (sent, or the connection gone).
struct Tracked<B> {
    body: B,
    _busy: Busy,
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

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

/// The socket, telling its [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

impl PerAddress {
    fn enter(this: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressShare> {
        let mut open = this.0.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressShare {
            table: Arc::clone(this),
            ip,
        })
    }
}

/// One connection's place in its address's count.
struct AddressShare {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        let mut open = self.table.0.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_their_share_back_when_connections_close() {
        let table = Arc::new(PerAddress::default());
        let ip: IpAddr = [127, 0, 0, 2].into();
        let first = PerAddress::enter(&table, ip, 2).expect("first");
        let _second = PerAddress::enter(&table, ip, 2).expect("second");
        assert!(PerAddress::enter(&table, ip, 2).is_none());
        assert!(PerAddress::enter(&table, [127, 0, 0, 3].into(), 2).is_some());
        drop(first);
        assert!(PerAddress::enter(&table, ip, 2).is_some());
    }

    #[test]
    fn the_watchdog_looks_no_later_than_any_deadline_it_may_meet() {
        let timeouts = Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let now = Instant::now();
        let s = Duration::from_secs;
        // An idle connection's deadline is far, but a byte arriving now
        // would set one a header timeout away.
        assert_eq!(timeouts.alarm(Some(now + s(60)), now), now + s(10));
        assert_eq!(timeouts.alarm(Some(now + s(3)), now), now + s(3));
        // A request in flight has none; its end sets one an idle timeout
        // away, its next head one a header timeout away.
        assert_eq!(timeouts.alarm(None, now), now + s(10));
        let short_idle = Timeouts {
            header: s(10),
            idle: s(2),
        };
        assert_eq!(short_idle.alarm(None, now), now + s(2));
    }

    #[test]
    fn deadlines_follow_the_connection_state() {
        let timeouts = Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let activity = Arc::new(Activity::new());
        let accepted = activity.state.lock().idle_since;
        assert_eq!(
            activity.deadline(timeouts),
            Some(accepted + timeouts.header)
        );
        // Bytes of the first request do not extend the header deadline.
        activity.read();
        assert_eq!(
            activity.deadline(timeouts),
            Some(accepted + timeouts.header)
        );
        let busy = Busy::begin(&activity);
        assert_eq!(activity.deadline(timeouts), None, "a request in flight");
        drop(busy);
        let idle = activity.state.lock().idle_since;
        assert_eq!(activity.deadline(timeouts), Some(idle + timeouts.idle));
        // The next request's first byte starts its header clock; later
        // bytes do not move it.
        activity.read();
        let first_byte = activity.state.lock().reading_since.expect("reading");
        activity.read();
        assert_eq!(
            activity.deadline(timeouts),
            Some(first_byte + timeouts.header)
        );
    }
}
