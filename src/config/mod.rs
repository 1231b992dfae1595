//! Configuration: the raw TOML model, its layering (embedded default → `--config` file → flags), and
//! validation into a typed [`Config`] that cannot be invalid.
//!
//! Every error names the key, the value where there is one, and the reason, on one line, so an
//! operator can fix it without reading the source.
//!
//! Here: the typed [`Config`] and its value enums; `keys.rs` the key table, `raw.rs` the raw layer
//! and its layering, `validate.rs` the validation, `print.rs` `--print-config`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::creds::user_db::Sources;
use crate::policy::{Action, Policy, PolicyError, PolicySpec, RuleSpec};

pub mod keys;
mod print;
mod raw;
mod validate;

pub use raw::RawConfig;

/// Negotiate's settings (see `keytab`, `negotiate_*` in `default.toml`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NegotiateConfig {
    /// The keytab; `None`: `KRB5_KTNAME`, else the system keytab.
    pub keytab: Option<std::path::PathBuf>,
    /// The one service principal accepted; `None`: any key in the keytab.
    pub service: Option<String>,
    /// Users are named without their realm.
    pub strip_realm: bool,
    /// The replay cache's directory; `None`: `KRB5RCACHEDIR`, else `/var/tmp`.
    pub rcache_dir: Option<std::path::PathBuf>,
}

/// The TLS listeners' settings (see `listen_tls`, `tls_*` in `default.toml`). `cert` and `key` are
/// set whenever `listen_tls` is not empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsConfig {
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    /// Client certificates must chain to one of these; `None`: none asked for.
    pub client_ca: Option<std::path::PathBuf>,
    /// A verified client certificate's name is the connection's user.
    pub client_cert_user: bool,
    pub handshake_timeout: std::time::Duration,
}

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
    /// Schemes the 407 offers, in order; empty: every scheme whose kind of user file is set.
    pub auth_schemes: Vec<crate::observe::labels::Scheme>,
    /// Digest algorithms offered, one challenge each, in order.
    pub digest_algorithms: Vec<crate::auth::digest::Algorithm>,
    /// How long a Digest nonce is accepted; after it a right answer is told `stale=true`.
    pub digest_nonce_ttl: Duration,
    /// The NetBIOS domain the NTLM challenge names; a type 3 must name it or no domain.
    pub ntlm_domain: String,
    /// Accept NTLMv1 answers (never LM ones).
    pub ntlm_allow_v1: bool,
    /// How long an NTLM handshake may take from type 1 to type 3.
    pub ntlm_handshake: Duration,
    /// How far an NTLMv2 answer's timestamp may be from this clock.
    pub ntlm_clock_skew: Duration,
    /// `ntlm_backend = "winbind"`: the `ntlm_auth` command line each helper runs.
    pub ntlm_auth_command: Vec<String>,
    /// How many `ntlm_auth` helpers (and threads) check type 3s.
    pub ntlm_helpers: usize,
    /// How long a delegated check may take before it fails (and its helper is restarted).
    pub ntlm_helper_timeout: Duration,
    /// Negotiate's keytab, service, names and replay cache.
    pub negotiate: NegotiateConfig,
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
    /// Egress policy as configured; built into an [`policy::Policy`](crate::policy::Policy) at start.
    pub policy: PolicyConfig,
    /// Open client connections in all (0: what the fd limit allows) and per client address (0: no
    /// limit).
    pub max_connections: usize,
    pub max_connections_per_client: u32,
    /// Listeners whose clients (load balancers) start each connection with a PROXY protocol
    /// header, accepted only from `proxy_protocol_from`.
    pub listen_proxy_protocol: Vec<SocketAddr>,
    pub proxy_protocol_from: Vec<String>,
    /// Listeners whose clients speak TLS to the proxy, and its certificate and options.
    pub listen_tls: Vec<SocketAddr>,
    pub tls: TlsConfig,
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
