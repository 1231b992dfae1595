//! CONNECT tunnels: both directions relayed at once until both have ended, one side fails, or the
//! tunnel sits idle too long.
//!
//! Invariant: an idle tunnel holds its two sockets and this small task, nothing else: no pipe, no
//! buffer, and no pending splice that the kernel would park in an io-wq thread. Each direction waits
//! for readiness first and only then moves bytes with non-blocking syscalls.

mod copy_relay;
pub mod idle;
pub mod pipe_pool;
mod splice_relay;
mod tls_relay;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::config::RelayKind;
use crate::observe::labels::Termination;
use crate::policy::limits::UserRate;
use crate::server::shard::Shard;
use crate::sys;
use crate::tls::TlsStream;

/// How a finished tunnel went.
#[derive(Debug, Clone, Copy)]
pub struct TunnelEnd {
    /// Bytes client → upstream (after the CONNECT head's early data).
    pub up: u64,
    /// Bytes upstream → client.
    pub down: u64,
    pub reason: Termination,
}

/// Which side of one direction failed.
#[derive(Debug)]
enum Fault {
    Src(io::Error),
    Dst(io::Error),
    Local(io::Error),
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    /// client → upstream
    Up,
    /// upstream → client
    Down,
}

impl Fault {
    /// Whose failure ended the tunnel, given the direction it happened in (the source of the
    /// upward direction and the destination of the downward one are the client); logs the error.
    fn end(self, dir: Direction) -> Termination {
        let (reason, e) = match (self, dir) {
            (Fault::Src(e), Direction::Up) | (Fault::Dst(e), Direction::Down) => {
                (Termination::ClientError, e)
            }
            (Fault::Src(e), Direction::Down) | (Fault::Dst(e), Direction::Up) => {
                (Termination::UpstreamError, e)
            }
            (Fault::Local(e), _) => (Termination::LocalError, e),
        };
        if reason == Termination::LocalError {
            tracing::warn!(error = %e, "tunnel ended: local resource error");
        } else {
            tracing::debug!(error = %e, direction = ?dir, end = reason.name(), "tunnel ended by error");
        }
        reason
    }
}

/// One direction's count of bytes moved, the time a byte last moved (shared by both directions),
/// and the user's bandwidth share if one is set.
struct Meter<'a> {
    moved: Cell<u64>,
    activity: &'a Cell<Instant>,
    rate: Option<&'a UserRate>,
}

impl<'a> Meter<'a> {
    fn new(activity: &'a Cell<Instant>, rate: Option<&'a UserRate>) -> Meter<'a> {
        Meter {
            moved: Cell::new(0),
            activity,
            rate,
        }
    }

    fn add(&self, n: usize) {
        self.moved.set(self.moved.get() + n as u64);
        self.activity.set(Instant::now());
    }

    /// Books `n` bytes against the user's bandwidth: how long to wait before moving more.
    fn book(&self, n: usize) -> Duration {
        self.rate.map_or(Duration::ZERO, |rate| rate.book(n))
    }

    /// Books `n` bytes and waits as long as the bandwidth says.
    async fn pace(&self, n: usize) {
        pause(self.book(n)).await;
    }
}

/// Waits `wait` (nothing when zero).
async fn pause(wait: Duration) {
    if !wait.is_zero() {
        // Boxed: a timer in every direction's state would grow every idle tunnel.
        Box::pin(monoio::time::sleep(wait)).await;
    }
}

/// Relays between `client` and `upstream` until the tunnel ends. Both sockets are switched to
/// non-blocking mode; the caller closes them afterwards.
pub async fn relay(
    client: &TcpStream,
    upstream: &TcpStream,
    shard: &Shard,
    rate: Option<&UserRate>,
) -> TunnelEnd {
    let activity = Cell::new(Instant::now());
    let (up, down) = (Meter::new(&activity, rate), Meter::new(&activity, rate));
    let reason = match (
        sys::set_nonblocking(sys::fd_of(client)),
        sys::set_nonblocking(sys::fd_of(upstream)),
    ) {
        (Ok(()), Ok(())) => {
            let kind = shard.config.relay;
            // Pinned in place, each future stored once: handing them to an async fn by value
            // would keep a moved-from copy of each in this future's state as well.
            let upward = pin!(one_way(kind, client, upstream, shard, &up));
            let downward = pin!(one_way(kind, upstream, client, shard, &down));
            let idle = pin!(shard.idle.watch(&activity, shard.config.idle_timeout));
            both_ways(upward, downward, idle).await
        }
        _ => Termination::LocalError,
    };
    TunnelEnd {
        up: up.moved.get(),
        down: down.moved.get(),
        reason,
    }
}

/// [`relay`] for a client that speaks TLS to the proxy: its side goes through rustls, so both
/// directions copy through user space (see `tls_relay`).
pub async fn relay_tls(
    client: &TlsStream,
    upstream: &TcpStream,
    shard: &Shard,
    rate: Option<&UserRate>,
) -> TunnelEnd {
    let activity = Cell::new(Instant::now());
    let (up, down) = (Meter::new(&activity, rate), Meter::new(&activity, rate));
    // The client's socket is non-blocking since its handshake.
    let reason = match sys::set_nonblocking(sys::fd_of(upstream)) {
        Ok(()) => {
            let upward = pin!(tls_relay::upward(client, upstream, &up));
            let downward = pin!(tls_relay::downward(upstream, client, &shard.tls_buf, &down));
            let idle = pin!(shard.idle.watch(&activity, shard.config.idle_timeout));
            both_ways(upward, downward, idle).await
        }
        Err(_) => Termination::LocalError,
    };
    TunnelEnd {
        up: up.moved.get(),
        down: down.moved.get(),
        reason,
    }
}

async fn one_way(
    kind: RelayKind,
    src: &TcpStream,
    dst: &TcpStream,
    shard: &Shard,
    meter: &Meter<'_>,
) -> Result<(), Fault> {
    match kind {
        RelayKind::Splice => splice_relay::one_way(src, dst, &shard.pipes, meter).await,
        RelayKind::Copy => copy_relay::one_way(src, dst, &shard.copy_buf, meter).await,
    }
}

/// Drives both directions: a direction that ends cleanly lets the other go on (half-close); an error
/// either way, or the idle watch firing, ends the tunnel.
fn both_ways(
    mut upward: Pin<&mut impl Future<Output = Result<(), Fault>>>,
    mut downward: Pin<&mut impl Future<Output = Result<(), Fault>>>,
    mut idle: Pin<&mut impl Future<Output = ()>>,
) -> impl Future<Output = Termination> {
    let (mut up_done, mut down_done) = (false, false);
    std::future::poll_fn(move |cx| {
        if !up_done && let Poll::Ready(r) = upward.as_mut().poll(cx) {
            match r {
                Ok(()) => up_done = true,
                Err(fault) => return Poll::Ready(fault.end(Direction::Up)),
            }
        }
        if !down_done && let Poll::Ready(r) = downward.as_mut().poll(cx) {
            match r {
                Ok(()) => down_done = true,
                Err(fault) => return Poll::Ready(fault.end(Direction::Down)),
            }
        }
        if up_done && down_done {
            return Poll::Ready(Termination::Closed);
        }
        if idle.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Termination::IdleTimeout);
        }
        Poll::Pending
    })
}

/// Chunks (a pipe- or buffer-full each) one direction may move before it yields to the other tasks of
/// its worker: monoio has no task budget, and a bulk sender on another core can keep a socket
/// readable forever.
const TURN_CHUNKS: usize = 16;

/// Lets every other ready task of this worker run once before the caller continues.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Waits until `dst` may take more bytes, then lets the worker's other tasks run once. The kernel can
/// report a socket writable (poll) yet refuse a non-blocking send (EAGAIN) under memory pressure;
/// without the yield, the direction would retry inside one poll of the tunnel task and starve the
/// opposite direction, which is the one that would relieve the pressure (seen once on epoll: a
/// 1 GiB echo test stalled).
async fn wait_writable(dst: &TcpStream) -> Result<(), Fault> {
    dst.writable(false).await.map_err(Fault::Dst)?;
    yield_now().await;
    Ok(())
}

/// Half-closes `dst` after its source reached EOF. A peer already gone is not an error here: the
/// other direction will see it.
fn forward_eof(dst: &TcpStream) {
    let _ = sys::shutdown_write(sys::fd_of(dst));
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}
