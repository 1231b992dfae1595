//! Name resolution for dialling, never blocking a worker, with a per-worker cache.
//!
//! Two sources:
//! - **system** (`dns_servers = []`): `getaddrinfo` on the shared resolver threads, so
//!   `/etc/hosts`, `nsswitch.conf` and `resolv.conf` apply as for any program; it reports no TTL, so
//!   answers are kept `dns_ttl_secs`.
//! - **own** (`dns_servers = ["IP:53", …]`): ringgate asks those servers itself over UDP, A and
//!   AAAA at once, from the worker (no thread), each server in turn within `dns_timeout_ms`;
//!   answers are kept for their own TTL (at most an hour). `/etc/hosts` is read at start and
//!   answers first.
//!
//! Either way, "no such name" (and a failure of every server) is remembered for
//! `dns_negative_ttl_secs`, so a flood of requests for a dead name does not become a flood of
//! lookups. Packets are built and parsed by `simple-dns`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::udp::UdpSocket;
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, TYPE};

use super::dial::DialError;
use crate::config::Config;
use crate::metrics::WorkerMetrics;

/// Longest an answer is kept, whatever its TTL says.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// Largest DNS message read (UDP without EDNS is 512 bytes; some servers send more).
const MAX_MESSAGE: usize = 4096;

#[derive(Clone)]
enum Cached {
    Found(Rc<[IpAddr]>),
    /// No such name (or no address for it).
    Missing,
    /// Every server failed.
    Failed,
}

struct Entry {
    value: Cached,
    until: Instant,
}

/// One worker's resolver.
pub struct Resolver {
    servers: Vec<SocketAddr>,
    hosts: HashMap<String, Vec<IpAddr>>,
    ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    max_entries: usize,
    cache: RefCell<HashMap<Box<str>, Entry>>,
    ids: RandomState,
    next_id: Cell<u64>,
    metrics: Arc<WorkerMetrics>,
}

/// Why a name gave no address.
enum Failure {
    NotFound,
    Failed(io::Error),
    TimedOut,
}

impl Resolver {
    pub fn new(config: &Config, metrics: Arc<WorkerMetrics>) -> Resolver {
        let hosts = if config.dns_servers.is_empty() {
            HashMap::new()
        } else {
            std::fs::read_to_string("/etc/hosts")
                .map(|text| parse_hosts(&text))
                .unwrap_or_default()
        };
        Resolver {
            servers: config.dns_servers.clone(),
            hosts,
            ttl: config.dns_ttl,
            negative_ttl: config.dns_negative_ttl,
            timeout: config.dns_timeout,
            max_entries: config.dns_cache_entries,
            cache: RefCell::default(),
            ids: RandomState::new(),
            next_id: Cell::new(0),
            metrics,
        }
    }

    /// The addresses of `name` (IPv6 and IPv4 interleaved, IPv6 first, as RFC 8305 §4 orders them),
    /// from the cache when it has them. Gives up at `deadline`.
    pub async fn resolve(&self, name: &str, deadline: Instant) -> Result<Rc<[IpAddr]>, DialError> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let key = name.to_ascii_lowercase();
        if let Some(found) = self.hosts.get(&key) {
            return Ok(found.as_slice().into());
        }
        let now = Instant::now();
        if let Some(e) = self.cache.borrow().get(key.as_str())
            && e.until > now
        {
            self.metrics.dns_cache_hits.inc();
            return cached_result(&e.value);
        }
        self.metrics.dns_lookups.inc();
        let looked_up = if self.servers.is_empty() {
            system_lookup(key.clone(), deadline, self.ttl).await
        } else {
            self.ask_servers(&key, deadline).await
        };
        let (value, keep) = match looked_up {
            Ok((addrs, ttl)) if !addrs.is_empty() => (Cached::Found(interleave(addrs).into()), ttl),
            Ok(_) | Err(Failure::NotFound) => (Cached::Missing, self.negative_ttl),
            Err(Failure::Failed(e)) => {
                tracing::debug!(name = %key, error = %e, "resolution failed");
                (Cached::Failed, self.negative_ttl)
            }
            // Not remembered: the next request may be luckier, and waits its own deadline.
            Err(Failure::TimedOut) => return Err(DialError::ResolveTimeout),
        };
        let result = cached_result(&value);
        if !keep.is_zero() {
            self.remember(key.into_boxed_str(), value, now + keep.min(MAX_TTL));
        }
        result
    }

    fn remember(&self, key: Box<str>, value: Cached, until: Instant) {
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= self.max_entries && !cache.contains_key(&key) {
            let now = Instant::now();
            cache.retain(|_, e| e.until > now);
            if cache.len() >= self.max_entries {
                // Still full of live entries: the one closest to expiry goes.
                if let Some(k) = cache
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| k.clone())
                {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(key, Entry { value, until });
    }

    /// Asks each configured server in turn until one answers.
    async fn ask_servers(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<(Vec<IpAddr>, Duration), Failure> {
        let mut last = Failure::TimedOut;
        for &server in &self.servers {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::TimedOut);
            }
            let until = Instant::now() + left.min(self.timeout);
            match self.ask(server, name, until).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::NotFound) => return Err(Failure::NotFound),
                Err(e) => last = e,
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
            for record in &reply.answers {
                if record.class != CLASS::IN {
                    continue;
                }
                let ip = match &record.rdata {
                    RData::A(a) => IpAddr::V4(Ipv4Addr::from(a.address)),
                    RData::AAAA(a) => IpAddr::V6(Ipv6Addr::from(a.address)),
                    _ => continue,
                };
                ttl = ttl.min(Duration::from_secs(u64::from(record.ttl)));
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
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
    }
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

/// `getaddrinfo` on the shared blocking pool, within `deadline`.
async fn system_lookup(
    name: String,
    deadline: Instant,
    ttl: Duration,
) -> Result<(Vec<IpAddr>, Duration), Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    let job = monoio::spawn_blocking(move || getaddrinfo(&name));
    match monoio::time::timeout(left, job).await {
        Err(_) => Err(Failure::TimedOut),
        Ok(Err(_join)) => Err(Failure::Failed(io::Error::other("resolver thread failed"))),
        Ok(Ok(Err(e))) if is_not_found(&e) => Err(Failure::NotFound),
        Ok(Ok(Err(e))) => Err(Failure::Failed(e)),
        Ok(Ok(Ok(addrs))) => Ok((addrs, ttl)),
    }
}

/// `getaddrinfo` says "no such name" only in its message (std maps EAI_NONAME to a custom error).
fn is_not_found(e: &io::Error) -> bool {
    let text = e.to_string();
    text.contains("not known") || text.contains("No address associated")
}

/// Runs only on the blocking pool (see `system_lookup`).
#[allow(
    clippy::disallowed_methods,
    reason = "runs on the resolver pool, not on a worker"
)]
fn getaddrinfo(name: &str) -> io::Result<Vec<IpAddr>> {
    use std::net::ToSocketAddrs;
    let mut out: Vec<IpAddr> = Vec::new();
    for a in (name, 0).to_socket_addrs()? {
        if !out.contains(&a.ip()) {
            out.push(a.ip());
        }
    }
    Ok(out)
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
            if !entry.contains(&ip) {
                entry.push(ip);
            }
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
    fn queries_round_trip() {
        let q = build_query(7, "example.com", TYPE::AAAA).unwrap();
        let p = Packet::parse(&q).unwrap();
        assert_eq!(p.id(), 7);
        assert!(asks_for(&p, "EXAMPLE.com"));
        assert!(!asks_for(&p, "example.org"));
    }
}
