//! Proxy authentication (RFC 9110 §11): which scheme a `Proxy-Authorization` value uses, and the
//! per-worker [`Gate`] that decides whether a request may pass.
//!
//! Order of a decision, cheapest first: a connection that already authenticated may omit the
//! header; a value this worker judged before is answered from its [`CredentialCache`] (one keyed
//! hash, one constant-time compare); only a new value is decoded and checked, and a slow hash is
//! checked on the verifier pool, never on the worker.
//!
//! Hot path: a cache hit, a session reuse and a denial without credentials allocate nothing (see
//! tests/alloc.rs).

pub mod basic;
pub mod challenge;

use std::cell::RefCell;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::creds::Secret;
use crate::creds::credential_cache::{CredentialCache, Lookup};
use crate::creds::throttle::Throttle;
use crate::creds::user_db::{LoadError, UserDb, UserRecord, Users};
use crate::creds::verifier::Verifier;
use crate::http::head::Field;
use challenge::{Challenges, Persistence};

/// The schemes a `Proxy-Authorization` value can name. Digest, NTLM and Negotiate slot in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// `Basic <token68>`.
    Basic(&'a [u8]),
    /// A scheme this proxy does not offer: answered like wrong credentials.
    Unsupported,
}

impl<'a> Credentials<'a> {
    /// Splits `scheme SP credentials`; scheme names are case-insensitive (RFC 9110 §11.1).
    pub fn parse(value: &'a [u8]) -> Credentials<'a> {
        let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
            Some(sp) => (&value[..sp], value[sp..].trim_ascii()),
            None => (value, &b""[..]),
        };
        if scheme.eq_ignore_ascii_case(b"basic") && !rest.is_empty() {
            Credentials::Basic(rest)
        } else {
            Credentials::Unsupported
        }
    }
}

/// What the gate decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Answer 407 after `delay` (the failure throttle); `reason` is fixed text for logs.
    Deny {
        delay: Duration,
        reason: &'static str,
    },
    /// The verifier queue is full: answer 503 and let the client retry.
    Busy,
}

/// A connection's authenticated state: it lasts as long as the connection, unless the user is
/// removed from the database or the client presents other credentials.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: Rc<str>,
    generation: u64,
}

/// Process-wide auth state, shared read-only by all workers.
pub struct Shared {
    pub users: Arc<Users>,
    verifier: Verifier,
    challenges: Challenges,
    cache_entries: usize,
    ttl: Duration,
    failure_ttl: Duration,
    delay: Duration,
    delay_max: Duration,
}

/// Why auth could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Users(#[from] LoadError),
    #[error("cannot start verifier threads: {0}")]
    Threads(#[from] io::Error),
}

impl Shared {
    /// Loads the users and starts the verifier pool; `None` when no user source is configured
    /// (auth off).
    pub fn start(config: &Config) -> Result<Option<Arc<Shared>>, StartError> {
        if config.users.is_empty() {
            return Ok(None);
        }
        let users = Arc::new(Users::open(config.users.clone())?);
        Ok(Some(Arc::new(Shared {
            users,
            verifier: Verifier::start(config.verifier_threads, config.verifier_queue)?,
            challenges: Challenges::render(&config.realm),
            cache_entries: config.credential_cache_entries,
            ttl: config.credential_ttl,
            failure_ttl: config.failed_credential_ttl,
            delay: config.auth_failure_delay,
            delay_max: config.auth_failure_delay_max,
        })))
    }
}

/// Outcome of checking a credential the cache did not know.
enum Checked {
    Valid(Arc<UserRecord>),
    Invalid,
    Busy,
}

/// One worker's authentication state: its credential cache and failure throttle.
pub struct Gate {
    shared: Arc<Shared>,
    cache: RefCell<CredentialCache>,
    throttle: RefCell<Throttle>,
}

impl Gate {
    pub fn new(shared: Arc<Shared>) -> Gate {
        Gate {
            cache: RefCell::new(CredentialCache::new(
                shared.cache_entries,
                shared.ttl,
                shared.failure_ttl,
            )),
            throttle: RefCell::new(Throttle::new(shared.delay, shared.delay_max)),
            shared,
        }
    }

    /// The 407 to send.
    pub fn challenge(&self, persistence: Persistence, head_only: bool) -> &'static [u8] {
        self.shared.challenges.get(persistence, head_only)
    }

    /// Decides whether the request whose `Proxy-Authorization` field is `field` (a span of `buf`)
    /// may pass, updating the connection's `session`.
    pub async fn admit(
        &self,
        session: &mut Option<Session>,
        field: Field,
        buf: &[u8],
        peer: IpAddr,
    ) -> Decision {
        let now = Instant::now();
        let db = self.shared.users.snapshot();
        let value = match field {
            Field::Absent => {
                return match session {
                    Some(s) if s.generation == db.generation || db.get(&s.user).is_some() => {
                        s.generation = db.generation;
                        Decision::Allow
                    }
                    _ => {
                        *session = None;
                        Decision::Deny {
                            delay: Duration::ZERO,
                            reason: "no credentials",
                        }
                    }
                };
            }
            Field::Repeated => return self.fail(session, peer, now, "repeated credentials"),
            Field::One(span) => span.get(buf),
        };
        match self.cache.borrow_mut().lookup(value, &db, now) {
            Lookup::Valid(user) => {
                *session = Some(Session {
                    user,
                    generation: db.generation,
                });
                return Decision::Allow;
            }
            Lookup::Invalid => return self.fail(session, peer, now, "wrong credentials"),
            Lookup::Miss => {}
        }
        // A credential this worker has not judged: the slow path, boxed so that its state (a
        // pending verifier answer) does not sit in every connection's future.
        let db = arc_swap::Guard::into_inner(db);
        Box::pin(self.judge(session, value, db, peer)).await
    }

    /// Decodes and checks a credential the cache did not know, and caches the verdict.
    async fn judge(
        &self,
        session: &mut Option<Session>,
        value: &[u8],
        db: Arc<UserDb>,
        peer: IpAddr,
    ) -> Decision {
        let checked = match Credentials::parse(value) {
            Credentials::Basic(token) => match basic::decode(token) {
                Some((user, password)) => self.check(&db, &user, password).await,
                None => Checked::Invalid,
            },
            Credentials::Unsupported => Checked::Invalid,
        };
        let now = Instant::now();
        match checked {
            Checked::Valid(record) => {
                tracing::debug!(%peer, user = %record.name, "authenticated");
                let user = self
                    .cache
                    .borrow_mut()
                    .insert_valid(value, record, db.generation, now);
                self.throttle.borrow_mut().success(peer);
                *session = Some(Session {
                    user,
                    generation: db.generation,
                });
                Decision::Allow
            }
            Checked::Invalid => {
                self.cache
                    .borrow_mut()
                    .insert_invalid(value, db.generation, now);
                tracing::info!(%peer, "proxy authentication failed");
                self.fail(session, peer, now, "wrong credentials")
            }
            Checked::Busy => Decision::Busy,
        }
    }

    fn fail(
        &self,
        session: &mut Option<Session>,
        peer: IpAddr,
        now: Instant,
        reason: &'static str,
    ) -> Decision {
        *session = None;
        Decision::Deny {
            delay: self.throttle.borrow_mut().failure(peer, now),
            reason,
        }
    }

    /// Checks `password` for `user`; slow hashes on the verifier pool. An unknown user is
    /// checked against the decoy so it takes as long as a wrong password.
    async fn check(&self, db: &UserDb, user: &str, password: Secret) -> Checked {
        let (record, known) = match db.get(user) {
            Some(r) => (r.clone(), true),
            None => match db.decoy() {
                Some(d) => (d.clone(), false),
                None => return Checked::Invalid,
            },
        };
        let ok = if record.hash.is_costly() {
            match self.shared.verifier.submit(record.clone(), password) {
                Ok(answer) => answer.recv_async().await.unwrap_or(false),
                Err(_) if known => return Checked::Busy,
                Err(_) => false,
            }
        } else {
            record.hash.verify(password.expose())
        };
        if ok && known {
            Checked::Valid(record)
        } else {
            Checked::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_names_are_case_insensitive_and_others_unsupported() {
        for (value, want) in [
            (&b"Basic YTpi"[..], Credentials::Basic(b"YTpi")),
            (b"basic YTpi", Credentials::Basic(b"YTpi")),
            (b"BASIC   YTpi", Credentials::Basic(b"YTpi")),
            (b"Basic", Credentials::Unsupported),
            (b"Basic ", Credentials::Unsupported),
            (b"Bearer abc", Credentials::Unsupported),
            (b"Digest username=\"a\"", Credentials::Unsupported),
            (b"", Credentials::Unsupported),
        ] {
            assert_eq!(
                Credentials::parse(value),
                want,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
