//! Validation: a fully layered [`RawConfig`] into a typed [`Config`] that cannot be invalid.
//!
//! [`RawConfig::validate`] takes the keys concern by concern (listeners, workers and pipes, head
//! limits, authentication, forwarding, policy, name resolution); each step checks its keys and
//! the rules between them, and every error names the key, the value and the reason.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::{
    Config, ConfigError, Machine, NegotiateConfig, PolicyConfig, RawConfig, TlsConfig, keys,
};
use crate::auth::digest::Algorithm;
use crate::creds::Secret;
use crate::creds::user_db::Sources;
use crate::observe::labels::Scheme;

/// Smallest pipe the kernel gives (one page).
const MIN_PIPE_SIZE: usize = 4096;

impl RawConfig {
    /// Validates a fully layered config (every key present, as the embedded default guarantees).
    pub fn validate(mut self, machine: &Machine) -> Result<Config, ConfigError> {
        let listeners = listeners(&mut self)?;
        let workers = workers(self.workers.take(), machine)?;
        let pipe_size = pipe_size(self.pipe_size.take(), machine)?;
        let head = head_limits(&mut self)?;
        let log_level = log_level(self.log_level.take())?;
        let auth = auth(&mut self)?;
        let forwarding = forwarding(&mut self)?;
        // A client certificate that names a user authenticates as a password does.
        let auth_on = !auth.users.is_empty() || listeners.tls.client_cert_user;
        let policy = policy(&mut self, auth_on, &listeners.listen)?;
        let dns = dns(&mut self)?;
        Ok(Config {
            realm: auth.realm,
            auth_schemes: auth.schemes,
            digest_algorithms: auth.digest_algorithms,
            digest_nonce_ttl: auth.digest_nonce_ttl,
            ntlm_domain: auth.ntlm_domain,
            ntlm_allow_v1: auth.ntlm_allow_v1,
            ntlm_handshake: auth.ntlm_handshake,
            ntlm_clock_skew: auth.ntlm_clock_skew,
            ntlm_auth_command: auth.ntlm_auth_command,
            ntlm_helpers: auth.ntlm_helpers,
            ntlm_helper_timeout: auth.ntlm_helper_timeout,
            negotiate: auth.negotiate,
            users: auth.users,
            users_watch: auth.users_watch,
            credential_ttl: auth.credential_ttl,
            session_ttl_secs: auth.session_ttl,
            auth_guess_rate_per_client: auth.guess_rate,
            max_password_bytes: auth.max_password_bytes,
            max_challenges_per_connection: auth.max_challenges_per_connection,
            client_ipv6_prefix: auth.client_ipv6_prefix,
            failed_credential_ttl: auth.failed_credential_ttl,
            credential_cache_entries: auth.credential_cache_entries,
            verifier_threads: auth.verifier_threads,
            verifier_queue: auth.verifier_queue,
            auth_failure_delay: auth.delay,
            auth_failure_delay_max: auth.delay_max,
            discard_body_bytes: forwarding.discard_body_bytes,
            keepalive_timeout: forwarding.keepalive_timeout,
            via: forwarding.via,
            forwarded_for: forwarding.forwarded_for,
            response_timeout: forwarding.response_timeout,
            upstream_idle: forwarding.upstream_idle,
            upstream_pool_size: forwarding.pool_size,
            upstream_pool_per_host: forwarding.per_host,
            policy,
            listen_proxy_protocol: listeners.listen_proxy_protocol,
            proxy_protocol_from: listeners.proxy_protocol_from,
            listen_tls: listeners.listen_tls,
            tls: listeners.tls,
            dns_resolver: dns.resolver,
            resolv_conf: dns.resolv_conf,
            dns_servers: dns.servers,
            dns_ttl: dns.ttl,
            dns_negative_ttl: dns.negative_ttl,
            dns_timeout: dns.timeout,
            dns_cache_entries: dns.cache_entries,
            bind_source: dns.bind_source,
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
            listen: listeners.listen,
            workers,
            io_driver: req("io_driver", self.io_driver)?,
            relay: req("relay", self.relay)?,
            backlog: positive("backlog", self.backlog)?,
            pipe_size,
            pipe_pool: req("pipe_pool", self.pipe_pool)?,
            copy_buffer: ranged("copy_buffer", self.copy_buffer)?,
            max_head_bytes: head.max_head_bytes,
            max_target_bytes: head.max_target_bytes,
            max_headers: head.max_headers,
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

/// The client-facing sockets: `listen`, and the PROXY protocol listeners and their sources.
struct Listeners {
    listen: Vec<SocketAddr>,
    listen_proxy_protocol: Vec<SocketAddr>,
    proxy_protocol_from: Vec<String>,
    listen_tls: Vec<SocketAddr>,
    tls: TlsConfig,
}

fn listeners(raw: &mut RawConfig) -> Result<Listeners, ConfigError> {
    let listen = req("listen", raw.listen.take())?;
    if listen.is_empty() {
        return Err(invalid("listen", "[]", "at least one address is needed"));
    }
    let listen = socket_addrs("listen", &listen)?;
    let listen_proxy_protocol = socket_addrs(
        "listen_proxy_protocol",
        &req("listen_proxy_protocol", raw.listen_proxy_protocol.take())?,
    )?;
    let proxy_protocol_from = req("proxy_protocol_from", raw.proxy_protocol_from.take())?;
    crate::policy::parse_nets("proxy_protocol_from", &proxy_protocol_from)
        .map_err(ConfigError::Policy)?;
    let listen_tls = socket_addrs("listen_tls", &req("listen_tls", raw.listen_tls.take())?)?;
    let tls = tls(raw, !listen_tls.is_empty())?;
    Ok(Listeners {
        listen,
        listen_proxy_protocol,
        proxy_protocol_from,
        listen_tls,
        tls,
    })
}

/// The TLS keys: a certificate and key exactly when there are TLS listeners; a client-certificate
/// user only with a CA to verify its certificate.
fn tls(raw: &mut RawConfig, listening: bool) -> Result<TlsConfig, ConfigError> {
    let path = |v: String| (!v.is_empty()).then(|| PathBuf::from(v));
    let tls = TlsConfig {
        cert: path(req("tls_cert", raw.tls_cert.take())?),
        key: path(req("tls_key", raw.tls_key.take())?),
        client_ca: path(req("tls_client_ca", raw.tls_client_ca.take())?),
        client_cert_user: req("tls_client_cert_user", raw.tls_client_cert_user.take())?,
        handshake_timeout: Duration::from_secs(ranged(
            "tls_handshake_timeout_secs",
            raw.tls_handshake_timeout_secs.take(),
        )?),
    };
    if listening {
        for (key, v) in [("tls_cert", &tls.cert), ("tls_key", &tls.key)] {
            if v.is_none() {
                return Err(invalid(
                    key,
                    "\"\"",
                    "listen_tls needs a certificate and its key",
                ));
            }
        }
    } else if let Some((key, _)) = [
        ("tls_cert", tls.cert.is_some()),
        ("tls_key", tls.key.is_some()),
        ("tls_client_ca", tls.client_ca.is_some()),
        ("tls_client_cert_user", tls.client_cert_user),
    ]
    .into_iter()
    .find(|(_, set)| *set)
    {
        return Err(invalid(
            key,
            "set",
            "only TLS listeners use it: add listen_tls",
        ));
    }
    if tls.client_cert_user && tls.client_ca.is_none() {
        return Err(invalid(
            "tls_client_cert_user",
            true,
            "needs tls_client_ca to verify the certificates it names users by",
        ));
    }
    Ok(tls)
}

/// `workers`: 0 is one per core.
fn workers(v: Option<usize>, machine: &Machine) -> Result<usize, ConfigError> {
    match req("workers", v)? {
        0 => Ok(machine.cores.max(1)),
        n if n > 1024 => Err(invalid("workers", n, "at most 1024")),
        n => Ok(n),
    }
}

/// `pipe_size`: at least a page, at most what the kernel lets an unprivileged process ask for.
fn pipe_size(v: Option<usize>, machine: &Machine) -> Result<usize, ConfigError> {
    let pipe_size = req("pipe_size", v)?;
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
    Ok(pipe_size)
}

/// The request head's limits; the target must fit in the head.
struct HeadLimits {
    max_headers: usize,
    max_head_bytes: usize,
    max_target_bytes: usize,
}

fn head_limits(raw: &mut RawConfig) -> Result<HeadLimits, ConfigError> {
    let max_headers = ranged("max_headers", raw.max_headers.take())?;
    let max_head_bytes = ranged("max_head_bytes", raw.max_head_bytes.take())?;
    let max_target_bytes = req("max_target_bytes", raw.max_target_bytes.take())?;
    if max_target_bytes < 16 || max_target_bytes >= max_head_bytes {
        return Err(invalid(
            "max_target_bytes",
            max_target_bytes,
            "at least 16 and below max_head_bytes",
        ));
    }
    Ok(HeadLimits {
        max_headers,
        max_head_bytes,
        max_target_bytes,
    })
}

fn log_level(v: Option<String>) -> Result<String, ConfigError> {
    let log_level = req("log_level", v)?;
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(invalid("log_level", &log_level, "not a valid log filter"));
    }
    Ok(log_level)
}

/// Users, the credential cache and verifier, sessions and the throttle.
struct Auth {
    realm: String,
    schemes: Vec<Scheme>,
    digest_algorithms: Vec<Algorithm>,
    digest_nonce_ttl: Duration,
    ntlm_domain: String,
    ntlm_allow_v1: bool,
    ntlm_handshake: Duration,
    ntlm_clock_skew: Duration,
    ntlm_auth_command: Vec<String>,
    ntlm_helpers: usize,
    ntlm_helper_timeout: Duration,
    negotiate: NegotiateConfig,
    users: Sources,
    users_watch: Option<Duration>,
    credential_ttl: Duration,
    session_ttl: Option<Duration>,
    guess_rate: u32,
    max_password_bytes: usize,
    max_challenges_per_connection: u32,
    client_ipv6_prefix: u8,
    failed_credential_ttl: Duration,
    credential_cache_entries: usize,
    verifier_threads: usize,
    verifier_queue: usize,
    delay: Duration,
    delay_max: Duration,
}

fn auth(raw: &mut RawConfig) -> Result<Auth, ConfigError> {
    let realm = realm(raw.realm.take())?;
    let users = Sources {
        htpasswd: req("htpasswd", raw.htpasswd.take())?
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        inline: inline_users(req("users", raw.users.take())?)?,
        allow_plain: req("htpasswd_plaintext", raw.htpasswd_plaintext.take())?,
        htdigest: req("htdigest", raw.htdigest.take())?
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        ntlm: req("ntlm_users", raw.ntlm_users.take())?
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        ntlm_delegated: match req("ntlm_backend", raw.ntlm_backend.take())?.as_str() {
            "local" => false,
            "winbind" => true,
            other => {
                return Err(invalid(
                    "ntlm_backend",
                    format!("{other:?}"),
                    "local or winbind",
                ));
            }
        },
        realm: realm.clone(),
        negotiate: false,
    };
    let negotiate = negotiate(raw)?;
    let mut users = users;
    let scheme_names = req("auth_schemes", raw.auth_schemes.take())?;
    users.negotiate =
        negotiate.keytab.is_some() || scheme_names.iter().any(|n| n == Scheme::Negotiate.name());
    if users.negotiate && !cfg!(feature = "negotiate") {
        return Err(invalid(
            "auth_schemes",
            "negotiate",
            "this build has no Negotiate (cargo feature negotiate)",
        ));
    }
    let schemes = schemes(scheme_names, &users)?;
    let digest_algorithms =
        digest_algorithms(req("digest_algorithms", raw.digest_algorithms.take())?)?;
    let digest_nonce_ttl = Duration::from_secs(ranged(
        "digest_nonce_ttl_secs",
        raw.digest_nonce_ttl_secs.take(),
    )?);
    if users.ntlm_delegated && !users.ntlm.is_empty() {
        return Err(invalid(
            "ntlm_users",
            "(set)",
            "is for ntlm_backend = \"local\"; with winbind, Samba holds the users",
        ));
    }
    let ntlm_auth_command = req("ntlm_auth_command", raw.ntlm_auth_command.take())?;
    if ntlm_auth_command.is_empty() || ntlm_auth_command[0].is_empty() {
        return Err(invalid(
            "ntlm_auth_command",
            "[]",
            "needs at least the program",
        ));
    }
    let ntlm_helpers = ranged("ntlm_helpers", raw.ntlm_helpers.take())?;
    let ntlm_helper_timeout = Duration::from_secs(ranged(
        "ntlm_helper_timeout_secs",
        raw.ntlm_helper_timeout_secs.take(),
    )?);
    let ntlm_domain = ntlm_domain(req("ntlm_domain", raw.ntlm_domain.take())?)?;
    let ntlm_allow_v1 = req("ntlm_allow_v1", raw.ntlm_allow_v1.take())?;
    let ntlm_handshake = Duration::from_secs(ranged(
        "ntlm_handshake_secs",
        raw.ntlm_handshake_secs.take(),
    )?);
    let ntlm_clock_skew = Duration::from_secs(ranged(
        "ntlm_clock_skew_secs",
        raw.ntlm_clock_skew_secs.take(),
    )?);
    let delay = ranged("auth_failure_delay_ms", raw.auth_failure_delay_ms.take())?;
    let delay_max = ranged(
        "auth_failure_delay_max_ms",
        raw.auth_failure_delay_max_ms.take(),
    )?;
    if delay_max < delay {
        return Err(invalid(
            "auth_failure_delay_max_ms",
            delay_max,
            "below auth_failure_delay_ms",
        ));
    }
    let watch = ranged("users_watch_secs", raw.users_watch_secs.take())?;
    let credential_ttl = secs("credential_ttl_secs", raw.credential_ttl_secs.take())?;
    // 0: a session lasts as long as the credential that opened it is trusted.
    let session_ttl = match req("session_ttl_secs", raw.session_ttl_secs.take())? {
        0 => None,
        n => Some(secs("session_ttl_secs", Some(n))?),
    };
    let guess_rate = ranged(
        "auth_guess_rate_per_client",
        raw.auth_guess_rate_per_client.take(),
    )?;
    if guess_rate > 0 && delay_max == 0 {
        return Err(invalid(
            "auth_guess_rate_per_client",
            guess_rate,
            "needs auth_failure_delay_max_ms above 0 (the longest wait for a spent budget), or 0",
        ));
    }
    Ok(Auth {
        realm,
        schemes,
        digest_algorithms,
        digest_nonce_ttl,
        ntlm_domain,
        ntlm_allow_v1,
        ntlm_handshake,
        ntlm_clock_skew,
        ntlm_auth_command,
        ntlm_helpers,
        ntlm_helper_timeout,
        negotiate,
        users,
        users_watch: (watch > 0).then(|| Duration::from_secs(watch)),
        credential_ttl,
        session_ttl,
        guess_rate,
        max_password_bytes: ranged("max_password_bytes", raw.max_password_bytes.take())?,
        max_challenges_per_connection: ranged(
            "max_challenges_per_connection",
            raw.max_challenges_per_connection.take(),
        )?,
        client_ipv6_prefix: ranged("client_ipv6_prefix", raw.client_ipv6_prefix.take())?,
        failed_credential_ttl: Duration::from_secs(ranged(
            "failed_credential_ttl_secs",
            raw.failed_credential_ttl_secs.take(),
        )?),
        credential_cache_entries: ranged(
            "credential_cache_entries",
            raw.credential_cache_entries.take(),
        )?,
        verifier_threads: ranged("verifier_threads", raw.verifier_threads.take())?,
        verifier_queue: ranged("verifier_queue", raw.verifier_queue.take())?,
        delay: Duration::from_millis(delay),
        delay_max: Duration::from_millis(delay_max),
    })
}

/// `auth_schemes`: known names, each once, each with a user source that can answer it.
fn schemes(names: Vec<String>, users: &Sources) -> Result<Vec<Scheme>, ConfigError> {
    let mut out = Vec::new();
    for name in &names {
        let Some(scheme) = Scheme::ALL
            .into_iter()
            .filter(|s| *s != Scheme::Certificate)
            .find(|s| s.name() == name.as_str())
        else {
            return Err(invalid(
                "auth_schemes",
                format!("{name:?}"),
                "basic, digest, ntlm or negotiate",
            ));
        };
        if out.contains(&scheme) {
            return Err(invalid("auth_schemes", format!("{name:?}"), "listed twice"));
        }
        let served = match scheme {
            Scheme::Basic => users.has_basic(),
            Scheme::Digest => users.has_digest() || !users.inline.is_empty(),
            Scheme::Ntlm => users.has_ntlm() || !users.inline.is_empty(),
            Scheme::Negotiate => users.negotiate,
            Scheme::Certificate => false,
        };
        if !served {
            let why = match scheme {
                Scheme::Basic => "offered, but no user can answer it: add htpasswd or users",
                Scheme::Digest => "offered, but no user can answer it: add htdigest or users",
                Scheme::Ntlm => "offered, but no user can answer it: add ntlm_users or users",
                Scheme::Negotiate => "needs a keytab",
                Scheme::Certificate => "not offered in a 407: see tls_client_cert_user",
            };
            return Err(invalid("auth_schemes", format!("{name:?}"), why));
        }
        out.push(scheme);
    }
    Ok(out)
}

/// Negotiate's keys: empty strings mean "not set".
fn negotiate(raw: &mut RawConfig) -> Result<NegotiateConfig, ConfigError> {
    let set = |v: String| (!v.is_empty()).then_some(v);
    let service = set(req("negotiate_service", raw.negotiate_service.take())?);
    if let Some(s) = &service
        && (s.chars().any(|c| c.is_control() || c == ' ') || s.starts_with(['/', '@']))
    {
        return Err(invalid(
            "negotiate_service",
            format!("{s:?}"),
            "a principal: HTTP/proxy.corp, HTTP/proxy.corp@REALM or HTTP@proxy.corp",
        ));
    }
    Ok(NegotiateConfig {
        keytab: set(req("keytab", raw.keytab.take())?).map(PathBuf::from),
        service,
        strip_realm: req("negotiate_strip_realm", raw.negotiate_strip_realm.take())?,
        rcache_dir: set(req(
            "negotiate_rcache_dir",
            raw.negotiate_rcache_dir.take(),
        )?)
        .map(PathBuf::from),
    })
}

/// `ntlm_domain`: a NetBIOS domain name: 1–15 characters, none of `\/:*?"<>|`, no control
/// characters or spaces at either end. Kept as written; clients' domains are compared without case.
fn ntlm_domain(domain: String) -> Result<String, ConfigError> {
    let bad = domain.is_empty()
        || domain.chars().count() > 15
        || domain.trim() != domain
        || domain
            .chars()
            .any(|c| c.is_control() || "\\/:*?\"<>|".contains(c));
    if bad {
        return Err(invalid(
            "ntlm_domain",
            format!("{domain:?}"),
            "a NetBIOS domain: 1-15 characters, none of \\ / : * ? \" < > |",
        ));
    }
    Ok(domain)
}

/// `digest_algorithms`: at least one, known, each once.
fn digest_algorithms(names: Vec<String>) -> Result<Vec<Algorithm>, ConfigError> {
    if names.is_empty() {
        return Err(invalid(
            "digest_algorithms",
            "[]",
            "at least one of SHA-256, SHA-256-sess, MD5, MD5-sess",
        ));
    }
    let mut out = Vec::new();
    for name in &names {
        let Some(a) = Algorithm::parse(name.as_bytes()) else {
            return Err(invalid(
                "digest_algorithms",
                format!("{name:?}"),
                "SHA-256, SHA-256-sess, MD5 or MD5-sess",
            ));
        };
        if out.contains(&a) {
            return Err(invalid(
                "digest_algorithms",
                format!("{name:?}"),
                "listed twice",
            ));
        }
        out.push(a);
    }
    Ok(out)
}

/// The protection space in every challenge: printable, and short enough for one header line.
fn realm(v: Option<String>) -> Result<String, ConfigError> {
    let realm = req("realm", v)?;
    if realm.is_empty() || realm.chars().count() > 128 || realm.chars().any(char::is_control) {
        return Err(invalid(
            "realm",
            format!("{realm:?}"),
            "1 to 128 characters, no control characters",
        ));
    }
    Ok(realm)
}

/// Plain forwarding: the client's keep-alive, the heads passed on, the origin pool.
struct Forwarding {
    discard_body_bytes: u64,
    keepalive_timeout: Duration,
    via: Option<String>,
    forwarded_for: bool,
    response_timeout: Duration,
    upstream_idle: Duration,
    pool_size: usize,
    per_host: usize,
}

fn forwarding(raw: &mut RawConfig) -> Result<Forwarding, ConfigError> {
    let via = req("via", raw.via.take())?;
    if via.len() > 64 || !via.bytes().all(is_via_byte) {
        return Err(invalid(
            "via",
            format!("{via:?}"),
            "up to 64 letters, digits or . _ - : (empty = no Via field)",
        ));
    }
    let pool_size = ranged("upstream_pool_size", raw.upstream_pool_size.take())?;
    let per_host = ranged("upstream_pool_per_host", raw.upstream_pool_per_host.take())?;
    Ok(Forwarding {
        discard_body_bytes: ranged("discard_body_bytes", raw.discard_body_bytes.take())?,
        keepalive_timeout: secs("keepalive_timeout_secs", raw.keepalive_timeout_secs.take())?,
        via: (!via.is_empty()).then_some(via),
        forwarded_for: req("forwarded_for", raw.forwarded_for.take())?,
        response_timeout: secs("response_timeout_secs", raw.response_timeout_secs.take())?,
        upstream_idle: secs("upstream_idle_secs", raw.upstream_idle_secs.take())?,
        pool_size,
        per_host: per_host.min(pool_size),
    })
}

/// The policy keys, proven by building the policy once for the configured listeners.
fn policy(
    raw: &mut RawConfig,
    auth_on: bool,
    listen: &[SocketAddr],
) -> Result<PolicyConfig, ConfigError> {
    let policy = PolicyConfig {
        open_proxy: req("open_proxy", raw.open_proxy.take())?,
        clients: req("clients", raw.clients.take())?,
        connect_ports: req("connect_ports", raw.connect_ports.take())?,
        allow_dest: req("allow_dest", raw.allow_dest.take())?,
        default_action: req("default_action", raw.default_action.take())?,
        groups: req("groups", raw.groups.take())?,
        rules: req("rules", raw.rules.take())?,
    };
    policy.build(auth_on, listen).map_err(ConfigError::Policy)?;
    Ok(policy)
}

/// Name resolution and the addresses upstream connections come from.
struct Dns {
    resolver: crate::config::DnsResolver,
    resolv_conf: String,
    servers: Vec<SocketAddr>,
    ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    cache_entries: usize,
    bind_source: Vec<IpAddr>,
}

fn dns(raw: &mut RawConfig) -> Result<Dns, ConfigError> {
    Ok(Dns {
        resolver: req("dns_resolver", raw.dns_resolver.take())?,
        resolv_conf: match req("resolv_conf", raw.resolv_conf.take())? {
            p if p.is_empty() || p.contains('\0') => {
                return Err(invalid(
                    "resolv_conf",
                    format!("{p:?}"),
                    "a file path is needed",
                ));
            }
            p => p,
        },
        servers: socket_addrs("dns_servers", &req("dns_servers", raw.dns_servers.take())?)?,
        ttl: Duration::from_secs(ranged("dns_ttl_secs", raw.dns_ttl_secs.take())?),
        negative_ttl: Duration::from_secs(ranged(
            "dns_negative_ttl_secs",
            raw.dns_negative_ttl_secs.take(),
        )?),
        timeout: Duration::from_millis(ranged("dns_timeout_ms", raw.dns_timeout_ms.take())?),
        cache_entries: ranged("dns_cache_entries", raw.dns_cache_entries.take())?,
        bind_source: source_addrs(&req("bind_source", raw.bind_source.take())?)?,
    })
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
