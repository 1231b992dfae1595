//! Per-worker throttle of password guessing. It slows *new* guesses, never people:
//!
//! - A value already judged wrong (on the credential cache's failure shelf) never gets here: the
//!   gate answers it at once. Repeating a known-wrong value teaches an attacker nothing, and it is
//!   what a client with a stale saved password does all day; a colleague behind the same NAT must
//!   not pay for it.
//! - A new wrong guess strikes the pair (client, user name). The next new guess for that pair
//!   waits `base`, doubling with each further strike up to `max`; a success or [`FORGET_AFTER`]
//!   without a strike forgives. Alice's first login is not delayed by carol's failures.
//! - Across all user names, a client has a budget of `rate` new wrong guesses per second (with a
//!   burst of one second's worth); past it, each new guess from that client waits until the budget
//!   allows it (at most `max`). This slows password spraying, one guess each for many names.
//! - The wait comes *before* the check, whatever its outcome, so a right guess is not answered
//!   faster than a wrong one (no timing oracle), and one client may have at most [`MAX_PENDING`]
//!   checks in flight, so opening many connections does not multiply its guessing rate.
//!
//! "Client" is the address as [`crate::limits::client_key`] sees it (IPv6 by its /64 by default),
//! so one host cannot multiply itself over its addresses. Both tables are bounded; a full one
//! forgets its least recently touched entry (never refusing to track a newcomer, which would let a
//! guesser off the hook by first filling the table). Pure: time is a parameter.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Strikes are forgotten after this long without a failure.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Credential checks one client may have in flight on one worker; more are answered 503.
pub const MAX_PENDING: u32 = 32;
/// Entries per table per worker.
pub const CAPACITY: usize = 16_384;

/// A bounded map that forgets its least recently touched entry when full. Recency is kept in a
/// queue of (key, stamp) pairs, stale pairs skipped lazily; the queue is compacted when it grows
/// past twice the capacity, so memory stays bounded whatever the access pattern.
struct Recent<K, V> {
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    stamp: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Copy, V> Recent<K, V> {
    fn new(capacity: usize) -> Recent<K, V> {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            stamp: 0,
            capacity: capacity.max(1),
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(v, _)| v)
    }

    /// The entry for `key`, made (from `new`) if absent, and marked most recently used. When full,
    /// the least recently used entry that `keep` does not hold on to goes.
    fn touch(&mut self, key: K, new: impl FnOnce() -> V, keep: impl Fn(&V) -> bool) -> &mut V {
        self.stamp += 1;
        let stamp = self.stamp;
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.evict(keep);
        }
        self.order.push_back((key, stamp));
        if self.order.len() > 2 * self.capacity + 16 {
            self.compact();
        }
        let slot = self.map.entry(key).or_insert_with(|| (new(), stamp));
        slot.1 = stamp;
        &mut slot.0
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(v, _)| v)
    }

    fn evict(&mut self, keep: impl Fn(&V) -> bool) {
        // Entries held on to (checks in flight) go to the back; bounded by one pass.
        let mut budget = self.order.len();
        while let Some((key, stamp)) = self.order.pop_front() {
            let live = self.map.get(&key).is_some_and(|(_, s)| *s == stamp);
            if !live {
                continue;
            }
            if budget > 0 && self.map.get(&key).is_some_and(|(v, _)| keep(v)) {
                budget -= 1;
                self.order.push_back((key, stamp));
                continue;
            }
            self.map.remove(&key);
            return;
        }
    }

    fn compact(&mut self) {
        let map = &self.map;
        self.order
            .retain(|(key, stamp)| map.get(key).is_some_and(|(_, s)| s == stamp));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Strikes of one (client, user name) pair.
struct Strikes {
    count: u32,
    last: Instant,
}

/// One client across all user names.
struct Client {
    /// When the client's budget of new wrong guesses is spent up to (GCRA's theoretical arrival
    /// time): each new wrong guess moves it on by one interval.
    spent_until: Instant,
    pending: u32,
}

pub struct Throttle {
    base: Duration,
    max: Duration,
    /// One new wrong guess's share of a second; zero: no per-client budget.
    interval: Duration,
    /// How far ahead the budget may be spent before guesses wait (one second's worth).
    burst: Duration,
    pairs: Recent<(IpAddr, u64), Strikes>,
    clients: Recent<IpAddr, Client>,
}

impl Throttle {
    /// `base` zero turns the per-pair delays off; `rate` zero the per-client budget (the
    /// in-flight limit stays).
    pub fn new(base: Duration, max: Duration, rate: u32) -> Throttle {
        Throttle::with_capacity(base, max, rate, CAPACITY)
    }

    fn with_capacity(base: Duration, max: Duration, rate: u32, capacity: usize) -> Throttle {
        let interval = if rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1) / rate
        };
        Throttle {
            base,
            max,
            interval,
            burst: Duration::from_secs(1),
            pairs: Recent::new(capacity),
            clients: Recent::new(capacity),
        }
    }

    /// How long a new guess from `client` for the user whose name hashes to `user` must wait
    /// now, before it is checked.
    pub fn penalty(&self, client: IpAddr, user: u64, now: Instant) -> Duration {
        let pair = match self.pairs.get(&(client, user)) {
            Some(s) if s.count > 0 && now.saturating_duration_since(s.last) < FORGET_AFTER => {
                self.base.saturating_mul(1u32 << (s.count - 1).min(20))
            }
            _ => Duration::ZERO,
        };
        let budget = match self.clients.get(&client) {
            Some(c) if !self.interval.is_zero() => c
                .spent_until
                .saturating_duration_since(now)
                .saturating_sub(self.burst),
            _ => Duration::ZERO,
        };
        pair.max(budget).min(self.max)
    }

    /// Records a new wrong guess from `client` for `user` at `now`.
    pub fn failure(&mut self, client: IpAddr, user: u64, now: Instant) {
        let s = self.pairs.touch(
            (client, user),
            || Strikes {
                count: 0,
                last: now,
            },
            |_| false,
        );
        if now.saturating_duration_since(s.last) >= FORGET_AFTER {
            s.count = 0;
        }
        s.count = s.count.saturating_add(1);
        s.last = now;
        if !self.interval.is_zero() {
            let c = self
                .clients
                .touch(client, || idle_client(now), |c| c.pending > 0);
            c.spent_until = c.spent_until.max(now) + self.interval;
        }
    }

    /// A success for the pair clears its strikes (the client's budget stays spent: a right
    /// guess among many wrong ones does not refill it).
    pub fn success(&mut self, client: IpAddr, user: u64) {
        if let Some(s) = self.pairs.get_mut(&(client, user)) {
            s.count = 0;
        }
    }

    /// Starts a check from `client`; false when it already has [`MAX_PENDING`] in flight.
    pub fn begin(&mut self, client: IpAddr, now: Instant) -> bool {
        let c = self
            .clients
            .touch(client, || idle_client(now), |c| c.pending > 0);
        if c.pending >= MAX_PENDING {
            return false;
        }
        c.pending += 1;
        true
    }

    /// Ends a check started with [`Throttle::begin`].
    pub fn end(&mut self, client: IpAddr) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.pending = c.pending.saturating_sub(1);
        }
    }
}

fn idle_client(now: Instant) -> Client {
    Client {
        spent_until: now,
        pending: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
    const ALICE: u64 = 1;
    const CAROL: u64 = 3;

    #[test]
    fn the_wait_doubles_with_each_failure_of_a_pair_and_is_capped() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_millis(500), 0);
        let now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..6 {
            waits.push(t.penalty(A, CAROL, now).as_millis());
            t.failure(A, CAROL, now);
        }
        assert_eq!(waits, [0, 100, 200, 400, 500, 500]);
        assert_eq!(t.penalty(B, CAROL, now), Duration::ZERO, "other clients");
        assert_eq!(
            t.penalty(A, ALICE, now),
            Duration::ZERO,
            "carol's failures do not delay alice from the same address"
        );
    }

    #[test]
    fn success_and_time_forgive() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_secs(5), 0);
        let now = Instant::now();
        t.failure(A, CAROL, now);
        t.failure(A, CAROL, now);
        t.success(A, CAROL);
        assert_eq!(t.penalty(A, CAROL, now), Duration::ZERO);
        t.failure(A, CAROL, now);
        assert_eq!(t.penalty(A, CAROL, now), Duration::from_millis(100));
        assert_eq!(t.penalty(A, CAROL, now + FORGET_AFTER), Duration::ZERO);
        t.failure(A, CAROL, now + FORGET_AFTER);
        assert_eq!(
            t.penalty(A, CAROL, now + FORGET_AFTER),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn spraying_many_names_from_one_client_spends_its_budget() {
        // 10 new wrong guesses a second, a second's worth of burst.
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_secs(5), 10);
        let now = Instant::now();
        for user in 100..110 {
            assert_eq!(t.penalty(A, user, now), Duration::ZERO, "within the burst");
            t.failure(A, user, now);
        }
        // The burst is spent: one more new name waits one interval.
        assert_eq!(t.penalty(A, 200, now), Duration::ZERO);
        t.failure(A, 200, now);
        assert_eq!(t.penalty(A, 201, now), Duration::from_millis(100));
        // A second later the budget has come back.
        assert_eq!(
            t.penalty(A, 201, now + Duration::from_millis(1100)),
            Duration::ZERO
        );
        assert_eq!(t.penalty(B, 201, now), Duration::ZERO, "other clients");
    }

    #[test]
    fn in_flight_checks_per_client_are_bounded() {
        let mut t = Throttle::new(Duration::ZERO, Duration::ZERO, 0);
        let now = Instant::now();
        for _ in 0..MAX_PENDING {
            assert!(t.begin(A, now));
        }
        assert!(!t.begin(A, now));
        assert!(t.begin(B, now));
        t.end(A);
        assert!(t.begin(A, now));
    }

    #[test]
    fn zero_base_and_zero_rate_are_no_delay() {
        let mut t = Throttle::new(Duration::ZERO, Duration::from_secs(5), 0);
        let now = Instant::now();
        for _ in 0..10 {
            t.failure(A, CAROL, now);
        }
        assert_eq!(t.penalty(A, CAROL, now), Duration::ZERO);
        assert_eq!(t.penalty(A, ALICE, now), Duration::ZERO);
    }

    #[test]
    fn a_full_table_forgets_its_oldest_entry_and_tracks_newcomers() {
        let mut t =
            Throttle::with_capacity(Duration::from_millis(100), Duration::from_secs(5), 0, 8);
        let now = Instant::now();
        t.failure(A, CAROL, now);
        for i in 0..8u32 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1));
            t.failure(ip, CAROL, now);
            assert_eq!(
                t.penalty(ip, CAROL, now),
                Duration::from_millis(100),
                "tracked"
            );
        }
        assert!(t.pairs.len() <= 8);
        assert_eq!(t.penalty(A, CAROL, now), Duration::ZERO, "the oldest went");
    }

    #[test]
    fn checks_in_flight_survive_a_full_table() {
        let mut t = Throttle::with_capacity(Duration::ZERO, Duration::ZERO, 0, 4);
        let now = Instant::now();
        for _ in 0..MAX_PENDING {
            assert!(t.begin(A, now));
        }
        for i in 0..100u32 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1));
            assert!(t.begin(ip, now));
            t.end(ip);
        }
        assert!(!t.begin(A, now), "A's checks in flight were not forgotten");
        assert!(t.clients.len() <= 4);
    }

    #[test]
    fn the_recency_queue_stays_bounded() {
        let mut r: Recent<u32, ()> = Recent::new(4);
        for i in 0..10_000u32 {
            r.touch(i % 3, || (), |_| false);
        }
        assert!(r.order.len() <= 2 * 4 + 16 + 1);
        assert_eq!(r.len(), 3);
    }
}
