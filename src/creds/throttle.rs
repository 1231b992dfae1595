//! Per-worker throttle of clients that keep failing authentication. After a failure from one
//! address, its next credential check waits `base`, doubling with each further failure up to
//! `max`; a success or 60 s without failures forgives. The wait comes *before* the check, whatever
//! its outcome, so a right guess is not answered faster than a wrong one (no timing oracle), and
//! one address may have at most [`MAX_PENDING`] checks in flight, so opening many connections
//! does not multiply its guessing rate. Pure: time is a parameter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Strikes are forgotten after this long without a failure.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Credential checks one address may have in flight on one worker; more are answered 503.
pub const MAX_PENDING: u32 = 32;
/// Addresses tracked per worker. When the table is full of live entries a new address goes
/// untracked rather than evicting (or clearing) others' strikes.
const CAPACITY: usize = 16_384;
/// A full table is swept for stale entries at most this often (a sweep is a full scan).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Strikes {
    count: u32,
    last: Instant,
    pending: u32,
}

pub struct Throttle {
    base: Duration,
    max: Duration,
    strikes: HashMap<IpAddr, Strikes>,
    last_sweep: Option<Instant>,
}

impl Throttle {
    /// `base` zero turns the delays off (the in-flight limit stays).
    pub fn new(base: Duration, max: Duration) -> Throttle {
        Throttle {
            base,
            max,
            strikes: HashMap::new(),
            last_sweep: None,
        }
    }

    /// How long a credential check from `ip` must wait now.
    pub fn penalty(&self, ip: IpAddr, now: Instant) -> Duration {
        match self.strikes.get(&ip) {
            Some(s) if s.count > 0 && now.saturating_duration_since(s.last) < FORGET_AFTER => self
                .base
                .saturating_mul(1u32 << (s.count - 1).min(20))
                .min(self.max),
            _ => Duration::ZERO,
        }
    }

    /// Records a failure from `ip` at `now`.
    pub fn failure(&mut self, ip: IpAddr, now: Instant) {
        if let Some(s) = self.entry(ip, now) {
            if now.saturating_duration_since(s.last) >= FORGET_AFTER {
                s.count = 0;
            }
            s.count = s.count.saturating_add(1);
            s.last = now;
        }
    }

    /// A success from `ip` clears its strikes.
    pub fn success(&mut self, ip: IpAddr) {
        if let Some(s) = self.strikes.get_mut(&ip) {
            s.count = 0;
        }
    }

    /// Starts a check from `ip`; false when it already has [`MAX_PENDING`] in flight.
    pub fn begin(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.entry(ip, now) {
            Some(s) if s.pending >= MAX_PENDING => false,
            Some(s) => {
                s.pending += 1;
                true
            }
            None => true,
        }
    }

    /// Ends a check started with [`Throttle::begin`].
    pub fn end(&mut self, ip: IpAddr) {
        if let Some(s) = self.strikes.get_mut(&ip) {
            s.pending = s.pending.saturating_sub(1);
        }
    }

    fn entry(&mut self, ip: IpAddr, now: Instant) -> Option<&mut Strikes> {
        if self.strikes.len() >= CAPACITY && !self.strikes.contains_key(&ip) {
            if self
                .last_sweep
                .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
            {
                return None;
            }
            self.last_sweep = Some(now);
            self.strikes.retain(|_, s| {
                s.pending > 0 || now.saturating_duration_since(s.last) < FORGET_AFTER
            });
            if self.strikes.len() >= CAPACITY {
                return None;
            }
        }
        Some(self.strikes.entry(ip).or_insert(Strikes {
            count: 0,
            last: now,
            pending: 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn the_wait_doubles_with_each_failure_and_is_capped() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_millis(500));
        let now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..6 {
            waits.push(t.penalty(A, now).as_millis());
            t.failure(A, now);
        }
        assert_eq!(waits, [0, 100, 200, 400, 500, 500]);
        assert_eq!(
            t.penalty(B, now),
            Duration::ZERO,
            "other addresses are not punished"
        );
    }

    #[test]
    fn success_and_time_forgive() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_secs(5));
        let now = Instant::now();
        t.failure(A, now);
        t.failure(A, now);
        t.success(A);
        assert_eq!(t.penalty(A, now), Duration::ZERO);
        t.failure(A, now);
        assert_eq!(t.penalty(A, now), Duration::from_millis(100));
        assert_eq!(t.penalty(A, now + FORGET_AFTER), Duration::ZERO);
        t.failure(A, now + FORGET_AFTER);
        assert_eq!(t.penalty(A, now + FORGET_AFTER), Duration::from_millis(100));
    }

    #[test]
    fn in_flight_checks_per_address_are_bounded() {
        let mut t = Throttle::new(Duration::ZERO, Duration::ZERO);
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
    fn zero_base_is_no_delay() {
        let mut t = Throttle::new(Duration::ZERO, Duration::from_secs(5));
        let now = Instant::now();
        for _ in 0..10 {
            t.failure(A, now);
        }
        assert_eq!(t.penalty(A, now), Duration::ZERO);
    }

    #[test]
    fn a_full_table_keeps_existing_strikes() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_secs(5));
        let now = Instant::now();
        t.failure(A, now);
        for i in 0..CAPACITY as u32 {
            t.failure(IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1)), now);
        }
        assert_eq!(
            t.penalty(A, now),
            Duration::from_millis(100),
            "strikes survive a full table"
        );
    }
}
