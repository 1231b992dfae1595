//! Streaming one message body from one connection to another under a framing the proxy parsed:
//! the bytes pass through unchanged (chunked framing included, after the strict scanner checked
//! it), and what arrives after the body's end is handed back to the caller.

use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::chunked::ChunkedScanner;
use crate::http::response::Reply;

const CHUNK: usize = 64 * 1024;

pub enum Framing {
    Length(u64),
    Chunked(ChunkedScanner),
    UntilClose,
}

#[derive(Debug)]
pub enum BodyError {
    /// The sender closed or failed before the body's end.
    Truncated,
    /// Nothing moved for the idle timeout.
    Timeout,
    /// The receiver failed.
    WriteFailed,
    BadChunk,
}

impl BodyError {
    /// The answer when a *request* body failed (nothing has been sent to the client yet).
    pub fn reply_for_request(&self) -> Reply {
        match self {
            BodyError::Truncated => Reply::ClientGone,
            BodyError::WriteFailed => Reply::OriginClosed,
            BodyError::Timeout => Reply::HeaderTimeout,
            BodyError::BadChunk => Reply::BadFraming,
        }
    }
}

/// Relays a body from `src` to `dst`; `pending` holds bytes already read from `src` (they come
/// first). Returns the bytes read past the body's end, and how many bytes were relayed.
pub async fn relay_body(
    src: &mut TcpStream,
    dst: &mut TcpStream,
    mut pending: Vec<u8>,
    mut framing: Framing,
    wait: Duration,
) -> Result<(Vec<u8>, u64), BodyError> {
    let mut moved = 0u64;
    loop {
        let take = match &mut framing {
            Framing::Length(left) => pending
                .len()
                .min(usize::try_from(*left).unwrap_or(usize::MAX)),
            Framing::Chunked(s) => s.feed(&pending).map_err(|_| BodyError::BadChunk)?,
            Framing::UntilClose => pending.len(),
        };
        if take > 0 {
            let (res, slice) = dst.write_all(pending.slice(0..take)).await;
            pending = slice.into_inner();
            res.map_err(|_| BodyError::WriteFailed)?;
            moved += take as u64;
        }
        let done = match &mut framing {
            Framing::Length(left) => {
                *left -= take as u64;
                *left == 0
            }
            Framing::Chunked(s) => s.is_done(),
            Framing::UntilClose => false,
        };
        if done {
            pending.drain(..take);
            return Ok((pending, moved));
        }
        pending.clear();
        if pending.capacity() < CHUNK {
            pending.reserve(CHUNK);
        }
        let cap = pending.capacity();
        let read = src.read(pending.slice_mut(0..cap));
        let Ok((res, slice)) = monoio::time::timeout(wait, read).await else {
            return Err(BodyError::Timeout);
        };
        pending = slice.into_inner();
        match res {
            Ok(0) if matches!(framing, Framing::UntilClose) => return Ok((Vec::new(), moved)),
            Ok(0) | Err(_) => return Err(BodyError::Truncated),
            Ok(_) => {}
        }
    }
}
