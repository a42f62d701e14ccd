//! A TCP proxy on a free loopback port that injects network faults between
//! a client and a real server: a black hole, added latency, or a reset.
//!
//! A killed server is the easy fault: connections are refused at once. The
//! one that hurts in production is the *silent* partition, a lost route or
//! a stuck server, where sockets stay open and nothing comes back; only a
//! timeout notices it. [`FaultProxy::black_hole`] reproduces that: the proxy
//! keeps accepting and keeps every socket open, but stops moving bytes in
//! both directions. Bytes already sent are held (by the proxy and by the
//! kernel's socket buffers, as TCP retransmission would hold them on a real
//! network), and delivered in order once [`FaultProxy::pass_through`]
//! heals the partition; none are dropped, so a protocol stream never loses
//! its framing.
//!
//! Two threads per connection pump the bytes; every thread is stopped and
//! joined on drop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Bound on connecting to the upstream server for a new client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes moved per read.
const CHUNK: usize = 16 * 1024;

/// What the proxy does to the bytes it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Bytes go through as they come.
    #[default]
    PassThrough,
    /// Connections are accepted and kept open, but no byte moves either
    /// way until the mode changes (held, not dropped).
    BlackHole,
    /// Every chunk waits this long before it is forwarded, in each
    /// direction (a round trip gains twice this).
    Latency(Duration),
}

/// A TCP proxy from a free port on 127.0.0.1 to an upstream server, whose
/// behaviour can be switched at run time: see [`Fault`].
///
/// ```no_run
/// let redis = testkit::RedisServer::start();
/// let proxy = testkit::FaultProxy::start(redis.port());
/// let url = format!("redis://127.0.0.1:{}/", proxy.port());
/// // ... connect a client to `url` ...
/// proxy.black_hole(); // a silent partition
/// proxy.pass_through(); // healed: held bytes are delivered
/// proxy.reset(); // every open connection is closed
/// ```
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    fault: Fault,
    stopping: bool,
    /// Bumped by `reset`: connections of an older epoch are closed.
    epoch: u64,
    next_id: u64,
    /// Both sockets of every open connection, to shut them down.
    connections: HashMap<u64, (TcpStream, TcpStream)>,
    pumps: Vec<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy to `127.0.0.1:upstream_port`, passing bytes through until
    /// told otherwise.
    ///
    /// # Panics
    /// If no loopback port can be bound or the accept thread cannot start.
    #[must_use]
    pub fn start(upstream_port: u16) -> Self {
        Self::start_to(SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)))
    }

    /// A proxy to `upstream` (a loopback address in tests).
    ///
    /// # Panics
    /// As [`FaultProxy::start`].
    #[must_use]
    pub fn start_to(upstream: SocketAddr) -> Self {
        // Port 0: the kernel picks a free port and we hold it at once, so
        // there is no race to retry.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("fault proxy: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fault proxy: no local address: {e}"))
            .port();
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let acceptor = thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&listener, &shared)
            })
            .unwrap_or_else(|e| panic!("fault proxy: cannot start the accept thread: {e}"));
        Self {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port clients connect to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the proxy forwards to.
    #[must_use]
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current behaviour.
    #[must_use]
    pub fn fault(&self) -> Fault {
        self.shared.lock().fault
    }

    /// Switches the behaviour of existing and new connections.
    pub fn set(&self, fault: Fault) {
        self.shared.lock().fault = fault;
        self.shared.changed.notify_all();
    }

    /// Bytes go through again; bytes held by a black hole are delivered.
    pub fn pass_through(&self) {
        self.set(Fault::PassThrough);
    }

    /// A silent partition: sockets stay open, no byte moves either way.
    pub fn black_hole(&self) {
        self.set(Fault::BlackHole);
    }

    /// Delays every chunk by `delay` in each direction.
    pub fn latency(&self, delay: Duration) {
        self.set(Fault::Latency(delay));
    }

    /// Closes every open connection (both sides see the socket close);
    /// new connections are accepted under the current behaviour.
    pub fn reset(&self) {
        let mut state = self.shared.lock();
        state.epoch += 1;
        for (client, upstream) in state.connections.values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
        state.connections.clear();
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Connections open through the proxy right now.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.shared.lock().connections.len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.reset();
        // Wakes the blocking accept; it sees `stopping` and returns.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            CONNECT_TIMEOUT,
        );
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let pumps = std::mem::take(&mut self.shared.lock().pumps);
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.lock().stopping {
            return;
        }
        let Ok(client) = client else { continue };
        // A refused upstream closes the client at once, as the server would.
        let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        if let Err(error) = open(shared, client, upstream) {
            eprintln!("fault proxy: cannot serve a connection: {error}");
        }
    }
}

/// Registers a connection and starts its two pumps.
fn open(shared: &Arc<Shared>, client: TcpStream, upstream: TcpStream) -> std::io::Result<()> {
    let mut state = shared.lock();
    if state.stopping {
        return Ok(());
    }
    let (id, epoch) = (state.next_id, state.epoch);
    state.next_id += 1;
    state
        .connections
        .insert(id, (client.try_clone()?, upstream.try_clone()?));
    let alive = Arc::new(AtomicU8::new(2));
    let directions = [
        (client.try_clone()?, upstream.try_clone()?),
        (upstream, client),
    ];
    for (from, to) in directions {
        let pump = Pump {
            shared: Arc::clone(shared),
            id,
            epoch,
            alive: Arc::clone(&alive),
        };
        let handle = thread::Builder::new()
            .name(format!("fault-proxy-pump-{id}"))
            .spawn(move || pump.run(from, to))?;
        state.pumps.push(handle);
    }
    // Finished pumps are joined as new ones start, so the list stays short.
    let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut state.pumps)
        .into_iter()
        .partition(JoinHandle::is_finished);
    state.pumps = running;
    drop(state);
    for handle in done {
        let _ = handle.join();
    }
    Ok(())
}

/// One direction of one connection.
struct Pump {
    shared: Arc<Shared>,
    id: u64,
    epoch: u64,
    /// Pumps of this connection still running.
    alive: Arc<AtomicU8>,
}

impl Pump {
    fn run(self, mut from: TcpStream, mut to: TcpStream) {
        let mut buffer = vec![0_u8; CHUNK];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let Some(delay) = self.wait_until_flowing() else {
                break;
            };
            if !delay.is_zero() {
                thread::sleep(delay);
            }
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        // Passes the end of the stream on (a half-close), as TCP would.
        let _ = to.shutdown(Shutdown::Write);
        if self.alive.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.lock().connections.remove(&self.id);
        }
    }

    /// Blocks while black-holed; the delay to apply, or `None` once the
    /// connection was reset or the proxy is stopping.
    fn wait_until_flowing(&self) -> Option<Duration> {
        let mut state = self.shared.lock();
        loop {
            if state.stopping || state.epoch != self.epoch {
                return None;
            }
            match state.fault {
                Fault::PassThrough => return Some(Duration::ZERO),
                Fault::Latency(delay) => return Some(delay),
                Fault::BlackHole => {
                    state = self
                        .shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::time::Instant;

    use super::*;
    use crate::RedisServer;

    fn client(proxy: &FaultProxy) -> TcpStream {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        stream
    }

    /// Sends `PING` and reads the reply; `None` when nothing came in time.
    fn ping(stream: &mut TcpStream) -> Option<String> {
        stream.write_all(b"PING\r\n").expect("write");
        read_reply(stream)
    }

    fn read_reply(stream: &mut TcpStream) -> Option<String> {
        let mut reply = [0_u8; 64];
        match stream.read(&mut reply) {
            Ok(n) => Some(String::from_utf8_lossy(&reply[..n]).into_owned()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    #[test]
    fn passes_bytes_through_to_a_real_server() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis.port());
        let mut stream = client(&proxy);
        assert_eq!(ping(&mut stream).as_deref(), Some("+PONG\r\n"));
        assert_eq!(proxy.connections(), 1);
    }

    #[test]
    fn a_black_hole_holds_bytes_on_open_sockets_until_healed() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis.port());
        let mut old = client(&proxy);
        assert_eq!(ping(&mut old).as_deref(), Some("+PONG\r\n"));
        proxy.black_hole();
        assert_eq!(proxy.fault(), Fault::BlackHole);
        assert_eq!(ping(&mut old), None, "an open connection goes silent");
        let mut new = client(&proxy);
        assert_eq!(ping(&mut new), None, "a new one is accepted, then silent");
        assert_eq!(proxy.connections(), 2, "nothing was closed");
        proxy.pass_through();
        assert_eq!(read_reply(&mut old).as_deref(), Some("+PONG\r\n"));
        assert_eq!(read_reply(&mut new).as_deref(), Some("+PONG\r\n"));
        assert_eq!(ping(&mut old).as_deref(), Some("+PONG\r\n"));
    }

    #[test]
    fn latency_delays_each_direction() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis.port());
        proxy.latency(Duration::from_millis(60));
        let mut stream = client(&proxy);
        let started = Instant::now();
        assert_eq!(ping(&mut stream).as_deref(), Some("+PONG\r\n"));
        assert!(started.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn reset_closes_every_connection() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis.port());
        let mut stream = client(&proxy);
        assert_eq!(ping(&mut stream).as_deref(), Some("+PONG\r\n"));
        proxy.black_hole();
        stream.write_all(b"PING\r\n").expect("write");
        proxy.reset();
        let mut rest = Vec::new();
        let closed =
            stream.read_to_end(&mut rest).is_ok() || stream.write_all(b"PING\r\n").is_err();
        assert!(closed, "the socket was closed");
        assert_eq!(proxy.connections(), 0);
        proxy.pass_through();
        assert_eq!(ping(&mut client(&proxy)).as_deref(), Some("+PONG\r\n"));
    }

    #[test]
    fn drop_stops_listening_and_closes_connections() {
        let redis = RedisServer::start();
        let proxy = FaultProxy::start(redis.port());
        let port = proxy.port();
        let mut stream = client(&proxy);
        proxy.black_hole();
        drop(proxy);
        assert_eq!(
            stream.read(&mut [0_u8; 8]).unwrap_or(0),
            0,
            "closed on drop"
        );
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }
}
