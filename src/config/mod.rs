//! Configuration: the raw TOML model, its layering (embedded default → `--config` file → flags), and
//! validation into a typed [`Config`] that cannot be invalid.
//!
//! Every error names the key, the value where there is one, and the reason, on one line, so an
//! operator can fix it without reading the source.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::creds::Secret;
use crate::creds::user_db::Sources;
use crate::policy::{Action, Policy, PolicyError, PolicySpec, RuleSpec};

pub mod keys;

/// The configuration `ringgate` runs on when given no arguments; documented key by key in README.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// A configuration problem: which key, and why. Displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("config {origin}: key `{key}`: {reason}")]
    Syntax {
        origin: String,
        key: String,
        reason: String,
    },
    #[error("config key {0}")]
    Policy(crate::policy::PolicyError),
    #[error("config key `{key}` = {value}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// Which io driver each worker's runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IoDriver {
    /// io_uring where the kernel allows it, else epoll (logged once).
    Auto,
    /// io_uring or fail at start.
    Uring,
    /// The legacy readiness driver (epoll).
    Epoll,
}

/// Who resolves upstream names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DnsResolver {
    /// ringgate's own asynchronous resolver (resolv.conf, /etc/hosts), on the workers.
    Own,
    /// getaddrinfo on `resolver_threads` (nsswitch.conf applies).
    System,
}

/// How CONNECT tunnels move their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RelayKind {
    /// socket → pipe → socket with `splice(2)`; the bytes never enter user space.
    Splice,
    /// read/write through one buffer per worker.
    Copy,
}

/// The file format, and one layer of configuration: every key optional, so layers can be merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<Vec<String>>,
    pub workers: Option<usize>,
    pub io_driver: Option<IoDriver>,
    pub relay: Option<RelayKind>,
    pub backlog: Option<u32>,
    pub pipe_size: Option<usize>,
    pub pipe_pool: Option<usize>,
    pub copy_buffer: Option<usize>,
    pub max_head_bytes: Option<usize>,
    pub max_target_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub header_timeout_secs: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub resolver_threads: Option<usize>,
    pub resolver_queue: Option<usize>,
    pub log_level: Option<String>,
    pub realm: Option<String>,
    pub htpasswd: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub htpasswd_plaintext: Option<bool>,
    pub users_watch_secs: Option<u64>,
    pub credential_ttl_secs: Option<u64>,
    pub failed_credential_ttl_secs: Option<u64>,
    pub credential_cache_entries: Option<usize>,
    pub verifier_threads: Option<usize>,
    pub verifier_queue: Option<usize>,
    pub auth_failure_delay_ms: Option<u64>,
    pub auth_failure_delay_max_ms: Option<u64>,
    pub session_ttl_secs: Option<u64>,
    pub auth_guess_rate_per_client: Option<u32>,
    pub max_password_bytes: Option<usize>,
    pub max_challenges_per_connection: Option<u32>,
    pub client_ipv6_prefix: Option<u8>,
    pub discard_body_bytes: Option<u64>,
    pub keepalive_timeout_secs: Option<u64>,
    pub via: Option<String>,
    pub forwarded_for: Option<bool>,
    pub response_timeout_secs: Option<u64>,
    pub upstream_idle_secs: Option<u64>,
    pub upstream_pool_size: Option<usize>,
    pub upstream_pool_per_host: Option<usize>,
    pub open_proxy: Option<bool>,
    pub clients: Option<Vec<String>>,
    pub connect_ports: Option<Vec<String>>,
    pub allow_dest: Option<Vec<String>>,
    pub default_action: Option<Action>,
    pub groups: Option<BTreeMap<String, Vec<String>>>,
    pub rules: Option<Vec<RuleSpec>>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<u32>,
    pub listen_proxy_protocol: Option<Vec<String>>,
    pub proxy_protocol_from: Option<Vec<String>>,
    pub dns_resolver: Option<DnsResolver>,
    pub resolv_conf: Option<String>,
    pub dns_servers: Option<Vec<String>>,
    pub dns_ttl_secs: Option<u64>,
    pub dns_negative_ttl_secs: Option<u64>,
    pub dns_timeout_ms: Option<u64>,
    pub dns_cache_entries: Option<usize>,
    pub bind_source: Option<Vec<String>>,
    pub max_connection_rate_per_client: Option<u32>,
    pub max_tunnels_per_user: Option<u32>,
    pub user_bandwidth_bytes_per_sec: Option<u64>,
    pub admin: Option<String>,
    pub access_log: Option<String>,
    pub access_log_format: Option<crate::observe::log::Format>,
}

/// Smallest pipe the kernel gives (one page).
const MIN_PIPE_SIZE: usize = 4096;

impl RawConfig {
    /// Parses one TOML layer; `origin` names it in errors (a path, or "embedded default").
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let syntax = |key: String, reason: String| ConfigError::Syntax {
            origin: origin.to_owned(),
            key,
            reason,
        };
        let de = toml::de::Deserializer::parse(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(0);
            syntax(format!("(line {line})"), one_line(e.message()))
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            // serde quotes the offending value, and under `users` that holds passwords.
            let reason = if key == "users" || key.starts_with("users[") {
                "expected a list of \"NAME:PASSWORD\" strings".to_owned()
            } else {
                one_line(e.inner().message())
            };
            syntax(key, reason)
        })
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Lays `top` over `self`: every key `top` sets wins.
    pub fn overlay(self, top: RawConfig) -> RawConfig {
        macro_rules! pick {
            ($($f:ident),*) => { RawConfig { $($f: top.$f.or(self.$f)),* } };
        }
        pick!(
            listen,
            workers,
            io_driver,
            relay,
            backlog,
            pipe_size,
            pipe_pool,
            copy_buffer,
            max_head_bytes,
            max_target_bytes,
            max_headers,
            header_timeout_secs,
            connect_timeout_secs,
            idle_timeout_secs,
            shutdown_grace_secs,
            resolver_threads,
            resolver_queue,
            log_level,
            realm,
            htpasswd,
            users,
            htpasswd_plaintext,
            users_watch_secs,
            credential_ttl_secs,
            failed_credential_ttl_secs,
            credential_cache_entries,
            verifier_threads,
            verifier_queue,
            auth_failure_delay_ms,
            auth_failure_delay_max_ms,
            session_ttl_secs,
            auth_guess_rate_per_client,
            max_password_bytes,
            max_challenges_per_connection,
            client_ipv6_prefix,
            discard_body_bytes,
            keepalive_timeout_secs,
            via,
            forwarded_for,
            response_timeout_secs,
            upstream_idle_secs,
            upstream_pool_size,
            upstream_pool_per_host,
            open_proxy,
            clients,
            connect_ports,
            allow_dest,
            default_action,
            groups,
            rules,
            max_connections,
            max_connections_per_client,
            listen_proxy_protocol,
            proxy_protocol_from,
            dns_resolver,
            resolv_conf,
            dns_servers,
            dns_ttl_secs,
            dns_negative_ttl_secs,
            dns_timeout_ms,
            dns_cache_entries,
            bind_source,
            max_connection_rate_per_client,
            max_tunnels_per_user,
            user_bandwidth_bytes_per_sec,
            admin,
            access_log,
            access_log_format
        )
    }

    /// Validates a fully layered config (every key present, as the embedded default guarantees).
    pub fn validate(self, machine: &Machine) -> Result<Config, ConfigError> {
        let listen = req("listen", self.listen)?;
        if listen.is_empty() {
            return Err(invalid("listen", "[]", "at least one address is needed"));
        }
        let listen = socket_addrs("listen", &listen)?;
        let listen_proxy_protocol = socket_addrs(
            "listen_proxy_protocol",
            &req("listen_proxy_protocol", self.listen_proxy_protocol)?,
        )?;
        let proxy_protocol_from = req("proxy_protocol_from", self.proxy_protocol_from)?;
        crate::policy::parse_nets("proxy_protocol_from", &proxy_protocol_from)
            .map_err(ConfigError::Policy)?;
        let workers = match req("workers", self.workers)? {
            0 => machine.cores.max(1),
            n if n > 1024 => return Err(invalid("workers", n, "at most 1024")),
            n => n,
        };
        let pipe_size = req("pipe_size", self.pipe_size)?;
        if pipe_size < MIN_PIPE_SIZE {
            return Err(invalid("pipe_size", pipe_size, "at least 4096 (one page)"));
        }
        if let Some(max) = machine.pipe_max_size
            && pipe_size > max
        {
            return Err(invalid(
                "pipe_size",
                pipe_size,
                &format!("above /proc/sys/fs/pipe-max-size ({max})"),
            ));
        }
        let max_headers = ranged("max_headers", self.max_headers)?;
        let max_head_bytes = ranged("max_head_bytes", self.max_head_bytes)?;
        let max_target_bytes = req("max_target_bytes", self.max_target_bytes)?;
        if max_target_bytes < 16 || max_target_bytes >= max_head_bytes {
            return Err(invalid(
                "max_target_bytes",
                max_target_bytes,
                "at least 16 and below max_head_bytes",
            ));
        }
        let log_level = req("log_level", self.log_level)?;
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid("log_level", &log_level, "not a valid log filter"));
        }
        let realm = req("realm", self.realm)?;
        if realm.is_empty() || realm.chars().count() > 128 || realm.chars().any(char::is_control) {
            return Err(invalid(
                "realm",
                format!("{realm:?}"),
                "1 to 128 characters, no control characters",
            ));
        }
        let users = Sources {
            htpasswd: req("htpasswd", self.htpasswd)?
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            inline: inline_users(req("users", self.users)?)?,
            allow_plain: req("htpasswd_plaintext", self.htpasswd_plaintext)?,
        };
        let delay = ranged("auth_failure_delay_ms", self.auth_failure_delay_ms)?;
        let delay_max = ranged("auth_failure_delay_max_ms", self.auth_failure_delay_max_ms)?;
        if delay_max < delay {
            return Err(invalid(
                "auth_failure_delay_max_ms",
                delay_max,
                "below auth_failure_delay_ms",
            ));
        }
        let watch = ranged("users_watch_secs", self.users_watch_secs)?;
        let credential_ttl = secs("credential_ttl_secs", self.credential_ttl_secs)?;
        // 0: a session lasts as long as the credential that opened it is trusted.
        let session_ttl = match req("session_ttl_secs", self.session_ttl_secs)? {
            0 => None,
            n => Some(secs("session_ttl_secs", Some(n))?),
        };
        let guess_rate = ranged(
            "auth_guess_rate_per_client",
            self.auth_guess_rate_per_client,
        )?;
        if guess_rate > 0 && delay_max == 0 {
            return Err(invalid(
                "auth_guess_rate_per_client",
                guess_rate,
                "needs auth_failure_delay_max_ms above 0 (the longest wait for a spent budget), or 0",
            ));
        }
        let via = req("via", self.via)?;
        if via.len() > 64 || !via.bytes().all(is_via_byte) {
            return Err(invalid(
                "via",
                format!("{via:?}"),
                "up to 64 letters, digits or . _ - : (empty = no Via field)",
            ));
        }
        let pool_size = ranged("upstream_pool_size", self.upstream_pool_size)?;
        let per_host = ranged("upstream_pool_per_host", self.upstream_pool_per_host)?;
        let policy = PolicyConfig {
            open_proxy: req("open_proxy", self.open_proxy)?,
            clients: req("clients", self.clients)?,
            connect_ports: req("connect_ports", self.connect_ports)?,
            allow_dest: req("allow_dest", self.allow_dest)?,
            default_action: req("default_action", self.default_action)?,
            groups: req("groups", self.groups)?,
            rules: req("rules", self.rules)?,
        };
        policy
            .build(!users.is_empty(), &listen)
            .map_err(ConfigError::Policy)?;
        Ok(Config {
            realm,
            users,
            users_watch: (watch > 0).then(|| Duration::from_secs(watch)),
            credential_ttl,
            session_ttl_secs: session_ttl,
            auth_guess_rate_per_client: guess_rate,
            max_password_bytes: ranged("max_password_bytes", self.max_password_bytes)?,
            max_challenges_per_connection: ranged(
                "max_challenges_per_connection",
                self.max_challenges_per_connection,
            )?,
            client_ipv6_prefix: ranged("client_ipv6_prefix", self.client_ipv6_prefix)?,
            failed_credential_ttl: Duration::from_secs(ranged(
                "failed_credential_ttl_secs",
                self.failed_credential_ttl_secs,
            )?),
            credential_cache_entries: ranged(
                "credential_cache_entries",
                self.credential_cache_entries,
            )?,
            verifier_threads: ranged("verifier_threads", self.verifier_threads)?,
            verifier_queue: ranged("verifier_queue", self.verifier_queue)?,
            auth_failure_delay: Duration::from_millis(delay),
            auth_failure_delay_max: Duration::from_millis(delay_max),
            discard_body_bytes: ranged("discard_body_bytes", self.discard_body_bytes)?,
            keepalive_timeout: secs("keepalive_timeout_secs", self.keepalive_timeout_secs)?,
            via: (!via.is_empty()).then_some(via),
            forwarded_for: req("forwarded_for", self.forwarded_for)?,
            response_timeout: secs("response_timeout_secs", self.response_timeout_secs)?,
            upstream_idle: secs("upstream_idle_secs", self.upstream_idle_secs)?,
            upstream_pool_size: pool_size,
            upstream_pool_per_host: per_host.min(pool_size),
            policy,
            listen_proxy_protocol,
            proxy_protocol_from,
            dns_resolver: req("dns_resolver", self.dns_resolver)?,
            resolv_conf: match req("resolv_conf", self.resolv_conf)? {
                p if p.is_empty() || p.contains('\0') => {
                    return Err(invalid(
                        "resolv_conf",
                        format!("{p:?}"),
                        "a file path is needed",
                    ));
                }
                p => p,
            },
            dns_servers: socket_addrs("dns_servers", &req("dns_servers", self.dns_servers)?)?,
            dns_ttl: Duration::from_secs(ranged("dns_ttl_secs", self.dns_ttl_secs)?),
            dns_negative_ttl: Duration::from_secs(ranged(
                "dns_negative_ttl_secs",
                self.dns_negative_ttl_secs,
            )?),
            dns_timeout: Duration::from_millis(ranged("dns_timeout_ms", self.dns_timeout_ms)?),
            dns_cache_entries: ranged("dns_cache_entries", self.dns_cache_entries)?,
            bind_source: source_addrs(&req("bind_source", self.bind_source)?)?,
            max_connection_rate_per_client: req(
                "max_connection_rate_per_client",
                self.max_connection_rate_per_client,
            )?,
            max_tunnels_per_user: req("max_tunnels_per_user", self.max_tunnels_per_user)?,
            access_log: req("access_log", self.access_log)?,
            access_log_format: req("access_log_format", self.access_log_format)?,
            admin: match req("admin", self.admin)?.as_str() {
                "" => None,
                a => Some(socket_addrs("admin", &[a.to_owned()])?[0]),
            },
            user_bandwidth_bytes_per_sec: req(
                "user_bandwidth_bytes_per_sec",
                self.user_bandwidth_bytes_per_sec,
            )?,
            max_connections: ranged("max_connections", self.max_connections)?,
            max_connections_per_client: req(
                "max_connections_per_client",
                self.max_connections_per_client,
            )?,
            listen,
            workers,
            io_driver: req("io_driver", self.io_driver)?,
            relay: req("relay", self.relay)?,
            backlog: positive("backlog", self.backlog)?,
            pipe_size,
            pipe_pool: req("pipe_pool", self.pipe_pool)?,
            copy_buffer: ranged("copy_buffer", self.copy_buffer)?,
            max_head_bytes,
            max_target_bytes,
            max_headers,
            header_timeout: secs("header_timeout_secs", self.header_timeout_secs)?,
            connect_timeout: secs("connect_timeout_secs", self.connect_timeout_secs)?,
            idle_timeout: secs("idle_timeout_secs", self.idle_timeout_secs)?,
            shutdown_grace: Duration::from_secs(ranged(
                "shutdown_grace_secs",
                self.shutdown_grace_secs,
            )?),
            resolver_threads: ranged("resolver_threads", self.resolver_threads)?,
            resolver_queue: ranged("resolver_queue", self.resolver_queue)?,
            log_level,
        })
    }
}

/// Facts of the host that bound some settings; a parameter so validation stays a pure function.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub pipe_max_size: Option<usize>,
}

impl Machine {
    pub fn probe() -> Self {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pipe_max_size: crate::sys::pipe_max_size(),
        }
    }
}

/// The validated configuration every part of ringgate reads. Immutable once built.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub workers: usize,
    pub io_driver: IoDriver,
    pub relay: RelayKind,
    pub backlog: u32,
    pub pipe_size: usize,
    pub pipe_pool: usize,
    pub copy_buffer: usize,
    pub max_head_bytes: usize,
    pub max_target_bytes: usize,
    pub max_headers: usize,
    pub header_timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub resolver_threads: usize,
    /// System resolver lookups waiting for or running on `resolver_threads` at once; beyond: 503.
    pub resolver_queue: usize,
    pub log_level: String,
    /// The protection space named in every `Proxy-Authenticate` challenge.
    pub realm: String,
    /// Where users come from; auth is on when any source is set.
    pub users: Sources,
    /// How often user files are checked for changes; `None`: only on SIGHUP.
    pub users_watch: Option<Duration>,
    pub credential_ttl: Duration,
    /// How long an authenticated connection may omit credentials before it must send them again;
    /// `None`: as long as `credential_ttl` (see [`Config::session_ttl`]).
    pub session_ttl_secs: Option<Duration>,
    /// New wrong guesses per second one client may make across all user names before its new
    /// guesses wait; 0 = no such budget.
    pub auth_guess_rate_per_client: u32,
    /// Longest user name, and longest password, that is checked; longer: 407 without a hash.
    pub max_password_bytes: usize,
    /// 407s one connection may receive; the last one closes it.
    pub max_challenges_per_connection: u32,
    /// IPv6 clients are counted (limits, throttle) by this many leading bits of their address.
    pub client_ipv6_prefix: u8,
    pub failed_credential_ttl: Duration,
    pub credential_cache_entries: usize,
    pub verifier_threads: usize,
    pub verifier_queue: usize,
    pub auth_failure_delay: Duration,
    pub auth_failure_delay_max: Duration,
    pub discard_body_bytes: u64,
    /// How long a kept-alive client connection may wait for its next request.
    pub keepalive_timeout: Duration,
    /// The pseudonym in added `Via` fields; `None`: no `Via` is added.
    pub via: Option<String>,
    /// Whether forwarded requests get an `X-Forwarded-For` with the client's address.
    pub forwarded_for: bool,
    /// How long a forwarded request may wait for the origin's response head.
    pub response_timeout: Duration,
    /// How long an idle origin connection is kept for reuse.
    pub upstream_idle: Duration,
    /// Idle origin connections each worker keeps, in all and per host and port (0 = none).
    pub upstream_pool_size: usize,
    pub upstream_pool_per_host: usize,
    /// Egress policy as configured; built into an [`acl::Policy`](crate::policy::Policy) at start.
    pub policy: PolicyConfig,
    /// Open client connections in all (0: what the fd limit allows) and per client address (0: no
    /// limit).
    pub max_connections: usize,
    pub max_connections_per_client: u32,
    /// Listeners whose clients (load balancers) start each connection with a PROXY protocol
    /// header, accepted only from `proxy_protocol_from`.
    pub listen_proxy_protocol: Vec<SocketAddr>,
    pub proxy_protocol_from: Vec<String>,
    /// Own resolver (resolv.conf, /etc/hosts, on the workers) or `getaddrinfo`.
    pub dns_resolver: DnsResolver,
    /// The resolv.conf the own resolver reads (name servers, search list, options).
    pub resolv_conf: String,
    /// Name servers the own resolver asks instead of resolv.conf's; empty: resolv.conf's.
    pub dns_servers: Vec<SocketAddr>,
    /// How long a system resolver answer is kept (it has no TTL of its own).
    pub dns_ttl: Duration,
    pub dns_negative_ttl: Duration,
    /// How long one name server has to answer.
    pub dns_timeout: Duration,
    pub dns_cache_entries: usize,
    /// Local addresses upstream connections are made from, in turn per family; empty: the
    /// kernel chooses.
    pub bind_source: Vec<IpAddr>,
    /// New connections per second from one client address (0: no limit).
    pub max_connection_rate_per_client: u32,
    /// Open tunnels of one authenticated user (0: no limit).
    pub max_tunnels_per_user: u32,
    /// Tunnel bytes per second of one authenticated user, both directions (0: no limit).
    pub user_bandwidth_bytes_per_sec: u64,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None`: nowhere.
    pub admin: Option<SocketAddr>,
    /// `""`: no access log; `"stdout"`, or a file path.
    pub access_log: String,
    pub access_log_format: crate::observe::log::Format,
}

/// The policy keys, validated (a [`Policy`] was built from them once).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub open_proxy: bool,
    pub clients: Vec<String>,
    pub connect_ports: Vec<String>,
    pub allow_dest: Vec<String>,
    pub default_action: Action,
    pub groups: BTreeMap<String, Vec<String>>,
    pub rules: Vec<RuleSpec>,
}

impl PolicyConfig {
    /// The policy for a proxy listening on `listen` (the bound addresses: port 0 resolved).
    pub fn build(&self, auth_on: bool, listen: &[SocketAddr]) -> Result<Policy, PolicyError> {
        Policy::new(&PolicySpec {
            auth_on,
            open_proxy: self.open_proxy,
            clients: &self.clients,
            connect_ports: &self.connect_ports,
            allow_dest: &self.allow_dest,
            default_action: self.default_action,
            groups: &self.groups,
            rules: &self.rules,
            listen,
        })
    }
}

impl Config {
    /// How long a session lasts: `session_ttl_secs`, or `credential_ttl_secs` when that is 0.
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl_secs.unwrap_or(self.credential_ttl)
    }

    /// Layers the embedded default, an optional file and the flags' layer, then validates.
    pub fn load(
        file: Option<&Path>,
        flags: RawConfig,
        machine: &Machine,
    ) -> Result<Config, ConfigError> {
        let mut raw = RawConfig::parse(EMBEDDED_DEFAULT, "embedded default")?;
        if let Some(path) = file {
            raw = raw.overlay(RawConfig::from_file(path)?);
        }
        raw.overlay(flags).validate(machine)
    }

    /// The effective configuration as TOML (what `--print-config` shows); it parses back to `self`.
    pub fn to_toml(&self) -> String {
        let raw = RawConfig {
            listen: Some(self.listen.iter().map(ToString::to_string).collect()),
            workers: Some(self.workers),
            io_driver: Some(self.io_driver),
            relay: Some(self.relay),
            backlog: Some(self.backlog),
            pipe_size: Some(self.pipe_size),
            pipe_pool: Some(self.pipe_pool),
            copy_buffer: Some(self.copy_buffer),
            max_head_bytes: Some(self.max_head_bytes),
            max_target_bytes: Some(self.max_target_bytes),
            max_headers: Some(self.max_headers),
            header_timeout_secs: Some(self.header_timeout.as_secs()),
            connect_timeout_secs: Some(self.connect_timeout.as_secs()),
            idle_timeout_secs: Some(self.idle_timeout.as_secs()),
            shutdown_grace_secs: Some(self.shutdown_grace.as_secs()),
            resolver_threads: Some(self.resolver_threads),
            resolver_queue: Some(self.resolver_queue),
            log_level: Some(self.log_level.clone()),
            realm: Some(self.realm.clone()),
            htpasswd: Some(
                self.users
                    .htpasswd
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            ),
            // Passwords are never printed; the comment below says what was left out.
            users: Some(Vec::new()),
            htpasswd_plaintext: Some(self.users.allow_plain),
            users_watch_secs: Some(self.users_watch.map_or(0, |d| d.as_secs())),
            credential_ttl_secs: Some(self.credential_ttl.as_secs()),
            failed_credential_ttl_secs: Some(self.failed_credential_ttl.as_secs()),
            credential_cache_entries: Some(self.credential_cache_entries),
            verifier_threads: Some(self.verifier_threads),
            verifier_queue: Some(self.verifier_queue),
            auth_failure_delay_ms: Some(self.auth_failure_delay.as_millis() as u64),
            auth_failure_delay_max_ms: Some(self.auth_failure_delay_max.as_millis() as u64),
            session_ttl_secs: Some(self.session_ttl_secs.map_or(0, |d| d.as_secs())),
            auth_guess_rate_per_client: Some(self.auth_guess_rate_per_client),
            max_password_bytes: Some(self.max_password_bytes),
            max_challenges_per_connection: Some(self.max_challenges_per_connection),
            client_ipv6_prefix: Some(self.client_ipv6_prefix),
            discard_body_bytes: Some(self.discard_body_bytes),
            keepalive_timeout_secs: Some(self.keepalive_timeout.as_secs()),
            via: Some(self.via.clone().unwrap_or_default()),
            forwarded_for: Some(self.forwarded_for),
            response_timeout_secs: Some(self.response_timeout.as_secs()),
            upstream_idle_secs: Some(self.upstream_idle.as_secs()),
            upstream_pool_size: Some(self.upstream_pool_size),
            upstream_pool_per_host: Some(self.upstream_pool_per_host),
            open_proxy: Some(self.policy.open_proxy),
            clients: Some(self.policy.clients.clone()),
            connect_ports: Some(self.policy.connect_ports.clone()),
            allow_dest: Some(self.policy.allow_dest.clone()),
            default_action: Some(self.policy.default_action),
            groups: Some(self.policy.groups.clone()),
            rules: Some(self.policy.rules.clone()),
            max_connections: Some(self.max_connections),
            max_connections_per_client: Some(self.max_connections_per_client),
            listen_proxy_protocol: Some(
                self.listen_proxy_protocol
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
            proxy_protocol_from: Some(self.proxy_protocol_from.clone()),
            dns_resolver: Some(self.dns_resolver),
            resolv_conf: Some(self.resolv_conf.clone()),
            dns_servers: Some(self.dns_servers.iter().map(ToString::to_string).collect()),
            dns_ttl_secs: Some(self.dns_ttl.as_secs()),
            dns_negative_ttl_secs: Some(self.dns_negative_ttl.as_secs()),
            dns_timeout_ms: Some(self.dns_timeout.as_millis() as u64),
            dns_cache_entries: Some(self.dns_cache_entries),
            bind_source: Some(self.bind_source.iter().map(ToString::to_string).collect()),
            max_connection_rate_per_client: Some(self.max_connection_rate_per_client),
            max_tunnels_per_user: Some(self.max_tunnels_per_user),
            user_bandwidth_bytes_per_sec: Some(self.user_bandwidth_bytes_per_sec),
            admin: Some(self.admin.map(|a| a.to_string()).unwrap_or_default()),
            access_log: Some(self.access_log.clone()),
            access_log_format: Some(self.access_log_format),
        };
        let mut out = String::new();
        if !self.users.inline.is_empty() {
            let names: Vec<&str> = self.users.inline.iter().map(|(n, _)| n.as_str()).collect();
            out.push_str(&format!(
                "# users: {} given ({}) but not shown: passwords are never printed\n",
                names.len(),
                names.join(", ")
            ));
        }
        match toml::to_string(&raw) {
            Ok(text) => out.push_str(&text),
            Err(e) => out.push_str(&format!("# cannot render config: {e}\n")),
        }
        out
    }
}

/// `NAME:PASSWORD` entries. Errors name the entry by position and user, never the password.
fn inline_users(entries: Vec<String>) -> Result<Vec<(String, Secret)>, ConfigError> {
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let bad = |why: &str| invalid("users", format!("entry {}", i + 1), why);
            let (name, password) = entry
                .split_once(':')
                .ok_or_else(|| bad("expected NAME:PASSWORD"))?;
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(bad("user name empty or with control characters"));
            }
            Ok((name.to_owned(), Secret::new(password.as_bytes())))
        })
        .collect()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn invalid(key: &'static str, value: impl fmt::Display, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

fn socket_addrs(key: &'static str, list: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .map(|a| {
            a.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    key,
                    a,
                    "not an IP:port address (IPv6 in brackets: [::1]:3128)",
                )
            })
        })
        .collect()
}

/// `bind_source`: unicast addresses, each at most once.
fn source_addrs(list: &[String]) -> Result<Vec<IpAddr>, ConfigError> {
    let mut addrs: Vec<IpAddr> = Vec::with_capacity(list.len());
    for a in list {
        let ip = a
            .parse::<IpAddr>()
            .map_err(|_| invalid("bind_source", a, "not an IP address (no port)"))?;
        if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
            return Err(invalid("bind_source", a, "not a unicast address"));
        }
        if let IpAddr::V6(v6) = ip {
            if v6.to_ipv4_mapped().is_some() {
                return Err(invalid(
                    "bind_source",
                    a,
                    "an IPv4-mapped address: write the IPv4 one",
                ));
            }
            if v6.is_unicast_link_local() {
                return Err(invalid(
                    "bind_source",
                    a,
                    "link-local: needs a scope, not supported",
                ));
            }
        }
        if addrs.contains(&ip) {
            return Err(invalid("bind_source", a, "listed twice"));
        }
        addrs.push(ip);
    }
    Ok(addrs)
}

fn req<T>(key: &'static str, v: Option<T>) -> Result<T, ConfigError> {
    v.ok_or_else(|| invalid(key, "(missing)", "required"))
}

fn positive(key: &'static str, v: Option<u32>) -> Result<u32, ConfigError> {
    match req(key, v)? {
        0 => Err(invalid(key, 0, "must be at least 1")),
        n => Ok(n),
    }
}

/// A number within the range the key table gives `key`.
fn ranged<T: Copy + fmt::Display + TryInto<u64>>(
    key: &'static str,
    v: Option<T>,
) -> Result<T, ConfigError> {
    let n = req(key, v)?;
    // A key validated here without a range in the table fails the embedded default's own test.
    let Some((lo, hi)) = keys::get(key).and_then(|k| k.range) else {
        return Err(invalid(key, n, "no range in the key table"));
    };
    match n.try_into() {
        Ok(x) if (lo..=hi).contains(&x) => Ok(n),
        _ => Err(invalid(key, n, &format!("between {lo} and {hi}"))),
    }
}

/// Bytes allowed in the `Via` pseudonym (a `token`, RFC 9110 §7.6.3, narrowed to the usual ones).
fn is_via_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':')
}

fn secs(key: &'static str, v: Option<u64>) -> Result<Duration, ConfigError> {
    match req(key, v)? {
        0 => Err(invalid(key, 0, "must be at least 1 second")),
        n if n > 7 * 24 * 3600 => Err(invalid(key, n, "at most 604800 (one week)")),
        n => Ok(Duration::from_secs(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cores: 2,
            pipe_max_size: Some(1 << 20),
        }
    }

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let base = RawConfig::parse(EMBEDDED_DEFAULT, "embedded default").unwrap();
        base.overlay(RawConfig::parse(text, "test.toml")?)
            .validate(&machine())
    }

    #[test]
    fn embedded_default_sets_every_key_and_validates() {
        // Every key the full config has is set (and so documented) in default.toml, and no other.
        let keys = |text: &str| -> Vec<String> {
            text.parse::<toml::Table>()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(
            keys(EMBEDDED_DEFAULT),
            keys(&load_text("").unwrap().to_toml())
        );
        let c = load_text("").unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:3128".parse().unwrap()]);
        assert_eq!(c.workers, 2);
        assert_eq!(c.max_head_bytes, 16384);
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.pipe_size, 262144);
        assert_eq!(c.dns_resolver, DnsResolver::Own);
        assert_eq!(c.resolv_conf, "/etc/resolv.conf");
    }

    #[test]
    fn printed_config_parses_back_to_itself() {
        let c = load_text("listen = [\"[::1]:8080\", \"127.0.0.1:0\"]\nrelay = \"copy\"").unwrap();
        let again = load_text(&c.to_toml()).unwrap();
        assert_eq!(c, again);
    }

    #[test]
    fn passwords_are_never_printed_or_echoed_in_errors() {
        let c = load_text("users = [\"alice:s3cr3t:x\"]").unwrap();
        assert_eq!(c.users.inline[0].0, "alice");
        assert!(
            c.users.inline[0].1.ct_eq(b"s3cr3t:x"),
            "split at the first colon"
        );
        let printed = c.to_toml();
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.starts_with("# users: 1 given (alice)"), "{printed}");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let err = load_text("users = [\"ok:pw\", \"s3cr3t\"]")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t") && err.contains("entry 2"), "{err}");
    }

    #[test]
    fn later_layers_win() {
        let base = RawConfig::parse(EMBEDDED_DEFAULT, "d").unwrap();
        let file = RawConfig::parse("workers = 3\nbacklog = 10", "f").unwrap();
        let flags = RawConfig {
            workers: Some(1),
            ..RawConfig::default()
        };
        let c = base
            .overlay(file)
            .overlay(flags)
            .validate(&machine())
            .unwrap();
        assert_eq!((c.workers, c.backlog), (1, 10));
    }

    /// One row per bad input: the text and the key its error must name.
    #[test]
    fn bad_configs_name_their_key() {
        let rows: &[(&str, &str)] = &[
            ("workers = \"many\"", "workers"),
            ("workers = -1", "workers"),
            ("wrokers = 2", "wrokers"),
            ("listen = [\"localhost\"]", "listen"),
            ("listen = []", "listen"),
            ("listen = \"127.0.0.1:1\"", "listen"),
            ("io_driver = \"kqueue\"", "io_driver"),
            ("relay = \"teleport\"", "relay"),
            ("backlog = 0", "backlog"),
            ("pipe_size = 100", "pipe_size"),
            ("pipe_size = 4194304", "pipe_size"),
            ("max_headers = 0", "max_headers"),
            ("max_headers = 100000", "max_headers"),
            ("max_head_bytes = 10", "max_head_bytes"),
            ("max_target_bytes = 99999", "max_target_bytes"),
            ("header_timeout_secs = 0", "header_timeout_secs"),
            ("connect_timeout_secs = 0", "connect_timeout_secs"),
            ("idle_timeout_secs = 99999999", "idle_timeout_secs"),
            ("resolver_threads = 0", "resolver_threads"),
            ("resolver_queue = 0", "resolver_queue"),
            ("dns_resolver = \"bind\"", "dns_resolver"),
            ("resolv_conf = \"\"", "resolv_conf"),
            ("resolv_conf = 1", "resolv_conf"),
            (
                "shutdown_grace_secs = 18446744073709551615",
                "shutdown_grace_secs",
            ),
            ("copy_buffer = 1", "copy_buffer"),
            ("log_level = \"info,[\"", "log_level"),
            ("realm = \"\"", "realm"),
            ("realm = \"a\\nb\"", "realm"),
            ("users = [\"nocolon\"]", "users"),
            ("users = [\":pw\"]", "users"),
            ("htpasswd = \"/etc/x\"", "htpasswd"),
            ("credential_ttl_secs = 0", "credential_ttl_secs"),
            (
                "failed_credential_ttl_secs = 4000",
                "failed_credential_ttl_secs",
            ),
            ("credential_cache_entries = 0", "credential_cache_entries"),
            ("verifier_threads = 0", "verifier_threads"),
            ("verifier_queue = 0", "verifier_queue"),
            (
                "auth_failure_delay_ms = 100\nauth_failure_delay_max_ms = 10",
                "auth_failure_delay_max_ms",
            ),
            ("users_watch_secs = 99999", "users_watch_secs"),
            ("keepalive_timeout_secs = 0", "keepalive_timeout_secs"),
            ("discard_body_bytes = -1", "discard_body_bytes"),
            ("via = \"a b\"", "via"),
            ("listen_proxy_protocol = [\"x\"]", "listen_proxy_protocol"),
            ("dns_servers = [\"8.8.8.8\"]", "dns_servers"),
            ("dns_timeout_ms = 0", "dns_timeout_ms"),
            ("dns_cache_entries = 0", "dns_cache_entries"),
            ("bind_source = [\"10.0.0.1:80\"]", "bind_source"),
            ("bind_source = [\"0.0.0.0\"]", "bind_source"),
            ("bind_source = [\"::1\", \"::1\"]", "bind_source"),
            ("bind_source = [\"::ffff:10.0.0.1\"]", "bind_source"),
            ("bind_source = [\"fe80::1\"]", "bind_source"),
            (
                "proxy_protocol_from = [\"10.0.0.0/99\"]",
                "proxy_protocol_from",
            ),
            ("via = \"a\\r\\nX: y\"", "via"),
            ("response_timeout_secs = 0", "response_timeout_secs"),
            ("upstream_idle_secs = 0", "upstream_idle_secs"),
            ("upstream_pool_size = -1", "upstream_pool_size"),
            ("clients = [\"10.0.0.0/8\"]", "clients"),
            ("connect_ports = [\"0\"]", "connect_ports"),
            ("allow_dest = [\"nonsense\"]", "allow_dest"),
            ("default_action = \"maybe\"", "default_action"),
            (
                "[[rules]]\naction = \"deny\"\ngroups = [\"g\"]",
                "rules[0].groups",
            ),
            ("[[rules]]\naction = \"deny\"\ncolour = \"red\"", "rules"),
            ("workers = ", "line 1"),
        ];
        for (text, key) in rows {
            let err = load_text(text).expect_err(text).to_string();
            assert!(err.contains(key), "{text:?} → {err:?} does not name {key}");
            assert!(!err.contains('\n'), "{text:?} → multi-line error {err:?}");
        }
    }

    /// Validation takes its ranges from the key table: just past either end fails naming the key.
    #[test]
    fn numbers_outside_the_key_tables_range_name_their_key() {
        let mut checked = 0;
        for key in keys::KEYS {
            let Some((lo, hi)) = key.range else { continue };
            let outside = [lo.checked_sub(1), hi.checked_add(1)];
            for n in outside.into_iter().flatten() {
                let text = format!("{} = {n}", key.name);
                let err = load_text(&text).expect_err(&text).to_string();
                let named = format!("`{}` = {n}: between {lo} and {hi}", key.name);
                assert!(err.contains(&named), "{text:?} → {err:?}");
            }
            checked += 1;
        }
        assert!(checked > 20, "{checked} ranged keys");
    }

    #[test]
    fn example_configs_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let base = RawConfig::parse(EMBEDDED_DEFAULT, "d").unwrap();
                let file = RawConfig::from_file(&path).unwrap();
                base.overlay(file).validate(&machine()).unwrap();
            }
        }
    }
}
