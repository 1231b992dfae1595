//! Proxy authentication (RFC 9110 §11): which scheme a `Proxy-Authorization` value uses, and the
//! per-worker [`Gate`] that decides whether a request may pass.
//!
//! Order of a decision, cheapest first: a connection that already authenticated may omit the
//! header while its [`Session`] lasts; a value this worker judged before is answered from its
//! [`CredentialCache`] (one keyed MAC, one constant-time compare), a known-wrong one at once and
//! without counting as a guess; only a new value is decoded and checked, after the failure
//! throttle's wait, and a slow hash is checked on the verifier pool, never on the worker.
//!
//! Hot path: a cache hit, a session reuse and a denial without credentials allocate nothing (see
//! tests/alloc.rs).

pub mod basic;
pub mod challenge;
pub mod digest;
pub mod handshake;
pub mod negotiate;
pub mod ntlm;

use std::cell::{Cell, RefCell};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::creds::Secret;
use crate::creds::credential_cache::{CredentialCache, Lookup};
use crate::creds::throttle::{Outcome, Throttle};
use crate::creds::user_db::{LoadError, UserDb, UserRecord, Users};
use crate::creds::verifier::Verifier;
use crate::http::head::Field;
use crate::http::head::Method;
use crate::observe::labels::{ChallengeReason, Scheme};
use crate::observe::metrics::WorkerMetrics;
use crate::policy::limits::client_key;
use challenge::{Challenges, Offer, Persistence};
use digest::{Count, NonceState, Nonces, Username};

/// The schemes a `Proxy-Authorization` value can name. The connection-bound schemes (NTLM,
/// Negotiate) slot in here, their handshake state beside the connection's [`Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// `Basic <token68>`.
    Basic(&'a [u8]),
    /// `Digest <auth-param list>`.
    Digest(&'a [u8]),
    /// `NTLM <token68>`: one leg of the connection-bound handshake.
    Ntlm(&'a [u8]),
    /// `Negotiate <token68>`: SPNEGO (Kerberos), or NTLMSSP under that word.
    Negotiate(&'a [u8]),
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
        if rest.is_empty() {
            Credentials::Unsupported
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            Credentials::Basic(rest)
        } else if scheme.eq_ignore_ascii_case(b"digest") {
            Credentials::Digest(rest)
        } else if scheme.eq_ignore_ascii_case(b"ntlm") {
            Credentials::Ntlm(rest)
        } else if scheme.eq_ignore_ascii_case(b"negotiate") {
            Credentials::Negotiate(rest)
        } else {
            Credentials::Unsupported
        }
    }

    /// The scheme named, if this proxy knows it.
    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            Credentials::Basic(_) => Some(Scheme::Basic),
            Credentials::Digest(_) => Some(Scheme::Digest),
            Credentials::Ntlm(_) => Some(Scheme::Ntlm),
            Credentials::Negotiate(_) => Some(Scheme::Negotiate),
            Credentials::Unsupported => None,
        }
    }
}

/// What the gate decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Answer 407 now (any throttle wait was served before the check); `reason` is counted and
    /// logged.
    Deny {
        reason: ChallengeReason,
    },
    /// The verifier queue is full: answer 503 and let the client retry.
    Busy,
    /// A handshake goes on: answer 407 with its next token ([`Gate::write_continue`]), on a
    /// connection kept open.
    Continue,
}

/// A connection's authentication state: its session, and a handshake under way (NTLM, Negotiate)
/// or the token that ends one. Lives in the connection, dies with it (a GSS-API context with it).
#[derive(Debug, Default)]
pub struct ConnAuth {
    pub session: Option<Session>,
    /// Boxed: a connection that never starts a handshake carries one null pointer.
    handshake: Option<Box<handshake::Handshake>>,
}

impl ConnAuth {
    /// A TLS connection whose verified client certificate names `user` (`tls_client_cert_user`):
    /// authenticated for as long as it is open; the gate is not asked.
    pub fn certified(user: &str) -> ConnAuth {
        ConnAuth {
            session: Some(Session {
                user: Rc::from(user),
                shown: None,
                scheme: Scheme::Certificate,
                id: 0,
                generation: 0,
                // Never reached: a certified connection's session is never judged.
                expires: Instant::now() + Duration::from_secs(10 * 365 * 86_400),
            }),
            handshake: None,
        }
    }

    /// Whether a client certificate authenticated this connection.
    pub fn is_certified(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.scheme == Scheme::Certificate)
    }

    /// Who the connection is authenticated as, for rules and logs.
    pub fn who(&self) -> Option<Who<'_>> {
        self.session.as_ref().map(|s| Who {
            user: &s.user,
            shown: s.shown.as_deref().unwrap_or(&s.user),
            scheme: s.scheme,
            mutual: match self.handshake.as_deref() {
                Some(
                    h @ handshake::Handshake {
                        leg: handshake::Leg::Mutual,
                        ..
                    },
                ) => Some(h.token()),
                _ => None,
            },
        })
    }

    /// Whether a handshake is under way (a final token waiting for its response is not one).
    pub fn in_handshake(&self) -> bool {
        self.handshake
            .as_deref()
            .is_some_and(|h| !matches!(h.leg, handshake::Leg::Mutual))
    }
}

/// An authenticated connection's user: `user` as the database names them (what rules, groups
/// and limits see), `shown` as the client sent it (what logs say: NTLM's `DOMAIN\user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    pub user: &'a str,
    pub shown: &'a str,
    pub scheme: Scheme,
    /// Negotiate's last acceptor token (base64; mutual authentication), for the response to the
    /// request that authenticated: `Proxy-Authenticate: Negotiate <token>` on that 200.
    pub mutual: Option<&'a [u8]>,
}

impl Who<'_> {
    /// Responses on this connection say `Proxy-Support: Session-Based-Authentication` (RFC 4559
    /// §6): the identity belongs to the connection.
    pub fn session_based(&self) -> bool {
        matches!(self.scheme, Scheme::Ntlm | Scheme::Negotiate)
        // (A certificate's user is bound to the TLS connection too, but no 407 led to it.)
    }
}

/// A connection's authenticated state, which lets later requests on it omit the header. It is
/// bound to the database entry that admitted it (the user *with that password*: see
/// [`UserRecord::id`]) and lasts `session_ttl` at most: a changed or removed password, other
/// credentials, or the end of its lifetime end it at the next request, on every worker (each reads
/// the same snapshot). tests/gate.rs checks its rules on the gate itself.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: Rc<str>,
    /// The name as the client sent it, where it differs from `user` (NTLM: `DOMAIN\user`).
    pub shown: Option<Rc<str>>,
    /// The scheme that opened it, and so the database entry `id` names.
    pub scheme: Scheme,
    id: u64,
    generation: u64,
    expires: Instant,
}

/// Process-wide auth state, shared read-only by all workers.
pub struct Shared {
    pub users: Arc<Users>,
    verifier: Verifier,
    challenges: Challenges,
    /// The schemes offered (and accepted), in the 407's order.
    schemes: Vec<Scheme>,
    realm: String,
    digest: Option<DigestShared>,
    ntlm: Option<handshake::NtlmShared>,
    negotiate: Option<negotiate::NegotiateShared>,
    cache_entries: usize,
    ttl: Duration,
    failure_ttl: Duration,
    session_ttl: Duration,
    delay: Duration,
    delay_max: Duration,
    guess_rate: u32,
    /// Longest user name, and longest password, checked; longer ones are refused unhashed.
    max_password_bytes: usize,
    client_ipv6_prefix: u8,
}

/// What Digest needs process-wide: its algorithms, its `opaque`, and the nonce books.
struct DigestShared {
    algorithms: Vec<digest::Algorithm>,
    opaque: String,
    nonces: Nonces,
}

/// What a request says that a scheme may check its credentials against.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: Method,
    /// The request target as sent.
    pub target: &'a [u8],
}

/// Why auth could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Users(#[from] LoadError),
    #[error("cannot start verifier threads: {0}")]
    Threads(#[from] io::Error),
    #[error("negotiate: {0}")]
    Negotiate(String),
}

impl Shared {
    /// Loads the users and starts the verifier pool; `None` when no user source is configured
    /// (auth off).
    /// Whether the 407 offers `scheme`.
    pub fn offers(&self, scheme: Scheme) -> bool {
        self.schemes.contains(&scheme)
    }

    pub fn start(config: &Config) -> Result<Option<Arc<Shared>>, StartError> {
        if config.users.is_empty() {
            return Ok(None);
        }
        let users = Arc::new(Users::open(config.users.clone())?);
        let schemes = offered(config);
        let digest = schemes.contains(&Scheme::Digest).then(|| {
            let mut opaque = [0u8; 16];
            // As for every key: the kernel's random source does not fail once initialised.
            getrandom::fill(&mut opaque).expect("the kernel's random source is available");
            DigestShared {
                algorithms: config.digest_algorithms.clone(),
                opaque: base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    opaque,
                ),
                nonces: Nonces::new(config.workers, config.digest_nonce_ttl),
            }
        });
        let ntlm = schemes
            .contains(&Scheme::Ntlm)
            .then(|| handshake::NtlmShared::new(config))
            .transpose()?;
        if ntlm.is_some() && config.ntlm_allow_v1 {
            tracing::warn!(
                "ntlm_allow_v1 is on: NTLMv1 answers are accepted, and one captured NTLMv1 \
                 handshake is enough to recover the user's NT hash offline"
            );
        }
        let negotiate = schemes
            .contains(&Scheme::Negotiate)
            .then(|| negotiate::NegotiateShared::new(config))
            .transpose()?;
        let challenges = Challenges::render(&Offer {
            realm: &config.realm,
            schemes: &schemes,
            digest_algorithms: digest.as_ref().map_or(&[], |d| &d.algorithms),
            opaque: digest.as_ref().map_or("", |d| &d.opaque),
        });
        Ok(Some(Arc::new(Shared {
            users,
            verifier: Verifier::start(config.verifier_threads, config.verifier_queue)?,
            challenges,
            schemes,
            realm: config.realm.clone(),
            digest,
            ntlm,
            negotiate,
            cache_entries: config.credential_cache_entries,
            ttl: config.credential_ttl,
            failure_ttl: config.failed_credential_ttl,
            session_ttl: config.session_ttl(),
            delay: config.auth_failure_delay,
            delay_max: config.auth_failure_delay_max,
            guess_rate: config.auth_guess_rate_per_client,
            max_password_bytes: config.max_password_bytes,
            client_ipv6_prefix: config.client_ipv6_prefix,
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
    /// Failures not logged yet: failure lines are written at most once a second per worker.
    unlogged_failures: Cell<u64>,
    last_failure_log: Cell<Option<Instant>>,
    /// Keys the user names the throttle counts strikes under (it keeps hashes, not names).
    names: RandomState,
    metrics: Arc<WorkerMetrics>,
    /// This worker's index: the nonce book it mints from.
    worker: usize,
}

/// A new guess from one client for one user name, in flight until dropped; it settles the
/// throttle's charge with its outcome, which stays [`Outcome::Wrong`] unless set (a connection
/// that goes away mid-check gets nothing back).
struct Pending<'a> {
    throttle: &'a RefCell<Throttle>,
    client: IpAddr,
    user: u64,
    outcome: Outcome,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.throttle
            .borrow_mut()
            .end(self.client, self.user, self.outcome);
    }
}

/// The schemes a 407 offers, in order: `auth_schemes` as configured, or by default every scheme
/// whose kind of user source is configured (a keytab: Negotiate; htdigest: Digest; NT hashes or
/// winbind: NTLM; htpasswd or `--user`: Basic), strongest first. Clients that pick a scheme
/// pick the strongest they know whatever the order (curl `--proxy-anyauth`, browsers); the order
/// matters to those that read only the first field (Python's urllib).
pub fn offered(config: &Config) -> Vec<Scheme> {
    if !config.auth_schemes.is_empty() {
        return config.auth_schemes.clone();
    }
    let mut schemes = Vec::new();
    if config.users.negotiate {
        schemes.push(Scheme::Negotiate);
    }
    if config.users.has_digest() {
        schemes.push(Scheme::Digest);
    }
    if config.users.has_ntlm() {
        schemes.push(Scheme::Ntlm);
    }
    if config.users.has_basic() {
        schemes.push(Scheme::Basic);
    }
    schemes
}

/// Whether the entry a session was opened by is still in `db` unchanged.
fn db_holds(db: &UserDb, s: &Session) -> bool {
    match s.scheme {
        Scheme::Basic => db.get(&s.user).is_some_and(|r| r.id == s.id),
        Scheme::Digest => db.digest(&s.user).is_some_and(|r| r.id == s.id),
        // Id 0: checked by Samba (the winbind backend), which keeps its own users.
        Scheme::Ntlm => s.id == 0 || db.ntlm(&s.user).is_some_and(|r| r.id == s.id),
        // Vouched for by the KDC's ticket, not by a local entry.
        Scheme::Negotiate => true,
        // The TLS listener verified the certificate; no gate sees such a session.
        Scheme::Certificate => true,
    }
}

/// Whether a Digest `uri` names this request (RFC 7616 §3.4.6): the target as sent; for an
/// absolute-form target also its path and query alone, which is what curl sends (urllib sends the
/// whole URL). For CONNECT the target is the authority, `host:port` or `[v6]:port`.
fn uri_matches(request: Request<'_>, uri: &[u8]) -> bool {
    if uri == request.target {
        return true;
    }
    if request.method == Method::Connect {
        return false;
    }
    let Some(scheme) = crate::http::target::scheme_len(request.target) else {
        return false;
    };
    let after = &request.target[scheme + 3..];
    match after.iter().position(|&b| b == b'/' || b == b'?') {
        Some(p) if after[p] == b'/' => uri == &after[p..],
        Some(p) => uri.first() == Some(&b'/') && uri[1..] == after[p..],
        None => uri == b"/",
    }
}

/// The longest base64 token whose decoded `user:password` can be within `max` bytes each.
fn max_token_len(max: usize) -> usize {
    (2 * max + 1).div_ceil(3) * 4
}

/// The cache key of a Basic credential: padding dropped, so `YTpi` and `YTpi==`-style variants
/// of one credential share an entry (the base64 decoder accepts both and rejects any other
/// non-canonical form).
fn canonical(token: &[u8]) -> &[u8] {
    let end = token.iter().rposition(|&b| b != b'=').map_or(0, |p| p + 1);
    &token[..end]
}

impl Gate {
    pub fn new(shared: Arc<Shared>, metrics: Arc<WorkerMetrics>) -> Gate {
        Gate::for_worker(shared, metrics, 0)
    }

    /// The gate of worker `worker`.
    pub fn for_worker(shared: Arc<Shared>, metrics: Arc<WorkerMetrics>, worker: usize) -> Gate {
        Gate {
            worker,
            cache: RefCell::new(CredentialCache::new(
                shared.cache_entries,
                shared.ttl,
                shared.failure_ttl,
            )),
            throttle: RefCell::new(Throttle::new(
                shared.delay,
                shared.delay_max,
                shared.guess_rate,
            )),
            shared,
            unlogged_failures: Cell::new(0),
            last_failure_log: Cell::new(None),
            names: RandomState::new(),
            metrics,
        }
    }

    /// The 407 to send, when nothing in it is fresh (no Digest offered).
    pub fn challenge(&self, persistence: Persistence, head_only: bool) -> Option<&'static [u8]> {
        self.shared.challenges.fixed(persistence, head_only)
    }

    /// Appends the 407 to `out` with a fresh nonce (`stale=true` in its Digest challenges when
    /// `stale`): for when [`Gate::challenge`] has none.
    pub fn write_challenge(
        &self,
        persistence: Persistence,
        head_only: bool,
        stale: bool,
        out: &mut Vec<u8>,
    ) {
        let nonce = match &self.shared.digest {
            Some(d) => d.nonces.mint(self.worker, Instant::now()),
            None => [b'0'; digest::NONCE_LEN],
        };
        self.shared
            .challenges
            .write(persistence, head_only, &nonce, stale, out);
    }

    /// Appends the 407 that carries the connection's handshake token: for [`Decision::Continue`].
    pub fn write_continue(
        &self,
        conn: &ConnAuth,
        persistence: Persistence,
        head_only: bool,
        out: &mut Vec<u8>,
    ) {
        let (word, token) = conn
            .handshake
            .as_ref()
            .map_or(("NTLM", &b""[..]), |h| (h.word(), h.token()));
        challenge::write_continue(persistence, head_only, word, token, out);
    }

    /// Decides whether the request whose `Proxy-Authorization` field is `field` (a span of `buf`)
    /// may pass, updating the connection's state.
    pub async fn admit(
        &self,
        conn: &mut ConnAuth,
        field: Field,
        buf: &[u8],
        request: Request<'_>,
        peer: IpAddr,
    ) -> Decision {
        let now = Instant::now();
        let db = self.shared.users.snapshot();
        let session = &mut conn.session;
        let value = match field {
            Field::Absent => {
                // A handshake the client does not go on with is over.
                conn.handshake = None;
                let reason = match session {
                    Some(s) if now >= s.expires => ChallengeReason::SessionExpired,
                    Some(s) if s.generation == db.generation => return Decision::Allow,
                    // A reload since: the session holds while its entry (user and password) does.
                    Some(s) if db_holds(&db, s) => {
                        s.generation = db.generation;
                        return Decision::Allow;
                    }
                    Some(_) => ChallengeReason::PasswordChanged,
                    None => ChallengeReason::NoCredentials,
                };
                *session = None;
                return Decision::Deny { reason };
            }
            Field::Repeated => {
                conn.handshake = None;
                return self.refuse_as(session, ChallengeReason::Repeated, None);
            }
            Field::One(span) => span.get(buf),
        };
        let credentials = Credentials::parse(value);
        if !credentials
            .scheme()
            .is_some_and(|s| self.shared.schemes.contains(&s))
        {
            conn.handshake = None;
            return self.refuse_as(session, ChallengeReason::UnsupportedScheme, None);
        }
        match credentials {
            Credentials::Ntlm(token) => return Box::pin(self.ntlm_leg(conn, token, peer)).await,
            Credentials::Negotiate(token) => {
                return Box::pin(self.negotiate_leg(conn, token, peer)).await;
            }
            _ => {}
        }
        conn.handshake = None;
        let token = match credentials {
            Credentials::Basic(token) => canonical(token),
            Credentials::Digest(list) => {
                // Boxed like the Basic slow path: its state stays out of every connection's task.
                return Box::pin(self.judge_digest(session, list, request, peer)).await;
            }
            Credentials::Ntlm(_) | Credentials::Negotiate(_) | Credentials::Unsupported => {
                return self.refuse_as(session, ChallengeReason::UnsupportedScheme, None);
            }
        };
        if token.len() > max_token_len(self.shared.max_password_bytes) {
            return self.refuse(session, ChallengeReason::TooLong);
        }
        let looked_up = self.cache.borrow_mut().lookup(token, &db, now);
        if matches!(looked_up, Lookup::Miss) {
            self.metrics.credential_cache_misses.inc();
        } else {
            self.metrics.credential_cache_hits.inc();
        }
        match looked_up {
            Lookup::Valid { user, id } => {
                self.metrics.auth_check(Some(Scheme::Basic), true);
                *session = Some(Session {
                    user,
                    shown: None,
                    scheme: Scheme::Basic,
                    id,
                    generation: db.generation,
                    expires: now + self.shared.session_ttl,
                });
                return Decision::Allow;
            }
            // Known to be wrong: answered at once, and not a new guess (it teaches nothing).
            Lookup::Invalid(reason) => return self.refuse(session, reason),
            Lookup::Miss => {}
        }
        // A credential this worker has not judged: the slow path, boxed so that its state (a
        // pending verifier answer) does not sit in every connection's future.
        let db = arc_swap::Guard::into_inner(db);
        Box::pin(self.judge(session, token, db, peer)).await
    }

    /// Decodes and checks a credential the cache did not know, and caches the verdict. The
    /// throttle's wait comes first, whatever the outcome.
    async fn judge(
        &self,
        session: &mut Option<Session>,
        token: &[u8],
        db: Arc<UserDb>,
        peer: IpAddr,
    ) -> Decision {
        let (user, password) = match basic::decode_within(token, self.shared.max_password_bytes) {
            Ok(parts) => parts,
            Err(refused) => {
                // Nothing was checked, so nothing was learnt: answered at once, and remembered
                // like a wrong value so that its repeats cost no decoding.
                let reason = match refused {
                    basic::Refused::Malformed => ChallengeReason::Malformed,
                    basic::Refused::TooLong => ChallengeReason::TooLong,
                };
                let now = Instant::now();
                self.cache
                    .borrow_mut()
                    .insert_refused(token, reason, db.generation, now);
                return self.refuse(session, reason);
            }
        };
        let name = self.names.hash_one(&*user);
        let Some(mut pending) = self.await_turn(peer, name).await else {
            return Decision::Busy;
        };
        let checked = self.check(&db, &user, password).await;
        // The database may have been reloaded while the check waited: a user removed (or whose
        // password changed) meanwhile does not get in on the old snapshot's word.
        let current = self.shared.users.snapshot();
        let checked = match checked {
            Checked::Valid(record) if current.generation != db.generation => {
                match current.get(&record.name) {
                    Some(now_known) if now_known.id == record.id => {
                        Checked::Valid(now_known.clone())
                    }
                    _ => Checked::Invalid,
                }
            }
            other => other,
        };
        let now = Instant::now();
        match checked {
            Checked::Valid(record) => {
                self.metrics.auth_check(Some(Scheme::Basic), true);
                tracing::debug!(%peer, user = %record.name, "authenticated");
                let id = record.id;
                let user =
                    self.cache
                        .borrow_mut()
                        .insert_valid(token, record, current.generation, now);
                pending.outcome = Outcome::Right;
                *session = Some(Session {
                    user,
                    shown: None,
                    scheme: Scheme::Basic,
                    id,
                    generation: current.generation,
                    expires: now + self.shared.session_ttl,
                });
                Decision::Allow
            }
            Checked::Busy => {
                pending.outcome = Outcome::Void;
                Decision::Busy
            }
            Checked::Invalid => {
                let mut cache = self.cache.borrow_mut();
                match cache.lookup(token, &current, now) {
                    // The same value checked on several connections at once is one guess: only
                    // the first verdict strikes.
                    Lookup::Invalid(_) => pending.outcome = Outcome::Void,
                    // Another connection's check found it right meanwhile (after a reload):
                    // its verdict stands.
                    Lookup::Valid { .. } => {}
                    // Kept under the snapshot it was judged against: after a reload meanwhile it
                    // is judged again, never refused on the old snapshot's word.
                    Lookup::Miss => cache.insert_invalid(token, db.generation, now),
                }
                drop(cache);
                self.metrics.auth_check(Some(Scheme::Basic), false);
                self.log_failure(peer, ChallengeReason::Wrong.name(), now);
                *session = None;
                // The wait was served before the check.
                Decision::Deny {
                    reason: ChallengeReason::Wrong,
                }
            }
        }
    }

    /// Checks a Digest response (RFC 7616). Every check is a few hashes on the worker: no
    /// verifier pool, and no cache either, since each request carries a new nonce count and so a
    /// new value (a cache keyed by it would never hit). The nonce count is checked only once the
    /// response is right, so a wrong guess cannot burn a client's counts.
    async fn judge_digest(
        &self,
        session: &mut Option<Session>,
        list: &[u8],
        request: Request<'_>,
        peer: IpAddr,
    ) -> Decision {
        let Some(d) = &self.shared.digest else {
            return self.refuse_as_digest(session, ChallengeReason::UnsupportedScheme);
        };
        let v = match digest::parse(list).and_then(digest::verify) {
            Ok(v) => v,
            Err(digest::Malformed::TooLong) => {
                return self.refuse_as_digest(session, ChallengeReason::TooLong);
            }
            Err(_) => return self.refuse_as_digest(session, ChallengeReason::Malformed),
        };
        if !d.algorithms.iter().any(|a| a.hash == v.algorithm.hash) {
            return self.refuse_as_digest(session, ChallengeReason::Malformed);
        }
        if *v.realm != *self.shared.realm.as_bytes()
            || v.opaque.as_deref() != Some(d.opaque.as_bytes())
        {
            return self.refuse_as_digest(session, ChallengeReason::NotOurs);
        }
        if !uri_matches(request, &v.uri) {
            return self.refuse_as_digest(session, ChallengeReason::UriMismatch);
        }
        let name_key = match &v.username {
            Username::Name(name) if name.len() > self.shared.max_password_bytes => {
                return self.refuse_as_digest(session, ChallengeReason::TooLong);
            }
            Username::Name(name) => self.names.hash_one(&**name),
            Username::Hashed(sum) => self.names.hash_one(sum.as_bytes()),
        };
        let Some(mut pending) = self.await_turn(peer, name_key).await else {
            return Decision::Busy;
        };
        let db = self.shared.users.snapshot();
        let record = match &v.username {
            Username::Name(name) => db.digest(name),
            Username::Hashed(sum) => db.digest_by_userhash(sum),
        };
        let hash = v.algorithm.hash;
        let stored = record.and_then(|r| r.ha1(hash));
        // An unknown user, or one without this hash, costs the same computation as a known one.
        let expected = digest::expected_response(
            v.algorithm,
            stored.unwrap_or(&digest::Sum::zero(hash)),
            request.method.name().as_bytes(),
            &v,
        );
        let now = Instant::now();
        let (Some(record), true) = (record, stored.is_some() && expected.ct_eq(&v.response)) else {
            self.metrics.auth_check(Some(Scheme::Digest), false);
            self.log_failure(peer, ChallengeReason::Wrong.name(), now);
            *session = None;
            return Decision::Deny {
                reason: ChallengeReason::Wrong,
            };
        };
        // The response is right: whoever sent it knows the password (or replays one who does).
        let reason = match d.nonces.open(v.nonce, now) {
            NonceState::Stale => ChallengeReason::StaleNonce,
            NonceState::Live(ticket) => match d.nonces.advance(ticket, v.nc) {
                Count::Fresh => {
                    pending.outcome = Outcome::Right;
                    self.metrics.auth_check(Some(Scheme::Digest), true);
                    tracing::debug!(%peer, user = %record.name, "authenticated (digest)");
                    *session = Some(Session {
                        user: Rc::from(&*record.name),
                        shown: None,
                        scheme: Scheme::Digest,
                        id: record.id,
                        generation: db.generation,
                        expires: now + self.shared.session_ttl,
                    });
                    return Decision::Allow;
                }
                Count::Replayed => {
                    pending.outcome = Outcome::Void;
                    ChallengeReason::Replayed
                }
                Count::Forgotten => ChallengeReason::StaleNonce,
            },
        };
        if reason == ChallengeReason::StaleNonce {
            pending.outcome = Outcome::Right;
        }
        self.refuse_as_digest(session, reason)
    }

    /// One NTLM leg: a type 1 starts a handshake, a type 3 ends it.
    async fn ntlm_leg(&self, conn: &mut ConnAuth, token: &[u8], peer: IpAddr) -> Decision {
        let mut message = Vec::new();
        match ntlm::decode(token, &mut message) {
            Ok(()) => {}
            Err(e) => {
                conn.handshake = None;
                let reason = match e {
                    ntlm::Malformed::TooLong => ChallengeReason::TooLong,
                    _ => ChallengeReason::Malformed,
                };
                return self.refuse_as(&mut conn.session, reason, Some(Scheme::Ntlm));
            }
        }
        self.ntlm_message(conn, &message, peer, Scheme::Ntlm).await
    }

    /// A decoded NTLM message, sent under the word `via` (`NTLM`, or `Negotiate`).
    async fn ntlm_message(
        &self,
        conn: &mut ConnAuth,
        message: &[u8],
        peer: IpAddr,
        via: Scheme,
    ) -> Decision {
        match message.get(8..12) {
            Some([1, 0, 0, 0]) => self.ntlm_negotiate(conn, message, via),
            Some([3, 0, 0, 0]) => self.judge_ntlm(conn, message, peer, via).await,
            _ => {
                conn.handshake = None;
                self.refuse_as(
                    &mut conn.session,
                    ChallengeReason::Malformed,
                    Some(Scheme::Ntlm),
                )
            }
        }
    }

    /// Charges a new guess from `peer` for the user name keyed `name` to the failure throttle and
    /// serves its wait: the charge is settled when the returned [`Pending`] drops (as a wrong
    /// guess unless its outcome is set). `None`: the client's wait would be past the longest, so
    /// the caller answers 503.
    async fn await_turn(&self, peer: IpAddr, name: u64) -> Option<Pending<'_>> {
        let client = client_key(peer, self.shared.client_ipv6_prefix);
        let wait = self
            .throttle
            .borrow_mut()
            .begin(client, name, Instant::now())?;
        let pending = Pending {
            throttle: &self.throttle,
            client,
            user: name,
            outcome: Outcome::Wrong,
        };
        if !wait.is_zero() {
            monoio::time::sleep(wait).await;
        }
        Some(pending)
    }

    /// Refuses without a check: a value known to be wrong, undecodable, too long or of a scheme
    /// not offered. Answered at once: no password was tried, so there is nothing to slow down.
    fn refuse(&self, session: &mut Option<Session>, reason: ChallengeReason) -> Decision {
        self.refuse_as(session, reason, Some(Scheme::Basic))
    }

    fn refuse_as_digest(&self, session: &mut Option<Session>, reason: ChallengeReason) -> Decision {
        self.refuse_as(session, reason, Some(Scheme::Digest))
    }

    /// [`Gate::refuse`], counted under `scheme` (`None`: no offered scheme named).
    fn refuse_as(
        &self,
        session: &mut Option<Session>,
        reason: ChallengeReason,
        scheme: Option<Scheme>,
    ) -> Decision {
        *session = None;
        self.metrics.auth_check(scheme, false);
        Decision::Deny { reason }
    }

    /// Logs a failed check, at most one line a second per worker (a flood must not flood the
    /// log); the line says how many were not logged since.
    fn log_failure(&self, peer: IpAddr, reason: &'static str, now: Instant) {
        let due = self
            .last_failure_log
            .get()
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if due {
            tracing::info!(
                %peer,
                reason,
                not_logged_before = self.unlogged_failures.replace(0),
                "proxy authentication failed"
            );
            self.last_failure_log.set(Some(now));
        } else {
            self.unlogged_failures.set(self.unlogged_failures.get() + 1);
        }
    }

    /// Checks `password` for `user`; slow hashes on the verifier pool. Every check costs what
    /// the decoy (the database's most common slow hash) costs: an unknown user is checked against
    /// the decoy, and a user with a fast hash pays for one decoy check too, so neither the time nor
    /// the answer (407 or 503) tells which names exist.
    async fn check(&self, db: &UserDb, user: &str, password: Secret) -> Checked {
        let decoy = db.decoy();
        let Some(record) = db.get(user) else {
            return match decoy {
                Some(d) => match self.on_pool(d.clone(), password).await {
                    Some(_) => Checked::Invalid,
                    None => Checked::Busy,
                },
                None => Checked::Invalid,
            };
        };
        let ok = if record.hash.is_costly() {
            self.on_pool(record.clone(), password).await
        } else {
            if let Some(d) = decoy
                && self.on_pool(d.clone(), Secret::new(b"")).await.is_none()
            {
                return Checked::Busy;
            }
            Some(record.hash.verify(password.expose()))
        };
        match ok {
            Some(true) => Checked::Valid(record.clone()),
            Some(false) => Checked::Invalid,
            None => Checked::Busy,
        }
    }

    /// Runs one check on the verifier pool; `None` when its queue is full.
    async fn on_pool(&self, record: Arc<UserRecord>, password: Secret) -> Option<bool> {
        match self.shared.verifier.submit(record, password) {
            Ok(answer) => Some(answer.recv_async().await.unwrap_or(false)),
            Err(_) => None,
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
            (
                b"Digest username=\"a\"",
                Credentials::Digest(b"username=\"a\""),
            ),
            (b"Digest", Credentials::Unsupported),
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
