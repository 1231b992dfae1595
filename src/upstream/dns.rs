//! Name resolution for dialling, never blocking a worker, with a per-worker cache.
//!
//! Two sources (`dns_resolver`):
//! - **own** (the default): ringgate asks name servers itself over UDP, A and AAAA at once, from
//!   the worker (no thread, no queue). The servers are `dns_servers` when set, else the
//!   `nameserver` lines of `resolv_conf` (`/etc/resolv.conf`); its `search`, `ndots`, `timeout`
//!   and `attempts` apply as glibc applies them (`resolv_conf.rs`). Answers are kept for their own
//!   TTL (at most an hour). `/etc/hosts` is read at start and answers first.
//! - **system**: `getaddrinfo` on the shared resolver threads, so `nsswitch.conf` applies as for any
//!   program; it reports no TTL, so answers are kept `dns_ttl_secs`. At most `resolver_queue`
//!   lookups wait for or run on those threads at once, counted until `getaddrinfo` returns (a
//!   lookup its request gave up on still holds a thread); beyond that a lookup is refused (503).
//!
//! Either way: "no such name", a failure of every server and a lookup that timed out are
//! remembered for `dns_negative_ttl_secs`, so a flood of requests for a dead or black-holed name
//! does not become a flood of lookups; one client address has at most
//! [`MAX_LOOKUPS_PER_CLIENT`] lookups in flight on a worker (more: 503); a name keeps at most
//! [`MAX_PER_FAMILY`] addresses of each family. Packets are built and parsed by `simple-dns`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use monoio::net::udp::UdpSocket;
use simple_dns::rdata::RData;
use simple_dns::{
    CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, ResourceRecord, TYPE,
};

use super::error::DialError;
use super::resolv_conf::{self, ResolvConf};
use crate::config::{Config, DnsResolver};
use crate::observe::metrics::WorkerMetrics;
use crate::sys::AddrInfoError;

/// Longest an answer is kept, whatever its TTL says.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// Largest DNS message read (UDP without EDNS is 512 bytes; some servers send more).
const MAX_MESSAGE: usize = 4096;
/// Addresses kept per name and family: enough to race and fail over, and a bound on what one
/// answer (a server may send hundreds of records) costs in every cache entry and every dial.
pub const MAX_PER_FAMILY: usize = 16;
/// Lookups one client address may have in flight on one worker; more are answered 503 at once.
/// Cache hits and /etc/hosts do not count. A client asking for many names that never resolve
/// (a black-holed domain) then holds at most this many lookups, however fast it asks.
pub const MAX_LOOKUPS_PER_CLIENT: u32 = 8;
/// glibc's default for `attempts` (`RES_DFLRETRY`).
const DEFAULT_ATTEMPTS: u32 = 2;

#[derive(Clone)]
enum Cached {
    Found(Rc<[IpAddr]>),
    /// No such name (or no address for it).
    Missing,
    /// Every server failed.
    Failed,
    /// No answer before the deadline.
    TimedOut,
}

struct Entry {
    value: Cached,
    until: Instant,
}

/// How often, at most, a full cache is swept for expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A worker's answers, at most `max_entries`. A full cache makes room without scanning on every
/// insert: expired entries are swept at most once a [`SWEEP_EVERY`], and when that frees nothing
/// (or no sweep is due) one entry goes, whichever the map yields first (an arbitrary one: keys
/// hash with a random seed).
struct Cache {
    map: HashMap<Box<str>, Entry>,
    max_entries: usize,
    next_sweep: Option<Instant>,
}

impl Cache {
    fn new(max_entries: usize) -> Cache {
        Cache {
            map: HashMap::new(),
            max_entries,
            next_sweep: None,
        }
    }

    fn insert(&mut self, key: Box<str>, entry: Entry, now: Instant) {
        if self.map.len() >= self.max_entries && !self.map.contains_key(&key) {
            if self.next_sweep.is_none_or(|at| now >= at) {
                self.next_sweep = Some(now + SWEEP_EVERY);
                self.map.retain(|_, e| e.until > now);
            }
            if self.map.len() >= self.max_entries
                && let Some(k) = self.map.keys().next().cloned()
            {
                self.map.remove(&k);
            }
        }
        self.map.insert(key, entry);
    }
}

/// The resolver threads' places, shared by all workers: taken before a `getaddrinfo` is handed to
/// the pool, given back when it returns. One atomic on a cache miss of the system resolver only.
pub struct SystemSlots {
    used: AtomicUsize,
    limit: usize,
}

/// One taken place; gives it back when dropped.
pub struct SystemSlot(Arc<SystemSlots>);

impl SystemSlots {
    pub fn new(limit: usize) -> Arc<SystemSlots> {
        Arc::new(SystemSlots {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// A place, unless all `limit` are taken.
    pub fn take(self: &Arc<Self>) -> Option<SystemSlot> {
        if self.used.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.used.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SystemSlot(Arc::clone(self)))
    }
}

impl Drop for SystemSlot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where lookups go.
enum Backend {
    Own {
        servers: Vec<SocketAddr>,
        /// One server's time for one try.
        timeout: Duration,
        /// Passes over `servers`.
        attempts: u32,
        search: Vec<String>,
        ndots: usize,
    },
    System(Arc<SystemSlots>),
}

/// One worker's resolver.
pub struct Resolver {
    backend: Backend,
    hosts: HashMap<String, Vec<IpAddr>>,
    ttl: Duration,
    negative_ttl: Duration,
    cache: RefCell<Cache>,
    /// Lookups in flight per client address (entries removed at zero).
    in_flight: RefCell<HashMap<IpAddr, u32>>,
    ids: RandomState,
    next_id: Cell<u64>,
    metrics: Arc<WorkerMetrics>,
}

/// Why a name gave no address.
enum Failure {
    NotFound,
    Failed(io::Error),
    TimedOut,
    /// The system resolver's queue is full.
    Busy,
}

/// A client's lookup in flight; its count goes down when this is dropped (also when the request
/// is abandoned mid-lookup).
struct Turn<'a> {
    in_flight: &'a RefCell<HashMap<IpAddr, u32>>,
    client: IpAddr,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut map = self.in_flight.borrow_mut();
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

impl Resolver {
    /// A worker's resolver. The own resolver reads `resolv_conf` and `/etc/hosts` here, once.
    pub fn new(config: &Config, metrics: Arc<WorkerMetrics>, slots: Arc<SystemSlots>) -> Resolver {
        let (backend, hosts) = match config.dns_resolver {
            DnsResolver::System => (Backend::System(slots), HashMap::new()),
            DnsResolver::Own => {
                let conf = match std::fs::read_to_string(&config.resolv_conf) {
                    Ok(text) => resolv_conf::parse(&text),
                    Err(e) => {
                        if config.dns_servers.is_empty() {
                            tracing::warn!(path = %config.resolv_conf, error = %e,
                                "cannot read resolv_conf; asking a name server on this host (127.0.0.1:53)");
                        }
                        ResolvConf::default()
                    }
                };
                let hosts = std::fs::read_to_string("/etc/hosts")
                    .map(|text| parse_hosts(&text))
                    .unwrap_or_default();
                (own_backend(config, conf), hosts)
            }
        };
        Resolver {
            backend,
            hosts,
            ttl: config.dns_ttl,
            negative_ttl: config.dns_negative_ttl,
            cache: RefCell::new(Cache::new(config.dns_cache_entries)),
            in_flight: RefCell::default(),
            ids: RandomState::new(),
            next_id: Cell::new(0),
            metrics,
        }
    }

    /// The addresses of `name` (IPv6 and IPv4 interleaved, IPv6 first, as RFC 8305 §4 orders them),
    /// from the cache when it has them, for a request from `client`. Gives up at `deadline`.
    pub async fn resolve(
        &self,
        name: &str,
        client: IpAddr,
        deadline: Instant,
    ) -> Result<Rc<[IpAddr]>, DialError> {
        // "www." and "www" differ (the first is never searched): the key keeps the dot.
        let key = name.to_ascii_lowercase();
        let bare = key.strip_suffix('.').unwrap_or(&key);
        if let Some(found) = self.hosts.get(bare) {
            return Ok(found.as_slice().into());
        }
        if is_invalid_name(bare) {
            return Err(DialError::NoAddress);
        }
        let now = Instant::now();
        if let Some(e) = self.cache.borrow().map.get(key.as_str())
            && e.until > now
        {
            self.metrics.dns_cache_hits.inc();
            return cached_result(&e.value);
        }
        let Some(_turn) = self.take_turn(client) else {
            return Err(DialError::ResolverBusy);
        };
        self.metrics.dns_lookups.inc();
        let looked_up = match &self.backend {
            Backend::System(slots) => {
                system_lookup(bare.to_owned(), deadline, self.ttl, slots).await
            }
            Backend::Own { .. } => self.search(&key, deadline).await,
        };
        let (value, keep) = match looked_up {
            Ok((addrs, ttl)) if !addrs.is_empty() => (Cached::Found(interleave(addrs).into()), ttl),
            Ok(_) | Err(Failure::NotFound) => (Cached::Missing, self.negative_ttl),
            Err(Failure::Failed(e)) => {
                tracing::debug!(name = %key, error = %e, "resolution failed");
                (Cached::Failed, self.negative_ttl)
            }
            // Remembered too: requests for a name whose servers never answer would otherwise each
            // wait their whole deadline and each send their own questions.
            Err(Failure::TimedOut) => (Cached::TimedOut, self.negative_ttl),
            Err(Failure::Busy) => return Err(DialError::ResolverBusy),
        };
        let result = cached_result(&value);
        if !keep.is_zero() {
            self.remember(key.into_boxed_str(), value, now + keep.min(MAX_TTL));
        }
        result
    }

    /// A lookup place for `client`, unless it has [`MAX_LOOKUPS_PER_CLIENT`] in flight already.
    fn take_turn(&self, client: IpAddr) -> Option<Turn<'_>> {
        let mut map = self.in_flight.borrow_mut();
        let n = map.entry(client).or_insert(0);
        if *n >= MAX_LOOKUPS_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(Turn {
            in_flight: &self.in_flight,
            client,
        })
    }

    /// The own resolver: each name of the search list in turn (`resolv_conf::candidates`) until
    /// one has addresses. "No such name" and a server's failure go on to the next; a timeout ends
    /// the search, as in glibc (the deadline is shared, and silent servers stay silent).
    async fn search(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<(Vec<IpAddr>, Duration), Failure> {
        let Backend::Own { search, ndots, .. } = &self.backend else {
            return Err(Failure::NotFound);
        };
        let mut failed = None;
        for candidate in resolv_conf::candidates(name, search, *ndots) {
            match self.ask_servers(&candidate, deadline).await {
                Ok((addrs, ttl)) if !addrs.is_empty() => return Ok((addrs, ttl)),
                Ok(_) | Err(Failure::NotFound) => {}
                Err(Failure::Failed(e)) => {
                    failed.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(failed.map_or(Failure::NotFound, Failure::Failed))
    }

    fn remember(&self, key: Box<str>, value: Cached, until: Instant) {
        self.cache
            .borrow_mut()
            .insert(key, Entry { value, until }, Instant::now());
    }

    /// Asks each server in turn, `attempts` passes over the list, until one answers; each try has
    /// the server timeout (or what is left before `deadline`).
    async fn ask_servers(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<(Vec<IpAddr>, Duration), Failure> {
        let Backend::Own {
            servers,
            timeout,
            attempts,
            ..
        } = &self.backend
        else {
            return Err(Failure::NotFound);
        };
        let mut last = Failure::TimedOut;
        for _ in 0..*attempts {
            for &server in servers {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Failure::TimedOut);
                }
                let until = Instant::now() + left.min(*timeout);
                match self.ask(server, name, until).await {
                    Ok(answer) => return Ok(answer),
                    Err(Failure::NotFound) => return Err(Failure::NotFound),
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }

    /// One server: an A and an AAAA question, both answers awaited until `until`; if only one came
    /// by then, its addresses are used.
    async fn ask(
        &self,
        server: SocketAddr,
        name: &str,
        until: Instant,
    ) -> Result<(Vec<IpAddr>, Duration), Failure> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).map_err(Failure::Failed)?;
        let first = self.query_id();
        let mut second = self.query_id();
        while second == first {
            second = self.query_id();
        }
        let ids = [first, second];
        for (id, qtype) in ids.iter().zip([TYPE::A, TYPE::AAAA]) {
            let query = build_query(*id, name, qtype).map_err(Failure::Failed)?;
            let (res, _) = socket.send_to(query, server).await;
            res.map_err(Failure::Failed)?;
        }
        let mut answered = [false, false];
        let mut addrs = Vec::new();
        let mut ttl = MAX_TTL;
        let mut not_found = 0;
        let mut failure: Option<String> = None;
        let mut buf = vec![0u8; MAX_MESSAGE];
        while answered != [true, true] {
            let left = until.saturating_duration_since(Instant::now());
            let Ok((res, back)) = monoio::time::timeout(left, socket.recv_from(buf)).await else {
                if addrs.is_empty() {
                    return Err(Failure::TimedOut);
                }
                break;
            };
            buf = back;
            let (n, from) = res.map_err(Failure::Failed)?;
            if from != server {
                continue;
            }
            let Ok(reply) = Packet::parse(&buf[..n]) else {
                continue;
            };
            let Some(slot) = ids.iter().position(|&id| id == reply.id()) else {
                continue;
            };
            if answered[slot] || !reply.has_flags(PacketFlag::RESPONSE) || !asks_for(&reply, name) {
                continue;
            }
            answered[slot] = true;
            match reply.rcode() {
                RCODE::NoError => {}
                RCODE::NameError => {
                    not_found += 1;
                    continue;
                }
                // One question failing (some servers refuse AAAA) does not spoil the other's
                // answer; only when nothing came back is the server's failure the result.
                code => {
                    failure.get_or_insert(format!("server {server} answered {code:?}"));
                    continue;
                }
            }
            take_addresses(&reply.answers, &mut addrs, &mut ttl);
        }
        if addrs.is_empty() {
            if let Some(why) = failure {
                return Err(Failure::Failed(io::Error::other(why)));
            }
            if not_found > 0 {
                return Err(Failure::NotFound);
            }
        }
        Ok((addrs, ttl.max(Duration::from_secs(1))))
    }

    fn query_id(&self) -> u16 {
        let n = self.next_id.get().wrapping_add(1);
        self.next_id.set(n);
        // Unpredictable ids (keyed hash of a counter): an off-path attacker cannot guess them.
        self.ids.hash_one(n) as u16
    }
}

fn cached_result(value: &Cached) -> Result<Rc<[IpAddr]>, DialError> {
    match value {
        Cached::Found(addrs) => Ok(addrs.clone()),
        Cached::Missing => Err(DialError::NoAddress),
        Cached::Failed => Err(DialError::Resolve(io::Error::other("name servers failed"))),
        Cached::TimedOut => Err(DialError::ResolveTimeout),
    }
}

/// The own resolver's settings: `dns_servers` (asked with `dns_timeout_ms`, once each) when set,
/// else the file's name servers with its `timeout` and `attempts` (defaults: `dns_timeout_ms`,
/// 2); with neither, the local machine, as glibc does. The search list comes from the file either
/// way.
fn own_backend(config: &Config, conf: ResolvConf) -> Backend {
    let (servers, timeout, attempts) = if config.dns_servers.is_empty() {
        let mut servers: Vec<SocketAddr> = conf
            .nameservers
            .iter()
            .map(|&ip| SocketAddr::new(ip, 53))
            .collect();
        if servers.is_empty() {
            servers.push(SocketAddr::from((Ipv4Addr::LOCALHOST, 53)));
        }
        (
            servers,
            conf.timeout.unwrap_or(config.dns_timeout),
            conf.attempts.unwrap_or(DEFAULT_ATTEMPTS),
        )
    } else {
        (config.dns_servers.clone(), config.dns_timeout, 1)
    };
    Backend::Own {
        servers,
        timeout,
        attempts,
        search: conf.search,
        ndots: conf.ndots,
    }
}

/// RFC 6761 §6.4: names under `invalid` never exist, and resolvers should say so at once rather
/// than ask a server (which costs a round trip, or a timeout where servers are unreachable).
fn is_invalid_name(name: &str) -> bool {
    name == "invalid" || name.ends_with(".invalid")
}

/// The A and AAAA records of an answer section into `addrs` (each address once, at most
/// [`MAX_PER_FAMILY`] of each family), lowering `ttl` to the smallest TTL taken.
fn take_addresses(records: &[ResourceRecord<'_>], addrs: &mut Vec<IpAddr>, ttl: &mut Duration) {
    for record in records {
        if record.class != CLASS::IN {
            continue;
        }
        let ip = match &record.rdata {
            RData::A(a) => IpAddr::V4(Ipv4Addr::from(a.address)),
            RData::AAAA(a) => IpAddr::V6(Ipv6Addr::from(a.address)),
            _ => continue,
        };
        if keep_address(addrs, ip) {
            *ttl = (*ttl).min(Duration::from_secs(u64::from(record.ttl)));
        }
    }
}

/// Adds `ip` unless it is there already or its family has [`MAX_PER_FAMILY`]; whether it was
/// added.
fn keep_address(addrs: &mut Vec<IpAddr>, ip: IpAddr) -> bool {
    let same_family = addrs.iter().filter(|a| a.is_ipv6() == ip.is_ipv6()).count();
    if same_family >= MAX_PER_FAMILY || addrs.contains(&ip) {
        return false;
    }
    addrs.push(ip);
    true
}

fn build_query(id: u16, name: &str, qtype: TYPE) -> io::Result<Vec<u8>> {
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    let qname = Name::new(name).map_err(|e| io::Error::other(e.to_string()))?;
    packet.questions.push(Question::new(
        qname,
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet
        .build_bytes_vec()
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Whether a reply is about `name` (its question echoes ours).
fn asks_for(reply: &Packet<'_>, name: &str) -> bool {
    reply
        .questions
        .first()
        .is_some_and(|q| q.qname.to_string().eq_ignore_ascii_case(name))
}

/// `getaddrinfo` on the shared blocking pool, within `deadline`, if it has a place for one more.
async fn system_lookup(
    name: String,
    deadline: Instant,
    ttl: Duration,
    slots: &Arc<SystemSlots>,
) -> Result<(Vec<IpAddr>, Duration), Failure> {
    let Some(slot) = slots.take() else {
        return Err(Failure::Busy);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    // The place travels with the job: it is given back when getaddrinfo returns, not when this
    // request stops waiting for it.
    let job = monoio::spawn_blocking(move || {
        let found = getaddrinfo(&name);
        drop(slot);
        found
    });
    match monoio::time::timeout(left, job).await {
        Err(_) => Err(Failure::TimedOut),
        Ok(Err(_join)) => Err(Failure::Failed(io::Error::other("resolver thread failed"))),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Ok(Ok(addrs))) => Ok((addrs, ttl)),
    }
}

/// Runs only on the blocking pool (see `system_lookup`).
#[allow(
    clippy::disallowed_methods,
    reason = "runs on the resolver pool, not on a worker"
)]
fn getaddrinfo(name: &str) -> Result<Vec<IpAddr>, Failure> {
    match crate::sys::getaddrinfo(name) {
        Ok(found) => {
            let mut out: Vec<IpAddr> = Vec::new();
            for ip in found {
                keep_address(&mut out, ip);
            }
            Ok(out)
        }
        Err(AddrInfoError::NoName) => Err(Failure::NotFound),
        Err(AddrInfoError::Failed(e)) => Err(Failure::Failed(e)),
    }
}

/// RFC 8305 §4: alternate the families, starting with IPv6.
fn interleave(addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    let (v6, v4): (Vec<IpAddr>, Vec<IpAddr>) = addrs.into_iter().partition(IpAddr::is_ipv6);
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// `/etc/hosts`: address, then names; `#` starts a comment.
fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        for name in fields {
            let entry = map
                .entry(name.trim_end_matches('.').to_ascii_lowercase())
                .or_default();
            keep_address(entry, ip);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_alternate_ipv6_first() {
        let ips: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "::1", "10.0.0.3", "::2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let order: Vec<String> = interleave(ips).iter().map(ToString::to_string).collect();
        assert_eq!(order, ["::1", "10.0.0.1", "::2", "10.0.0.2", "10.0.0.3"]);
    }

    #[test]
    fn hosts_file() {
        let map = parse_hosts(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost # comment\n# 1.2.3.4 no\n10.0.0.9 Gw.Example. gw\nbad line\n",
        );
        assert_eq!(map["localhost"].len(), 2);
        assert_eq!(
            map["gw.example"],
            vec!["10.0.0.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(map["gw"], map["gw.example"]);
        assert!(!map.contains_key("no"));
    }

    #[test]
    fn an_answer_keeps_at_most_16_addresses_of_each_family() {
        let mut reply = Packet::new_reply(1);
        reply.set_flags(PacketFlag::RESPONSE);
        let name = Name::new_unchecked("many.test");
        for i in 0..40u32 {
            reply.answers.push(ResourceRecord::new(
                name.clone(),
                CLASS::IN,
                300 - i,
                RData::A(simple_dns::rdata::A {
                    address: 0x0a00_0000 + i,
                }),
            ));
            reply.answers.push(ResourceRecord::new(
                name.clone(),
                CLASS::IN,
                300,
                RData::AAAA(simple_dns::rdata::AAAA {
                    address: 0x2001_0db8_u128 << 96 | u128::from(i),
                }),
            ));
        }
        let bytes = reply.build_bytes_vec().unwrap();
        let parsed = Packet::parse(&bytes).unwrap();
        let (mut addrs, mut ttl) = (Vec::new(), MAX_TTL);
        take_addresses(&parsed.answers, &mut addrs, &mut ttl);
        assert_eq!(addrs.iter().filter(|a| a.is_ipv4()).count(), 16);
        assert_eq!(addrs.iter().filter(|a| a.is_ipv6()).count(), 16);
        assert_eq!(addrs[0].to_string(), "10.0.0.0");
        // The TTL is the smallest of the records kept, not of those dropped.
        assert_eq!(ttl, Duration::from_secs(300 - 15));
        // A second answer (the other question) adds nothing to a full family.
        take_addresses(&parsed.answers, &mut addrs, &mut ttl);
        assert_eq!(addrs.len(), 32);
    }

    #[test]
    fn system_resolver_places_are_bounded_and_given_back() {
        let slots = SystemSlots::new(2);
        let a = slots.take().unwrap();
        let b = slots.take().unwrap();
        assert!(
            slots.take().is_none(),
            "the third waits for no thread: refused"
        );
        drop(a);
        let c = slots.take().unwrap();
        assert!(slots.take().is_none());
        drop((b, c));
        assert_eq!(slots.used.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_cache_sweeps_expired_entries_at_most_once_a_second() {
        let t0 = Instant::now();
        let entry = |secs| Entry {
            value: Cached::Missing,
            until: t0 + Duration::from_secs(secs),
        };
        let mut cache = Cache::new(3);
        cache.insert("a".into(), entry(1), t0);
        cache.insert("b".into(), entry(100), t0);
        cache.insert("c".into(), entry(100), t0);
        // Full at t0 + 2 s: the sweep takes the expired "a", nothing live goes.
        cache.insert("d".into(), entry(100), t0 + Duration::from_secs(2));
        let mut keys: Vec<&str> = cache.map.keys().map(|k| &**k).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["b", "c", "d"]);
        // Full again within the second: no sweep, one entry makes room; the bound holds.
        cache.insert("e".into(), entry(100), t0 + Duration::from_millis(2500));
        assert_eq!(cache.map.len(), 3);
        assert!(cache.map.contains_key("e"));
        // Replacing a cached name makes no room.
        cache.insert("e".into(), entry(200), t0 + Duration::from_millis(2600));
        assert_eq!(cache.map.len(), 3);
        assert_eq!(cache.next_sweep, Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn invalid_names_are_known_not_to_exist() {
        for (name, invalid) in [
            ("invalid", true),
            ("no-such-host.invalid", true),
            ("a.b.invalid", true),
            ("invalid.example", false),
            ("notinvalid", false),
            ("example.com", false),
        ] {
            assert_eq!(is_invalid_name(name), invalid, "{name}");
        }
    }

    #[test]
    fn queries_round_trip() {
        let q = build_query(7, "example.com", TYPE::AAAA).unwrap();
        let p = Packet::parse(&q).unwrap();
        assert_eq!(p.id(), 7);
        assert!(asks_for(&p, "EXAMPLE.com"));
        assert!(!asks_for(&p, "example.org"));
    }
}
