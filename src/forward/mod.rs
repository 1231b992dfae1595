//! Plain HTTP forwarding of absolute-form requests (`GET http://host/path`): the request head is
//! rewritten for the origin (`http::rewrite`), bodies are streamed in both directions under the
//! framing the proxy parsed itself (Content-Length, chunked checked and re-stated by
//! `http::chunked`, or until close), each read and write bounded by the idle timeout, and both
//! connections stay open when the framing allows. One origin connection is kept
//! per client connection and reused for its next request to the same host and port.

pub mod body;
pub mod pool;

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Instant;

use monoio::net::TcpStream;

use crate::conn::ClientStream;

use crate::auth::Who;
use crate::http::chunked::{ChunkedScanner, Output};
use crate::http::head::{Body, MAX_HEADERS_CAP, Method, RequestHead};
use crate::http::response_head::{self, ResponseBody};
use crate::http::rewrite::{self, Additions};
use crate::http::target::parse_absolute_http;
use crate::observe::labels::Termination;
use crate::policy::{self, Denial, Policy, Verdict};
use crate::server::fill::{Filled, fill};
use crate::server::shard::Shard;
use crate::upstream::dial::dial;
use crate::upstream::error::{DialError, count_dial_error};
use body::{BodyError, Framing, relay_body, write_within};
use pool::{Key, Upstream};

/// What the connection loop does after a forwarded request.
pub enum Next {
    ReadNext,
    Closed,
    /// Close, but read and drop what the client still sends for a moment first: it was cut off
    /// in the middle of a request body by an early answer.
    Linger,
}

/// Why a forwarded request ended before the origin's response reached the client; `conn::reject`
/// turns each into its answer (and says whose fault it was).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The client's: not an `http://` URL the proxy forwards.
    #[error("not an http:// URL")]
    BadUrl,
    /// The client's.
    #[error("malformed request head")]
    MalformedHead,
    /// The client went away before its body was asked for (`100 Continue`).
    #[error("client gone")]
    ClientGone,
    /// The request body failed: the client's fault or the origin's, as [`BodyError`] says.
    #[error("request body: {0}")]
    RequestBody(BodyError),
    /// The policy's.
    #[error("denied: {}", .0.reason())]
    Denied(Denial),
    /// Dialing the origin failed (its own error says whose fault).
    #[error(transparent)]
    Dial(DialError),
    /// The origin's: it took or answered nothing in time.
    #[error("origin timed out")]
    OriginTimeout,
    /// The origin's: it closed without a response.
    #[error("origin closed without a response")]
    OriginClosed,
    /// The origin's: an invalid response head.
    #[error("invalid response from the origin")]
    BadResponse,
    /// The origin's: a transfer coding besides chunked, to an HTTP/1.0 client.
    #[error("a transfer coding an HTTP/1.0 client cannot be given")]
    UnlabelledCoding,
}

const INTERIM_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Forwards one request whose head is at the start of `buf`. On `ReadNext`, `buf` holds what the
/// client already sent after this request (a pipelined request).
pub async fn forward(
    client: &mut ClientStream,
    buf: &mut Vec<u8>,
    head: &RequestHead,
    shard: &Shard,
    peer: SocketAddr,
    who: Option<Who<'_>>,
    pinned: &mut Option<Box<Upstream>>,
) -> Result<Next, ForwardError> {
    let user = who.map(|w| w.user);
    let config = &shard.config;
    let policy = shard.policy();
    let wait = config.idle_timeout;
    let started = Instant::now();
    let log_target = shard.log.is_some().then(|| head.target.get(buf).to_vec());
    let mut bytes_up = 0;
    // The head for the origin, built while the request's bytes are borrowed, and an origin
    // connection: a kept one if the pool has one, else a new one.
    let (out, pooled, per_address) = {
        let target = parse_absolute_http(head.target.get(buf)).map_err(|_| ForwardError::BadUrl)?;
        let request = policy::Request::new(peer.ip(), user, &target.authority, false);
        let per_address = match policy.check_request(&request) {
            Verdict::Deny(denial) => {
                shard.metrics.denial(denial.kind());
                tracing::info!(%peer, user, reason = denial.reason(), "denied by policy");
                return Err(ForwardError::Denied(denial));
            }
            verdict => verdict == Verdict::PerAddress,
        };
        let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(
            &buf[..head.len],
            &mut headers[..shard.limits.max_headers.min(MAX_HEADERS_CAP)],
        );
        let (Ok(httparse::Status::Complete(_)), Some(method)) = (parsed, req.method) else {
            return Err(ForwardError::MalformedHead);
        };
        let mut out = Vec::with_capacity(head.len + 64);
        rewrite::write_request_head(
            &mut out,
            method,
            &target,
            req.headers,
            head.body,
            Additions {
                via: config.via.as_deref(),
                forwarded_for: config.forwarded_for.then_some(peer.ip()),
            },
        );
        let host = host_part(target.host);
        let port = target.authority.port;
        // A connection pinned to this client (origin authentication bound to it) comes first; a
        // kept connection serves this request only if its address passes this request's check.
        // A pinned connection to another origin stays pinned for a later request to its own.
        let kept = match pinned.take_if(|up| up.key.is(host, port)) {
            Some(up) => Some(*up),
            None => shard.upstreams.take(host, port),
        };
        let pooled = match kept {
            Some(up) if policy.check_address(&request, up.addr, per_address).is_ok() => Ok(up),
            // Denied for this request: closed (pinned or pooled, it is not handed to others).
            Some(_) => Err(shard.upstreams.key(host, &target.authority)),
            None => Err(shard.upstreams.key(host, &target.authority)),
        };
        (out, pooled, per_address)
    };
    let dialer = Dialer {
        shard,
        policy: &policy,
        peer,
        user,
        per_address,
    };
    let (mut up, mut reused) = match pooled {
        Ok(up) => (up, true),
        Err(key) => (dialer.dial(key).await?, false),
    };
    if head.expect_continue && head.body != Body::None {
        // The proxy answers the expectation itself and does not forward it (see rewrite.rs).
        let (res, _) = write_within(client, INTERIM_100, 0..INTERIM_100.len(), wait).await;
        res.map_err(|_| ForwardError::ClientGone)?;
    }

    // Request: head, then the body under the client's framing.
    let pending = buf.split_off(head.len);
    buf.clear();
    let framing = match head.body {
        Body::None => None,
        Body::Length(n) => Some(Framing::Length(n)),
        Body::Chunked => Some(Framing::Chunked(ChunkedScanner::new(Output::Chunked))),
    };
    // A kept origin connection passed the pool's check but may still have been closed by the
    // origin a moment ago; that shows as a failed write or as EOF before any response byte. A
    // request without a body whose method is idempotent is then sent once more on a fresh one.
    let retryable = framing.is_none() && is_idempotent(head.method);
    let mut out = out;
    let mut pending = Some(pending);
    let mut framing = framing;
    // Set when the origin stopped taking the request body: it may have answered early (413, 401)
    // and closed; that answer is still passed on, and both connections close after it.
    let mut request_cut = false;
    let mut rbuf: Vec<u8> = Vec::with_capacity(4096);
    let rhead = loop {
        let len = out.len();
        let (res, back) = write_within(&mut up.stream, out, 0..len, wait).await;
        let Some(back) = back else {
            // The origin took nothing of the head for the idle timeout: the head went with the
            // cancelled write, and this origin connection is dropped (closed) here.
            return Err(ForwardError::OriginTimeout);
        };
        out = back;
        if res.is_err() {
            if reused && retryable {
                (up, reused) = (dialer.dial(up.key).await?, false);
                continue;
            }
            return Err(ForwardError::OriginClosed);
        }
        if let Some(p) = pending.take() {
            *buf = match framing.take() {
                None => p,
                Some(f) => match relay_body(client, &mut up.stream, p, f, wait).await {
                    Ok((rest, moved)) => {
                        bytes_up = moved;
                        rest
                    }
                    Err(BodyError::WriteFailed) => {
                        request_cut = true;
                        Vec::new()
                    }
                    Err(e) => return Err(ForwardError::RequestBody(e)),
                },
            };
        }
        match read_response_head(&mut up.stream, &mut rbuf, shard, head.method).await {
            Err(ForwardError::OriginClosed) if reused && retryable && rbuf.is_empty() => {
                (up, reused) = (dialer.dial(up.key).await?, false);
            }
            Err(ForwardError::OriginClosed | ForwardError::BadResponse) if request_cut => {
                return Err(ForwardError::OriginClosed);
            }
            Err(reply) => return Err(reply),
            Ok(h) => break h,
        }
    };
    // An HTTP/1.0 client does not understand Transfer-Encoding (RFC 9112 §6.1: never sent to
    // one): a chunked response reaches it de-chunked and delimited by the close instead. The
    // origin connection's framing is intact, so it can still be kept.
    let dechunk = rhead.body == ResponseBody::Chunked && head.minor_version == 0;
    let close_client =
        request_cut || dechunk || !head.persistent() || rhead.body == ResponseBody::UntilClose;
    let client_body = if dechunk {
        ResponseBody::UntilClose
    } else {
        rhead.body
    };
    let mut client_head = Vec::with_capacity(rhead.len + 64);
    {
        let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
        let mut resp = httparse::Response::new(&mut []);
        let _ = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            &rbuf[..rhead.len],
            &mut headers[..shard.limits.max_headers.min(MAX_HEADERS_CAP)],
        );
        if dechunk && rewrite::has_other_codings(resp.headers) {
            // `gzip, chunked` to an HTTP/1.0 client: after de-chunking, the gzip coding could
            // only be said in Transfer-Encoding, which 1.0 does not have. Relabelling it as
            // Content-Encoding would change the representation (validators, caches), passing
            // it on unlabelled would hand over coded bytes as the content, and the proxy does
            // not decode transfer codings: 502, before anything reached the client.
            return Err(ForwardError::UnlabelledCoding);
        }
        rewrite::write_response_head(
            &mut client_head,
            rhead.status,
            resp.reason.unwrap_or(""),
            resp.headers,
            client_body,
            rewrite::ResponseAdditions {
                via: config.via.as_deref(),
                session_based: who.is_some_and(|w| w.session_based()),
                negotiate: who.and_then(|w| w.mutual),
            },
            close_client,
        );
    }
    let response_body = rbuf.split_off(rhead.len);
    shard.metrics.request(head.method, rhead.status);
    tracing::debug!(%peer, host = up.key.host(), status = rhead.status, reused, request_cut, "forwarded");
    let len = client_head.len();
    let (res, _) = write_within(client, client_head, 0..len, wait).await;
    if res.is_err() {
        // Gone or not reading for the idle timeout: both connections close.
        return Ok(Next::Closed);
    }
    let framing = match rhead.body {
        ResponseBody::None => None,
        ResponseBody::Length(n) => Some(Framing::Length(n)),
        ResponseBody::Chunked => Some(Framing::Chunked(ChunkedScanner::new(if dechunk {
            Output::Data
        } else {
            Output::Chunked
        }))),
        ResponseBody::UntilClose => Some(Framing::UntilClose),
    };
    let head_len = rhead.len as u64;
    let (clean, body_len) = match framing {
        None => (response_body.is_empty(), 0),
        // The response has started: a failure now (either peer gone, or no byte moved for the
        // idle timeout) can only cut both connections.
        Some(f) => match relay_body(&mut up.stream, client, response_body, f, wait).await {
            Ok((extra, moved)) => (extra.is_empty(), moved),
            Err(_) => return Ok(Next::Closed),
        },
    };
    if let Some(log) = &shard.log {
        log.record(&crate::observe::log::Entry {
            client: peer,
            listener: client.kind(),
            user: who.map(|w| w.shown),
            auth_scheme: who.map(|w| w.scheme),
            method: head.method.name(),
            target: log_target.as_deref().unwrap_or_default(),
            status: rhead.status,
            bytes_up,
            bytes_down: head_len + body_len,
            duration: started.elapsed(),
            upstream: Some(up.addr),
            end: if request_cut {
                Termination::UpstreamEarlyAnswer
            } else {
                Termination::Completed
            },
        });
    }
    // NTLM or Negotiate with the origin authenticates the connection, not the request: once a
    // head carried it, the connection stays with this client connection for good, also after
    // later exchanges without those fields (the origin still treats it as authenticated), and
    // never serves anyone else. One that cannot be kept is closed (dropped here).
    up.bound |= binds_connection(&out) || binds_connection(&rbuf[..rhead.len]);
    if clean && !request_cut && !rhead.closes && rhead.body != ResponseBody::UntilClose {
        if up.bound {
            *pinned = Some(Box::new(up));
        } else {
            shard.upstreams.put(up);
        }
    }
    shard.metrics.request_duration.observe(started.elapsed());
    Ok(if request_cut {
        Next::Linger
    } else if close_client {
        Next::Closed
    } else {
        Next::ReadNext
    })
}

/// Whether a head carries connection-bound origin authentication (`Authorization` or
/// `WWW-Authenticate` with NTLM or Negotiate).
fn binds_connection(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        let starts = |scheme: &[u8]| {
            value.len() >= scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme)
        };
        (name.eq_ignore_ascii_case(b"authorization")
            || name.eq_ignore_ascii_case(b"www-authenticate"))
            && (starts(b"ntlm") || starts(b"negotiate"))
    })
}

/// The host of an authority as written (`host`, `host:port`, `[v6]`, `[v6]:port`): the pool key,
/// so `example.com` and `example.com:80` share connections.
fn host_part(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    }
}

/// Reads the origin's final response head into `rbuf`, skipping interim 1xx responses.
async fn read_response_head(
    origin: &mut TcpStream,
    rbuf: &mut Vec<u8>,
    shard: &Shard,
    method: Method,
) -> Result<response_head::ResponseHead, ForwardError> {
    let deadline = Instant::now() + shard.config.response_timeout;
    loop {
        match response_head::parse(rbuf, &shard.limits, method) {
            Ok(Some(h)) if (100..200).contains(&h.status) && h.status != 101 => {
                rbuf.drain(..h.len);
                continue;
            }
            Ok(Some(h)) if h.status == 101 => return Err(ForwardError::BadResponse),
            Ok(Some(h)) => return Ok(h),
            Ok(None) => {}
            Err(_) => return Err(ForwardError::BadResponse),
        }
        if rbuf.len() == rbuf.capacity() {
            rbuf.reserve(rbuf.capacity().max(4096));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match fill(origin, rbuf, left).await {
            Filled::TimedOut => return Err(ForwardError::OriginTimeout),
            Filled::Closed => return Err(ForwardError::OriginClosed),
            Filled::Read(_) => {}
        }
    }
}

/// Dials origins for one request, under its policy check.
struct Dialer<'a> {
    shard: &'a Shard,
    policy: &'a Policy,
    peer: SocketAddr,
    user: Option<&'a str>,
    per_address: bool,
}

impl Dialer<'_> {
    /// A new connection to the origin `key` names.
    async fn dial(&self, key: Key) -> Result<Upstream, ForwardError> {
        let authority = key.authority();
        let check = policy::Check {
            policy: self.policy,
            request: policy::Request::new(self.peer.ip(), self.user, &authority, false),
            per_address: self.per_address,
        };
        let stream = dial(
            &authority,
            self.shard.config.connect_timeout,
            &check,
            &self.shard.dns,
            &self.shard.sources,
        )
            .await
            .map_err(|e| {
                count_dial_error(&self.shard.metrics, &e);
                if let DialError::Denied(d) = &e {
                    tracing::info!(peer = %self.peer, user = self.user, reason = d.reason(), "denied by policy");
                }
                ForwardError::Dial(e)
            })?;
        let addr = stream
            .peer_addr()
            .map_err(|e| ForwardError::Dial(DialError::Other(e)))?;
        Ok(Upstream {
            stream,
            addr,
            key,
            bound: false,
        })
    }
}

/// Methods safe to send twice (RFC 9110 §9.2.2).
fn is_idempotent(m: Method) -> bool {
    matches!(
        m,
        Method::Get | Method::Head | Method::Options | Method::Trace | Method::Put | Method::Delete
    )
}
