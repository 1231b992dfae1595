//! Idle timeouts for all of a worker's tunnels on one coarse clock.
//!
//! A runtime timer (`monoio::time::Sleep`) is 640 bytes, and an idle tunnel would keep one for its
//! whole life. Instead, each tunnel registers its deadline and waker in its worker's [`IdleClock`]
//! (one slab entry, ~48 bytes), and one ticker task per worker looks over the entries every
//! [`IdleClock::tick`] and wakes those whose deadline has passed. A woken tunnel looks at when a byte
//! last moved: if that was long enough ago it ends, otherwise it registers the later deadline. So a
//! busy tunnel costs nothing per byte here (its deadline goes stale and is renewed once per timeout),
//! and a timeout fires between `limit` and `limit + tick` after the last byte.
//!
//! The scan is O(tunnels) per tick: 7.3 µs for 10,000 idle tunnels (`cargo bench --bench relay`,
//! `idle_clock/scan_10000`), so ~0.4 ms per second for a worker holding 500,000; the ticker sleeps
//! while its worker has no tunnel.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

struct Entry {
    deadline: Instant,
    waker: Waker,
    /// Woken by the ticker and not yet looked at by its tunnel.
    fired: bool,
}

/// One worker's idle deadlines.
pub struct IdleClock {
    tick: Duration,
    entries: RefCell<Slab<Entry>>,
    /// The ticker, parked while there is nothing to watch.
    parked: Cell<Option<Waker>>,
    /// Set at shutdown: the ticker ends and no waker is kept.
    stopped: Cell<bool>,
}

impl IdleClock {
    /// A clock for timeouts of `limit`: it ticks every eighth of it, between 50 ms and 1 s.
    pub fn new(limit: Duration) -> IdleClock {
        IdleClock {
            tick: (limit / 8).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            entries: RefCell::new(Slab::new()),
            parked: Cell::new(None),
            stopped: Cell::new(false),
        }
    }

    /// How late past its deadline a timeout may fire.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Tunnels being watched.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs until [`IdleClock::stop`]: wakes every tunnel whose deadline has passed, each tick.
    pub async fn run(&self) {
        while !self.stopped.get() {
            std::future::poll_fn(|cx| {
                if self.is_empty() && !self.stopped.get() {
                    self.parked.set(Some(cx.waker().clone()));
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            monoio::time::sleep(self.tick).await;
            self.fire(Instant::now());
        }
    }

    /// At shutdown: ends the ticker and lets go of every waker kept. A kept waker holds its task,
    /// and the tasks hold the worker's shard, which holds this clock: without this, the shard
    /// (and the access log's sender in it) would never be dropped, and the process would wait
    /// for the log writer forever.
    pub fn stop(&self) {
        self.stopped.set(true);
        for (_, e) in self.entries.borrow_mut().iter_mut() {
            e.waker = Waker::noop().clone();
        }
        if let Some(ticker) = self.parked.take() {
            ticker.wake();
        }
    }

    /// Wakes the entries due at `now` (what the ticker does each tick; public for the bench).
    pub fn fire(&self, now: Instant) {
        for (_, e) in self.entries.borrow_mut().iter_mut() {
            if !e.fired && e.deadline <= now {
                e.fired = true;
                e.waker.wake_by_ref();
            }
        }
    }

    /// Resolves once no byte has moved (by `activity`) for `limit`.
    pub fn watch<'a>(&'a self, activity: &'a Cell<Instant>, limit: Duration) -> Watch<'a> {
        Watch {
            clock: self,
            activity,
            limit,
            key: None,
        }
    }
}

/// A tunnel's idle timeout; leaves the clock when dropped.
pub struct Watch<'a> {
    clock: &'a IdleClock,
    activity: &'a Cell<Instant>,
    limit: Duration,
    key: Option<usize>,
}

impl Future for Watch<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let clock = self.clock;
        if clock.stopped.get() {
            return Poll::Pending;
        }
        let mut entries = clock.entries.borrow_mut();
        if let Some(key) = self.key {
            let entry = &mut entries[key];
            if !entry.fired {
                // Woken for a byte that moved, not by the clock: the deadline can only be later.
                if !entry.waker.will_wake(cx.waker()) {
                    entry.waker = cx.waker().clone();
                }
                return Poll::Pending;
            }
            let deadline = self.activity.get() + self.limit;
            if deadline <= Instant::now() {
                entries.remove(key);
                self.key = None;
                return Poll::Ready(());
            }
            entry.deadline = deadline;
            entry.fired = false;
            entry.waker = cx.waker().clone();
            return Poll::Pending;
        }
        let key = entries.insert(Entry {
            deadline: self.activity.get() + self.limit,
            waker: cx.waker().clone(),
            fired: false,
        });
        self.key = Some(key);
        if let Some(ticker) = clock.parked.take() {
            ticker.wake();
        }
        Poll::Pending
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.clock.entries.borrow_mut().remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::Waker;

    use super::*;

    fn poll(w: Pin<&mut Watch<'_>>) -> Poll<()> {
        w.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn fires_only_after_a_quiet_limit_and_leaves_no_entry() {
        let clock = IdleClock::new(Duration::from_secs(8));
        assert_eq!(clock.tick(), Duration::from_secs(1));
        let start = Instant::now();
        let activity = Cell::new(start);
        let limit = Duration::from_secs(8);
        {
            let mut w = pin!(clock.watch(&activity, limit));
            assert!(poll(w.as_mut()).is_pending());
            assert_eq!(clock.len(), 1);
            // Not due: nothing fires, and a poll without a tick stays pending.
            clock.fire(start + Duration::from_secs(7));
            assert!(poll(w.as_mut()).is_pending());
            // Due by the old deadline, but a byte moved since: renewed, not ended.
            activity.set(start + Duration::from_secs(5));
            clock.fire(start + Duration::from_secs(9));
            assert!(poll(w.as_mut()).is_pending());
            assert_eq!(
                clock.entries.borrow()[0].deadline,
                start + Duration::from_secs(13)
            );
        }
        assert!(clock.is_empty(), "a dropped watch leaves the clock");

        let activity = Cell::new(Instant::now() - Duration::from_secs(9));
        let mut w = pin!(clock.watch(&activity, limit));
        assert!(poll(w.as_mut()).is_pending());
        clock.fire(Instant::now());
        assert!(poll(w.as_mut()).is_ready());
        assert!(clock.is_empty());
    }

    #[test]
    fn tick_is_an_eighth_of_the_limit_within_bounds() {
        assert_eq!(
            IdleClock::new(Duration::from_secs(1)).tick(),
            Duration::from_millis(125)
        );
        assert_eq!(
            IdleClock::new(Duration::from_millis(100)).tick(),
            Duration::from_millis(50)
        );
        assert_eq!(
            IdleClock::new(Duration::from_secs(300)).tick(),
            Duration::from_secs(1)
        );
    }
}
