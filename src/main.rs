//! The `ringgate` binary: command line → configuration → server. Nothing else lives here.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringgate::config::{Config, DnsResolver, IoDriver, Machine, RawConfig, RelayKind};
use ringgate::server::StartError;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An HTTP forward proxy for CONNECT tunnels. Every flag overrides the same key of the config file;
/// with no arguments ringgate runs on its embedded default config (see --print-config).
#[derive(Debug, Parser)]
#[command(name = "ringgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file; its keys override the embedded default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Address to listen on, IPv4 or [IPv6]:port (repeatable) [default: 127.0.0.1:3128]
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Worker threads; 0 = one per available core [default: 0]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// io driver [default: auto]
    #[arg(long, value_enum)]
    io_driver: Option<IoDriver>,
    /// Tunnel relay [default: splice]
    #[arg(long, value_enum)]
    relay: Option<RelayKind>,
    /// listen(2) backlog [default: 1024]
    #[arg(long, value_name = "N")]
    backlog: Option<u32>,
    /// Relay pipe capacity in bytes [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pipe_size: Option<usize>,
    /// Empty pipes kept per worker for reuse [default: 64]
    #[arg(long, value_name = "N")]
    pipe_pool: Option<usize>,
    /// Per-worker buffer of the copy relay in bytes [default: 65536]
    #[arg(long, value_name = "BYTES")]
    copy_buffer: Option<usize>,
    /// Largest request head, else 431 [default: 16384]
    #[arg(long, value_name = "BYTES")]
    max_head_bytes: Option<usize>,
    /// Longest request-target, else 414 [default: 8192]
    #[arg(long, value_name = "BYTES")]
    max_target_bytes: Option<usize>,
    /// Most header fields, else 431 [default: 100]
    #[arg(long, value_name = "N")]
    max_headers: Option<usize>,
    /// Seconds a client has to send a complete head [default: 10]
    #[arg(long, value_name = "SECS")]
    header_timeout: Option<u64>,
    /// Seconds to resolve and connect to a CONNECT target, else 504 [default: 10]
    #[arg(long, value_name = "SECS")]
    connect_timeout: Option<u64>,
    /// Seconds a tunnel or a forwarded body may sit with no bytes moving [default: 300]
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Seconds open tunnels get to finish on SIGTERM/SIGINT [default: 30]
    #[arg(long, value_name = "SECS")]
    shutdown_grace: Option<u64>,
    /// Threads for getaddrinfo (dns_resolver = "system") [default: 4]
    #[arg(long, value_name = "N")]
    resolver_threads: Option<usize>,
    /// getaddrinfo lookups waiting for or on those threads at once, beyond which 503 [default: 64]
    #[arg(long, value_name = "N")]
    resolver_queue: Option<usize>,
    /// Log filter: error, warn, info, debug, trace, or tracing directives [default: info]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Realm named in Proxy-Authenticate challenges [default: ringgate]
    #[arg(long, value_name = "REALM")]
    realm: Option<String>,
    /// htpasswd file of proxy users (repeatable); turns proxy authentication on
    #[arg(long, value_name = "FILE")]
    htpasswd: Vec<String>,
    /// A proxy user as NAME:PASSWORD (repeatable); turns proxy authentication on
    #[arg(long, value_name = "NAME:PASSWORD")]
    user: Vec<String>,
    /// Accept plain-text passwords in htpasswd files
    #[arg(long)]
    htpasswd_plaintext: bool,
    /// Seconds between checks of htpasswd files for changes; 0 = SIGHUP only [default: 2]
    #[arg(long, value_name = "SECS")]
    users_watch: Option<u64>,
    /// Seconds a verified credential is trusted without hashing again [default: 3600]
    #[arg(long, value_name = "SECS")]
    credential_ttl: Option<u64>,
    /// Seconds a wrong credential is remembered as wrong; 0 = not at all [default: 5]
    #[arg(long, value_name = "SECS")]
    failed_credential_ttl: Option<u64>,
    /// Verified credentials each worker caches [default: 65536]
    #[arg(long, value_name = "N")]
    credential_cache_entries: Option<usize>,
    /// Threads that run slow password hashes [default: 2]
    #[arg(long, value_name = "N")]
    verifier_threads: Option<usize>,
    /// Credential checks that may wait for a verifier thread, else 503 [default: 1024]
    #[arg(long, value_name = "N")]
    verifier_queue: Option<usize>,
    /// Milliseconds of delay for repeated auth failures from one address; 0 = off [default: 100]
    #[arg(long, value_name = "MS")]
    auth_failure_delay: Option<u64>,
    /// Longest such delay in milliseconds [default: 3000]
    #[arg(long, value_name = "MS")]
    auth_failure_delay_max: Option<u64>,
    /// New wrong guesses per second per client and worker, all users; 0 = none [default: 10]
    #[arg(long, value_name = "N")]
    auth_guess_rate_per_client: Option<u32>,
    /// Seconds an authenticated connection may omit credentials; 0 = the credential TTL [default: 0]
    #[arg(long, value_name = "SECS")]
    session_ttl: Option<u64>,
    /// Longest Basic user name or password checked; longer ones get 407 [default: 1024]
    #[arg(long, value_name = "BYTES")]
    max_password_bytes: Option<usize>,
    /// 407s one connection may receive; the last one closes it [default: 32]
    #[arg(long, value_name = "N")]
    max_challenges_per_connection: Option<u32>,
    /// Leading bits that identify an IPv6 client for limits and the throttle [default: 64]
    #[arg(long, value_name = "BITS")]
    client_ipv6_prefix: Option<u8>,
    /// Largest request body read and dropped to keep a connection after a 407 [default: 65536]
    #[arg(long, value_name = "BYTES")]
    discard_body_bytes: Option<u64>,
    /// Seconds a kept-alive client connection may wait between requests [default: 60]
    #[arg(long, value_name = "SECS")]
    keepalive_timeout: Option<u64>,
    /// Pseudonym in the `Via` field added to forwarded messages; "" = none [default: ringgate]
    #[arg(long, value_name = "NAME")]
    via: Option<String>,
    /// Add `X-Forwarded-For: CLIENT` to forwarded requests
    #[arg(long)]
    forwarded_for: bool,
    /// Seconds a forwarded request may wait for the origin's response head, else 504 [default: 60]
    #[arg(long, value_name = "SECS")]
    response_timeout: Option<u64>,
    /// Seconds an idle origin connection is kept for reuse [default: 30]
    #[arg(long, value_name = "SECS")]
    upstream_idle: Option<u64>,
    /// Idle origin connections kept per worker; 0 = no reuse [default: 1024]
    #[arg(long, value_name = "N")]
    upstream_pool_size: Option<usize>,
    /// Idle origin connections kept per worker for one host and port [default: 32]
    #[arg(long, value_name = "N")]
    upstream_pool_per_host: Option<usize>,
    /// Destination networks exempt from the built-in denials (loopback, link-local…) (repeatable)
    #[arg(long, value_name = "CIDR")]
    allow_dest: Vec<String>,
    /// Ports CONNECT may reach: `any`, or a list such as `443,8443,9000-9100` [default: 443]
    #[arg(long, value_name = "any|LIST", value_delimiter = ',')]
    connect_ports: Vec<String>,
    /// Client networks that may use the proxy (repeatable) [default: any with auth, else loopback]
    #[arg(long, value_name = "CIDR")]
    client: Vec<String>,
    /// Allow clients beyond loopback without authentication
    #[arg(long)]
    open_proxy: bool,
    /// Open client connections in all, beyond which new ones get 503; 0 = from the fd limit [default: 0]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Open connections from one client address, beyond which new ones get 429; 0 = no limit [default: 0]
    #[arg(long, value_name = "N")]
    max_connections_per_client: Option<u32>,
    /// Also listen on ADDR for connections that start with a PROXY protocol header (repeatable)
    #[arg(long, value_name = "ADDR")]
    listen_proxy_protocol: Vec<String>,
    /// Sources trusted to send PROXY protocol headers (repeatable) [default: loopback]
    #[arg(long, value_name = "CIDR")]
    proxy_protocol_from: Vec<String>,
    /// Name resolution: ringgate's own (resolv.conf, /etc/hosts) or getaddrinfo [default: own]
    #[arg(long, value_enum)]
    dns_resolver: Option<DnsResolver>,
    /// resolv.conf the own resolver reads [default: /etc/resolv.conf]
    #[arg(long, value_name = "FILE")]
    resolv_conf: Option<String>,
    /// A name server the own resolver asks instead of resolv.conf's, IP:PORT (repeatable)
    /// [default: resolv.conf's]
    #[arg(long, value_name = "ADDR")]
    dns_server: Vec<String>,
    /// A local address upstream connections are made from, in turn (repeatable) [default: the
    /// kernel chooses]
    #[arg(long, value_name = "IP")]
    bind_source: Vec<String>,
    /// Seconds a system resolver answer is kept [default: 30]
    #[arg(long, value_name = "SECS")]
    dns_ttl: Option<u64>,
    /// Seconds "no such name" or a failed lookup is remembered [default: 5]
    #[arg(long, value_name = "SECS")]
    dns_negative_ttl: Option<u64>,
    /// Milliseconds one name server has to answer (unless resolv.conf sets timeout) [default: 2000]
    #[arg(long, value_name = "MS")]
    dns_timeout: Option<u64>,
    /// New connections per second from one client address, beyond which 429; 0 = no limit [default: 0]
    #[arg(long, value_name = "N")]
    max_connection_rate_per_client: Option<u32>,
    /// Open tunnels of one user, beyond which 429; 0 = no limit [default: 0]
    #[arg(long, value_name = "N")]
    max_tunnels_per_user: Option<u32>,
    /// Tunnel bytes per second of one user, both directions together; 0 = no limit [default: 0]
    #[arg(long, value_name = "BYTES")]
    user_bandwidth: Option<u64>,
    /// Serve /metrics, /healthz and /readyz on ADDR (e.g. 127.0.0.1:9090) [default: off]
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Access log: "stdout" or a file path (reopened on SIGUSR1) [default: off]
    #[arg(long, value_name = "PATH")]
    access_log: Option<String>,
    /// Access log format [default: squid]
    #[arg(long, value_enum, value_name = "FORMAT")]
    access_log_format: Option<ringgate::log::Format>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Compare this host's kernel and process limits with what the configuration needs and what
    /// tuning/ recommends; exits 1 when a critical one is off (the fd limit below what
    /// max_connections needs).
    CheckHost,
}

impl Cli {
    /// The flags as the top configuration layer.
    fn layer(&self) -> RawConfig {
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

/// Exit status for a bad flag or config, as for clap's own usage errors.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("ringgate: {}", first.trim_start_matches("error: "));
            return ExitCode::from(USAGE);
        }
    };
    let config = match Config::load(cli.config.as_deref(), cli.layer(), &Machine::probe()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringgate: {e}");
            return ExitCode::from(USAGE);
        }
    };
    if let Some(Command::CheckHost) = cli.command {
        use ringgate::check_host::{Readings, Verdict, assess, render};
        let rows = assess(&Readings::read(), &config);
        print!("{}", render(&rows));
        return if rows.iter().any(|r| r.verdict == Verdict::Critical) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }

    // Log lines go through a background writer: a slow stderr never stalls a worker; when its
    // queue is full, lines are dropped rather than waited for.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("ringgate-log")
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log_level))
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // SIGHUP reads the same file, under the same flags, again.
    let (file, flags) = (cli.config.clone(), cli.layer());
    let reload = ringgate::server::Reload {
        load: {
            let file = file.clone();
            Box::new(move || Config::load(file.as_deref(), flags.clone(), &Machine::probe()))
        },
        file,
    };
    match ringgate::server::run(config, reload) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            drop(_flush_on_exit);
            eprintln!("ringgate: {e}");
            match e {
                // A bad user file is the operator's input, like a bad config key.
                StartError::Auth(_) | StartError::Policy(_) => ExitCode::from(USAGE),
                StartError::Io(_) => ExitCode::FAILURE,
            }
        }
    }
}
