//! Dialing a CONNECT target: resolve (on the shared blocking pool, never on a worker), then try each
//! address in turn until one connects or the deadline passes.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::acl::{Check, Denial};
use crate::http::target::{Authority, Host};

/// Why a dial failed; all are the upstream's (or the network's) fault.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve host: {0}")]
    Resolve(io::Error),
    #[error("host resolved to no addresses")]
    NoAddress,
    #[error("connection refused")]
    Refused,
    #[error("network or host unreachable")]
    Unreachable,
    #[error("timed out")]
    Timeout,
    #[error("name resolution timed out")]
    ResolveTimeout,
    #[error("denied: {}", .0.reason())]
    Denied(Denial),
    #[error("connect failed: {0}")]
    Other(io::Error),
}

impl DialError {
    fn from_connect(e: io::Error) -> DialError {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => DialError::Refused,
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL | libc::ENETDOWN) => {
                DialError::Unreachable
            }
            Some(libc::ETIMEDOUT) => DialError::Timeout,
            _ => DialError::Other(e),
        }
    }
}

/// Connects to `target` within `timeout` (resolution included), with `TCP_NODELAY` set. Every
/// address is put to the policy `check` before it is tried, and a connection that turns out to
/// lead back to this proxy is closed.
pub async fn dial(
    target: &Authority<'_>,
    timeout: Duration,
    check: &Check<'_>,
) -> Result<TcpStream, DialError> {
    let deadline = Instant::now() + timeout;
    let addrs = match target.host {
        Host::Ip(ip) => vec![SocketAddr::new(ip, target.port)],
        Host::Name(name) => resolve(name.to_owned(), target.port, deadline).await?,
    };
    let mut denied = None;
    let mut last = None;
    for addr in addrs {
        if let Err(d) = check.address(addr) {
            denied.get_or_insert(d);
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DialError::Timeout);
        }
        match monoio::time::timeout(left, TcpStream::connect_addr(addr)).await {
            Ok(Ok(stream)) => {
                if let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr())
                    && check.is_loop(local, peer)
                {
                    denied = Some(Denial::Loop);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(DialError::from_connect(e)),
            Err(_) => return Err(DialError::Timeout),
        }
    }
    Err(match (last, denied) {
        (Some(e), _) => e,
        (None, Some(d)) => DialError::Denied(d),
        (None, None) => DialError::NoAddress,
    })
}

/// Resolves on monoio's blocking pool: `getaddrinfo` can stall for seconds and must not stop a worker.
async fn resolve(name: String, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, DialError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let job = monoio::spawn_blocking(move || getaddrinfo(&name, port));
    match monoio::time::timeout(left, job).await {
        Err(_) => Err(DialError::ResolveTimeout),
        Ok(Err(_join)) => Err(DialError::Resolve(io::Error::other(
            "resolver thread failed",
        ))),
        Ok(Ok(Err(e))) => Err(DialError::Resolve(e)),
        Ok(Ok(Ok(addrs))) if addrs.is_empty() => Err(DialError::NoAddress),
        Ok(Ok(Ok(addrs))) => Ok(addrs),
    }
}

/// Runs only on the blocking pool (see `resolve`).
#[allow(
    clippy::disallowed_methods,
    reason = "runs on the resolver pool, not on a worker"
)]
fn getaddrinfo(name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    Ok((name, port).to_socket_addrs()?.collect())
}
