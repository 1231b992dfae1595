//! Limits shared by all workers: open client connections in all and per client address, new
//! connections per second per address, and open tunnels per user.
//!
//! Touched when a connection is accepted or closes and when a tunnel opens or closes, never per
//! request; per chunk relayed only where `user_bandwidth_bytes_per_sec` is set: then each chunk a
//! user's tunnel moves (up to one pipe, 256 KiB by default) books itself with one compare-and-swap
//! on the user's slot, shared by all workers, since a limit per user across workers needs one
//! count (uncontended while one worker relays for the user). Per-address counts live in a fixed
//! table of atomic counters indexed by a keyed hash of the address, so there is no lock and no allocation, and memory does not grow with the number of
//! clients; two addresses that share a slot share its count (with 65,536 slots and a key chosen at
//! random at start, a client cannot pick who it collides with). A client is its address as
//! [`client_key`] sees it: an IPv6 client by its /64 (`client_ipv6_prefix`), since one host
//! usually holds a whole /64 and could otherwise multiply itself.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::observe::labels::LimitKind;
use crate::policy::canonical;

const SLOTS: usize = 1 << 16;

/// The address a client is counted under by limits and throttles: IPv4 (also in its IPv6
/// spellings) as it is, IPv6 cut to its first `v6_prefix` bits (0..=128).
pub fn client_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

pub struct ConnLimits {
    max: usize,
    per_client: u32,
    v6_prefix: u8,
    open: AtomicUsize,
    slots: Box<[AtomicU32]>,
    hasher: RandomState,
    /// New connections per second per address (0: no limit): per slot, the second (since
    /// `epoch`) in the high half and the count in it in the low half.
    rate: u32,
    rate_slots: Box<[AtomicU64]>,
    epoch: Instant,
    /// Open tunnels per user (0: no limit).
    per_user: u32,
    user_slots: Box<[AtomicU32]>,
    /// Tunnel bytes per second per user, both directions together (0: no limit): per slot, the
    /// time (ns since `epoch`) when the bytes already let through will have been paid for.
    bandwidth: u64,
    paid_until: Box<[AtomicU64]>,
}

/// How long a burst a user's bandwidth allows (bytes beyond it wait).
const BURST: Duration = Duration::from_secs(1);

/// A user's share of `user_bandwidth_bytes_per_sec`, for the tunnels' relays.
pub struct UserRate {
    limits: Arc<ConnLimits>,
    slot: usize,
}

impl UserRate {
    /// Books `n` bytes moved; how long to wait before moving more (generic cell rate algorithm:
    /// lock-free, shared by all the user's tunnels on all workers).
    pub fn book(&self, n: usize) -> Duration {
        let l = &self.limits;
        let now = l.epoch.elapsed().as_nanos() as u64;
        let cost = (n as u128 * 1_000_000_000 / u128::from(l.bandwidth)) as u64;
        let slot = &l.paid_until[self.slot];
        let mut paid = slot.load(Ordering::Relaxed);
        loop {
            let next = paid.max(now) + cost;
            match slot.compare_exchange_weak(paid, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    let ahead = next.saturating_sub(now + BURST.as_nanos() as u64);
                    return Duration::from_nanos(ahead);
                }
                Err(seen) => paid = seen,
            }
        }
    }
}

/// Holds a tunnel's place in its user's count until dropped.
pub struct TunnelPermit {
    limits: Arc<ConnLimits>,
    slot: usize,
}

impl Drop for TunnelPermit {
    fn drop(&mut self) {
        self.limits.user_slots[self.slot].fetch_sub(1, Ordering::Relaxed);
    }
}

fn table<T: Default>(on: bool) -> Box<[T]> {
    if on {
        (0..SLOTS).map(|_| T::default()).collect()
    } else {
        Box::default()
    }
}

/// Holds a connection's place until dropped.
pub struct Permit {
    limits: Arc<ConnLimits>,
    slot: Option<usize>,
}

impl ConnLimits {
    /// `max`: open client connections in all; `per_client`: from one address; `rate`: new
    /// connections per second from one address; `per_user`: open tunnels of one user (0 = no
    /// limit).
    pub fn new(
        max: usize,
        per_client: u32,
        rate: u32,
        per_user: u32,
        bandwidth: u64,
    ) -> ConnLimits {
        ConnLimits {
            max,
            per_client,
            v6_prefix: 64,
            open: AtomicUsize::new(0),
            slots: table(per_client > 0),
            hasher: RandomState::new(),
            rate,
            rate_slots: table(rate > 0),
            epoch: Instant::now(),
            per_user,
            user_slots: table(per_user > 0),
            bandwidth,
            paid_until: table(bandwidth > 0),
        }
    }

    /// Counts IPv6 clients by their first `bits` bits (64 unless set).
    pub fn with_ipv6_prefix(mut self, bits: u8) -> ConnLimits {
        self.v6_prefix = bits;
        self
    }

    fn slot<T: std::hash::Hash>(&self, key: T) -> usize {
        (self.hasher.hash_one(key) as usize) % SLOTS
    }

    /// Counts a new connection from `client` in its current second; false when over the rate.
    fn within_rate(&self, client: IpAddr) -> bool {
        if self.rate == 0 {
            return true;
        }
        let slot = &self.rate_slots[self.slot(("rate", client_key(client, self.v6_prefix)))];
        let second = self.epoch.elapsed().as_secs() as u32;
        let mut seen = slot.load(Ordering::Relaxed);
        loop {
            let (window, count) = ((seen >> 32) as u32, seen as u32);
            let next = if window == second {
                if count >= self.rate {
                    return false;
                }
                seen + 1
            } else {
                (u64::from(second) << 32) | 1
            };
            match slot.compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => seen = now,
            }
        }
    }

    /// The bandwidth share of `user`'s tunnels, when `user_bandwidth_bytes_per_sec` is set.
    pub fn user_rate(self: &Arc<Self>, user: &str) -> Option<UserRate> {
        (self.bandwidth > 0).then(|| UserRate {
            limits: Arc::clone(self),
            slot: self.slot(("bandwidth", user)),
        })
    }

    /// A place for one more open tunnel of `user`, or `None` over `max_tunnels_per_user`.
    pub fn admit_tunnel(self: &Arc<Self>, user: &str) -> Option<Option<TunnelPermit>> {
        if self.per_user == 0 {
            return Some(None);
        }
        let slot = self.slot(("user", user));
        if self.user_slots[slot].fetch_add(1, Ordering::Relaxed) >= self.per_user {
            self.user_slots[slot].fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Some(TunnelPermit {
            limits: Arc::clone(self),
            slot,
        }))
    }

    /// A place for a new connection from `client`, or the limit that refuses it (`conn::reject`
    /// turns it into the answer).
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Permit, LimitKind> {
        if !self.within_rate(client) {
            return Err(LimitKind::PerClient);
        }
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(LimitKind::MaxConnections);
        }
        let mut permit = Permit {
            limits: Arc::clone(self),
            slot: None,
        };
        if self.per_client > 0 {
            let slot = self.slot(client_key(client, self.v6_prefix));
            if self.slots[slot].fetch_add(1, Ordering::Relaxed) >= self.per_client {
                self.slots[slot].fetch_sub(1, Ordering::Relaxed);
                return Err(LimitKind::PerClient);
            }
            permit.slot = Some(slot);
        }
        Ok(permit)
    }

    /// Client connections open now, on all workers.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.limits.slots[slot].fetch_sub(1, Ordering::Relaxed);
        }
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `max_connections = 0`: what the fd limit allows, each connection counted as two fds (client
/// and origin) with some kept for listeners, pipes in flight and logs.
pub fn auto_max_connections(open_files: Option<usize>) -> usize {
    open_files.map_or(4096, |n| (n.saturating_sub(256) / 2).max(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_in_all_and_per_address_and_free_on_drop() {
        let l = Arc::new(ConnLimits::new(3, 2, 0, 0, 0));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.admit(a).unwrap();
        let p2 = l.admit(mapped).unwrap();
        assert_eq!(l.admit(a).err(), Some(LimitKind::PerClient));
        let p3 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).err(), Some(LimitKind::MaxConnections));
        assert_eq!(l.open(), 3);
        drop(p1);
        let _p4 = l.admit(a).unwrap();
        drop((p2, p3));
        assert_eq!(l.open(), 1);
        let unlimited = Arc::new(ConnLimits::new(10, 0, 0, 0, 0));
        let held: Vec<_> = (0..10).map(|_| unlimited.admit(a).unwrap()).collect();
        assert_eq!(unlimited.admit(b).err(), Some(LimitKind::MaxConnections));
        drop(held);
        assert_eq!(unlimited.open(), 0);
    }

    #[test]
    fn ipv6_clients_count_by_their_prefix() {
        for (ip, bits, want) in [
            ("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::"),
            ("2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::"),
            ("2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"),
            ("2001:db8:1:2:3:4:5:6", 0, "::"),
            ("::ffff:10.0.0.1", 64, "10.0.0.1"),
            ("10.0.0.1", 64, "10.0.0.1"),
        ] {
            let got = client_key(ip.parse().unwrap(), bits);
            assert_eq!(got, want.parse::<IpAddr>().unwrap(), "{ip}/{bits}");
        }
        let l = Arc::new(ConnLimits::new(100, 2, 0, 0, 0));
        let one: IpAddr = "2001:db8::1".parse().unwrap();
        let two: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let _a = l.admit(one).unwrap();
        let _b = l.admit(two).unwrap();
        assert!(l.admit("2001:db8::3".parse().unwrap()).is_err(), "same /64");
        assert!(l.admit(other).is_ok(), "another /64");
    }

    #[test]
    fn connection_rate_and_tunnels_per_user() {
        let l = Arc::new(ConnLimits::new(1000, 0, 3, 2, 0));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| l.admit(a).unwrap()).collect();
        // The rate counts new connections, not open ones: closing does not give one back.
        drop(held);
        assert_eq!(l.admit(a).err(), Some(LimitKind::PerClient));
        assert!(l.admit(b).is_ok());
        let t1 = l.admit_tunnel("alice").unwrap();
        let _t2 = l.admit_tunnel("alice").unwrap();
        assert!(l.admit_tunnel("alice").is_none());
        assert!(l.admit_tunnel("bob").unwrap().is_some());
        drop(t1);
        assert!(l.admit_tunnel("alice").is_some());
        let off = Arc::new(ConnLimits::new(10, 0, 0, 0, 0));
        assert!(matches!(off.admit_tunnel("x"), Some(None)));
    }

    #[test]
    fn bandwidth_lets_a_second_through_then_paces() {
        let l = Arc::new(ConnLimits::new(10, 0, 0, 0, 1_000_000));
        let r = l.user_rate("alice").unwrap();
        assert_eq!(r.book(500_000), Duration::ZERO);
        assert_eq!(r.book(400_000), Duration::ZERO);
        // 1.9 s worth booked at once: about 0.9 s over the burst.
        let wait = r.book(1_000_000);
        assert!(
            wait > Duration::from_millis(800) && wait <= Duration::from_millis(900),
            "{wait:?}"
        );
        // Another user has its own share.
        assert_eq!(l.user_rate("bob").unwrap().book(900_000), Duration::ZERO);
        assert!(
            Arc::new(ConnLimits::new(10, 0, 0, 0, 0))
                .user_rate("x")
                .is_none()
        );
    }

    #[test]
    fn auto_limit_follows_the_fd_limit() {
        assert_eq!(auto_max_connections(Some(20_000)), 9872);
        assert_eq!(auto_max_connections(Some(100)), 16);
        assert!(open_files_limit().is_some());
    }
}
