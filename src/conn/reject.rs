//! The one place that turns every failure a client can cause or meet into its response: each
//! layer's error becomes a [`Reply`] here (and nowhere else), and [`fate`] says for every reply
//! whose doing it was, how the access log names the end, and whether the connection closes. The
//! reply itself fixes the status and the fixed reason (`Reply::reason`) for logs.

use std::time::Duration;

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::ClientStream;
use crate::forward::ForwardError;
use crate::forward::body::BodyError;
use crate::http::head::HeadError;
use crate::http::response::Reply;
use crate::http::target::TargetError;
use crate::observe::labels::{LimitKind, Termination};
use crate::policy::Denial;
use crate::upstream::error::DialError;

/// Whose doing a request's end was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The client sent something refused, too slowly, or went away.
    Client,
    /// The origin: unreachable, too slow, or answering badly.
    Upstream,
    /// The access policy refused it.
    Policy,
    /// A limit or a queue of this proxy was full.
    Local,
}

/// What a reply means beyond its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    pub party: Party,
    /// The access log's termination.
    pub termination: Termination,
    /// Whether the connection closes after it (every error reply says `Connection: close`).
    pub close: bool,
}

/// The table: every reply's party, termination and close. Exhaustive, so a new reply must say.
pub const fn fate(reply: Reply) -> Fate {
    use Party::*;
    use Termination as T;
    let (party, termination) = match reply {
        Reply::Established => (Client, T::Closed),
        Reply::MalformedHead
        | Reply::BadConnectTarget
        | Reply::NotAProxyRequest
        | Reply::MethodNotAllowed
        | Reply::TargetTooLong
        | Reply::HeadTooLarge
        | Reply::TooManyHeaders
        | Reply::BadUrl
        | Reply::BadFraming
        | Reply::ClientGone => (Client, T::ClientError),
        Reply::HeaderTimeout | Reply::BodyTimeout => (Client, T::ClientTimeout),
        Reply::ResolveFailed
        | Reply::ConnectRefused
        | Reply::Unreachable
        | Reply::ConnectFailed
        | Reply::BadResponse
        | Reply::OriginClosed => (Upstream, T::UpstreamError),
        Reply::ConnectTimeout | Reply::ResolveTimeout | Reply::OriginTimeout => {
            (Upstream, T::UpstreamTimeout)
        }
        Reply::DeniedClient
        | Reply::DeniedPort
        | Reply::DeniedDestination
        | Reply::DeniedLoop
        | Reply::DeniedRule => (Policy, T::DeniedAcl),
        Reply::AuthBusy
        | Reply::TooManyConnections
        | Reply::TooManyFromClient
        | Reply::TooManyTunnels
        | Reply::ResolverBusy => (Local, T::Limit),
    };
    Fate {
        party,
        termination,
        close: !matches!(reply, Reply::Established),
    }
}

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

impl From<LimitKind> for Reply {
    fn from(l: LimitKind) -> Reply {
        match l {
            LimitKind::MaxConnections => Reply::TooManyConnections,
            LimitKind::PerClient => Reply::TooManyFromClient,
            LimitKind::TunnelsPerUser => Reply::TooManyTunnels,
        }
    }
}

/// A failed *request* body: nothing has been sent to the client yet.
impl From<&BodyError> for Reply {
    fn from(e: &BodyError) -> Reply {
        match e {
            BodyError::Truncated => Reply::ClientGone,
            BodyError::Timeout => Reply::BodyTimeout,
            BodyError::BadChunk => Reply::BadFraming,
            BodyError::WriteFailed => Reply::OriginClosed,
            BodyError::WriteTimeout => Reply::OriginTimeout,
        }
    }
}

impl From<&ForwardError> for Reply {
    fn from(e: &ForwardError) -> Reply {
        match e {
            ForwardError::BadUrl => Reply::BadUrl,
            ForwardError::MalformedHead => Reply::MalformedHead,
            ForwardError::ClientGone => Reply::ClientGone,
            ForwardError::RequestBody(b) => Reply::from(b),
            ForwardError::Denied(d) => Reply::from(d),
            ForwardError::Dial(d) => Reply::from(d),
            ForwardError::OriginTimeout => Reply::OriginTimeout,
            ForwardError::OriginClosed => Reply::OriginClosed,
            ForwardError::BadResponse | ForwardError::UnlabelledCoding => Reply::BadResponse,
        }
    }
}

/// How long, and how much, we keep reading from a client we are closing on, so that the kernel
/// does not answer its unread bytes with a reset that destroys our error response in flight.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Writes `response`, half-closes, and drains the client briefly before the socket is dropped.
pub async fn send_and_close(stream: &mut ClientStream, response: impl IoBuf, buf: Vec<u8>) {
    let (res, _) = stream.write_all(response).await;
    if res.is_ok() {
        linger(stream, buf).await;
    }
}

/// Half-closes and drains the client briefly (what it still sends is dropped), so that a reset
/// cannot destroy the last response in flight.
pub async fn linger(stream: &mut ClientStream, mut buf: Vec<u8>) {
    let _ = monoio::time::timeout(LINGER_TIME, async {
        // TLS: `close_notify` first (a flush that may wait, hence inside the time limit).
        let closed = match stream.as_tls() {
            Some(tls) => tls.close_write().await,
            None => crate::sys::shutdown_write(crate::sys::fd_of(stream.tcp())),
        };
        if closed.is_err() {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per reply: its status and the termination the access log writes.
    #[test]
    fn every_reply_has_its_party_and_termination() {
        use Termination as T;
        for reply in Reply::ALL {
            let f = fate(reply);
            let want = match reply.status() {
                200 => T::Closed,
                400 | 405 | 414 | 431 => T::ClientError,
                408 => T::ClientTimeout,
                502 => T::UpstreamError,
                504 => T::UpstreamTimeout,
                403 => T::DeniedAcl,
                429 | 503 => T::Limit,
                s => panic!("{reply:?}: status {s} not in the table"),
            };
            assert_eq!(f.termination, want, "{reply:?}");
            assert_eq!(f.close, reply != Reply::Established, "{reply:?}");
        }
        assert_eq!(Reply::from(&BodyError::Timeout), Reply::BodyTimeout);
        assert_eq!(Reply::from(&ForwardError::OriginTimeout).status(), 504);
        assert_eq!(fate(Reply::ConnectRefused).party, Party::Upstream);
        assert_eq!(fate(Reply::DeniedRule).party, Party::Policy);
        assert_eq!(fate(Reply::TooManyTunnels).party, Party::Local);
        assert_eq!(fate(Reply::BodyTimeout).party, Party::Client);
    }
}
