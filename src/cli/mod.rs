//! The command line: flags, subcommands, and the flags as the top configuration layer.
//!
//! Each flag that sets a config key takes its help, and the default it shows, from the key table
//! ([`crate::config::keys`]): the default is never written here.

pub mod check_host;
pub mod passwd;

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use crate::config::keys::flag_help;
use crate::config::{DnsResolver, IoDriver, RawConfig, RelayKind};

/// An HTTP forward proxy for CONNECT tunnels. Every flag overrides the same key of the config file;
/// with no arguments ringgate runs on its embedded default config (see --print-config).
#[derive(Debug, Parser)]
#[command(name = "ringgate", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML config file; its keys override the embedded default.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    #[arg(long, value_name = "ADDR", help = flag_help("listen"))]
    pub listen: Vec<String>,
    #[arg(long, value_name = "N", help = flag_help("workers"))]
    pub workers: Option<usize>,
    #[arg(long, value_enum, help = flag_help("io_driver"))]
    pub io_driver: Option<IoDriver>,
    #[arg(long, value_enum, help = flag_help("relay"))]
    pub relay: Option<RelayKind>,
    #[arg(long, value_name = "N", help = flag_help("backlog"))]
    pub backlog: Option<u32>,
    #[arg(long, value_name = "BYTES", help = flag_help("pipe_size"))]
    pub pipe_size: Option<usize>,
    #[arg(long, value_name = "N", help = flag_help("pipe_pool"))]
    pub pipe_pool: Option<usize>,
    #[arg(long, value_name = "BYTES", help = flag_help("copy_buffer"))]
    pub copy_buffer: Option<usize>,
    #[arg(long, value_name = "BYTES", help = flag_help("max_head_bytes"))]
    pub max_head_bytes: Option<usize>,
    #[arg(long, value_name = "BYTES", help = flag_help("max_target_bytes"))]
    pub max_target_bytes: Option<usize>,
    #[arg(long, value_name = "N", help = flag_help("max_headers"))]
    pub max_headers: Option<usize>,
    #[arg(long, value_name = "SECS", help = flag_help("header_timeout_secs"))]
    pub header_timeout: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("connect_timeout_secs"))]
    pub connect_timeout: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("idle_timeout_secs"))]
    pub idle_timeout: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("shutdown_grace_secs"))]
    pub shutdown_grace: Option<u64>,
    #[arg(long, value_name = "N", help = flag_help("resolver_threads"))]
    pub resolver_threads: Option<usize>,
    #[arg(long, value_name = "N", help = flag_help("resolver_queue"))]
    pub resolver_queue: Option<usize>,
    #[arg(long, value_name = "FILTER", help = flag_help("log_level"))]
    pub log_level: Option<String>,
    #[arg(long, value_name = "REALM", help = flag_help("realm"))]
    pub realm: Option<String>,
    #[arg(long, value_name = "FILE", help = flag_help("htpasswd"))]
    pub htpasswd: Vec<String>,
    #[arg(long, value_name = "FILE", help = flag_help("htdigest"))]
    pub htdigest: Vec<String>,
    #[arg(long, value_name = "SCHEMES", value_delimiter = ',', help = flag_help("auth_schemes"))]
    pub auth_schemes: Vec<String>,
    #[arg(long, value_name = "ALGORITHMS", value_delimiter = ',', help = flag_help("digest_algorithms"))]
    pub digest_algorithms: Vec<String>,
    #[arg(long, value_name = "SECS", help = flag_help("digest_nonce_ttl_secs"))]
    pub digest_nonce_ttl: Option<u64>,
    #[arg(long, value_name = "FILE", help = flag_help("ntlm_users"))]
    pub ntlm_users: Vec<String>,
    #[arg(long, value_name = "DOMAIN", help = flag_help("ntlm_domain"))]
    pub ntlm_domain: Option<String>,
    #[arg(long, help = flag_help("ntlm_allow_v1"))]
    pub ntlm_allow_v1: bool,
    #[arg(long, value_name = "SECS", help = flag_help("ntlm_handshake_secs"))]
    pub ntlm_handshake_secs: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("ntlm_clock_skew_secs"))]
    pub ntlm_clock_skew: Option<u64>,
    #[arg(long, value_name = "BACKEND", help = flag_help("ntlm_backend"))]
    pub ntlm_backend: Option<String>,
    #[arg(long, value_name = "FILE", help = flag_help("keytab"))]
    pub keytab: Option<String>,
    #[arg(long, value_name = "PRINCIPAL", help = flag_help("negotiate_service"))]
    pub negotiate_service: Option<String>,
    #[arg(long, help = flag_help("negotiate_strip_realm"))]
    pub negotiate_strip_realm: bool,
    #[arg(long, value_name = "DIR", help = flag_help("negotiate_rcache_dir"))]
    pub negotiate_rcache_dir: Option<String>,
    #[arg(long, value_name = "NAME:PASSWORD", help = flag_help("users"))]
    pub user: Vec<String>,
    #[arg(long, help = flag_help("htpasswd_plaintext"))]
    pub htpasswd_plaintext: bool,
    #[arg(long, value_name = "SECS", help = flag_help("users_watch_secs"))]
    pub users_watch: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("credential_ttl_secs"))]
    pub credential_ttl: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("failed_credential_ttl_secs"))]
    pub failed_credential_ttl: Option<u64>,
    #[arg(long, value_name = "N", help = flag_help("credential_cache_entries"))]
    pub credential_cache_entries: Option<usize>,
    #[arg(long, value_name = "N", help = flag_help("verifier_threads"))]
    pub verifier_threads: Option<usize>,
    #[arg(long, value_name = "N", help = flag_help("verifier_queue"))]
    pub verifier_queue: Option<usize>,
    #[arg(long, value_name = "MS", help = flag_help("auth_failure_delay_ms"))]
    pub auth_failure_delay: Option<u64>,
    #[arg(long, value_name = "MS", help = flag_help("auth_failure_delay_max_ms"))]
    pub auth_failure_delay_max: Option<u64>,
    #[arg(long, value_name = "N", help = flag_help("auth_guess_rate_per_client"))]
    pub auth_guess_rate_per_client: Option<u32>,
    #[arg(long, value_name = "SECS", help = flag_help("session_ttl_secs"))]
    pub session_ttl: Option<u64>,
    #[arg(long, value_name = "BYTES", help = flag_help("max_password_bytes"))]
    pub max_password_bytes: Option<usize>,
    #[arg(long, value_name = "N", help = flag_help("max_challenges_per_connection"))]
    pub max_challenges_per_connection: Option<u32>,
    #[arg(long, value_name = "BITS", help = flag_help("client_ipv6_prefix"))]
    pub client_ipv6_prefix: Option<u8>,
    #[arg(long, value_name = "BYTES", help = flag_help("discard_body_bytes"))]
    pub discard_body_bytes: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("keepalive_timeout_secs"))]
    pub keepalive_timeout: Option<u64>,
    #[arg(long, value_name = "NAME", help = flag_help("via"))]
    pub via: Option<String>,
    #[arg(long, help = flag_help("forwarded_for"))]
    pub forwarded_for: bool,
    #[arg(long, value_name = "SECS", help = flag_help("response_timeout_secs"))]
    pub response_timeout: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("upstream_idle_secs"))]
    pub upstream_idle: Option<u64>,
    #[arg(long, value_name = "N", help = flag_help("upstream_pool_size"))]
    pub upstream_pool_size: Option<usize>,
    #[arg(long, value_name = "N", help = flag_help("upstream_pool_per_host"))]
    pub upstream_pool_per_host: Option<usize>,
    #[arg(long, value_name = "CIDR", help = flag_help("allow_dest"))]
    pub allow_dest: Vec<String>,
    #[arg(long, value_name = "any|LIST", value_delimiter = ',', help = flag_help("connect_ports"))]
    pub connect_ports: Vec<String>,
    #[arg(long, value_name = "CIDR", help = flag_help("clients"))]
    pub client: Vec<String>,
    #[arg(long, help = flag_help("open_proxy"))]
    pub open_proxy: bool,
    #[arg(long, value_name = "N", help = flag_help("max_connections"))]
    pub max_connections: Option<usize>,
    #[arg(long, value_name = "N", help = flag_help("max_connections_per_client"))]
    pub max_connections_per_client: Option<u32>,
    #[arg(long, value_name = "ADDR", help = flag_help("listen_proxy_protocol"))]
    pub listen_proxy_protocol: Vec<String>,
    #[arg(long, value_name = "CIDR", help = flag_help("proxy_protocol_from"))]
    pub proxy_protocol_from: Vec<String>,
    #[arg(long, value_name = "ADDR", help = flag_help("listen_tls"))]
    pub listen_tls: Vec<String>,
    #[arg(long, value_name = "FILE", help = flag_help("tls_cert"))]
    pub tls_cert: Option<String>,
    #[arg(long, value_name = "FILE", help = flag_help("tls_key"))]
    pub tls_key: Option<String>,
    #[arg(long, value_name = "FILE", help = flag_help("tls_client_ca"))]
    pub tls_client_ca: Option<String>,
    #[arg(long, help = flag_help("tls_client_cert_user"))]
    pub tls_client_cert_user: bool,
    #[arg(long, value_name = "SECS", help = flag_help("tls_handshake_timeout_secs"))]
    pub tls_handshake_timeout: Option<u64>,
    #[arg(long, value_enum, help = flag_help("dns_resolver"))]
    pub dns_resolver: Option<DnsResolver>,
    #[arg(long, value_name = "FILE", help = flag_help("resolv_conf"))]
    pub resolv_conf: Option<String>,
    #[arg(long, value_name = "ADDR", help = flag_help("dns_servers"))]
    pub dns_server: Vec<String>,
    #[arg(long, value_name = "IP", help = flag_help("bind_source"))]
    pub bind_source: Vec<String>,
    #[arg(long, value_name = "SECS", help = flag_help("dns_ttl_secs"))]
    pub dns_ttl: Option<u64>,
    #[arg(long, value_name = "SECS", help = flag_help("dns_negative_ttl_secs"))]
    pub dns_negative_ttl: Option<u64>,
    #[arg(long, value_name = "MS", help = flag_help("dns_timeout_ms"))]
    pub dns_timeout: Option<u64>,
    #[arg(long, value_name = "N", help = flag_help("max_connection_rate_per_client"))]
    pub max_connection_rate_per_client: Option<u32>,
    #[arg(long, value_name = "N", help = flag_help("max_tunnels_per_user"))]
    pub max_tunnels_per_user: Option<u32>,
    #[arg(long, value_name = "BYTES", help = flag_help("user_bandwidth_bytes_per_sec"))]
    pub user_bandwidth: Option<u64>,
    #[arg(long, value_name = "ADDR", help = flag_help("admin"))]
    pub admin: Option<String>,
    #[arg(long, value_name = "PATH", help = flag_help("access_log"))]
    pub access_log: Option<String>,
    #[arg(long, value_enum, value_name = "FORMAT", help = flag_help("access_log_format"))]
    pub access_log_format: Option<crate::observe::log::Format>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Compare this host's kernel and process limits with what the configuration needs and what
    /// tuning/ recommends; exits 1 when a critical one is off (the fd limit below what
    /// max_connections needs).
    CheckHost,
    /// Add or update a user in an htpasswd file (bcrypt), or with --digest in an htdigest file
    /// (MD5 and SHA-256 HA1 lines for --realm); the file is replaced atomically.
    Passwd(passwd::Args),
    /// Write the man page or a shell completion script, made from these flags, to standard output.
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

/// What `ringgate generate` writes.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum Generate {
    /// The man page, ringgate(1), in roff: `ringgate generate man > ringgate.1`.
    Man,
    /// A completion script for SHELL: `ringgate generate completions bash > ringgate.bash`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Generate {
    /// Writes the man page or completion script for the command line as defined here.
    pub fn write(self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut command = Cli::command();
        match self {
            Generate::Man => clap_mangen::Man::new(command).render(out),
            Generate::Completions { shell } => {
                clap_complete::generate(shell, &mut command, "ringgate", out);
                Ok(())
            }
        }
    }
}

impl Cli {
    /// The flags as the top configuration layer.
    pub fn layer(&self) -> RawConfig {
        RawConfig {
            listen: (!self.listen.is_empty()).then(|| self.listen.clone()),
            workers: self.workers,
            io_driver: self.io_driver,
            relay: self.relay,
            backlog: self.backlog,
            pipe_size: self.pipe_size,
            pipe_pool: self.pipe_pool,
            copy_buffer: self.copy_buffer,
            max_head_bytes: self.max_head_bytes,
            max_target_bytes: self.max_target_bytes,
            max_headers: self.max_headers,
            header_timeout_secs: self.header_timeout,
            connect_timeout_secs: self.connect_timeout,
            idle_timeout_secs: self.idle_timeout,
            shutdown_grace_secs: self.shutdown_grace,
            resolver_threads: self.resolver_threads,
            resolver_queue: self.resolver_queue,
            log_level: self.log_level.clone(),
            realm: self.realm.clone(),
            htpasswd: (!self.htpasswd.is_empty()).then(|| self.htpasswd.clone()),
            htdigest: (!self.htdigest.is_empty()).then(|| self.htdigest.clone()),
            auth_schemes: (!self.auth_schemes.is_empty()).then(|| self.auth_schemes.clone()),
            digest_algorithms: (!self.digest_algorithms.is_empty())
                .then(|| self.digest_algorithms.clone()),
            digest_nonce_ttl_secs: self.digest_nonce_ttl,
            ntlm_users: (!self.ntlm_users.is_empty()).then(|| self.ntlm_users.clone()),
            ntlm_domain: self.ntlm_domain.clone(),
            ntlm_allow_v1: self.ntlm_allow_v1.then_some(true),
            ntlm_handshake_secs: self.ntlm_handshake_secs,
            ntlm_clock_skew_secs: self.ntlm_clock_skew,
            ntlm_backend: self.ntlm_backend.clone(),
            ntlm_auth_command: None,
            ntlm_helpers: None,
            ntlm_helper_timeout_secs: None,
            keytab: self.keytab.clone(),
            negotiate_service: self.negotiate_service.clone(),
            negotiate_strip_realm: self.negotiate_strip_realm.then_some(true),
            negotiate_rcache_dir: self.negotiate_rcache_dir.clone(),
            users: (!self.user.is_empty()).then(|| self.user.clone()),
            htpasswd_plaintext: self.htpasswd_plaintext.then_some(true),
            users_watch_secs: self.users_watch,
            credential_ttl_secs: self.credential_ttl,
            failed_credential_ttl_secs: self.failed_credential_ttl,
            credential_cache_entries: self.credential_cache_entries,
            verifier_threads: self.verifier_threads,
            verifier_queue: self.verifier_queue,
            auth_failure_delay_ms: self.auth_failure_delay,
            auth_failure_delay_max_ms: self.auth_failure_delay_max,
            session_ttl_secs: self.session_ttl,
            auth_guess_rate_per_client: self.auth_guess_rate_per_client,
            max_password_bytes: self.max_password_bytes,
            max_challenges_per_connection: self.max_challenges_per_connection,
            client_ipv6_prefix: self.client_ipv6_prefix,
            discard_body_bytes: self.discard_body_bytes,
            keepalive_timeout_secs: self.keepalive_timeout,
            via: self.via.clone(),
            forwarded_for: self.forwarded_for.then_some(true),
            response_timeout_secs: self.response_timeout,
            upstream_idle_secs: self.upstream_idle,
            upstream_pool_size: self.upstream_pool_size,
            upstream_pool_per_host: self.upstream_pool_per_host,
            open_proxy: self.open_proxy.then_some(true),
            clients: (!self.client.is_empty()).then(|| self.client.clone()),
            connect_ports: (!self.connect_ports.is_empty()).then(|| self.connect_ports.clone()),
            allow_dest: (!self.allow_dest.is_empty()).then(|| self.allow_dest.clone()),
            default_action: None,
            groups: None,
            rules: None,
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            listen_proxy_protocol: (!self.listen_proxy_protocol.is_empty())
                .then(|| self.listen_proxy_protocol.clone()),
            proxy_protocol_from: (!self.proxy_protocol_from.is_empty())
                .then(|| self.proxy_protocol_from.clone()),
            listen_tls: (!self.listen_tls.is_empty()).then(|| self.listen_tls.clone()),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_client_ca: self.tls_client_ca.clone(),
            tls_client_cert_user: self.tls_client_cert_user.then_some(true),
            tls_handshake_timeout_secs: self.tls_handshake_timeout,
            dns_resolver: self.dns_resolver,
            resolv_conf: self.resolv_conf.clone(),
            dns_servers: (!self.dns_server.is_empty()).then(|| self.dns_server.clone()),
            dns_ttl_secs: self.dns_ttl,
            dns_negative_ttl_secs: self.dns_negative_ttl,
            dns_timeout_ms: self.dns_timeout,
            dns_cache_entries: None,
            bind_source: (!self.bind_source.is_empty()).then(|| self.bind_source.clone()),
            max_connection_rate_per_client: self.max_connection_rate_per_client,
            max_tunnels_per_user: self.max_tunnels_per_user,
            user_bandwidth_bytes_per_sec: self.user_bandwidth,
            admin: self.admin.clone(),
            access_log: self.access_log.clone(),
            access_log_format: self.access_log_format,
        }
    }
}
