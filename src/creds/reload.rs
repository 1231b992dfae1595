//! Reloading the user database, off the workers: on SIGHUP (forwarded by the server's signal
//! thread) and when a user file changes (polled: a stat per file per interval, which also sees
//! editors that replace the file by renaming). A bad new file leaves the old snapshot in place.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::user_db::Users;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

pub(crate) fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| Stamp {
                len: m.len(),
                modified: m.modified().ok(),
                inode: m.ino(),
            })
        })
        .collect()
}

/// Starts the reloader thread. Send `()` on the returned channel to reload now (SIGHUP); with
/// `watch`, the files are also checked every `watch`. The thread ends when the sender is dropped.
pub fn spawn(users: Arc<Users>, watch: Option<Duration>) -> io::Result<flume::Sender<()>> {
    let (tx, rx) = flume::bounded::<()>(1);
    let sources = users.sources();
    let paths: Vec<PathBuf> = sources
        .htpasswd
        .iter()
        .chain(&sources.htdigest)
        .chain(&sources.ntlm)
        .cloned()
        .collect();
    // Taken now, not when the thread gets to run: a change made meanwhile must count as one.
    let mut seen = stamps(&paths);
    std::thread::Builder::new()
        .name("ringgate-reload".into())
        .spawn(move || {
            loop {
                let why = match watch {
                    Some(every) if !paths.is_empty() => match rx.recv_timeout(every) {
                        Ok(()) => "signal",
                        Err(flume::RecvTimeoutError::Timeout) => {
                            let now = stamps(&paths);
                            if now == seen {
                                continue;
                            }
                            "file changed"
                        }
                        Err(flume::RecvTimeoutError::Disconnected) => break,
                    },
                    _ => match rx.recv() {
                        Ok(()) => "signal",
                        Err(_) => break,
                    },
                };
                seen = stamps(&paths);
                match users.reload() {
                    Ok(count) => tracing::info!(
                        trigger = why,
                        users = count,
                        generation = users.snapshot().generation,
                        "user database reloaded"
                    ),
                    Err(e) => tracing::warn!(
                        trigger = why,
                        error = %e,
                        "user database not reloaded; the previous one stays in use"
                    ),
                }
            }
        })?;
    Ok(tx)
}
