//! Workers: one thread per core, each pinned, each with its own monoio runtime and its own
//! `SO_REUSEPORT` listener per address, so the kernel spreads connections and no connection ever
//! moves between threads. Also the choice of io driver, and the drain on shutdown.

use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::blocking::DefaultThreadPool;
use monoio::net::TcpListener;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::{Config, IoDriver};
use crate::conn;
use crate::observe::labels::ListenerKind;
use crate::server::listener::Listener;
use crate::server::shard::{Shard, Shared};

/// The driver the workers actually run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Epoll,
}

impl Driver {
    pub const fn name(self) -> &'static str {
        match self {
            Driver::Uring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Submission-queue entries per worker ring: monoio's default; a ring pins locked memory, and
/// RLIMIT_MEMLOCK bounds how many large rings a process may have.
const RING_ENTRIES: u32 = 1024;

/// Picks the driver: `auto` tries io_uring once here and falls back to epoll, saying why.
pub fn choose_driver(want: IoDriver) -> io::Result<(Driver, Option<io::Error>)> {
    let probe = || {
        RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(RING_ENTRIES)
            .build()
            .map(drop)
    };
    match want {
        IoDriver::Epoll => Ok((Driver::Epoll, None)),
        IoDriver::Uring => probe().map(|()| (Driver::Uring, None)),
        IoDriver::Auto => match probe() {
            Ok(()) => Ok((Driver::Uring, None)),
            Err(e) => Ok((Driver::Epoll, Some(e))),
        },
    }
}

/// Starts one pinned worker thread per listener set. Returns once every worker listens (or the
/// first error); the handles end after the shutdown signal and the drain.
pub fn spawn(
    config: Arc<Config>,
    shared: Shared,
    listeners: Vec<Vec<Listener>>,
    driver: Driver,
    shutdown: flume::Receiver<()>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let pool = DefaultThreadPool::new(config.resolver_threads);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
    let mut handles = Vec::with_capacity(listeners.len());
    for (id, own) in listeners.into_iter().enumerate() {
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let (config, shared, pool, shutdown, ready) = (
            config.clone(),
            shared.clone(),
            pool.clone(),
            shutdown.clone(),
            ready_tx.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("ringgate-w{id}"))
            .spawn(move || {
                if let Some(core) = core
                    && !core_affinity::set_for_current(core)
                {
                    tracing::warn!(worker = id, core = core.id, "cannot pin worker to its core");
                }
                let shard = Rc::new(Shard::new(id, config, &shared));
                let main = worker_main(shard, own, shutdown, ready.clone());
                let built = match driver {
                    Driver::Uring => RuntimeBuilder::<IoUringDriver>::new()
                        .with_entries(RING_ENTRIES)
                        .enable_timer()
                        .attach_thread_pool(Box::new(pool))
                        .build()
                        .map(|mut rt| rt.block_on(main)),
                    Driver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
                        .enable_timer()
                        .attach_thread_pool(Box::new(pool))
                        .build()
                        .map(|mut rt| rt.block_on(main)),
                };
                if let Err(e) = built {
                    let _ = ready.send(Err(e));
                }
            })?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..handles.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("a worker died while starting")),
        }
    }
    Ok(handles)
}

async fn worker_main(
    shard: Rc<Shard>,
    listeners: Vec<Listener>,
    shutdown: flume::Receiver<()>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let mut own = Vec::with_capacity(listeners.len());
    for l in listeners {
        match TcpListener::from_std(l.socket) {
            Ok(socket) => own.push((socket, l.kind)),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let accepting: Vec<_> = own
        .into_iter()
        .map(|(l, kind)| monoio::spawn(accept_loop(l, kind, shard.clone(), shutdown.clone())))
        .collect();
    let _ = ready.send(Ok(()));
    // Run until the runtime ends with this function.
    monoio::spawn(sweep_upstreams(shard.clone()));
    monoio::spawn(watch_idle_tunnels(shard.clone()));
    if shard.log.is_some() {
        monoio::spawn(flush_log(shard.clone()));
    }
    // The sender never sends: it is dropped on SIGTERM/SIGINT, which wakes every receiver at once.
    let _ = shutdown.recv_async().await;
    for a in accepting {
        a.await;
    }
    drain(&shard).await;
    shard.idle.stop();
    if let Some(log) = &shard.log {
        log.flush();
    }
}

/// Hands the access log's buffered lines to the writer at least every `FLUSH_EVERY`.
async fn flush_log(shard: Rc<Shard>) {
    loop {
        monoio::time::sleep(crate::observe::log::FLUSH_EVERY).await;
        if let Some(log) = &shard.log {
            log.flush();
        }
    }
}

/// Ends tunnels that sat idle too long, until the worker ends.
async fn watch_idle_tunnels(shard: Rc<Shard>) {
    shard.idle.run().await
}

/// Closes idle origin connections that expired or that their origin closed, until the worker ends.
async fn sweep_upstreams(shard: Rc<Shard>) {
    let every = shard.upstreams.sweep_every();
    loop {
        monoio::time::sleep(every).await;
        shard.upstreams.sweep();
    }
}

/// Accepts until shutdown; each connection becomes its own task on this worker.
async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    shard: Rc<Shard>,
    shutdown: flume::Receiver<()>,
) {
    let mut stop = pin!(shutdown.recv_async());
    let mut last_complaint: Option<Instant> = None;
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = &mut stop => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let stream = conn::ClientStream::plain(stream, kind);
                monoio::spawn(conn::serve(stream, peer, shard.clone()));
            }
            Err(e) if is_resource_exhaustion(&e) => {
                // Out of fds or memory: retrying at once would spin the core. Back off, complain
                // at most once a second, and carry on when resources come back.
                if last_complaint.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(worker = shard.id, error = %e, "accept failed: out of resources; backing off");
                    last_complaint = Some(Instant::now());
                }
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => tracing::debug!(worker = shard.id, error = %e, "accept failed"),
        }
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Lets open connections finish for the grace period; whatever is left is closed when the
/// runtime is dropped.
async fn drain(shard: &Shard) {
    let deadline = Instant::now() + shard.config.shutdown_grace;
    while shard.active() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    if shard.active() > 0 {
        tracing::info!(
            worker = shard.id,
            open = shard.active(),
            "grace period over; closing"
        );
    }
}
