//! The per-worker pool of pipes the splice relay moves bytes through.
//!
//! A tunnel direction leases a pipe only while bytes are in flight and hands it back drained, so an
//! idle tunnel holds no pipe. A lease dropped with bytes still inside (an error, a cancelled tunnel)
//! closes its pipe instead: a pipe in the pool is always empty.
//!
//! That invariant is what keeps one tunnel's bytes out of another, so the count of bytes inside a
//! leased pipe is private to [`Lease`]: the only ways to move bytes through it are
//! [`Lease::fill_from`] and [`Lease::drain_to`], which keep the count, and a pipe goes back to the
//! pool only when that count is zero (debug builds also ask the kernel, `FIONREAD`).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::observe::metrics::WorkerMetrics;
use crate::sys;

/// A pipe's two ends and its capacity.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

/// Owned by one worker; not `Sync`, no locks.
pub struct PipePool {
    free: RefCell<Vec<Pipe>>,
    size: usize,
    max_free: usize,
    resize_warned: Cell<bool>,
    created: Cell<u64>,
    /// Where the number of pooled pipes is published (the `pipes_pooled` gauge).
    metrics: Arc<WorkerMetrics>,
}

impl PipePool {
    pub fn new(size: usize, max_free: usize, metrics: Arc<WorkerMetrics>) -> PipePool {
        PipePool {
            free: RefCell::new(Vec::with_capacity(max_free)),
            size,
            max_free,
            resize_warned: Cell::new(false),
            created: Cell::new(0),
            metrics,
        }
    }

    /// Pipes kept empty for reuse right now.
    pub fn idle(&self) -> usize {
        self.free.borrow().len()
    }

    /// Pipes created since start (a pool that works creates few).
    pub fn created(&self) -> u64 {
        self.created.get()
    }

    /// Leases a pipe: a pooled one if any, else a new one.
    pub fn lease(&self) -> io::Result<Lease<'_>> {
        let popped = {
            let mut free = self.free.borrow_mut();
            let p = free.pop();
            self.metrics.pipes_pooled.set(free.len() as u64);
            p
        };
        let pipe = match popped {
            Some(p) => p,
            None => self.create()?,
        };
        Ok(Lease {
            pool: self,
            pipe: Some(pipe),
            in_flight: 0,
        })
    }

    fn create(&self) -> io::Result<Pipe> {
        let (read, write) = sys::pipe()?;
        let capacity = match sys::set_pipe_size(write.as_fd(), self.size) {
            Ok(capacity) => capacity,
            Err(e) => {
                // Over the user's pipe-pages quota the kernel refuses; the size it gave works.
                if !self.resize_warned.replace(true) {
                    tracing::warn!(size = self.size, error = %e, "cannot resize relay pipe; using the kernel default");
                }
                sys::pipe_size(write.as_fd()).unwrap_or(4096)
            }
        };
        self.created.set(self.created.get() + 1);
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    fn give_back(&self, pipe: Pipe) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.max_free {
            free.push(pipe);
            self.metrics.pipes_pooled.set(free.len() as u64);
        }
    }
}

/// A leased pipe plus the count of bytes inside it, which only its own methods change.
pub struct Lease<'p> {
    pool: &'p PipePool,
    pipe: Option<Pipe>,
    /// Bytes spliced in and not yet out. Zero means empty: the pipe may go back to the pool.
    in_flight: usize,
}

impl Lease<'_> {
    fn pipe(&self) -> &Pipe {
        self.pipe
            .as_ref()
            .expect("lease holds a pipe until dropped")
    }

    /// Splices what `src` has now (up to the room left in the pipe) into the pipe; never waits.
    /// `Ok(0)` from a socket is EOF.
    pub fn fill_from(&mut self, src: BorrowedFd<'_>) -> io::Result<usize> {
        let room = self.capacity().saturating_sub(self.in_flight);
        let n = sys::splice(src, self.pipe().write.as_fd(), room)?;
        self.in_flight += n;
        Ok(n)
    }

    /// Splices bytes held in the pipe out to `dst`; never waits (`WouldBlock` when `dst` is full).
    pub fn drain_to(&mut self, dst: BorrowedFd<'_>) -> io::Result<usize> {
        let n = sys::splice(self.pipe().read.as_fd(), dst, self.in_flight)?;
        self.in_flight -= n;
        Ok(n)
    }

    /// Bytes in the pipe, spliced in and not yet out.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Bytes the pipe holds at most (what the kernel granted, which may be less than asked).
    pub fn capacity(&self) -> usize {
        self.pipe.as_ref().map_or(0, |p| p.capacity)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(pipe) = self.pipe.take() else {
            return;
        };
        // Not known to be empty (dropped mid-transfer: an error, a cancelled tunnel): the pipe is
        // closed with its bytes, never pooled.
        if self.in_flight != 0 {
            return;
        }
        debug_assert_eq!(
            sys::unread(pipe.read.as_fd()).ok(),
            Some(0),
            "a pipe going back to the pool must be empty"
        );
        self.pool.give_back(pipe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn drained_pipes_return_and_dirty_pipes_are_closed() {
        let pool = PipePool::new(65536, 2, Default::default());
        {
            let _a = pool.lease().unwrap();
            let mut b = pool.lease().unwrap();
            let _c = pool.lease().unwrap();
            let (mut tx, rx) = UnixStream::pair().unwrap();
            tx.write_all(b"bytes").unwrap();
            assert_eq!(b.fill_from(rx.as_fd()).unwrap(), 5);
            assert_eq!(b.in_flight(), 5);
            assert_eq!(
                sys::unread(b.pipe().read.as_fd()).unwrap(),
                5,
                "FIONREAD sees them"
            );
        }
        assert_eq!(
            pool.idle(),
            2,
            "two clean leases came back, the dirty one was closed"
        );
        assert_eq!(pool.created(), 3);
        let again = pool.lease().unwrap();
        assert_eq!(pool.created(), 3, "reused, not created");
        assert_eq!(again.capacity(), 65536);
    }

    #[test]
    fn a_drained_lease_goes_back_empty_and_its_bytes_arrive() {
        let pool = PipePool::new(65536, 2, Default::default());
        let (mut client, relay_in) = UnixStream::pair().unwrap();
        let (relay_out, mut origin) = UnixStream::pair().unwrap();
        client.write_all(b"one tunnel's bytes").unwrap();
        {
            let mut lease = pool.lease().unwrap();
            let n = lease.fill_from(relay_in.as_fd()).unwrap();
            assert_eq!(n, 18);
            while lease.in_flight() > 0 {
                lease.drain_to(relay_out.as_fd()).unwrap();
            }
        }
        assert_eq!(pool.idle(), 1, "drained, so pooled");
        let mut got = [0u8; 18];
        origin.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one tunnel's bytes");
        let reused = pool.lease().unwrap();
        assert_eq!(sys::unread(reused.pipe().read.as_fd()).unwrap(), 0);
    }

    #[test]
    fn pool_keeps_at_most_max_free() {
        let pool = PipePool::new(4096, 1, Default::default());
        let leases: Vec<_> = (0..3).map(|_| pool.lease().unwrap()).collect();
        drop(leases);
        assert_eq!(pool.idle(), 1);
    }
}
