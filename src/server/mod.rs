//! Start-up and shutdown of the whole process: load the users, bind, choose the driver, start the
//! workers, wait for signals (SIGHUP reloads the config's policy and the users; SIGTERM/SIGINT
//! drain and exit).

pub mod fill;
pub mod sd_notify;
pub mod shard;
pub mod worker;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use crate::auth;
use crate::config::{Config, ConfigError};
use crate::creds::reload;
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
}

/// Runs the proxy until a shutdown signal and the drain that follows. Errors are start-up errors.
/// How to read the configuration again on SIGHUP (the same file and flags as at start).
pub struct Reload {
    pub load: Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>,
    /// The config file, watched for changes every `users_watch_secs`; `None`: no file.
    pub file: Option<std::path::PathBuf>,
}

pub fn run(config: Config, reload: Reload) -> Result<(), StartError> {
    let Reload { load, file } = reload;
    // The config file as it is now, before anything starts: a change made while the proxy starts
    // (or before the watch thread first runs) is then seen as one.
    let watched = file.map(|path| {
        let paths = [path];
        let seen = crate::creds::reload::stamps(&paths);
        (paths, seen)
    });
    let reload_config: Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync> = Arc::from(load);
    let config = Arc::new(config);
    let auth = auth::Shared::start(&config)?;
    let reload = match &auth {
        Some(a) => {
            tracing::info!(
                users = a.users.snapshot().len(),
                realm = %config.realm,
                "proxy authentication on"
            );
            Some(reload::spawn(a.users.clone(), config.users_watch)?)
        }
        None => None,
    };
    let (driver, fallback) = worker::choose_driver(config.io_driver)
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring unavailable: {e}")))?;
    if let Some(why) = fallback {
        tracing::warn!(error = %why, "io_uring unavailable; workers run on the epoll driver");
    }
    let (listeners, bound) = worker::bind_all(&config)?;
    crate::upstream::source::check(&config.bind_source)?;
    crate::http::response::prerender();
    let admin_listener = config.admin.map(admin::bind).transpose()?;
    // The proxy's own sockets, which no request may reach: its listeners and the admin endpoint.
    let mut bound = bound;
    if let Some(a) = &admin_listener {
        bound.push(a.local_addr()?);
    }
    let policy = config
        .policy
        .build(auth.is_some(), &bound)
        .map_err(StartError::Policy)?;
    tracing::info!(
        clients = %policy.describe_clients(),
        connect_ports = %config.policy.connect_ports.join(","),
        rules = config.policy.rules.len(),
        default_action = ?config.policy.default_action,
        "egress policy"
    );
    let policy = Arc::new(ArcSwap::from_pointee(policy));
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

    // Registered before any worker starts, so no signal is lost to the default action.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])?;
    let (stop_tx, stop_rx) = flume::bounded::<()>(1);
    let auth_on = auth.is_some();
    let running = config.clone();
    let swap = policy.clone();
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
    };
    let _admin = match admin_listener {
        Some(listener) => Some(admin::start(listener, metrics.clone())?),
        None => None,
    };
    let workers = worker::spawn(config.clone(), shared, listeners, driver, stop_rx)?;
    metrics.ready.store(true, Ordering::Relaxed);
    // Bound in order: `listen`, then `listen_proxy_protocol`, then the admin endpoint.
    let text: Vec<String> = bound.iter().map(ToString::to_string).collect();
    let (addrs, rest) = text.split_at(config.listen.len());
    let proxied = &rest[..config.listen_proxy_protocol.len()];
    tracing::info!(
        driver = driver.name(),
        workers = config.workers,
        relay = ?config.relay,
        max_connections,
        proxy_protocol = %proxied.join(" "),
        "listening on {}",
        addrs.join(" ")
    );
    sd_notify::notify("READY=1");

    if let (Some((paths, mut seen)), Some(every)) = (watched, config.users_watch) {
        let (load, running, swap, bound) = (
            reload_config.clone(),
            running.clone(),
            swap.clone(),
            bound.clone(),
        );
        std::thread::Builder::new()
            .name("ringgate-config-watch".into())
            .spawn(move || {
                loop {
                    #[allow(clippy::disallowed_methods, reason = "its own thread, not a worker")]
                    std::thread::sleep(every);
                    let now = crate::creds::reload::stamps(&paths);
                    if now != seen {
                        seen = now;
                        tracing::info!("config file changed: reloading");
                        reload_policy(&*load, &running, &swap, auth_on, &bound);
                    }
                }
            })?;
    }

    std::thread::Builder::new()
        .name("ringgate-signals".into())
        .spawn(move || {
            let mut stop = Some(stop_tx);
            for signal in signals.forever() {
                if signal == SIGUSR1 {
                    match &reopen_log {
                        Some(flag) => {
                            flag.store(true, Ordering::Relaxed);
                            tracing::info!("SIGUSR1: reopening the access log");
                        }
                        None => tracing::info!("SIGUSR1: no access log to reopen"),
                    }
                } else if signal == SIGHUP {
                    reload_policy(&*reload_config, &running, &swap, auth_on, &bound);
                    if let Some(tx) = &reload {
                        // A reload already queued covers this one too.
                        let _ = tx.try_send(());
                    }
                } else if stop.take().is_some() {
                    metrics.draining.store(true, Ordering::Relaxed);
                    sd_notify::notify("STOPPING=1");
                    tracing::info!(
                        signal,
                        "shutting down: no new connections; open ones get the grace period"
                    );
                } else {
                    tracing::warn!(signal, "second signal: exiting now");
                    std::process::exit(1);
                }
            }
        })?;

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

/// Reads the configuration again and puts its policy in force; a bad configuration is logged and
/// the running one stays. Changes to settings a reload cannot apply are named in a warning.
fn reload_policy(
    load: &(dyn Fn() -> Result<Config, ConfigError> + Send + Sync),
    running: &Config,
    swap: &ArcSwap<Policy>,
    auth_on: bool,
    bound: &[std::net::SocketAddr],
) {
    // The signal thread and the file watch may both reload: one at a time, so the policy stored
    // last is the one read last.
    #[allow(
        clippy::disallowed_types,
        reason = "reloads run on the signal and watch threads, never on a worker"
    )]
    static RELOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = RELOADING.lock().unwrap_or_else(|e| e.into_inner());
    let new = match load() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("config reload failed, the running config stays: {e}");
            return;
        }
    };
    let policy = match new.policy.build(auth_on, bound) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("config reload failed, the running config stays: config key {e}");
            return;
        }
    };
    swap.store(Arc::new(policy));
    let restart: Vec<String> = changed_keys(running, &new)
        .into_iter()
        .filter(|k| !crate::config::keys::applied_on_reload(k))
        .collect();
    tracing::info!(
        rules = new.policy.rules.len(),
        "config reloaded: policy in force"
    );
    if !restart.is_empty() {
        tracing::warn!(
            "changed settings take effect only after a restart: {}",
            restart.join(", ")
        );
    }
}

/// The top-level keys whose values differ between two configurations.
fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    let table = |c: &Config| c.to_toml().parse::<toml::Table>().unwrap_or_default();
    let (a, b) = (table(a), table(b));
    a.keys()
        .chain(b.keys().filter(|k| !a.contains_key(*k)))
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
