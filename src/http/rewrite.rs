//! The heads a forward proxy passes on (RFC 9110 §7.6, RFC 9112 §3.2): to the origin, the
//! origin-form target with `Host` from the request-target; to the client, the origin's status and
//! fields. Both ways hop-by-hop fields (and those `Connection` names) are removed, the framing is
//! re-stated from what the proxy parsed (every transfer coding kept: `gzip, chunked` stays
//! `gzip, chunked`), and `Via` is added. Pure functions writing into a buffer.

use std::io::Write as _;
use std::net::IpAddr;

use super::head::Body;
use super::response_head::ResponseBody;
use super::target::HttpTarget;

/// Fields that belong to one connection, never forwarded (RFC 9110 §7.6.1), plus the proxy's own
/// credentials and the fields the proxy re-states itself (`Host`, the framing).
const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "content-length",
];

/// What the proxy adds to every forwarded request.
#[derive(Debug, Clone, Copy)]
pub struct Additions<'a> {
    /// `Via: 1.1 <this>`; `None` sends no `Via`.
    pub via: Option<&'a str>,
    /// `X-Forwarded-For: <client>` (appended to the client's own list); `None` sends none.
    pub forwarded_for: Option<IpAddr>,
}

/// What the proxy adds to a response it passes on.
#[derive(Debug, Clone, Copy)]
pub struct ResponseAdditions<'a> {
    /// `Via: 1.1 <this>`; `None` sends no `Via`.
    pub via: Option<&'a str>,
    /// `Proxy-Support: Session-Based-Authentication`: the client's connection is authenticated by
    /// a connection-bound scheme (RFC 4559 §6).
    pub session_based: bool,
    /// `Proxy-Authenticate: Negotiate <token>`: the acceptor's last token, on the response to
    /// the request that authenticated (RFC 4559 §5, mutual authentication).
    pub negotiate: Option<&'a [u8]>,
}

/// Whether the field `name` is named in any `Connection` field (RFC 9110 §7.6.1: those are
/// hop-by-hop too).
fn named_by_connection(name: &str, headers: &[httparse::Header<'_>]) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
}

/// The codings of the `Transfer-Encoding` field (`scan_fields` allowed only one such field).
fn transfer_codings<'h>(headers: &[httparse::Header<'h>]) -> impl Iterator<Item = &'h [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
}

/// Whether the message carries a transfer coding besides `chunked` (e.g. `gzip, chunked`).
pub fn has_other_codings(headers: &[httparse::Header<'_>]) -> bool {
    transfer_codings(headers).any(|c| !c.eq_ignore_ascii_case(b"chunked"))
}

/// `Transfer-Encoding: …` for a chunked message: the codings as sent, normalised as a list
/// (`chunked` is the last; `scan_fields` checked it). Dropping the others would pass on, say,
/// gzip-coded bytes as if they were the content.
fn write_transfer_encoding(out: &mut Vec<u8>, headers: &[httparse::Header<'_>]) {
    out.extend_from_slice(b"Transfer-Encoding: ");
    let mut any = false;
    for coding in transfer_codings(headers) {
        if any {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(coding);
        any = true;
    }
    if !any {
        out.extend_from_slice(b"chunked");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the request head for the origin to `out`.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &str,
    target: &HttpTarget<'_>,
    headers: &[httparse::Header<'_>],
    body: Body,
    add: Additions<'_>,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    target.write_origin_form(out);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(target.host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut forwarded_for_seen = false;
    for h in headers {
        // `Expect: 100-continue` is answered by the proxy itself, not passed on.
        if HOP_BY_HOP.iter().any(|n| h.name.eq_ignore_ascii_case(n))
            || h.name.eq_ignore_ascii_case("expect")
            || named_by_connection(h.name, headers)
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        if let Some(client) = add.forwarded_for
            && h.name.eq_ignore_ascii_case("x-forwarded-for")
            && !forwarded_for_seen
        {
            // Extend the first list in place (RFC 7239's predecessor convention: append).
            forwarded_for_seen = true;
            let _ = write!(out, ", {client}");
        }
        out.extend_from_slice(b"\r\n");
    }
    match body {
        Body::None => {}
        Body::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Body::Chunked => write_transfer_encoding(out, headers),
    }
    if let Some(via) = add.via {
        let _ = write!(out, "Via: 1.1 {via}\r\n");
    }
    if let Some(client) = add.forwarded_for
        && !forwarded_for_seen
    {
        let _ = write!(out, "X-Forwarded-For: {client}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the response head for the client to `out`. `body` is the framing the proxy parsed
/// (a `Content-Length` of a body-less response, e.g. to `HEAD`, passes through as the origin sent
/// it); `close` adds `Connection: close` (the client connection ends after this response).
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[httparse::Header<'_>],
    body: ResponseBody,
    added: ResponseAdditions<'_>,
    close: bool,
) {
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\n");
    for h in headers {
        let keep_length =
            body == ResponseBody::None && h.name.eq_ignore_ascii_case("content-length");
        if !keep_length
            && (HOP_BY_HOP.iter().any(|n| h.name.eq_ignore_ascii_case(n))
                || named_by_connection(h.name, headers))
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    match body {
        ResponseBody::None | ResponseBody::UntilClose => {}
        ResponseBody::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        ResponseBody::Chunked => write_transfer_encoding(out, headers),
    }
    if let Some(via) = added.via {
        let _ = write!(out, "Via: 1.1 {via}\r\n");
    }
    if added.session_based {
        // The proxy's credentials belong to this connection (RFC 4559 §6).
        out.extend_from_slice(b"Proxy-Support: Session-Based-Authentication\r\n");
    }
    if let Some(token) = added.negotiate {
        out.extend_from_slice(b"Proxy-Authenticate: Negotiate ");
        out.extend_from_slice(token);
        out.extend_from_slice(b"\r\n");
    }
    if close || body == ResponseBody::UntilClose {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::target::parse_absolute_http;

    fn rewrite_response(text: &str, body: ResponseBody, close: bool) -> String {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(text.as_bytes()).unwrap();
        let mut out = Vec::new();
        let (code, reason) = (resp.code.unwrap(), resp.reason.unwrap());
        write_response_head(
            &mut out,
            code,
            reason,
            resp.headers,
            body,
            ResponseAdditions {
                via: Some("ringgate"),
                session_based: false,
                negotiate: None,
            },
            close,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn responses_lose_hop_by_hop_fields_and_restate_framing() {
        let out = rewrite_response(
            "HTTP/1.1 200 OK\r\nServer: o\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
             Proxy-Authenticate: Basic realm=\"next\"\r\nTransfer-Encoding: chunked\r\nWWW-Authenticate: Basic realm=\"o\"\r\n\r\n",
            ResponseBody::Chunked,
            false,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: o\r\nWWW-Authenticate: Basic realm=\"o\"\r\nTransfer-Encoding: chunked\r\nVia: 1.1 ringgate\r\n\r\n"
        );
    }

    #[test]
    fn responses_keep_every_transfer_coding() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        let out = rewrite_response(text, ResponseBody::Chunked, false);
        assert!(
            out.contains("\r\nTransfer-Encoding: gzip, chunked\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("Transfer-Encoding").count(), 1, "{out}");
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(text.as_bytes()).unwrap();
        assert!(has_other_codings(resp.headers));
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap();
        assert!(!has_other_codings(resp.headers));
    }

    #[test]
    fn body_less_responses_keep_their_length_and_unframed_ones_close() {
        let head = rewrite_response(
            "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
            ResponseBody::None,
            false,
        );
        assert!(head.contains("\r\nContent-Length: 1234\r\n"), "{head}");
        let until_close = rewrite_response(
            "HTTP/1.0 200 OK\r\nX: y\r\n\r\n",
            ResponseBody::UntilClose,
            false,
        );
        assert_eq!(
            until_close,
            "HTTP/1.1 200 OK\r\nX: y\r\nVia: 1.1 ringgate\r\nConnection: close\r\n\r\n"
        );
        let closing = rewrite_response(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n",
            ResponseBody::Length(3),
            true,
        );
        assert!(
            closing
                .ends_with("Content-Length: 3\r\nVia: 1.1 ringgate\r\nConnection: close\r\n\r\n"),
            "{closing}"
        );
    }

    fn rewrite(request: &str, body: Body, add: Additions<'_>) -> String {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(request.as_bytes()).unwrap();
        let target = parse_absolute_http(req.path.unwrap().as_bytes()).unwrap();
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            req.method.unwrap(),
            &target,
            req.headers,
            body,
            add,
        );
        String::from_utf8(out).unwrap()
    }

    const PLAIN: Additions<'static> = Additions {
        via: None,
        forwarded_for: None,
    };

    #[test]
    fn origin_form_host_from_the_target_and_hop_by_hop_fields_gone() {
        let out = rewrite(
            "GET http://example.com:8080/a?b HTTP/1.1\r\nHost: evil.example\r\nUser-Agent: t\r\n\
             Proxy-Authorization: Basic YTpi\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n",
            Body::None,
            PLAIN,
        );
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn framing_is_restated_from_the_parsed_body() {
        let req = "POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            rewrite(req, Body::Length(5), PLAIN),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
        );
        let req = "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(
            rewrite(req, Body::Chunked, PLAIN),
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        );
        let req = "POST http://a/ HTTP/1.1\r\nTransfer-Encoding:  gzip,,Chunked \r\n\r\n";
        assert_eq!(
            rewrite(req, Body::Chunked, PLAIN),
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
        );
    }

    #[test]
    fn via_and_forwarded_for_are_added_when_configured() {
        let add = Additions {
            via: Some("ringgate"),
            forwarded_for: Some("10.0.0.7".parse().unwrap()),
        };
        let out = rewrite(
            "GET http://a/ HTTP/1.1\r\nVia: 1.0 other\r\n\r\n",
            Body::None,
            add,
        );
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 other\r\nVia: 1.1 ringgate\r\nX-Forwarded-For: 10.0.0.7\r\n\r\n"
        );
        let out = rewrite(
            "GET http://a/ HTTP/1.1\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n",
            Body::None,
            add,
        );
        assert!(
            out.contains("\r\nX-Forwarded-For: 192.0.2.1, 10.0.0.7\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("X-Forwarded-For").count(), 1, "{out}");
    }
}
