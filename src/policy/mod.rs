//! Egress policy: who may use the proxy, and who may go where.
//!
//! Three layers, in this order:
//! 1. **Client access** (`clients`): which client addresses may use the proxy at all. Unset, it is
//!    any address when authentication is on, and loopback only when it is off, so ringgate never
//!    starts as an open proxy unless the config says `open_proxy = true`.
//! 2. **Safe destination defaults**, like Squid's and ATS's: CONNECT only to `connect_ports` (443),
//!    and never to loopback, link-local (cloud metadata at 169.254.169.254 included), unspecified,
//!    multicast or reserved addresses, nor to the proxy's own listening sockets. They apply to every
//!    address a name resolves to and to IPv4-mapped IPv6; `allow_dest` lifts them for chosen
//!    networks. Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed.
//! 3. **Rules** (`[[rules]]`), first match wins, `default_action` when none matches. A rule matches
//!    on user (or group), client network, destination host name (`example.com`, `*.example.com`),
//!    destination network (after resolution), port ranges and method (`CONNECT`, `forward`).
//!
//! Everything is decided in two steps: [`Policy::check_request`] before any resolution (from the
//! request alone), and [`Policy::check_address`] for every address about to be dialled.

mod destinations;
pub mod limits;
mod ranges;
mod rules;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

use crate::http::target::{Authority, Host};
use crate::observe::labels::DenialKind;

pub use destinations::canonical;
use destinations::{denied_range, is_loopback_net};
use ranges::{in_ranges, nets};
pub use ranges::{parse_nets, ports};
pub use rules::{Action, RuleSpec};
use rules::{Match, Rule, verdict};

/// What the policy was built from (validated config values).
pub struct PolicySpec<'a> {
    pub auth_on: bool,
    pub open_proxy: bool,
    pub clients: &'a [String],
    pub connect_ports: &'a [String],
    pub allow_dest: &'a [String],
    pub default_action: Action,
    pub groups: &'a BTreeMap<String, Vec<String>>,
    pub rules: &'a [RuleSpec],
    pub listen: &'a [SocketAddr],
}

/// A policy problem found at start or reload: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `None`: any client.
    clients: Option<Vec<IpNet>>,
    connect_ports: Vec<(u16, u16)>,
    allow_dest: Vec<IpNet>,
    listen: Vec<SocketAddr>,
    rules: Vec<Rule>,
    default_action: Action,
}

/// A request as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub client: IpAddr,
    pub user: Option<&'a str>,
    /// The destination name as requested; `None` for an address literal.
    pub host: Option<&'a str>,
    /// The destination address when the request named one.
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub connect: bool,
}

impl<'a> Request<'a> {
    /// The facts of a request for `authority` from `client`, as `user` if authenticated.
    pub fn new(
        client: IpAddr,
        user: Option<&'a str>,
        authority: &Authority<'a>,
        connect: bool,
    ) -> Request<'a> {
        let (host, ip) = match authority.host {
            Host::Name(name) => (Some(name), None),
            Host::Ip(ip) => (None, Some(ip)),
        };
        Request {
            client,
            user,
            host,
            ip,
            port: authority.port,
            connect,
        }
    }
}

/// Why a request was refused; each has its own short reason in the 403 body and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The client's address may not use the proxy.
    Client,
    /// CONNECT to a port outside `connect_ports`.
    Port,
    /// A destination address in a range denied by default (`what` names it).
    Destination(&'static str),
    /// The proxy's own listening socket: a loop.
    Loop,
    /// A rule (its name, or `rule N`), or `default_action` (`default`).
    Rule(String),
}

impl Denial {
    /// Its metrics label.
    pub fn kind(&self) -> DenialKind {
        match self {
            Denial::Client => DenialKind::Client,
            Denial::Port => DenialKind::Port,
            Denial::Destination(_) => DenialKind::Destination,
            Denial::Loop => DenialKind::Loop,
            Denial::Rule(_) => DenialKind::Rule,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Denial::Client => "client address not allowed",
            Denial::Port => "CONNECT port not allowed",
            Denial::Destination(what) => what,
            Denial::Loop => "destination is this proxy",
            Denial::Rule(label) => label,
        }
    }
}

/// The verdict before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed by rule; every address dialled must still pass [`Policy::check_address`].
    Allow,
    Deny(Denial),
    /// The first rule that may match depends on the destination address: decided per address.
    PerAddress,
}

const LOOPBACK_V4: Ipv4Addr = Ipv4Addr::LOCALHOST;

impl Policy {
    pub fn new(spec: &PolicySpec<'_>) -> Result<Policy, PolicyError> {
        let clients = if spec.clients.is_empty() {
            if spec.auth_on || spec.open_proxy {
                None
            } else {
                Some(vec![
                    IpNet::new(IpAddr::V4(LOOPBACK_V4), 8).expect("valid prefix"),
                    IpNet::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128).expect("valid prefix"),
                ])
            }
        } else {
            let nets = nets("clients", spec.clients)?;
            if !spec.auth_on
                && !spec.open_proxy
                && let Some(open) = nets.iter().find(|n| !is_loopback_net(n))
            {
                return Err(PolicyError {
                    key: "clients".into(),
                    reason: format!(
                        "{open} lets others use the proxy without authentication: \
                         configure users, or set open_proxy = true if that is meant"
                    ),
                });
            }
            Some(nets)
        };
        let connect_ports = ports("connect_ports", spec.connect_ports)?;
        if connect_ports.is_empty() {
            return Err(PolicyError {
                key: "connect_ports".into(),
                reason: "empty: no CONNECT could be allowed (use [\"any\"] for all)".into(),
            });
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (i, r) in spec.rules.iter().enumerate() {
            rules.push(Rule::new(i, r, spec.groups)?);
        }
        Ok(Policy {
            clients,
            connect_ports,
            allow_dest: nets("allow_dest", spec.allow_dest)?,
            listen: spec.listen.to_vec(),
            rules,
            default_action: spec.default_action,
        })
    }

    /// The client networks allowed, for the start-up log.
    pub fn describe_clients(&self) -> String {
        match &self.clients {
            None => "any".to_owned(),
            Some(nets) => nets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Whether a client at `addr` may use the proxy at all (checked at accept).
    pub fn admits_client(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.clients
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&addr)))
    }

    /// The verdict from the request alone (before any name is resolved).
    pub fn check_request(&self, req: &Request<'_>) -> Verdict {
        if req.connect && !in_ranges(&self.connect_ports, req.port) {
            return Verdict::Deny(Denial::Port);
        }
        if let Some(ip) = req.ip
            && let Err(d) = self.check_fixed(SocketAddr::new(ip, req.port))
        {
            return Verdict::Deny(d);
        }
        for rule in &self.rules {
            match rule.matches(req, req.ip) {
                Match::No => {}
                Match::NeedAddress => return Verdict::PerAddress,
                Match::Yes => return verdict(rule.action, &rule.label),
            }
        }
        verdict(self.default_action, "default")
    }

    /// Whether `addr` may be dialled for `req` (after [`Policy::check_request`] allowed it or
    /// asked for a decision per address).
    pub fn check_address(
        &self,
        req: &Request<'_>,
        addr: SocketAddr,
        per_address: bool,
    ) -> Result<(), Denial> {
        self.check_fixed(addr)?;
        if !per_address {
            return Ok(());
        }
        let ip = Some(canonical(addr.ip()));
        for rule in &self.rules {
            if rule.matches(req, ip) == Match::Yes {
                return match rule.action {
                    Action::Allow => Ok(()),
                    Action::Deny => Err(Denial::Rule(rule.label.clone())),
                };
            }
        }
        match self.default_action {
            Action::Allow => Ok(()),
            Action::Deny => Err(Denial::Rule("default".into())),
        }
    }

    /// Whether the proxy listens on an unspecified address (`0.0.0.0`, `[::]`): only then can a
    /// destination that passed [`Policy::check_address`] still be the proxy itself.
    pub fn has_wildcard_listener(&self) -> bool {
        self.listen.iter().any(|l| l.ip().is_unspecified())
    }

    /// Whether a connection that was made goes back to this proxy: to a port it listens on, at the
    /// listener's own address, or (for a wildcard listener such as `0.0.0.0:3128`) at an address of
    /// this host: one on loopback, the very address the connection comes from, or one that
    /// `is_host_address` says is this host's. The last is asked only when the cheap tests fail on a
    /// wildcard listener's port: with `bind_source` the connection comes from a configured source,
    /// not from the host address it went to, so "local == peer" alone missed loops to another of
    /// the host's addresses.
    pub fn is_loop(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
        is_host_address: impl Fn(IpAddr) -> bool,
    ) -> bool {
        let ip = canonical(peer.ip());
        let this_host = || ip.is_loopback() || canonical(local.ip()) == ip || is_host_address(ip);
        self.listen.iter().any(|l| {
            l.port() == peer.port()
                && (canonical(l.ip()) == ip || (l.ip().is_unspecified() && this_host()))
        })
    }

    /// The built-in destination checks, unless `allow_dest` lifts them.
    fn check_fixed(&self, addr: SocketAddr) -> Result<(), Denial> {
        let ip = canonical(addr.ip());
        if self
            .listen
            .iter()
            .any(|l| l.port() == addr.port() && canonical(l.ip()) == ip)
        {
            return Err(Denial::Loop);
        }
        if self.allow_dest.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match denied_range(ip) {
            Some(what) => Err(Denial::Destination(what)),
            None => Ok(()),
        }
    }
}

/// What a dial puts each address to: the policy, the request, and whether the rules must be
/// consulted per address ([`Verdict::PerAddress`]) or only the built-in denials.
pub struct Check<'a> {
    pub policy: &'a Policy,
    pub request: Request<'a>,
    pub per_address: bool,
}

impl Check<'_> {
    pub fn address(&self, addr: SocketAddr) -> Result<(), Denial> {
        self.policy
            .check_address(&self.request, addr, self.per_address)
    }

    pub fn is_loop(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
        is_host_address: impl Fn(IpAddr) -> bool,
    ) -> bool {
        self.policy.is_loop(local, peer, is_host_address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyConfig;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A policy as the config gives it, plus what the server adds (auth on/off, listeners).
    struct Setup {
        auth_on: bool,
        listen: Vec<SocketAddr>,
        cfg: PolicyConfig,
    }

    impl Setup {
        fn new() -> Setup {
            Setup {
                auth_on: true,
                listen: vec!["127.0.0.1:3128".parse().unwrap()],
                cfg: PolicyConfig {
                    open_proxy: false,
                    clients: vec![],
                    connect_ports: strs(&["443"]),
                    allow_dest: vec![],
                    default_action: Action::Allow,
                    groups: BTreeMap::new(),
                    rules: vec![],
                },
            }
        }

        fn build(&self) -> Result<Policy, PolicyError> {
            self.cfg.build(self.auth_on, &self.listen)
        }
    }

    fn rule(action: Action) -> RuleSpec {
        RuleSpec {
            name: None,
            action,
            users: vec![],
            groups: vec![],
            clients: vec![],
            hosts: vec![],
            dest: vec![],
            ports: vec![],
            methods: vec![],
        }
    }

    fn req<'a>(user: Option<&'a str>, host: &'a str, port: u16, connect: bool) -> Request<'a> {
        let ip = host.trim_matches(['[', ']']).parse().ok();
        Request {
            client: "10.1.2.3".parse().unwrap(),
            user,
            host: ip.is_none().then_some(host),
            ip,
            port,
            connect,
        }
    }

    #[test]
    fn built_in_destination_denials_cover_every_spelling() {
        let p = Setup::new().build().unwrap();
        for (addr, denied) in [
            ("127.0.0.1", true),
            ("127.9.9.9", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("::127.0.0.1", true),
            ("169.254.169.254", true),
            ("100.100.100.200", true),
            ("168.63.129.16", true),
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::5db8:d822", false),
            ("::ffff:169.254.169.254", true),
            ("fe80::1", true),
            ("fd00:ec2::254", true),
            ("0.0.0.0", true),
            ("::", true),
            ("224.0.0.1", true),
            ("255.255.255.255", true),
            ("ff02::1", true),
            ("10.0.0.1", false),
            ("192.168.1.1", false),
            ("fd12::1", false),
            ("93.184.216.34", false),
            ("2001:db8::1", false),
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            let r = req(None, addr, 443, true);
            let got = p.check_address(&r, SocketAddr::new(ip, 443), false);
            assert_eq!(got.is_err(), denied, "{addr}: {got:?}");
            // A literal in the request is refused before anything is dialled.
            assert_eq!(
                matches!(p.check_request(&r), Verdict::Deny(_)),
                denied,
                "{addr}"
            );
        }
    }

    #[test]
    fn allow_dest_lifts_the_defaults_but_never_the_loop() {
        let mut s = Setup::new();
        s.cfg.allow_dest = strs(&["127.0.0.0/8", "::1", "::ffff:169.254.1.0/120"]);
        let p = s.build().unwrap();
        let r = req(None, "x", 443, true);
        let ok = |a: &str| p.check_address(&r, a.parse().unwrap(), false);
        assert_eq!(ok("127.0.0.1:443"), Ok(()));
        assert_eq!(ok("[::1]:443"), Ok(()));
        assert_eq!(ok("[::ffff:127.0.0.2]:80"), Ok(()));
        // A mapped IPv6 network in allow_dest is the IPv4 network it carries.
        assert_eq!(ok("169.254.1.5:80"), Ok(()));
        assert_eq!(
            ok("169.254.169.254:80"),
            Err(Denial::Destination(
                "destination is link-local (cloud metadata included)"
            ))
        );
        assert_eq!(ok("127.0.0.1:3128"), Err(Denial::Loop));
        assert_eq!(ok("[::ffff:127.0.0.1]:3128"), Err(Denial::Loop));
        // A wildcard listener: a connection to this host on its port is a loop.
        let mut s = Setup::new();
        s.listen = vec!["0.0.0.0:3128".parse().unwrap()];
        let p = s.build().unwrap();
        // This host's addresses here: 10.0.0.5 and 10.0.0.7.
        let ours = |ip: IpAddr| ["10.0.0.5", "10.0.0.7"].contains(&ip.to_string().as_str());
        let is_loop = |l: &str, r: &str| p.is_loop(l.parse().unwrap(), r.parse().unwrap(), ours);
        assert!(is_loop("10.0.0.5:40000", "10.0.0.5:3128"));
        assert!(is_loop("127.0.0.1:40000", "127.0.0.2:3128"));
        assert!(!is_loop("10.0.0.5:40000", "10.0.0.6:3128"));
        assert!(!is_loop("10.0.0.5:40000", "10.0.0.5:3129"));
        // From a bind_source address to another of the host's: a loop all the same.
        assert!(is_loop("127.0.0.2:40000", "10.0.0.7:3128"));
        assert!(is_loop("10.0.0.5:40000", "10.0.0.7:3128"));
        assert!(!is_loop("127.0.0.2:40000", "10.0.0.7:3129"));
    }

    #[test]
    fn connect_ports_and_client_access() {
        let p = Setup::new().build().unwrap();
        assert_eq!(
            p.check_request(&req(None, "a.example", 22, true)),
            Verdict::Deny(Denial::Port)
        );
        assert_eq!(
            p.check_request(&req(None, "a.example", 443, true)),
            Verdict::Allow
        );
        // Forwarding is not limited to 443.
        assert_eq!(
            p.check_request(&req(None, "a.example", 8080, false)),
            Verdict::Allow
        );
        let mut s = Setup::new();
        s.cfg.connect_ports = strs(&["443", "8000-8099"]);
        let p = s.build().unwrap();
        assert_eq!(p.check_request(&req(None, "a", 8050, true)), Verdict::Allow);
        assert_eq!(
            p.check_request(&req(None, "a", 8100, true)),
            Verdict::Deny(Denial::Port)
        );
        s.cfg.connect_ports = strs(&["any"]);
        assert_eq!(
            s.build().unwrap().check_request(&req(None, "a", 22, true)),
            Verdict::Allow
        );
        for bad in [&["0"][..], &["9-8"], &["x"], &["70000"], &[]] {
            s.cfg.connect_ports = strs(bad);
            assert!(s.build().is_err(), "{bad:?}");
        }

        // Auth on: any client; auth off: loopback only, unless open_proxy.
        let any: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(Setup::new().build().unwrap().admits_client(any));
        let mut s = Setup::new();
        s.auth_on = false;
        let p = s.build().unwrap();
        assert!(!p.admits_client(any));
        assert!(p.admits_client("127.0.0.1".parse().unwrap()));
        assert!(p.admits_client("::ffff:127.0.0.1".parse().unwrap()));
        assert!(p.admits_client("::1".parse().unwrap()));
        s.cfg.clients = strs(&["10.0.0.0/8"]);
        let err = s.build().unwrap_err();
        assert_eq!(err.key, "clients");
        s.cfg.open_proxy = true;
        let p = s.build().unwrap();
        assert!(p.admits_client("10.9.9.9".parse().unwrap()));
        assert!(!p.admits_client(any));
        s.cfg.clients.clear();
        assert!(s.build().unwrap().admits_client(any));
    }

    #[test]
    fn rules_first_match_wins_on_every_criterion() {
        let mut s = Setup::new();
        s.cfg.connect_ports = strs(&["any"]);
        s.cfg
            .groups
            .insert("staff".into(), strs(&["carol", "dave"]));
        let mut r1 = rule(Action::Deny);
        r1.name = Some("no social".into());
        r1.hosts = strs(&["*.social.example", "chat.example."]);
        let mut r2 = rule(Action::Allow);
        r2.groups = strs(&["staff"]);
        let mut r3 = rule(Action::Deny);
        r3.dest = strs(&["10.0.0.0/8"]);
        r3.name = Some("internal".into());
        let mut r4 = rule(Action::Deny);
        r4.ports = strs(&["25", "465-587"]);
        r4.methods = strs(&["CONNECT"]);
        let mut r5 = rule(Action::Allow);
        r5.users = strs(&["alice"]);
        r5.clients = strs(&["10.1.0.0/16"]);
        s.cfg.rules = vec![r1, r2, r3, r4, r5];
        s.cfg.default_action = Action::Deny;
        let p = s.build().unwrap();
        let deny = |l: &str| Verdict::Deny(Denial::Rule(l.into()));
        let rows = [
            (
                req(Some("carol"), "www.social.example", 443, true),
                deny("no social"),
            ),
            (
                req(Some("carol"), "WWW.Social.Example.", 443, true),
                deny("no social"),
            ),
            (
                req(Some("carol"), "social.example", 443, true),
                Verdict::Allow,
            ),
            (
                req(Some("carol"), "chat.example", 80, false),
                deny("no social"),
            ),
            (req(Some("dave"), "10.0.0.1", 443, true), Verdict::Allow),
            (req(Some("alice"), "10.0.0.1", 443, true), deny("internal")),
            (
                req(Some("alice"), "db.example", 443, true),
                Verdict::PerAddress,
            ),
            (req(Some("bob"), "93.184.216.34", 465, true), deny("rule 4")),
            (
                req(Some("bob"), "93.184.216.34", 465, false),
                deny("default"),
            ),
            (
                req(Some("alice"), "93.184.216.34", 587, false),
                Verdict::Allow,
            ),
            (req(None, "93.184.216.34", 80, false), deny("default")),
        ];
        for (r, want) in rows {
            assert_eq!(p.check_request(&r), want, "{r:?}");
        }
        // Per address: the destination rule decides once the name is resolved.
        let r = req(Some("alice"), "db.example", 443, true);
        assert_eq!(
            p.check_address(&r, "10.2.3.4:443".parse().unwrap(), true),
            Err(Denial::Rule("internal".into()))
        );
        assert_eq!(
            p.check_address(&r, "93.184.216.34:443".parse().unwrap(), true),
            Ok(())
        );
        let mut other = r;
        other.client = "192.0.2.1".parse().unwrap();
        assert_eq!(
            p.check_address(&other, "93.184.216.34:443".parse().unwrap(), true),
            Err(Denial::Rule("default".into()))
        );
    }

    #[test]
    fn bad_rules_name_their_place() {
        for (edit, key) in [
            (
                Box::new(|r: &mut RuleSpec| r.groups = strs(&["nope"]))
                    as Box<dyn Fn(&mut RuleSpec)>,
                "rules[0].groups",
            ),
            (
                Box::new(|r: &mut RuleSpec| r.methods = strs(&["GET"])),
                "rules[0].methods",
            ),
            (
                Box::new(|r: &mut RuleSpec| r.hosts = strs(&["a b"])),
                "rules[0].hosts",
            ),
            (
                Box::new(|r: &mut RuleSpec| r.dest = strs(&["10.0.0.0/33"])),
                "rules[0].dest",
            ),
            (
                Box::new(|r: &mut RuleSpec| r.clients = strs(&["x"])),
                "rules[0].clients",
            ),
            (
                Box::new(|r: &mut RuleSpec| r.ports = strs(&["1-0"])),
                "rules[0].ports",
            ),
        ] {
            let mut s = Setup::new();
            let mut r = rule(Action::Deny);
            edit(&mut r);
            s.cfg.rules = vec![r];
            assert_eq!(s.build().unwrap_err().key, key);
        }
    }
}
