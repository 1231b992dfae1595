//! The two directions of a tunnel whose client speaks TLS to the proxy: every byte passes through
//! user space (decrypted from the client, encrypted to it), so this is a copy relay: splice cannot
//! move bytes rustls has to see.
//!
//! Client → upstream: each decrypted chunk (at most a TLS record) is sent at once; what the
//! upstream cannot take yet waits in an overflow that exists only until it drains. Upstream →
//! client: read into the worker's one TLS relay buffer, handed to rustls, which encrypts it into its
//! own send buffer, flushed before the next read. An idle direction holds no buffer of its own:
//! what an idle TLS tunnel holds beyond a plain one is rustls' state.

use std::cell::RefCell;

use monoio::net::TcpStream;

use super::{Fault, Meter, TURN_CHUNKS, forward_eof, interrupted, would_block, yield_now};
use crate::sys;
use crate::tls::TlsStream;

/// The TLS client's bytes, decrypted, to the upstream.
pub(super) async fn upward(
    client: &TlsStream,
    dst: &TcpStream,
    meter: &Meter<'_>,
) -> Result<(), Fault> {
    let dst_fd = sys::fd_of(dst);
    let mut overflow: Vec<u8> = Vec::new();
    let mut chunks = 0;
    loop {
        let mut failed = None;
        let n = client
            .read_with(|chunk| {
                let mut sent = 0;
                while sent < chunk.len() {
                    match sys::send(dst_fd, &chunk[sent..]) {
                        Ok(m) => {
                            sent += m;
                            meter.add(m);
                        }
                        Err(e) if would_block(&e) => break,
                        Err(e) if interrupted(&e) => {}
                        Err(e) => {
                            failed = Some(e);
                            return chunk.len();
                        }
                    }
                }
                overflow.extend_from_slice(&chunk[sent..]);
                chunk.len()
            })
            .await
            .map_err(Fault::Src)?;
        if let Some(e) = failed {
            return Err(Fault::Dst(e));
        }
        if n == 0 {
            forward_eof(dst);
            return Ok(());
        }
        meter.pace(n).await;
        if !overflow.is_empty() {
            super::copy_relay::flush(dst, &mut overflow, meter).await?;
            overflow = Vec::new(); // give the memory back: this direction may now sit idle
        }
        chunks += 1;
        if chunks == TURN_CHUNKS {
            chunks = 0;
            yield_now().await;
        }
    }
}

/// The upstream's bytes, encrypted, to the TLS client; its EOF becomes `close_notify` and a
/// half-close.
pub(super) async fn downward(
    src: &TcpStream,
    client: &TlsStream,
    shared: &RefCell<Vec<u8>>,
    meter: &Meter<'_>,
) -> Result<(), Fault> {
    let src_fd = sys::fd_of(src);
    // Bytes encrypted but not yet sent: records are sent a few at a time (one `send` for up to
    // `FLUSH_AT` and a record), not one syscall per record.
    let mut unflushed = 0;
    loop {
        src.readable(false).await.map_err(Fault::Src)?;
        for _ in 0..TURN_CHUNKS {
            let (n, rest) = {
                // No await in this block: the shared buffer is never held across a suspension.
                let mut buf = shared.borrow_mut();
                let n = match sys::read(src_fd, &mut buf) {
                    Ok(0) => None,
                    Ok(n) => Some(n),
                    Err(e) if would_block(&e) => break,
                    Err(e) if interrupted(&e) => continue,
                    Err(e) => return Err(Fault::Src(e)),
                };
                match n {
                    None => (0, Vec::new()),
                    Some(n) => {
                        // rustls' send buffer holds at most `FLUSH_AT` and a record here, under
                        // its 64 KiB limit, so it takes a buffer-full whole; anything it refuses
                        // waits in a copy of its own.
                        let took = client.encrypt(&buf[..n]).map_err(Fault::Dst)?;
                        (n, buf[took..n].to_vec())
                    }
                }
            };
            if n == 0 {
                // As `forward_eof`: a client already gone is not an error here; the other
                // direction sees it. (`close_write` sends what is pending first.)
                let _ = client.close_write().await;
                return Ok(());
            }
            let mut rest = &rest[..];
            while !rest.is_empty() {
                let m = client.write_from(rest).await.map_err(Fault::Dst)?;
                rest = &rest[m..];
            }
            unflushed += n;
            let short = n < shared.borrow().len();
            if unflushed >= FLUSH_AT || short {
                client.flush().await.map_err(Fault::Dst)?;
                unflushed = 0;
            }
            meter.add(n);
            meter.pace(n).await;
            if short {
                break;
            }
        }
        if unflushed > 0 {
            client.flush().await.map_err(Fault::Dst)?;
            unflushed = 0;
        }
        yield_now().await;
    }
}

/// Encrypted bytes sent in one go (see `downward`): two records' worth, so that with one more
/// record rustls' send buffer stays under its default 64 KiB limit.
const FLUSH_AT: usize = 32 * 1024;
