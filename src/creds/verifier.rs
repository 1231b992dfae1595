//! The verifier pool: a few low-priority threads that run the slow password hashes (bcrypt,
//! SHA-crypt, apr1) and Negotiate's `gss_accept_sec_context` (which reads the keytab and writes
//! the replay cache), so a worker never spends milliseconds on one. The queue is bounded: when it
//! is full the request is answered "busy" at once rather than queued without limit.

use std::io;
use std::sync::Arc;

use super::Secret;
use super::user_db::UserRecord;

/// One check, with the sender of its answer inside.
type Job = Box<dyn FnOnce() + Send>;

/// The queue is full: too many checks are waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// A handle to the pool; cheap to clone, shared by all workers.
#[derive(Clone)]
pub struct Verifier {
    jobs: flume::Sender<Job>,
}

impl Verifier {
    /// Starts `threads` verifier threads behind a queue of `queue` jobs. The threads end when the
    /// last handle is dropped.
    pub fn start(threads: usize, queue: usize) -> io::Result<Verifier> {
        let (jobs, rx) = flume::bounded::<Job>(queue);
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("ringgate-verify{i}"))
                .spawn(move || {
                    // Below the workers: a flood of slow hashes must not take a core from
                    // tunnels already open.
                    if let Err(e) = crate::sys::lower_this_threads_priority() {
                        tracing::debug!(error = %e, "verifier keeps normal priority");
                    }
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
        }
        Ok(Verifier { jobs })
    }

    /// Queues a check of `password` against `record`; the answer arrives on the receiver.
    pub fn submit(
        &self,
        record: Arc<UserRecord>,
        password: Secret,
    ) -> Result<flume::Receiver<bool>, Busy> {
        self.run(move || record.hash.verify(password.expose()))
    }

    /// Queues `check`; its result arrives on the receiver (and is dropped, with whatever it
    /// owns, if the receiver has gone by then).
    pub fn run<R: Send + 'static>(
        &self,
        check: impl FnOnce() -> R + Send + 'static,
    ) -> Result<flume::Receiver<R>, Busy> {
        let (reply, answer) = flume::bounded(1);
        self.jobs
            .try_send(Box::new(move || {
                let _ = reply.send(check());
            }))
            .map_err(|_| Busy)?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::password_hash::PasswordHash;

    fn record(hash: &str) -> Arc<UserRecord> {
        Arc::new(UserRecord {
            name: "u".into(),
            hash: PasswordHash::parse(hash, false).unwrap(),
            id: 0,
        })
    }

    #[test]
    fn answers_right_and_wrong() {
        let v = Verifier::start(1, 4).unwrap();
        let r = record("$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00");
        let right = v.submit(r.clone(), Secret::new(b"password")).unwrap();
        let wrong = v.submit(r, Secret::new(b"nope")).unwrap();
        assert_eq!(right.recv(), Ok(true));
        assert_eq!(wrong.recv(), Ok(false));
    }

    #[test]
    fn a_full_queue_is_busy_not_a_wait() {
        // One thread busy for ~0.25 s (bcrypt cost 12) and room for one waiting job: of three
        // submits made at once, the third finds no room.
        let v = Verifier::start(1, 1).unwrap();
        let r = record("$2y$12$j3YaG.CA6PMyWAqu5DOBs.GegAmNcfIUulhMbIKDiQrnrkGcAYh.K");
        let answers: Vec<_> = (0..3)
            .map(|_| v.submit(r.clone(), Secret::new(b"y")))
            .collect();
        assert!(answers.iter().any(|a| a.is_err()), "no submit was refused");
        for a in answers.into_iter().flatten() {
            assert_eq!(a.recv(), Ok(false));
        }
    }
}
