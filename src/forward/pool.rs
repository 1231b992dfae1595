//! A worker's idle origin connections, kept for reuse by any of its clients: keyed by host (ASCII
//! case-insensitive) and port, bounded in all and per key, each kept at most `upstream_idle`, and
//! checked before reuse (an origin may have closed it, or sent bytes nobody asked for).
//!
//! Reuse is last-in first-out: the most recently used connection is the one most likely still open
//! and warm; the oldest ones age out. Owned by one worker: `RefCell`, no lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use nohash_hasher::BuildNoHashHasher;

use crate::config::Config;
use crate::http::target::{Authority, Host};
use crate::sys;

/// Which origin a connection talks to: the host as written in the URL (lowercased; IPv6 literals
/// keep their brackets) and the port, with the literal address when the host is one (so a dial
/// needs no re-parse).
pub struct Key {
    hash: u64,
    host: Box<str>,
    ip: Option<IpAddr>,
    port: u16,
}

impl Key {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The origin as the dialler wants it: what the validated target's authority was, the name
    /// lowercased.
    pub fn authority(&self) -> Authority<'_> {
        Authority {
            host: match self.ip {
                Some(ip) => Host::Ip(ip),
                None => Host::Name(&self.host),
            },
            port: self.port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this key names `host:port` (host compared ASCII case-insensitively).
    pub fn is(&self, host: &str, port: u16) -> bool {
        self.port == port && self.host.eq_ignore_ascii_case(host)
    }

    fn new(hash: u64, host: &str, authority: &Authority<'_>) -> Key {
        Key {
            hash,
            host: host.to_ascii_lowercase().into_boxed_str(),
            ip: match authority.host {
                Host::Ip(ip) => Some(ip),
                Host::Name(_) => None,
            },
            port: authority.port,
        }
    }

    fn matches(&self, hash: u64, host: &str, port: u16) -> bool {
        self.hash == hash && self.port == port && self.host.eq_ignore_ascii_case(host)
    }
}

/// An origin connection with the key it belongs under.
pub struct Upstream {
    pub stream: TcpStream,
    /// The origin's address (what the policy checked when it was dialled).
    pub addr: SocketAddr,
    pub key: Key,
    /// Carried connection-bound origin authentication (NTLM, Negotiate): the origin treats it as
    /// one user's. Set once and never cleared; such a connection is never put in the pool, only
    /// reused by the client connection that bound it, and closed when that cannot be.
    pub bound: bool,
}

struct Idle {
    up: Upstream,
    since: Instant,
}

pub struct Pool {
    /// Per key hash, oldest first. A hash collision only makes a list hold two keys.
    idle: RefCell<HashMap<u64, Vec<Idle>, BuildNoHashHasher<u64>>>,
    count: std::cell::Cell<usize>,
    hasher: RandomState,
    max: usize,
    per_key: usize,
    keep: Duration,
}

impl Pool {
    pub fn new(config: &Config) -> Pool {
        Pool {
            idle: RefCell::default(),
            count: std::cell::Cell::new(0),
            hasher: RandomState::new(),
            max: config.upstream_pool_size,
            per_key: config.upstream_pool_per_host,
            keep: config.upstream_idle,
        }
    }

    fn hash(&self, host: &str, port: u16) -> u64 {
        let mut h = self.hasher.build_hasher();
        for b in host.bytes() {
            h.write_u8(b.to_ascii_lowercase());
        }
        h.write_u16(port);
        h.finish()
    }

    /// The key for a new connection to `authority`, whose host is written `host` (the one
    /// allocation of a fresh dial).
    pub fn key(&self, host: &str, authority: &Authority<'_>) -> Key {
        Key::new(self.hash(host, authority.port), host, authority)
    }

    /// Idle connections kept now.
    pub fn len(&self) -> usize {
        self.count.get()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most recently kept live connection to `host:port`, if any. Stale and dead ones met on
    /// the way are closed.
    pub fn take(&self, host: &str, port: u16) -> Option<Upstream> {
        if self.is_empty() {
            return None;
        }
        let hash = self.hash(host, port);
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&hash)?;
        let mut found = None;
        while let Some(i) = list
            .iter()
            .rposition(|e| e.up.key.matches(hash, host, port))
        {
            let entry = list.remove(i);
            self.count.set(self.count.get() - 1);
            if entry.since.elapsed() < self.keep && sys::is_idle_and_open(&entry.up.stream) {
                found = Some(entry.up);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(&hash);
        }
        found
    }

    /// Keeps `up` for reuse, making room by closing the oldest connection of its key, or of all
    /// keys, when full.
    pub fn put(&self, up: Upstream) {
        // A bound connection belongs to one client (see `Upstream::bound`): never shared.
        if self.per_key == 0 || up.bound {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let same_key = |list: &Vec<Idle>| {
            list.iter()
                .filter(|e| e.up.key.matches(up.key.hash, &up.key.host, up.key.port))
                .count()
        };
        let crowded = idle
            .get(&up.key.hash)
            .is_some_and(|l| same_key(l) >= self.per_key);
        if crowded {
            let list = idle.get_mut(&up.key.hash).expect("checked above");
            if let Some(i) = list
                .iter()
                .position(|e| e.up.key.matches(up.key.hash, &up.key.host, up.key.port))
            {
                list.remove(i);
                self.count.set(self.count.get() - 1);
            }
        } else if self.count.get() >= self.max {
            let oldest = idle
                .iter()
                .filter_map(|(k, l)| l.first().map(|e| (*k, e.since)))
                .min_by_key(|&(_, since)| since);
            if let Some((k, _)) = oldest {
                let list = idle.get_mut(&k).expect("found above");
                list.remove(0);
                if list.is_empty() {
                    idle.remove(&k);
                }
                self.count.set(self.count.get() - 1);
            }
        }
        self.count.set(self.count.get() + 1);
        idle.entry(up.key.hash).or_default().push(Idle {
            up,
            since: Instant::now(),
        });
    }

    /// Closes connections idle too long and those their origin closed (so no fd lingers in
    /// CLOSE_WAIT until the next request for that origin).
    pub fn sweep(&self) {
        if self.is_empty() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let before = self.count.get();
        let mut left = 0;
        idle.retain(|_, list| {
            list.retain(|e| e.since.elapsed() < self.keep && sys::is_idle_and_open(&e.up.stream));
            left += list.len();
            !list.is_empty()
        });
        self.count.set(left);
        if before != left {
            tracing::trace!(closed = before - left, kept = left, "upstream pool swept");
        }
    }

    /// How often [`Pool::sweep`] should run.
    pub fn sweep_every(&self) -> Duration {
        (self.keep / 2).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::target::{parse_absolute_http, parse_authority};

    /// A key gives the dialler the authority a re-parse of its `host:port` text would (what
    /// `Dialer::dial` did before it kept the parsed one).
    #[test]
    fn a_keys_authority_is_its_targets() {
        for (url, host) in [
            ("http://Example.COM/", "Example.COM"),
            ("http://example.com:8080/x", "example.com"),
            ("http://example.com./", "example.com."),
            ("http://10.1.2.3:81/", "10.1.2.3"),
            ("http://[2001:DB8::1]:82/", "[2001:DB8::1]"),
            ("http://[::1]/", "[::1]"),
        ] {
            let target = parse_absolute_http(url.as_bytes()).unwrap();
            let key = Key::new(0, host, &target.authority);
            let text = format!("{}:{}", key.host(), key.port());
            assert_eq!(
                key.authority(),
                parse_authority(text.as_bytes()).unwrap(),
                "{url}"
            );
        }
    }
}
