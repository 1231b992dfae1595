//! The one place that turns every failure a client can cause or meet into its response.

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::acl::Denial;
use crate::http::head::HeadError;
use crate::http::response::Reply;
use crate::http::target::TargetError;
use crate::upstream::dial::DialError;

impl From<HeadError> for Reply {
    fn from(e: HeadError) -> Reply {
        match e {
            HeadError::Malformed => Reply::MalformedHead,
            HeadError::TooLarge => Reply::HeadTooLarge,
            HeadError::TargetTooLong => Reply::TargetTooLong,
            HeadError::TooManyHeaders => Reply::TooManyHeaders,
            HeadError::BadFraming => Reply::BadFraming,
        }
    }
}

impl From<TargetError> for Reply {
    fn from(e: TargetError) -> Reply {
        match e {
            TargetError::NotAuthority
            | TargetError::BadPort
            | TargetError::BadHost
            | TargetError::NotHttp
            | TargetError::BadUrl => Reply::BadConnectTarget,
        }
    }
}

impl From<&DialError> for Reply {
    fn from(e: &DialError) -> Reply {
        match e {
            DialError::Resolve(_) | DialError::NoAddress => Reply::ResolveFailed,
            DialError::Refused => Reply::ConnectRefused,
            DialError::Unreachable => Reply::Unreachable,
            DialError::Timeout => Reply::ConnectTimeout,
            DialError::ResolveTimeout => Reply::ResolveTimeout,
            DialError::ResolverBusy => Reply::ResolverBusy,
            DialError::Other(_) => Reply::ConnectFailed,
            DialError::Denied(d) => Reply::from(d),
        }
    }
}

impl From<&Denial> for Reply {
    fn from(d: &Denial) -> Reply {
        match d {
            Denial::Client => Reply::DeniedClient,
            Denial::Port => Reply::DeniedPort,
            Denial::Destination(_) => Reply::DeniedDestination,
            Denial::Loop => Reply::DeniedLoop,
            Denial::Rule(_) => Reply::DeniedRule,
        }
    }
}

/// How long, and how much, we keep reading from a client we are closing on, so that the kernel
/// does not answer its unread bytes with a reset that destroys our error response in flight.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Writes `response`, half-closes, and drains the client briefly before the socket is dropped.
pub async fn send_and_close(stream: &mut TcpStream, response: &'static [u8], buf: Vec<u8>) {
    let (res, _) = stream.write_all(response).await;
    if res.is_ok() {
        linger(stream, buf).await;
    }
}

/// Half-closes and drains the client briefly (what it still sends is dropped), so that a reset
/// cannot destroy the last response in flight.
pub async fn linger(stream: &mut TcpStream, mut buf: Vec<u8>) {
    let _ = crate::sys::shutdown_write(crate::sys::fd_of(stream));
    let _ = monoio::time::timeout(LINGER_TIME, async {
        let mut drained = 0;
        buf.clear();
        if buf.capacity() == 0 {
            buf.reserve(4096);
        }
        while drained < LINGER_BYTES {
            let (res, b) = stream.read(buf).await;
            buf = b;
            match res {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
            buf.clear();
        }
    })
    .await;
}
