//! One tunnel direction with `splice(2)`: socket → pipe → socket, the bytes never in user space.
//!
//! Never a splice that waits: readiness first (`readable`/`writable`, an io_uring poll or epoll), then
//! `splice` with `SPLICE_F_NONBLOCK` on non-blocking sockets. A pipe is leased from the worker's pool
//! when bytes arrive and returned as soon as the socket has no more, drained. When the process is out
//! of fds and no pipe can be made, the bytes go through user space for that turn.

use std::time::Duration;

use monoio::net::TcpStream;

use super::copy_relay;
use super::pipe_pool::PipePool;
use super::{
    Fault, Meter, TURN_CHUNKS, forward_eof, interrupted, pause, wait_writable, would_block,
    yield_now,
};
use crate::sys;

/// A splice smaller than this (or than a quarter of its pipe) is taken to have emptied the socket.
const DRAINED_BELOW: usize = 16 * 1024;

pub(super) async fn one_way(
    src: &TcpStream,
    dst: &TcpStream,
    pipes: &PipePool,
    meter: &Meter<'_>,
) -> Result<(), Fault> {
    let (src_fd, dst_fd) = (sys::fd_of(src), sys::fd_of(dst));
    loop {
        src.readable(false).await.map_err(Fault::Src)?;
        let mut lease = match pipes.lease() {
            Ok(lease) => lease,
            // Out of fds for a pipe: move this turn's bytes through user space instead, so an
            // open tunnel survives the exhaustion (new connections are what must wait).
            Err(e) if is_out_of_fds(&e) => {
                // Boxed: rare, and it must not grow every tunnel's state.
                if Box::pin(copy_relay::copy_once(src, dst, meter)).await? {
                    return Ok(());
                }
                yield_now().await;
                continue;
            }
            Err(e) => return Err(Fault::Local(e)),
        };
        // Keep the pipe while the socket keeps giving; hand it back (empty) when it runs dry, or
        // when this direction has had its turn and must let the worker's other tasks run.
        let mut owed = Duration::ZERO;
        for _ in 0..TURN_CHUNKS {
            let n = match lease.fill_from(src_fd) {
                Ok(0) => {
                    forward_eof(dst);
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(Fault::Src(e)),
            };
            while lease.in_flight() > 0 {
                match lease.drain_to(dst_fd) {
                    Ok(m) => meter.add(m),
                    Err(e) if would_block(&e) => wait_writable(dst).await?,
                    Err(e) if interrupted(&e) => {}
                    Err(e) => return Err(Fault::Dst(e)),
                }
            }
            // Over the user's bandwidth: end the turn and pay before the next chunk moves.
            owed = meter.book(n);
            if !owed.is_zero() {
                break;
            }
            // A small chunk: the socket had no more. Going back to the readiness wait (which
            // completes at once if bytes came meanwhile) saves the splice that would only say
            // EAGAIN: one syscall of three per message on a request/response tunnel. Only small
            // ones: a big splice can come back short with more waiting (a pipe holds one packet
            // per slot, so 64 slots of 1,448-byte segments stop a 256 KiB pipe at ~93 KB, and a
            // pipe the kernel would not enlarge holds two pages).
            if n < DRAINED_BELOW.min(lease.capacity() / 4) {
                break;
            }
        }
        drop(lease);
        // A bandwidth limit waits here, with the pipe back in the pool, not while holding it.
        pause(owed).await;
        yield_now().await;
    }
}

fn is_out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
