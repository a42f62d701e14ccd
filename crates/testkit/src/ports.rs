//! Loopback ports: finding free ones, waiting for them, connecting to them,
//! and telling which process listens on one.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Pause between polls of a port (polling, not a fixed startup sleep).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A free TCP port on 127.0.0.1, found by binding port 0 and releasing it.
///
/// Another process may take the port before the caller binds it; the server
/// starters in this crate detect that and retry with a new port.
#[must_use]
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the address of a bound listener: {e}"))
        .port()
}

/// A free port for which `accept` also holds (e.g. that `port + 10000` is free too).
pub(crate) fn free_port_where(accept: impl Fn(u16) -> bool) -> u16 {
    for _ in 0..200 {
        let port = free_port();
        if accept(port) {
            return port;
        }
    }
    panic!("found no free port on 127.0.0.1 meeting the requirement after 200 tries");
}

/// Whether 127.0.0.1:`port` can be bound right now.
pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
///
/// Polls every 25 ms; returns `false` if `timeout` passes first.
#[must_use]
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if connect(port).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// A short-timeout TCP connection to 127.0.0.1:`port`, for probes and helpers.
pub(crate) fn connect(port: u16) -> io::Result<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    Ok(stream)
}

/// Whether `pid` holds the socket listening on 127.0.0.1:`port` (or on
/// 0.0.0.0:`port`). Linux-only; where `/proc` cannot tell, assumes it does.
pub(crate) fn owns_listener(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return true;
    };
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            (*state == "0A" && wanted.iter().any(|w| w == local))
                .then(|| format!("socket:[{inode}]"))
        })
        .collect();
    fds.filter_map(Result::ok)
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .any(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
}
