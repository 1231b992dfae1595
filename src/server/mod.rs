//! Start-up and shutdown of the whole process: load the users, bind, choose the driver, start the
//! workers, wait for signals (SIGHUP reloads the config's policy and the users; SIGTERM/SIGINT
//! drain and exit).

pub mod fill;
pub mod listener;
mod reload;
pub mod sd_notify;
pub mod shard;
mod signals;
pub mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use crate::auth;
use crate::config::{Config, ConfigError};
use crate::creds::reload as user_reload;
use crate::observe::admin;
use crate::observe::metrics::Registry;
use crate::policy::Policy;
use crate::policy::limits::{self, ConnLimits};
use shard::Shared;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The user database or the verifier pool: the operator's input, like a config error.
    #[error(transparent)]
    Auth(#[from] auth::StartError),
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The policy could not be built for the bound addresses.
    #[error("config key {0}")]
    Policy(crate::policy::PolicyError),
    /// The TLS listeners' certificate, key or client CA (the message names the key and file).
    #[error("config key {0}")]
    Tls(String),
}

/// How to read the configuration again on SIGHUP (the same file and flags as at start).
pub struct Reload {
    pub load: Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>,
    /// The config file, watched for changes every `users_watch_secs`; `None`: no file.
    pub file: Option<std::path::PathBuf>,
}

/// Runs the proxy until a shutdown signal and the drain that follows. Errors are start-up errors.
pub fn run(config: Config, reload: Reload) -> Result<(), StartError> {
    let Reload { load, file } = reload;
    // Stamped before anything starts, so a change made while the proxy starts counts as one.
    // The TLS files count as part of the configuration: a renewed certificate is a reload.
    let watched = reload::Watched::now(file, tls_files(&config));
    let load: reload::Load = Arc::from(load);
    let config = Arc::new(config);
    let tls = match config.listen_tls.is_empty() {
        true => None,
        false => Some(Arc::new(
            crate::tls::Certs::start(&config.tls).map_err(StartError::Tls)?,
        )),
    };
    let Auth {
        shared: auth,
        reload: users_reload,
    } = start_auth(&config)?;
    warn_clear_basic(&config, auth.as_deref());
    // A client certificate that names a user authenticates as a password does.
    let auth_on = auth.is_some() || config.tls.client_cert_user;
    let (driver, fallback) = worker::choose_driver(config.io_driver)
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring unavailable: {e}")))?;
    if let Some(why) = fallback {
        tracing::warn!(error = %why, "io_uring unavailable; workers run on the epoll driver");
    }
    let (listeners, bound) = listener::bind_all(&config)?;
    crate::upstream::source::check(&config.bind_source)?;
    crate::http::response::prerender();
    let admin_listener = config.admin.map(admin::bind).transpose()?;
    // The proxy's own sockets, which no request may reach: its listeners and the admin endpoint.
    let mut bound = bound;
    if let Some(a) = &admin_listener {
        bound.push(a.local_addr()?);
    }
    let policy = Arc::new(ArcSwap::from_pointee(start_policy(
        &config, auth_on, &bound,
    )?));
    let (conn_limits, max_connections) = conn_limits(&config);

    // Registered before any worker starts, so no signal is lost to the default action.
    let signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])?;
    let (stop_tx, stop_rx) = flume::bounded::<()>(1);
    let policy_reload = reload::PolicyReload {
        load,
        running: config.clone(),
        swap: policy.clone(),
        auth_on,
        bound: bound.clone(),
        tls: tls.clone(),
    };
    let metrics = Arc::new(Registry::new(config.workers, driver.name()));
    let (log, reopen_log, log_writer) = match config.access_log.as_str() {
        "" => (None, None, None),
        target => {
            let (log, reopen, writer) =
                crate::observe::log::start(target, config.access_log_format, metrics.clone())?;
            (Some(log), Some(reopen), Some(writer))
        }
    };
    let shared = Shared {
        auth,
        policy,
        conn_limits,
        metrics: metrics.clone(),
        log,
        resolver_slots: crate::upstream::dns::SystemSlots::new(config.resolver_queue),
        tls,
    };
    let _admin = match admin_listener {
        Some(listener) => Some(admin::start(listener, metrics.clone())?),
        None => None,
    };
    let workers = worker::spawn(config.clone(), shared, listeners, driver, stop_rx)?;
    metrics.ready.store(true, Ordering::Relaxed);
    log_listening(&config, &bound, driver, max_connections);
    sd_notify::notify("READY=1");

    if let (false, Some(every)) = (watched.is_empty(), config.users_watch) {
        reload::watch_config(watched, every, policy_reload.clone())?;
    }
    signals::spawn(
        signals,
        signals::Actions {
            stop: stop_tx,
            reopen_log,
            policy: policy_reload,
            users: users_reload,
            metrics,
        },
    )?;

    for w in workers {
        if w.join().is_err() {
            tracing::error!("a worker panicked");
        }
    }
    // The workers have handed over their last lines: the writer writes the queue and ends.
    if let Some(w) = log_writer {
        w.finish();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The TLS listeners' files, watched with the config file.
fn tls_files(config: &Config) -> Vec<std::path::PathBuf> {
    if config.listen_tls.is_empty() {
        return Vec::new();
    }
    let t = &config.tls;
    [&t.cert, &t.key, &t.client_ca]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

/// Warns once at start when Basic is offered on a plain listener other clients than this host's
/// can reach: its credentials would cross the network in clear.
fn warn_clear_basic(config: &Config, auth: Option<&auth::Shared>) {
    if !auth.is_some_and(|a| a.offers(crate::observe::labels::Scheme::Basic)) {
        return;
    }
    let plain = config.listen.iter().chain(&config.listen_proxy_protocol);
    for addr in plain.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            listener = %addr,
            "Basic is offered on a plain listener that is not loopback: passwords cross the network in clear; offer it on a listen_tls listener instead"
        );
    }
}

/// Proxy authentication as started: the shared part (users, verifier pool) and the sender that
/// asks the users' reload thread for a reload; both `None` when no users are configured.
struct Auth {
    shared: Option<Arc<auth::Shared>>,
    reload: Option<flume::Sender<()>>,
}

/// Loads the users and starts the verifier pool and the users' reload thread, when users are
/// configured.
fn start_auth(config: &Config) -> Result<Auth, StartError> {
    let auth = auth::Shared::start(config)?;
    let users_reload = match &auth {
        Some(a) => {
            tracing::info!(
                users = a.users.snapshot().len(),
                realm = %config.realm,
                "proxy authentication on"
            );
            Some(user_reload::spawn(a.users.clone(), config.users_watch)?)
        }
        None => None,
    };
    Ok(Auth {
        shared: auth,
        reload: users_reload,
    })
}

/// The policy for the sockets actually bound (port 0 resolved), logged once.
fn start_policy(
    config: &Config,
    auth_on: bool,
    bound: &[SocketAddr],
) -> Result<Policy, StartError> {
    let policy = config
        .policy
        .build(auth_on, bound)
        .map_err(StartError::Policy)?;
    tracing::info!(
        clients = %policy.describe_clients(),
        connect_ports = %config.policy.connect_ports.join(","),
        rules = config.policy.rules.len(),
        default_action = ?config.policy.default_action,
        "egress policy"
    );
    Ok(policy)
}

/// The connection limits shared by all workers, and the `max_connections` in force (0 in the
/// config: what the open-files limit allows).
fn conn_limits(config: &Config) -> (Arc<ConnLimits>, usize) {
    let open_files = limits::open_files_limit();
    let max_connections = match config.max_connections {
        0 => limits::auto_max_connections(open_files),
        n => n,
    };
    if open_files.is_some_and(|f| max_connections.saturating_mul(2) > f) {
        tracing::warn!(
            max_connections,
            open_files = open_files.unwrap_or(0),
            "max_connections needs about twice as many fds as the limit on open files allows"
        );
    }
    let conn_limits = Arc::new(
        ConnLimits::new(
            max_connections,
            config.max_connections_per_client,
            config.max_connection_rate_per_client,
            config.max_tunnels_per_user,
            config.user_bandwidth_bytes_per_sec,
        )
        .with_ipv6_prefix(config.client_ipv6_prefix),
    );
    (conn_limits, max_connections)
}

/// The start-up line naming what is listening, and on which driver.
fn log_listening(
    config: &Config,
    bound: &[SocketAddr],
    driver: worker::Driver,
    max_connections: usize,
) {
    // Bound in order: `listen`, `listen_proxy_protocol`, `listen_tls`, then the admin endpoint.
    let text: Vec<String> = bound.iter().map(ToString::to_string).collect();
    let (addrs, rest) = text.split_at(config.listen.len());
    let (proxied, rest) = rest.split_at(config.listen_proxy_protocol.len());
    let tls = &rest[..config.listen_tls.len()];
    tracing::info!(
        driver = driver.name(),
        workers = config.workers,
        relay = ?config.relay,
        max_connections,
        proxy_protocol = %proxied.join(" "),
        tls = %tls.join(" "),
        "listening on {}",
        addrs.join(" ")
    );
}
