//! Start-up and shutdown of the whole process: bind, choose the driver, start the workers, wait for
//! SIGTERM/SIGINT, drain, exit.

use std::io;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::Config;
use crate::worker;

/// Runs the proxy until a shutdown signal and the drain that follows. Errors are start-up errors.
pub fn run(config: Config) -> io::Result<()> {
    let config = Arc::new(config);
    let (driver, fallback) = worker::choose_driver(config.io_driver)
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring unavailable: {e}")))?;
    if let Some(why) = fallback {
        tracing::warn!(error = %why, "io_uring unavailable; workers run on the epoll driver");
    }
    let (listeners, bound) = worker::bind_all(&config)?;
    crate::http::response::prerender();

    // Registered before any worker starts, so no signal is lost to the default action.
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let (stop_tx, stop_rx) = flume::bounded::<()>(1);
    let workers = worker::spawn(config.clone(), listeners, driver, stop_rx)?;
    let addrs: Vec<String> = bound.iter().map(ToString::to_string).collect();
    tracing::info!(
        driver = driver.name(),
        workers = config.workers,
        relay = ?config.relay,
        "listening on {}",
        addrs.join(" ")
    );

    std::thread::Builder::new()
        .name("ringgate-signals".into())
        .spawn(move || {
            let mut stop = Some(stop_tx);
            for signal in signals.forever() {
                if stop.take().is_some() {
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
    tracing::info!("stopped");
    Ok(())
}
