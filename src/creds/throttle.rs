//! Per-worker throttle of clients that keep failing authentication: each failure after the first
//! from one address doubles a delay before its 407 (from `base` up to `max`), so guessing is slow
//! while a one-off typo costs nothing. Pure: time is a parameter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Strikes are forgotten after this long without a failure.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Addresses tracked per worker; when full, stale ones go first, then all (a bound, not a goal).
const CAPACITY: usize = 16_384;

struct Strikes {
    count: u32,
    last: Instant,
}

pub struct Throttle {
    base: Duration,
    max: Duration,
    strikes: HashMap<IpAddr, Strikes>,
}

impl Throttle {
    /// `base` zero turns throttling off.
    pub fn new(base: Duration, max: Duration) -> Throttle {
        Throttle {
            base,
            max,
            strikes: HashMap::new(),
        }
    }

    /// Records a failure from `ip` at `now`; returns how long to wait before answering it.
    pub fn failure(&mut self, ip: IpAddr, now: Instant) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        if self.strikes.len() >= CAPACITY && !self.strikes.contains_key(&ip) {
            self.strikes
                .retain(|_, s| now.saturating_duration_since(s.last) < FORGET_AFTER);
            if self.strikes.len() >= CAPACITY {
                self.strikes.clear();
            }
        }
        let s = self.strikes.entry(ip).or_insert(Strikes {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(s.last) >= FORGET_AFTER {
            s.count = 0;
        }
        s.count = s.count.saturating_add(1);
        s.last = now;
        match s.count {
            1 => Duration::ZERO,
            n => self
                .base
                .saturating_mul(1u32 << (n - 2).min(20))
                .min(self.max),
        }
    }

    /// A success from `ip` clears its strikes.
    pub fn success(&mut self, ip: IpAddr) {
        if !self.strikes.is_empty() {
            self.strikes.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn delay_doubles_after_the_first_failure_and_is_capped() {
        let mut t = Throttle::new(Duration::from_millis(100), Duration::from_millis(500));
        let now = Instant::now();
        let delays: Vec<u128> = (0..6).map(|_| t.failure(A, now).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 400, 500, 500]);
        assert_eq!(
            t.failure(B, now),
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
        assert_eq!(t.failure(A, now), Duration::ZERO);
        assert_eq!(t.failure(A, now), Duration::from_millis(100));
        let later = now + FORGET_AFTER;
        assert_eq!(t.failure(A, later), Duration::ZERO);
    }

    #[test]
    fn zero_base_is_off() {
        let mut t = Throttle::new(Duration::ZERO, Duration::from_secs(5));
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(t.failure(A, now), Duration::ZERO);
        }
    }
}
