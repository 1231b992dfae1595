//! One client connection: read a request head into the connection's buffer, authenticate, decide,
//! and either answer (and read the next request: the keep-alive loop) or open a tunnel.
//!
//! The buffer is the only per-connection allocation before a tunnel opens, and it is gone once the
//! tunnel runs: what is left of the connection is its two sockets and the relay's small state.

mod challenge;
pub mod proxy_protocol;
pub mod reject;
pub mod stream;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use crate::auth::{ConnAuth, Decision, Request};
use crate::http::head::{self, Limits, Method, RequestHead};
use crate::http::response::Reply;
use crate::http::target::parse_authority;
use crate::observe::labels::{
    ChallengeReason, DenialKind, LimitKind, ListenerKind, Termination, TlsFailure,
};
use crate::observe::log;
use crate::policy::{self, Verdict};
use crate::server::fill::{Filled, fill};
use crate::server::shard::Shard;
use crate::tls::TlsStream;
use crate::upstream::error::{DialError, count_dial_error};
use crate::{forward, tunnel, upstream};
pub use stream::ClientStream;

/// First read buffer; grown by doubling up to the head limit. Most CONNECT heads are ~100 bytes.
const INITIAL_BUFFER: usize = 1024;

/// Serves one accepted client until it is done. On a PROXY protocol listener the connection
/// starts with a header naming the client, and `peer` is the load balancer.
///
/// Not an `async fn`: an async fn moves its arguments into locals of its own, and the moved-from
/// arguments keep their room in the task for as long as it lives (the stream twice, in every
/// connection's task: tests/footprint.rs). The block below uses them in place.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep a moved-from copy of its arguments"
)]
pub fn serve(
    mut stream: ClientStream,
    mut peer: SocketAddr,
    shard: Rc<Shard>,
) -> impl std::future::Future<Output = ()> {
    async move {
        let kind = stream.kind();
        let _active = shard.track();
        // TCP_NODELAY comes from the listener (`server::listener`).
        let mut buf = Vec::with_capacity(INITIAL_BUFFER.min(shard.limits.max_head_bytes));
        if kind == ListenerKind::ProxyProtocol {
            match read_proxy_header(&mut stream, &mut buf, peer, &shard).await {
                Some(client) => peer = client,
                None => return,
            }
        }
        let _permit = match shard.conn_limits.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(limit) => {
                shard.metrics.limit(limit);
                let reply = Reply::from(limit);
                shard.metrics.request(Method::Other, reply.status());
                if let Some(log) = &shard.log {
                    log.record(&log::Entry {
                        client: peer,
                        listener: kind,
                        user: None,
                        auth_scheme: None,
                        method: "-",
                        target: b"",
                        status: reply.status(),
                        bytes_up: 0,
                        bytes_down: 0,
                        duration: Duration::ZERO,
                        upstream: None,
                        end: reject::fate(reply).termination,
                    });
                }
                // No lingering here: the point is to give the connection's resources back at once.
                tracing::debug!(%peer, status = reply.status(), reason = reply.reason(), "refused");
                // A TLS client is just closed: answering would first cost the handshake this refusal
                // is meant to save.
                if kind != ListenerKind::Tls {
                    let _ = stream.write_all(reply.bytes()).await;
                }
                return;
            }
        };
        if kind == ListenerKind::Tls {
            // Boxed: the handshake's state (rustls' connection in the making) would otherwise sit in
            // every connection's task.
            stream = match Box::pin(tls_handshake(stream.into_tcp(), peer, &shard)).await {
                Some(tls) => ClientStream::tls(tls),
                None => return,
            };
        }
        // Counted first, so that clients refused below cannot hold more fds than the limits allow.
        if !admits_client(&shard, peer) {
            return refuse(
                &shard,
                &mut stream,
                Reply::DeniedClient,
                None,
                peer,
                b"",
                Vec::new(),
            )
            .await;
        }
        let mut auth = certified(&stream, &shard).unwrap_or_default();
        // An origin connection bound to this client by NTLM/Negotiate origin authentication.
        // Boxed: rare, and every connection's task would carry its room otherwise.
        let mut pinned: Option<Box<forward::pool::Upstream>> = None;
        let mut first = true;
        // 407s sent on this connection: bounded, so an unauthenticated client cannot hold a
        // connection forever with one request a minute.
        let mut challenges: u32 = 0;
        loop {
            let head = match read_head(&mut stream, &mut buf, &shard, first).await {
                HeadRead::Complete(head) => head,
                HeadRead::Gone => return,
                HeadRead::Rejected(reply) => {
                    return refuse(&shard, &mut stream, reply, None, peer, b"", buf).await;
                }
            };
            first = false;
            // Checked on every request, not only at accept: a reload may have narrowed `clients`.
            if !admits_client(&shard, peer) {
                return refuse(
                    &shard,
                    &mut stream,
                    Reply::DeniedClient,
                    Some(head.method),
                    peer,
                    b"",
                    buf,
                )
                .await;
            }
            if auth.is_certified() {
                // The TLS listener verified the client's certificate: it names the user.
            } else if let Some(gate) = &shard.auth {
                let field = head.proxy_authorization;
                let request = Request {
                    method: head.method,
                    target: head.target.get(&buf),
                };
                let decision = gate.admit(&mut auth, field, &buf, request, peer.ip()).await;
                let handshake = decision == Decision::Continue;
                match decision {
                    Decision::Allow => {}
                    Decision::Deny { .. } | Decision::Continue => {
                        let reason = match decision {
                            Decision::Deny { reason } => reason,
                            _ => ChallengeReason::Handshake,
                        };
                        challenges += 1;
                        let last = challenges >= shard.config.max_challenges_per_connection;
                        let reason = if last {
                            ChallengeReason::TooManyChallenges
                        } else {
                            reason
                        };
                        tracing::debug!(%peer, reason = reason.name(), "407");
                        shard.metrics.request(head.method, 407);
                        shard.metrics.challenge(reason);
                        if let Some(log) = &shard.log {
                            log.record(&log::Entry {
                                client: peer,
                                listener: kind,
                                user: None,
                                auth_scheme: None,
                                method: head.method.name(),
                                target: head.target.get(&buf),
                                status: 407,
                                bytes_up: 0,
                                bytes_down: 0,
                                duration: Duration::ZERO,
                                upstream: None,
                                end: Termination::AuthFailed,
                            });
                        }
                        // A right answer to a nonce that is too old (or a count seen before): the
                        // client may retry with the new nonce without asking its user.
                        let stale = matches!(
                            reason,
                            ChallengeReason::StaleNonce | ChallengeReason::Replayed
                        );
                        let offer = if handshake {
                            challenge::Offer::Continue(&auth)
                        } else {
                            challenge::Offer::Schemes { stale }
                        };
                        match challenge::answer(
                            &mut stream,
                            &mut buf,
                            &head,
                            gate,
                            &shard,
                            last,
                            offer,
                        )
                        .await
                        {
                            challenge::Next::ReadNext => continue,
                            challenge::Next::Closed => return,
                        }
                    }
                    Decision::Busy => {
                        let target = head.target.get(&buf).to_vec();
                        return refuse(
                            &shard,
                            &mut stream,
                            Reply::AuthBusy,
                            Some(head.method),
                            peer,
                            &target,
                            buf,
                        )
                        .await;
                    }
                }
            } else if shard.config.tls.client_cert_user {
                // Certificates are the only credentials, and this connection has none that names a
                // user (a plain listener, or a certificate without a usable name).
                tracing::info!(%peer, "no client certificate naming a user");
                let target = head.target.get(&buf).to_vec();
                return refuse(
                    &shard,
                    &mut stream,
                    Reply::DeniedClient,
                    Some(head.method),
                    peer,
                    &target,
                    buf,
                )
                .await;
            }
            let absolute = is_absolute_form(head.target.get(&buf));
            // The URL for an error's log line: forwarding may have reused the buffer by then.
            let mut url: Option<Vec<u8>> = None;
            let reply = match head.method {
                Method::Connect => {
                    return connect(&mut stream, peer, &auth, buf, &head, &shard).await;
                }
                Method::Other => Reply::MethodNotAllowed,
                _ if absolute => {
                    url = shard.log.is_some().then(|| head.target.get(&buf).to_vec());
                    // Boxed: a forwarded request's state (two heads, a dial, body relays) would
                    // otherwise sit in every connection's task, idle tunnels included.
                    let forwarded = Box::pin(forward::forward(
                        &mut stream,
                        &mut buf,
                        &head,
                        &shard,
                        peer,
                        auth.who(),
                        &mut pinned,
                    ))
                    .await;
                    match forwarded {
                        Ok(forward::Next::ReadNext) => {
                            // A body relay grew the buffer to its 64 KiB chunk; an idle kept-alive
                            // connection gives that back and waits with a head-sized buffer (what
                            // the client already sent, a pipelined request, is kept).
                            buf.shrink_to(INITIAL_BUFFER.min(shard.limits.max_head_bytes));
                            continue;
                        }
                        Ok(forward::Next::Closed) => return,
                        Ok(forward::Next::Linger) => return reject::linger(&mut stream, buf).await,
                        Err(e) => Reply::from(&e),
                    }
                }
                _ => Reply::NotAProxyRequest,
            };
            let target = match (&url, absolute) {
                (Some(url), _) => url.as_slice(),
                (None, true) => &b""[..],
                (None, false) => head.target.get(&buf),
            };
            return refuse(
                &shard,
                &mut stream,
                reply,
                Some(head.method),
                peer,
                target,
                Vec::new(),
            )
            .await;
        }
    }
}

/// Reads the PROXY protocol header that starts a connection from a trusted load balancer; what
/// follows it stays in `buf`. The client's address, or `None` when the connection is to be closed
/// (an untrusted source, a bad or missing header, or no header within `header_timeout`).
async fn read_proxy_header(
    stream: &mut ClientStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    shard: &Shard,
) -> Option<SocketAddr> {
    let source = policy::canonical(peer.ip());
    if !shard
        .proxy_protocol_from
        .iter()
        .any(|n| n.contains(&source))
    {
        tracing::info!(%peer, "PROXY protocol listener: source not in proxy_protocol_from; closed");
        return None;
    }
    let deadline = Instant::now() + shard.config.header_timeout;
    loop {
        match proxy_protocol::parse(buf) {
            proxy_protocol::Parsed::Complete(len, origin) => {
                buf.drain(..len);
                return Some(match origin {
                    proxy_protocol::Origin::Client(client) => client,
                    proxy_protocol::Origin::Local => peer,
                });
            }
            proxy_protocol::Parsed::Incomplete => {}
            proxy_protocol::Parsed::Invalid => {
                tracing::info!(%peer, "PROXY protocol listener: no valid header; closed");
                return None;
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(256));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match fill(stream, buf, left).await {
            Filled::Read(_) => {}
            Filled::TimedOut | Filled::Closed => return None,
        }
    }
}

enum HeadRead {
    Complete(RequestHead),
    Rejected(Reply),
    /// The client closed or failed before sending a complete head; nobody to answer.
    Gone,
}

/// Reads until the head is complete, a limit is broken, or a timeout passes. The first request
/// must be complete within `header_timeout` of the accept; a later one on a kept-alive connection
/// may take `keepalive_timeout` to start and then `header_timeout` to finish.
async fn read_head(
    stream: &mut ClientStream,
    buf: &mut Vec<u8>,
    shard: &Shard,
    first: bool,
) -> HeadRead {
    let limits: &Limits = &shard.limits;
    let config = &shard.config;
    let waiting_idle = !first && buf.is_empty();
    let mut deadline = Instant::now()
        + if waiting_idle {
            config.keepalive_timeout
        } else {
            config.header_timeout
        };
    let mut started = !waiting_idle;
    loop {
        match head::parse(buf, limits) {
            Ok(Some(head)) => return HeadRead::Complete(head),
            Err(e) => return HeadRead::Rejected(e.into()),
            Ok(None) => {}
        }
        if buf.len() == buf.capacity() {
            let grow = buf.capacity().max(INITIAL_BUFFER);
            buf.reserve_exact(grow.min(limits.max_head_bytes - buf.len()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let had = buf.len();
        match fill(stream, buf, left).await {
            Filled::TimedOut if had == 0 => return HeadRead::Gone,
            Filled::TimedOut => return HeadRead::Rejected(Reply::HeaderTimeout),
            Filled::Closed => return HeadRead::Gone,
            Filled::Read(_) if !started => {
                started = true;
                deadline = Instant::now() + config.header_timeout;
            }
            Filled::Read(_) => {}
        }
    }
}

/// `scheme://…` with a syntactically valid scheme (RFC 3986 §3.1).
fn is_absolute_form(target: &[u8]) -> bool {
    crate::http::target::scheme_len(target).is_some()
}

/// Answers with an error, logs it, and closes.
async fn refuse(
    shard: &Shard,
    stream: &mut ClientStream,
    reply: Reply,
    method: Option<Method>,
    peer: SocketAddr,
    target: &[u8],
    buf: Vec<u8>,
) {
    // A refused URL may carry `user:password@`: never into a log line.
    let redacted = log::without_userinfo(target);
    let target = redacted.as_ref();
    let status = reply.status();
    let fate = reject::fate(reply);
    debug_assert!(fate.close, "{reply:?} refuses but keeps the connection");
    shard
        .metrics
        .request(method.unwrap_or(Method::Other), status);
    if let Some(log) = &shard.log {
        log.record(&log::Entry {
            client: peer,
            listener: stream.kind(),
            user: None,
            auth_scheme: None,
            method: method.map_or("-", Method::name),
            target,
            status,
            bytes_up: 0,
            bytes_down: 0,
            duration: Duration::ZERO,
            upstream: None,
            end: fate.termination,
        });
    }
    tracing::info!(
        %peer,
        status = reply.status(),
        reason = reply.reason(),
        party = ?fate.party,
        target = ?String::from_utf8_lossy(&target[..target.len().min(200)]),
        "refused"
    );
    let response = match method {
        Some(Method::Head) => reply.head_only(),
        _ => reply.bytes(),
    };
    // Boxed: the answer and the linger before the close last a moment; inlined, their state (a
    // read with a timer) would grow every connection's task, idle tunnels included.
    Box::pin(reject::send_and_close(stream, response, buf)).await;
}

/// Runs the TLS handshake of a `listen_tls` connection within `tls_handshake_timeout_secs`,
/// counting how it went; `None`: it failed and the socket is closed.
async fn tls_handshake(tcp: TcpStream, peer: SocketAddr, shard: &Shard) -> Option<TlsStream> {
    let config = shard.tls.as_ref()?.current();
    let wait = shard.config.tls.handshake_timeout;
    let failed = match monoio::time::timeout(wait, TlsStream::accept(tcp, config)).await {
        Ok(Ok(tls)) => {
            shard.metrics.tls_handshakes.inc();
            return Some(tls);
        }
        Ok(Err(reason)) => reason,
        Err(_) => TlsFailure::Timeout,
    };
    shard.metrics.tls_failure(failed);
    tracing::debug!(%peer, reason = failed.name(), "TLS handshake failed");
    None
}

/// The identity a TLS client's verified certificate gives its connection
/// (`tls_client_cert_user`), if it names a usable user.
fn certified(stream: &ClientStream, shard: &Shard) -> Option<ConnAuth> {
    if !shard.config.tls.client_cert_user {
        return None;
    }
    let cert = stream.as_tls()?.peer_certificate()?;
    match crate::tls::identity::user_of(&cert) {
        Some(user) => Some(ConnAuth::certified(&user)),
        None => {
            tracing::debug!("client certificate names no usable user (CN, e-mail or DNS name)");
            None
        }
    }
}

/// CONNECT's 200 on a connection authenticated by a connection-bound scheme (RFC 4559 §6).
const ESTABLISHED_SESSION_BASED: &[u8] =
    b"HTTP/1.1 200 Connection established\r\nProxy-Support: Session-Based-Authentication\r\n\r\n";

/// Runs a closure when dropped (a gauge that must go down however the task ends).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Whether the policy in force lets `peer` use the proxy; a refusal is counted.
fn admits_client(shard: &Shard, peer: SocketAddr) -> bool {
    let admitted = shard.policy().admits_client(peer.ip());
    if !admitted {
        shard.metrics.denial(DenialKind::Client);
    }
    admitted
}

/// CONNECT: check the policy, dial the target, answer 200, pass on the early bytes, relay until
/// the tunnel ends.
async fn connect(
    client: &mut ClientStream,
    peer: SocketAddr,
    auth: &ConnAuth,
    mut buf: Vec<u8>,
    head: &RequestHead,
    shard: &Shard,
) {
    // Read from `auth` where needed rather than kept: this future lives as long as the tunnel.
    let user = auth.session.as_ref().map(|s| &*s.user);
    let started = Instant::now();
    let _tunnel_permit = match user.map(|u| shard.conn_limits.admit_tunnel(u)) {
        Some(None) => {
            shard.metrics.limit(LimitKind::TunnelsPerUser);
            let target = head.target.get(&buf).to_vec();
            return refuse(
                shard,
                client,
                Reply::from(LimitKind::TunnelsPerUser),
                Some(Method::Connect),
                peer,
                &target,
                buf,
            )
            .await;
        }
        Some(Some(permit)) => permit,
        None => None,
    };
    // Scoped (here and for the 200's write result below): a local whose scope lasts into the relay
    // keeps its room in the tunnel's task for as long as the tunnel, moved-from or not.
    let mut upstream = {
        let policy = shard.policy();
        let dialed = match parse_authority(head.target.get(&buf)) {
            Ok(authority) => {
                let request = policy::Request::new(peer.ip(), user, &authority, true);
                match policy.check_request(&request) {
                    Verdict::Deny(denial) => Err(DialError::Denied(denial)),
                    verdict => {
                        let check = policy::Check {
                            policy: &policy,
                            request,
                            per_address: verdict == Verdict::PerAddress,
                        };
                        // Boxed for the same reason: the dial's state (resolution, the race of
                        // attempts) lasts a moment; the tunnel's task lasts as long as the tunnel.
                        Box::pin(upstream::dial::dial(
                            &authority,
                            shard.config.connect_timeout,
                            &check,
                            &shard.dns,
                            &shard.sources,
                        ))
                        .await
                    }
                }
            }
            Err(e) => {
                return refuse(
                    shard,
                    client,
                    e.into(),
                    Some(Method::Connect),
                    peer,
                    head.target.get(&buf),
                    Vec::new(),
                )
                .await;
            }
        };
        match dialed {
            Ok(s) => s,
            Err(e) => {
                count_dial_error(&shard.metrics, &e);
                if let DialError::Denied(d) = &e {
                    tracing::info!(%peer, user, reason = d.reason(), "denied by policy");
                } else {
                    tracing::debug!(%peer, error = %e, "dial failed");
                }
                let target = head.target.get(&buf).to_vec();
                return refuse(
                    shard,
                    client,
                    Reply::from(&e),
                    Some(Method::Connect),
                    peer,
                    &target,
                    buf,
                )
                .await;
            }
        }
    };
    // Kept for the closing log line only when it will be written: the target (the buffer goes
    // before the relay) and the upstream's address (a syscall).
    let logged = shard.log.is_some() || tracing::enabled!(tracing::Level::DEBUG);
    let target = logged.then(|| head.target.get(&buf).to_vec());
    let upstream_addr = logged.then(|| upstream.peer_addr().ok()).flatten();
    let who = auth.who();
    let written = match who.and_then(|w| w.mutual) {
        // Negotiate's last token goes on this 200 (RFC 4559 §5).
        Some(token) => {
            let mut head =
                ESTABLISHED_SESSION_BASED[..ESTABLISHED_SESSION_BASED.len() - 2].to_vec();
            head.extend_from_slice(b"Proxy-Authenticate: Negotiate ");
            head.extend_from_slice(token);
            head.extend_from_slice(b"\r\n\r\n");
            client.write_all(head).await.0
        }
        None => {
            let established = if who.is_some_and(|w| w.session_based()) {
                ESTABLISHED_SESSION_BASED
            } else {
                Reply::Established.bytes()
            };
            client.write_all(established).await.0
        }
    }
    .is_ok();
    let metrics = &shard.metrics;
    metrics.request(Method::Connect, 200);
    metrics.tunnel_setup.observe(started.elapsed());
    if !written {
        return;
    }
    metrics.tunnels_total.inc();
    metrics.tunnels_active.inc();
    let _open = OnDrop(|| metrics.tunnels_active.dec());
    // Bytes that came with the head (a pipelined TLS ClientHello) go upstream before anything else.
    buf.drain(..head.len);
    let early = buf.len() as u64;
    if early > 0 {
        if upstream.write_all(buf).await.0.is_err() {
            return;
        }
    } else {
        drop(buf);
    }
    let rate = user.and_then(|u| shard.conn_limits.user_rate(u));
    let end = match client.as_tls() {
        // Boxed: the TLS relay's state lives only in TLS connections' tasks.
        Some(tls) => Box::pin(tunnel::relay_tls(tls, &upstream, shard, rate.as_ref())).await,
        None => tunnel::relay(client.tcp(), &upstream, shard, rate.as_ref()).await,
    };
    metrics.bytes_up.add(end.up + early);
    metrics.bytes_down.add(end.down);
    if let Some(log) = &shard.log {
        log.record(&log::Entry {
            client: peer,
            listener: client.kind(),
            user: auth.who().map(|w| w.shown),
            auth_scheme: auth.who().map(|w| w.scheme),
            method: "CONNECT",
            target: target.as_deref().unwrap_or_default(),
            status: 200,
            bytes_up: end.up + early,
            bytes_down: end.down,
            duration: started.elapsed(),
            upstream: upstream_addr,
            end: end.reason,
        });
    }
    tracing::debug!(
        %peer,
        target = ?target
            .as_deref()
            .map(|t| String::from_utf8_lossy(&log::without_userinfo(t)).into_owned()),
        upstream = ?upstream_addr,
        up = end.up + early,
        down = end.down,
        ms = started.elapsed().as_millis() as u64,
        end = end.reason.name(),
        "tunnel closed"
    );
}

#[cfg(test)]
mod tests {
    use super::is_absolute_form;

    #[test]
    fn absolute_form_needs_a_scheme() {
        for (t, want) in [
            ("http://a/", true),
            ("HTTP://a", true),
            ("svn+ssh://x", true),
            ("/path", false),
            ("*", false),
            ("a:443", false),
            ("://x", false),
            ("1http://x", false),
            ("/redirect?to=http://x", false),
        ] {
            assert_eq!(is_absolute_form(t.as_bytes()), want, "{t}");
        }
    }
}
