//! One tunnel direction through user space, for where splice is unavailable or unwanted.
//!
//! All tunnels of a worker share one buffer: a direction borrows it only between an await and the
//! next, reads what is there and writes what the destination takes at once. Bytes the destination
//! cannot take yet are copied to a per-direction overflow that exists only until it drains, so an
//! idle tunnel holds no buffer.

use std::cell::RefCell;

use monoio::net::TcpStream;

use super::{
    Fault, Meter, TURN_CHUNKS, forward_eof, interrupted, wait_writable, would_block, yield_now,
};
use crate::sys;

pub(super) async fn one_way(
    src: &TcpStream,
    dst: &TcpStream,
    shared: &RefCell<Vec<u8>>,
    meter: &Meter<'_>,
) -> Result<(), Fault> {
    let (src_fd, dst_fd) = (sys::fd_of(src), sys::fd_of(dst));
    let mut overflow: Vec<u8> = Vec::new();
    loop {
        src.readable(false).await.map_err(Fault::Src)?;
        for _ in 0..TURN_CHUNKS {
            let n = {
                // No await in this block: the shared buffer is never held across a suspension.
                let mut buf = shared.borrow_mut();
                let n = match sys::read(src_fd, &mut buf) {
                    Ok(0) => {
                        forward_eof(dst);
                        return Ok(());
                    }
                    Ok(n) => n,
                    Err(e) if would_block(&e) => break,
                    Err(e) if interrupted(&e) => continue,
                    Err(e) => return Err(Fault::Src(e)),
                };
                let mut sent = 0;
                while sent < n {
                    match sys::send(dst_fd, &buf[sent..n]) {
                        Ok(m) => {
                            sent += m;
                            meter.add(m);
                        }
                        Err(e) if would_block(&e) => {
                            overflow.extend_from_slice(&buf[sent..n]);
                            break;
                        }
                        Err(e) if interrupted(&e) => {}
                        Err(e) => return Err(Fault::Dst(e)),
                    }
                }
                n
            };
            meter.pace(n).await;
            if !overflow.is_empty() {
                flush(dst, &mut overflow, meter).await?;
                overflow = Vec::new(); // give the memory back: this direction may now sit idle
            }
            // Less than a buffer-full: the socket had no more (see the splice relay).
            if n < shared.borrow().len() {
                break;
            }
        }
        yield_now().await;
    }
}

/// Size of a one-off copy when a splice relay cannot get a pipe.
const FALLBACK_CHUNK: usize = 16 * 1024;

/// Moves what `src` has now (up to one chunk) to `dst` through a buffer that lives only for this
/// call: the splice relay's way through fd exhaustion. `true` when `src` has ended.
pub(super) async fn copy_once(
    src: &TcpStream,
    dst: &TcpStream,
    meter: &Meter<'_>,
) -> Result<bool, Fault> {
    let mut buf = vec![0u8; FALLBACK_CHUNK];
    let n = loop {
        match sys::read(sys::fd_of(src), &mut buf) {
            Ok(0) => {
                forward_eof(dst);
                return Ok(true);
            }
            Ok(n) => break n,
            Err(e) if would_block(&e) => return Ok(false),
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(Fault::Src(e)),
        }
    };
    buf.truncate(n);
    flush(dst, &mut buf, meter).await?;
    Ok(false)
}

pub(super) async fn flush(
    dst: &TcpStream,
    pending: &mut Vec<u8>,
    meter: &Meter<'_>,
) -> Result<(), Fault> {
    let dst_fd = sys::fd_of(dst);
    while !pending.is_empty() {
        match sys::send(dst_fd, pending) {
            Ok(m) => {
                pending.drain(..m);
                meter.add(m);
            }
            Err(e) if would_block(&e) => wait_writable(dst).await?,
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(Fault::Dst(e)),
        }
    }
    Ok(())
}
