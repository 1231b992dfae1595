//! Answering `407 Proxy Authentication Required` on a connection that should survive it: clients
//! (curl, Java, Maven) retry on the same connection, so the proxy keeps it open whenever the
//! request's framing allows, reading and dropping a small body first.
//!
//! Hot path: a kept-alive 407 writes shared prerendered bytes and reuses the connection's buffer;
//! nothing here allocates (see tests/alloc.rs).

use std::time::Instant;

use monoio::buf::IoBuf;
use monoio::io::AsyncWriteRentExt;

use super::{ClientStream, reject};
use crate::auth::challenge::Persistence;
use crate::auth::{ConnAuth, Gate};
use crate::http::head::{Body, Method, RequestHead};
use crate::server::fill::{Filled, fill};
use crate::server::shard::Shard;

/// What the 407 says.
pub enum Offer<'a> {
    /// Every configured scheme; Digest's challenges with `stale=true` when `stale`.
    Schemes { stale: bool },
    /// The next leg of the connection's handshake.
    Continue(&'a ConnAuth),
}

pub enum Next {
    /// The 407 is sent and the request fully consumed: read the next one.
    ReadNext,
    Closed,
}

/// Sends the 407 for `head` and consumes the request, or closes when its body cannot be skipped
/// cheaply and safely, or when this is the `last` 407 the connection may receive.
pub async fn answer(
    stream: &mut ClientStream,
    buf: &mut Vec<u8>,
    head: &RequestHead,
    gate: &Gate,
    shard: &Shard,
    last: bool,
    offer: Offer<'_>,
) -> Next {
    let body = match head.body {
        Body::None => Some(0),
        // With `Expect: 100-continue` the client may never send the body: it waits for us, and we
        // answered 407 instead of 100. Only closing keeps the framing certain (RFC 9110 §10.1.1).
        Body::Length(n) if !head.expect_continue && n <= shard.config.discard_body_bytes => Some(n),
        // Chunked bodies are not skipped here (forwarding brings the chunk parser); nor is one
        // larger than the limit.
        Body::Length(_) | Body::Chunked => None,
    };
    let persistence = match body {
        _ if last => Persistence::Close,
        Some(_) if head.persistent() && head.minor_version >= 1 => Persistence::KeepAlive,
        Some(_) if head.persistent() => Persistence::KeepAlive10,
        _ => Persistence::Close,
    };
    let head_only = head.method == Method::Head;
    let fixed = match offer {
        Offer::Schemes { .. } => gate.challenge(persistence, head_only),
        Offer::Continue(_) => None,
    };

    let Some(body) = body.filter(|_| persistence != Persistence::Close) else {
        match fixed {
            Some(response) => reject::send_and_close(stream, response, std::mem::take(buf)).await,
            None => {
                let mut response = Vec::new();
                write(gate, &offer, persistence, head_only, &mut response);
                reject::send_and_close(stream, response, std::mem::take(buf)).await;
            }
        }
        return Next::Closed;
    };
    let res = match fixed {
        Some(response) => stream.write_all(response).await.0,
        None => {
            // A fresh nonce: the response goes after what the buffer holds (this request and
            // any pipelined one), is written from there, and is cut off again.
            let start = buf.len();
            write(gate, &offer, persistence, head_only, buf);
            let (res, written) = stream.write_all(std::mem::take(buf).slice(start..)).await;
            *buf = written.into_inner();
            buf.truncate(start);
            res
        }
    };
    if res.is_err() {
        return Next::Closed;
    }
    if skip(stream, buf, head.len as u64 + body, shard).await {
        Next::ReadNext
    } else {
        Next::Closed
    }
}

/// Appends the 407 for `offer` to `out` (a fresh nonce, or the handshake's token).
fn write(
    gate: &Gate,
    offer: &Offer<'_>,
    persistence: Persistence,
    head_only: bool,
    out: &mut Vec<u8>,
) {
    match offer {
        Offer::Schemes { stale } => gate.write_challenge(persistence, head_only, *stale, out),
        Offer::Continue(conn) => gate.write_continue(conn, persistence, head_only, out),
    }
}

/// Drops the first `n` bytes of the stream (the request and its body, some already in `buf`),
/// keeping whatever follows (a pipelined request) at the front of `buf`. False if the client went
/// away or took longer than `header_timeout`.
async fn skip(stream: &mut ClientStream, buf: &mut Vec<u8>, n: u64, shard: &Shard) -> bool {
    let have = buf.len() as u64;
    if n <= have {
        buf.drain(..n as usize);
        return true;
    }
    let mut left = n - have;
    buf.clear();
    let deadline = Instant::now() + shard.config.header_timeout;
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        match fill(stream, buf, wait).await {
            Filled::TimedOut | Filled::Closed => return false,
            Filled::Read(got) if got as u64 >= left => {
                buf.drain(..left as usize);
                left = 0;
            }
            Filled::Read(got) => {
                left -= got as u64;
                buf.clear();
            }
        }
    }
    true
}
