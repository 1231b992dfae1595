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
//! "Client" is the address as [`crate::policy::limits::client_key`] sees it (IPv6 by its /64 by default),
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

    /// The entry for `key`, made (from `new`) if absent, and marked most recently used. When full,
    /// the least recently used entry that `keep` does not hold on to goes.
    fn touch(&mut self, key: K, new: impl FnOnce() -> V, keep: impl Fn(&V) -> bool) -> &mut V {
        self.stamp += 1;
        let stamp = self.stamp;
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.evict(keep);
        }
        // The map is stamped before the queue is compacted, so the pair pushed now survives it:
        // every key in the map has its live pair in the queue, and can be evicted.
        self.map.entry(key).or_insert_with(|| (new(), stamp)).1 = stamp;
        self.order.push_back((key, stamp));
        if self.order.len() > 2 * self.capacity + 16 {
            self.compact();
        }
        match self.map.get_mut(&key) {
            Some(slot) => &mut slot.0,
            None => unreachable!("inserted above"),
        }
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
    /// time): each new guess moves it on by one interval, and a guess that proves right (or was
    /// not a new one after all) gives its interval back.
    spent_until: Instant,
    pending: u32,
}

/// How a guess started with [`Throttle::begin`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Wrong: the charge stays. Also what a check abandoned midway (the connection went) counts
    /// as, so dropping connections earns no refund.
    Wrong,
    /// Right: the pair's strikes are cleared and this guess's share of the budget comes back.
    Right,
    /// Not a guess after all (the value was judged wrong meanwhile by a check that ran at the
    /// same time, or no verdict was reached): the charge comes back.
    Void,
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

    /// Starts a new guess from `client` for the user whose name hashes to `user`: returns how
    /// long it must wait before it is checked, or `None` when the client already has
    /// [`MAX_PENDING`] checks in flight or has spent its budget further ahead than `max` (503).
    ///
    /// The guess is charged now, before its verdict (a strike for the pair, an interval of the
    /// budget), so that checks running at the same time see each other: 32 concurrent guesses
    /// wait as 32 consecutive ones would. [`Throttle::end`] settles the charge.
    pub fn begin(&mut self, client: IpAddr, user: u64, now: Instant) -> Option<Duration> {
        let c = self
            .clients
            .touch(client, || idle_client(now), |c| c.pending > 0);
        if c.pending >= MAX_PENDING {
            return None;
        }
        let budget = if self.interval.is_zero() {
            Duration::ZERO
        } else {
            c.spent_until
                .saturating_duration_since(now)
                .saturating_sub(self.burst)
        };
        if budget > self.max {
            return None;
        }
        c.pending += 1;
        if !self.interval.is_zero() {
            c.spent_until = c.spent_until.max(now) + self.interval;
        }
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
        let pair = match s.count {
            0 => Duration::ZERO,
            n => self.base.saturating_mul(1u32 << (n - 1).min(20)),
        };
        s.count = s.count.saturating_add(1);
        s.last = now;
        Some(pair.max(budget).min(self.max))
    }

    /// Ends a guess started with [`Throttle::begin`].
    pub fn end(&mut self, client: IpAddr, user: u64, outcome: Outcome) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.pending = c.pending.saturating_sub(1);
            if outcome != Outcome::Wrong
                && let Some(back) = c.spent_until.checked_sub(self.interval)
            {
                c.spent_until = back;
            }
        }
        if let Some(s) = self.pairs.get_mut(&(client, user)) {
            match outcome {
                Outcome::Wrong => {}
                Outcome::Right => s.count = 0,
                Outcome::Void => s.count = s.count.saturating_sub(1),
            }
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

    /// One guess, checked and settled at once: its wait.
    fn guess(t: &mut Throttle, client: IpAddr, user: u64, now: Instant, outcome: Outcome) -> u128 {
        let wait = t.begin(client, user, now).expect("admitted");
        t.end(client, user, outcome);
        wait.as_millis()
    }

    #[test]
    fn the_wait_doubles_with_each_failure_of_a_pair_and_is_capped() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_millis(500), 0);
        let now = Instant::now();
        let waits: Vec<u128> = (0..6)
            .map(|_| guess(&mut t, A, CAROL, now, Outcome::Wrong))
            .collect();
        assert_eq!(waits, [0, 100, 200, 400, 500, 500]);
        assert_eq!(
            guess(&mut t, B, CAROL, now, Outcome::Wrong),
            0,
            "other clients"
        );
        assert_eq!(
            guess(&mut t, A, ALICE, now, Outcome::Right),
            0,
            "carol's failures do not delay alice from the same address"
        );
    }

    #[test]
    fn guesses_checked_at_the_same_time_wait_as_consecutive_ones_would() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_secs(5), 0);
        let now = Instant::now();
        let waits: Vec<u128> = (0..4)
            .map(|_| t.begin(A, CAROL, now).unwrap().as_millis())
            .collect();
        assert_eq!(waits, [0, 100, 200, 400]);
        // Two turned out to be the same value (void), two wrong: two strikes remain.
        t.end(A, CAROL, Outcome::Void);
        t.end(A, CAROL, Outcome::Void);
        t.end(A, CAROL, Outcome::Wrong);
        t.end(A, CAROL, Outcome::Wrong);
        assert_eq!(guess(&mut t, A, CAROL, now, Outcome::Wrong), 200);
    }

    #[test]
    fn success_and_time_forgive() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_secs(5), 0);
        let now = Instant::now();
        guess(&mut t, A, CAROL, now, Outcome::Wrong);
        guess(&mut t, A, CAROL, now, Outcome::Wrong);
        assert_eq!(guess(&mut t, A, CAROL, now, Outcome::Right), 200);
        assert_eq!(guess(&mut t, A, CAROL, now, Outcome::Wrong), 0);
        assert_eq!(guess(&mut t, A, CAROL, now, Outcome::Wrong), 100);
        let later = now + FORGET_AFTER;
        assert_eq!(guess(&mut t, A, CAROL, later, Outcome::Wrong), 0);
        assert_eq!(guess(&mut t, A, CAROL, later, Outcome::Wrong), 100);
    }

    #[test]
    fn spraying_many_names_from_one_client_spends_its_budget() {
        // 10 new guesses a second, a second's worth of burst.
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_secs(5), 10);
        let now = Instant::now();
        for user in 100..111 {
            assert_eq!(
                guess(&mut t, A, user, now, Outcome::Wrong),
                0,
                "within the burst"
            );
        }
        // The burst is spent: the next new name waits one interval, the one after two.
        assert_eq!(guess(&mut t, A, 200, now, Outcome::Wrong), 100);
        assert_eq!(guess(&mut t, A, 201, now, Outcome::Wrong), 200);
        // Later the budget has come back.
        let later = now + Duration::from_millis(1300);
        assert_eq!(guess(&mut t, A, 202, later, Outcome::Wrong), 0);
        assert_eq!(
            guess(&mut t, B, 201, now, Outcome::Wrong),
            0,
            "other clients"
        );
    }

    #[test]
    fn right_guesses_give_their_share_of_the_budget_back() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_secs(5), 10);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(guess(&mut t, A, ALICE, now, Outcome::Right), 0);
        }
    }

    #[test]
    fn a_budget_spent_beyond_max_is_refused_and_stops_growing() {
        let max = Duration::from_millis(500);
        let mut t = Throttle::new(Duration::ZERO, max, 10);
        let now = Instant::now();
        let mut refused = 0;
        for user in 0..100 {
            match t.begin(A, user, now) {
                Some(wait) => {
                    assert!(wait <= max);
                    t.end(A, user, Outcome::Wrong);
                }
                None => refused += 1,
            }
        }
        // 1 s of burst and 0.5 s of waits at 10 a second: 16 admitted (the last waits 0.5 s).
        assert_eq!(refused, 100 - 16);
        // Once the attack stops, the client is whole again within burst + max.
        let later = now + Duration::from_millis(1700);
        assert_eq!(guess(&mut t, A, ALICE, later, Outcome::Right), 0);
    }

    #[test]
    fn in_flight_checks_per_client_are_bounded() {
        let mut t = Throttle::new(Duration::ZERO, Duration::ZERO, 0);
        let now = Instant::now();
        for user in 0..u64::from(MAX_PENDING) {
            assert!(t.begin(A, user, now).is_some());
        }
        assert!(t.begin(A, 999, now).is_none());
        assert!(t.begin(B, 999, now).is_some());
        t.end(A, 0, Outcome::Wrong);
        assert!(t.begin(A, 999, now).is_some());
    }

    #[test]
    fn zero_base_and_zero_rate_are_no_delay() {
        let mut t = Throttle::new(Duration::ZERO, Duration::from_secs(5), 0);
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(guess(&mut t, A, CAROL, now, Outcome::Wrong), 0);
        }
    }

    #[test]
    fn a_full_table_forgets_its_oldest_entry_and_tracks_newcomers() {
        let base = Duration::from_millis(100);
        let mut t = Throttle::with_capacity(base, Duration::from_secs(5), 0, 8);
        let now = Instant::now();
        guess(&mut t, A, CAROL, now, Outcome::Wrong);
        for i in 0..8u32 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1));
            guess(&mut t, ip, CAROL, now, Outcome::Wrong);
            assert_eq!(
                guess(&mut t, ip, CAROL, now, Outcome::Wrong),
                100,
                "tracked"
            );
        }
        assert!(t.pairs.len() <= 8);
        assert_eq!(
            guess(&mut t, A, CAROL, now, Outcome::Wrong),
            0,
            "the oldest went"
        );
    }

    #[test]
    fn checks_in_flight_survive_a_full_table() {
        let mut t = Throttle::with_capacity(Duration::ZERO, Duration::ZERO, 0, 4);
        let now = Instant::now();
        for user in 0..u64::from(MAX_PENDING) {
            assert!(t.begin(A, user, now).is_some());
        }
        for i in 0..100u32 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1));
            assert!(t.begin(ip, 1, now).is_some());
            t.end(ip, 1, Outcome::Wrong);
        }
        assert!(
            t.begin(A, 999, now).is_none(),
            "A's checks in flight were not forgotten"
        );
        assert!(t.clients.len() <= 4);
    }

    #[test]
    fn the_table_stays_bounded_whatever_the_touch_pattern() {
        let mut r: Recent<u32, ()> = Recent::new(4);
        for i in 0..10_000u32 {
            r.touch(i % 3, || (), |_| false);
        }
        assert!(r.order.len() <= 2 * 4 + 16 + 1);
        assert_eq!(r.len(), 3);
        // Hammer one key until the queue compacts, then move on: the map must stay bounded.
        let mut r: Recent<u32, ()> = Recent::new(4);
        for key in 0..40u32 {
            for _ in 0..(2 * 4 + 17) {
                r.touch(key, || (), |_| false);
            }
            assert!(r.len() <= 4, "{} entries after key {key}", r.len());
        }
    }
}
