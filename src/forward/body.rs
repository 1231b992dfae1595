//! Streaming one message body from one connection to another under a framing the proxy parsed:
//! the bytes pass through unchanged, except a chunked body, which the strict scanner re-states
//! in the receive buffer itself (extensions and forbidden trailer fields dropped, or de-chunked
//! for an HTTP/1.0 client); what arrives after the body's end is handed back to the caller.
//!
//! Every read and every write waits at most the idle timeout for progress: a peer that stops
//! reading (or sending) ends the exchange instead of holding the task, both sockets and the
//! buffer forever. A write cut by its timeout loses its buffer to the cancelled operation
//! (monoio's owned-buffer I/O), so the exchange cannot continue after one: the caller closes.

use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::http::chunked::ChunkedScanner;

const CHUNK: usize = 64 * 1024;

pub enum Framing {
    Length(u64),
    Chunked(ChunkedScanner),
    UntilClose,
}

/// Why a body relay stopped. The sender's failures (`Truncated`, `Timeout`, `BadChunk`) are the
/// fault of whoever sends the body, the receiver's (`WriteTimeout`, `WriteFailed`) of the other
/// side; for a request body `conn::reject` turns each into its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the sender closed or failed before the body's end")]
    Truncated,
    #[error("the sender sent nothing for the idle timeout")]
    Timeout,
    #[error("the receiver took nothing for the idle timeout")]
    WriteTimeout,
    #[error("the receiver failed")]
    WriteFailed,
    #[error("invalid chunked framing")]
    BadChunk,
}

/// Relays a body from `src` to `dst`; `pending` holds bytes already read from `src` (they come
/// first). Returns the bytes read past the body's end, and how many bytes were relayed.
pub async fn relay_body<S: AsyncReadRent, D: AsyncWriteRent>(
    src: &mut S,
    dst: &mut D,
    mut pending: Vec<u8>,
    mut framing: Framing,
    wait: Duration,
) -> Result<(Vec<u8>, u64), BodyError> {
    let mut moved = 0u64;
    loop {
        // `take`: bytes of `pending` that belong to the body; `send`: how many of them, at the
        // front of `pending`, go out (a chunked body is re-stated in place and may shrink).
        let (take, send) = match &mut framing {
            Framing::Length(left) => {
                let take = pending
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                (take, take)
            }
            Framing::Chunked(s) => {
                let got = s.rewrite(&mut pending).map_err(|_| BodyError::BadChunk)?;
                (got.consumed, got.kept)
            }
            Framing::UntilClose => (pending.len(), pending.len()),
        };
        if send > 0 {
            let (res, back) = write_within(dst, pending, 0..send, wait).await;
            pending = back.unwrap_or_default();
            res.map_err(|e| match e {
                Stalled::TimedOut => BodyError::WriteTimeout,
                Stalled::Failed => BodyError::WriteFailed,
            })?;
            moved += send as u64;
        }
        let done = match &mut framing {
            Framing::Length(left) => {
                *left -= take as u64;
                *left == 0
            }
            Framing::Chunked(s) => s.is_done(),
            Framing::UntilClose => false,
        };
        // What was not taken stays: the next message when done; otherwise an incomplete
        // trailer line the scanner wants again, in front of what comes next.
        pending.drain(..take);
        if done {
            return Ok((pending, moved));
        }
        if pending.capacity() < CHUNK {
            pending.reserve(CHUNK - pending.len());
        }
        let (len, cap) = (pending.len(), pending.capacity());
        if len == cap {
            // Cannot happen (a held trailer line is at most 16 KiB): refuse rather than spin.
            return Err(BodyError::BadChunk);
        }
        let read = src.read(pending.slice_mut(len..cap));
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

/// Why [`write_within`] stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// The write failed (the peer closed or reset).
    Failed,
    /// The peer took no byte for the wait; the buffer went with the cancelled write.
    TimedOut,
}

/// Writes `buf[range]` to `dst`, waiting at most `wait` for each step of progress (a slow reader
/// that keeps taking bytes is not cut off; one that takes none for `wait` is). Hands the buffer
/// back, except after a timeout: then it is lost with the cancelled write (`None`), so the
/// caller must end the exchange.
pub async fn write_within<B: IoBuf, D: AsyncWriteRent>(
    dst: &mut D,
    mut buf: B,
    range: std::ops::Range<usize>,
    wait: Duration,
) -> (Result<(), Stalled>, Option<B>) {
    let mut at = range.start;
    while at < range.end {
        let write = dst.write(buf.slice(at..range.end));
        let Ok((res, slice)) = monoio::time::timeout(wait, write).await else {
            return (Err(Stalled::TimedOut), None);
        };
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return (Err(Stalled::Failed), Some(buf)),
            Ok(n) => at += n,
        }
    }
    (Ok(()), Some(buf))
}
