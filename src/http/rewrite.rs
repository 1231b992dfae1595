//! The head a forward proxy sends to the origin (RFC 9110 §7.6, RFC 9112 §3.2): origin-form target,
//! `Host` from the request-target, hop-by-hop fields removed, framing re-stated, `Via` added.
//! A pure function writing into a caller's buffer.

use std::io::Write as _;
use std::net::IpAddr;

use super::head::Body;
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

/// Whether the field `name` is named in any `Connection` field (RFC 9110 §7.6.1: those are
/// hop-by-hop too).
fn named_by_connection(name: &str, headers: &[httparse::Header<'_>]) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
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
        if HOP_BY_HOP.iter().any(|n| h.name.eq_ignore_ascii_case(n))
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
        Body::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::target::parse_absolute_http;

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
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
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
