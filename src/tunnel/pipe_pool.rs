//! The per-worker pool of pipes the splice relay moves bytes through.
//!
//! A tunnel direction leases a pipe only while bytes are in flight and hands it back drained, so an
//! idle tunnel holds no pipe. A lease dropped with bytes still inside (an error, a cancelled tunnel)
//! closes its pipe instead: a pipe in the pool is always empty.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::metrics::WorkerMetrics;
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

/// A leased pipe plus the count of bytes inside it.
pub struct Lease<'p> {
    pool: &'p PipePool,
    pipe: Option<Pipe>,
    pub in_flight: usize,
}

impl Lease<'_> {
    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.pipe
            .as_ref()
            .map(|p| p.read.as_fd())
            .expect("lease holds a pipe until dropped")
    }

    pub fn write_end(&self) -> BorrowedFd<'_> {
        self.pipe
            .as_ref()
            .map(|p| p.write.as_fd())
            .expect("lease holds a pipe until dropped")
    }

    /// Bytes the pipe holds at most (what the kernel granted, which may be less than asked).
    pub fn capacity(&self) -> usize {
        self.pipe.as_ref().map_or(0, |p| p.capacity)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take()
            && self.in_flight == 0
        {
            self.pool.give_back(pipe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drained_pipes_return_and_dirty_pipes_are_closed() {
        let pool = PipePool::new(65536, 2, Default::default());
        {
            let _a = pool.lease().unwrap();
            let mut b = pool.lease().unwrap();
            let _c = pool.lease().unwrap();
            b.in_flight = 5;
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
    fn pool_keeps_at_most_max_free() {
        let pool = PipePool::new(4096, 1, Default::default());
        let leases: Vec<_> = (0..3).map(|_| pool.lease().unwrap()).collect();
        drop(leases);
        assert_eq!(pool.idle(), 1);
    }
}
