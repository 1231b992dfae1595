//! The signal thread: SIGHUP reloads (the policy, then the users), SIGUSR1 reopens the access log,
//! the first SIGTERM/SIGINT starts the drain and a second one exits at once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGUSR1};
use signal_hook::iterator::Signals;

use super::reload::PolicyReload;
use super::sd_notify;
use crate::observe::metrics::Registry;

/// What the signals act on.
pub(super) struct Actions {
    /// Dropped on the first stop signal: the workers stop accepting and drain.
    pub stop: flume::Sender<()>,
    /// Set to make the access log writer reopen its file; `None`: no access log.
    pub reopen_log: Option<Arc<AtomicBool>>,
    pub policy: PolicyReload,
    /// Asks the user database's reload thread for a reload; `None`: no users.
    pub users: Option<flume::Sender<()>>,
    pub metrics: Arc<Registry>,
}

/// Starts the thread that handles `signals` (registered before any worker started).
pub(super) fn spawn(mut signals: Signals, actions: Actions) -> io::Result<()> {
    let Actions {
        stop,
        reopen_log,
        policy,
        users,
        metrics,
    } = actions;
    std::thread::Builder::new()
        .name("ringgate-signals".into())
        .spawn(move || {
            let mut stop = Some(stop);
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
                    policy.reload();
                    if let Some(tx) = &users {
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
    Ok(())
}
