//! Reloading the configuration while running (SIGHUP, or a change to the config file seen by the
//! watch thread): the new policy is put in force on every worker; a bad configuration is logged
//! and the running one stays; settings a reload cannot apply are named in a warning.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError};
use crate::creds::reload::{Stamp, stamps};
use crate::policy::Policy;

/// How the configuration is read again (the same file and flags as at start).
pub(super) type Load = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// Everything a policy reload needs; cloned into the signal thread and the watch thread.
#[derive(Clone)]
pub(super) struct PolicyReload {
    pub load: Load,
    /// The configuration the process started with (what a restart would change).
    pub running: Arc<Config>,
    /// The policy the workers read, swapped whole.
    pub swap: Arc<ArcSwap<Policy>>,
    pub auth_on: bool,
    /// The proxy's own sockets, which no request may reach.
    pub bound: Vec<SocketAddr>,
    /// The TLS listeners' certificate, loaded again with the config.
    pub tls: Option<Arc<crate::tls::Certs>>,
}

impl PolicyReload {
    pub fn reload(&self) {
        reload_policy(
            &*self.load,
            &self.running,
            &self.swap,
            self.auth_on,
            &self.bound,
            self.tls.as_deref(),
        );
    }
}

/// The config file and its stamps as they were before anything started: a change made while the
/// proxy starts (or before the watch thread first runs) is then seen as one.
pub(super) struct Watched {
    /// The config file first, if there is one, then the TLS files.
    paths: Vec<PathBuf>,
    has_config: bool,
    seen: Vec<Option<Stamp>>,
}

impl Watched {
    pub fn now(config: Option<PathBuf>, tls: Vec<PathBuf>) -> Watched {
        let has_config = config.is_some();
        let paths: Vec<PathBuf> = config.into_iter().chain(tls).collect();
        let seen = stamps(&paths);
        Watched {
            paths,
            has_config,
            seen,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// Starts the thread that checks the config file every `every` and reloads when it changed.
pub(super) fn watch_config(
    watched: Watched,
    every: Duration,
    reload: PolicyReload,
) -> io::Result<()> {
    let Watched {
        paths,
        has_config,
        mut seen,
    } = watched;
    std::thread::Builder::new()
        .name("ringgate-config-watch".into())
        .spawn(move || {
            loop {
                #[allow(clippy::disallowed_methods, reason = "its own thread, not a worker")]
                std::thread::sleep(every);
                let now = stamps(&paths);
                if now != seen {
                    let config_changed = has_config && now[0] != seen[0];
                    seen = now;
                    if config_changed {
                        tracing::info!("config file changed: reloading");
                    } else {
                        tracing::info!("TLS certificate file changed: reloading");
                    }
                    reload.reload();
                }
            }
        })?;
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
    tls: Option<&crate::tls::Certs>,
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
    // New handshakes get the new certificate; open connections keep theirs. Without TLS
    // listeners at start there is nothing to reload (adding them takes a restart).
    if let Some(tls) = tls
        && !new.listen_tls.is_empty()
    {
        tls.reload(&new.tls);
    }
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
