//! Dialing an upstream: resolve (`dns.rs`: cached, never blocking a worker), check every address
//! against the policy, then race the allowed ones (RFC 8305) until one connects or the deadline
//! passes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use monoio::net::TcpStream;

use super::dns::Resolver;
use super::error::DialError;
use super::source::Sources;
use crate::http::target::{Authority, Host};
use crate::policy::{Check, Denial};

/// How long a connection attempt has before the next address is tried beside it (RFC 8305 §5
/// recommends 250 ms).
const NEXT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Connects to `target` within `timeout` (resolution included), with `TCP_NODELAY` set. Every
/// address is put to the policy `check` before it is tried; the allowed ones are raced Happy
/// Eyeballs style (RFC 8305: IPv6 and IPv4 alternate, each attempt gets a 250 ms head start
/// before the next begins beside it, the first to connect wins). A connection that turns out to
/// lead back to this proxy is closed. Each attempt is made from the next of `sources` of its family.
pub async fn dial(
    target: &Authority<'_>,
    timeout: Duration,
    check: &Check<'_>,
    dns: &Resolver,
    sources: &Sources,
) -> Result<TcpStream, DialError> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = match target.host {
        Host::Ip(ip) => vec![SocketAddr::new(ip, target.port)],
        Host::Name(name) => dns
            .resolve(name, check.request.client, deadline)
            .await?
            .iter()
            .map(|&ip| SocketAddr::new(ip, target.port))
            .collect(),
    };
    let mut denied = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|&a| match check.address(a) {
            Ok(()) => true,
            Err(d) => {
                denied.get_or_insert(d);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(denied.map_or(DialError::NoAddress, DialError::Denied));
    }
    race(allowed, deadline, check, sources).await
}

async fn race(
    addrs: Vec<SocketAddr>,
    deadline: Instant,
    check: &Check<'_>,
    sources: &Sources,
) -> Result<TcpStream, DialError> {
    let connect = |addr| sources.connect(addr);
    let mut rest = addrs.into_iter();
    let mut attempts = FuturesUnordered::new();
    let mut last = None;
    loop {
        if attempts.is_empty() {
            match rest.next() {
                Some(addr) => attempts.push(connect(addr)),
                None => break,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DialError::Timeout);
        }
        let more = rest.len() > 0;
        let wait = if more {
            NEXT_ATTEMPT_DELAY.min(left)
        } else {
            left
        };
        match monoio::time::timeout(wait, attempts.next()).await {
            // No attempt finished in time: the next address joins the race (or time is up).
            Err(_) if more => attempts.extend(rest.next().map(connect)),
            Err(_) => return Err(DialError::Timeout),
            Ok(None) => {}
            Ok(Some(Ok(stream))) => {
                // Two syscalls, only where a loop can hide: behind a wildcard listener.
                if check.policy.has_wildcard_listener()
                    && let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr())
                    && check.is_loop(local, peer, super::source::is_host_address)
                {
                    last = Some(DialError::Denied(Denial::Loop));
                    continue;
                }
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            // A failed attempt hands over to the next address at once.
            Ok(Some(Err(e))) => {
                last = Some(DialError::from_connect(e));
                attempts.extend(rest.next().map(connect));
            }
        }
    }
    Err(last.unwrap_or(DialError::NoAddress))
}
