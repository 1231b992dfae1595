//! Request-head parsing: a pure function over the bytes read so far.
//!
//! The head is parsed in place with `httparse` and summarised into a [`RequestHead`] that records
//! *where* things are in the connection's buffer ([`Span`]s), not copies of them: the caller keeps
//! the buffer, and nothing here allocates. Limits are enforced on every call, so a head that can
//! never become valid is refused as soon as that is known, not when the buffer is full.

use std::mem::MaybeUninit;

/// Most header fields the parser can be configured to accept (the size of its stack array); the
/// config's `max_headers` range ends here.
pub const MAX_HEADERS_CAP: usize = 512;

/// The limits a request head must respect (from the config).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_target_bytes: usize,
    pub max_headers: usize,
}

/// Why a head was refused. All are the client's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request head")]
    Malformed,
    #[error("request head larger than the limit")]
    TooLarge,
    #[error("request-target longer than the limit")]
    TargetTooLong,
    #[error("more header fields than the limit")]
    TooManyHeaders,
    #[error("invalid or conflicting Content-Length / Transfer-Encoding")]
    BadFraming,
}

/// A byte range of the connection buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// The span of `part`, which must be a sub-slice of `buf`.
    fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
        Span {
            start,
            end: start + part.len(),
        }
    }

    /// The bytes this span covers; empty if `buf` is not the buffer it was taken from.
    pub fn get<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.start..self.end).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Request methods the proxy distinguishes; `Other` is any other valid token. A metrics label
/// like those in `labels.rs` (`ALL`, `name()`), written out so that `http` imports nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Connect,
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    /// Any other valid token (named `other`).
    Other,
}

impl Method {
    /// Every variant once, in declaration order (`ALL[v as usize] == v`).
    pub const ALL: [Method; 10] = [
        Method::Connect,
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Options,
        Method::Patch,
        Method::Trace,
        Method::Other,
    ];

    /// The label's fixed text.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Connect => "CONNECT",
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
            Method::Other => "other",
        }
    }
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 §9.1): `get` is not `GET`.
    fn from_token(token: &str) -> Method {
        match token {
            "CONNECT" => Method::Connect,
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }
}

/// A header field that must appear at most once for the proxy to act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Absent,
    One(Span),
    /// Sent more than once: the proxy will not guess which one counts.
    Repeated,
}

/// How the request's content is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    /// `Transfer-Encoding` ending in `chunked`.
    Chunked,
}

/// What the proxy needs from a complete request head, as spans into the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub target: Span,
    /// HTTP/1.x minor version.
    pub minor_version: u8,
    /// Bytes of the head, CRLFCRLF included; what follows belongs to the body or the tunnel.
    pub len: usize,
    pub proxy_authorization: Field,
    pub body: Body,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// `close` in `Connection` or `Proxy-Connection`.
    pub wants_close: bool,
    /// `keep-alive` in `Connection` or `Proxy-Connection` (what HTTP/1.0 clients send).
    pub wants_keep_alive: bool,
}

impl RequestHead {
    /// Whether the client may send another request on this connection after our answer
    /// (RFC 9112 §9.3): HTTP/1.1 unless it said `close`; HTTP/1.0 only if it said `keep-alive`.
    pub fn persistent(&self) -> bool {
        !self.wants_close && (self.minor_version >= 1 || self.wants_keep_alive)
    }
}

/// Framing and connection facts gathered from the header fields (of a request or a response).
pub(crate) struct Fields {
    pub proxy_authorization: Field,
    pub body: Body,
    /// A `Content-Length` was sent (`Body::None` with this set means `Content-Length: 0`).
    pub explicit_length: bool,
    pub expect_continue: bool,
    pub wants_close: bool,
    pub wants_keep_alive: bool,
}

pub(crate) fn scan_fields(
    buf: &[u8],
    headers: &[httparse::Header<'_>],
) -> Result<Fields, HeadError> {
    let mut f = Fields {
        proxy_authorization: Field::Absent,
        body: Body::None,
        explicit_length: false,
        expect_continue: false,
        wants_close: false,
        wants_keep_alive: false,
    };
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"proxy-authorization") {
            f.proxy_authorization = match f.proxy_authorization {
                Field::Absent => Field::One(Span::of(buf, trim(h.value))),
                _ => Field::Repeated,
            };
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(h.value).ok_or(HeadError::BadFraming)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::BadFraming);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if transfer_encoding.is_some() {
                // Several fields form one list; only the last coding matters and a split list
                // is a classic smuggling shape. Refuse rather than join.
                return Err(HeadError::BadFraming);
            }
            transfer_encoding = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"expect") {
            f.expect_continue |= trim(h.value).eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"connection")
            || name.eq_ignore_ascii_case(b"proxy-connection")
        {
            for token in h.value.split(|&b| b == b',').map(trim) {
                f.wants_close |= token.eq_ignore_ascii_case(b"close");
                f.wants_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    f.explicit_length = length.is_some();
    f.body = match (transfer_encoding, length) {
        (Some(_), Some(_)) => return Err(HeadError::BadFraming),
        (Some(te), None) => {
            let last = te
                .rsplit(|&b| b == b',')
                .next()
                .map(trim)
                .unwrap_or_default();
            // Chunked last, and only there (RFC 9112 §6.1: never applied twice): the codings
            // are passed on as a list, and `chunked, chunked` would be read twice by the next.
            let chunked_before_last = te
                .split(|&b| b == b',')
                .map(trim)
                .filter(|c| !c.is_empty())
                .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
                .count()
                > 1;
            if !last.eq_ignore_ascii_case(b"chunked") || chunked_before_last {
                return Err(HeadError::BadFraming);
            }
            Body::Chunked
        }
        (None, Some(0)) | (None, None) => Body::None,
        (None, Some(n)) => Body::Length(n),
    };
    Ok(f)
}

/// `1*DIGIT`, no sign, no spaces inside, no overflow.
fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = trim(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Parses the bytes received so far. `Ok(None)`: the head is incomplete and may still become valid.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
    let headers = &mut headers[..limits.max_headers.min(MAX_HEADERS_CAP)];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(len)) => {
            let (Some(method), Some(target), Some(minor_version)) =
                (req.method, req.path, req.version)
            else {
                return Err(HeadError::Malformed);
            };
            if target.len() > limits.max_target_bytes {
                return Err(HeadError::TargetTooLong);
            }
            if len > limits.max_head_bytes {
                return Err(HeadError::TooLarge);
            }
            let fields = scan_fields(buf, req.headers)?;
            Ok(Some(RequestHead {
                method: Method::from_token(method),
                target: Span::of(buf, target.as_bytes()),
                minor_version,
                len,
                proxy_authorization: fields.proxy_authorization,
                body: fields.body,
                expect_continue: fields.expect_continue,
                wants_close: fields.wants_close,
                wants_keep_alive: fields.wants_keep_alive,
            }))
        }
        Ok(httparse::Status::Partial) => {
            let line_done = buf.contains(&b'\n');
            // Longest request line that can still carry an allowed target: method, spaces, version.
            if !line_done && buf.len() > limits.max_target_bytes + 32 {
                Err(HeadError::TargetTooLong)
            } else if buf.len() >= limits.max_head_bytes {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            }
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(_) => Err(HeadError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head_bytes: 1024,
        max_target_bytes: 100,
        max_headers: 4,
    };

    fn p(input: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        parse(input, &LIMITS)
    }

    #[test]
    fn complete_connect_head_is_summarised_in_place() {
        let buf = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01";
        let head = p(buf).unwrap().unwrap();
        assert_eq!(head.method, Method::Connect);
        assert_eq!(head.target.get(buf), b"example.com:443");
        assert_eq!(head.minor_version, 1);
        assert_eq!(&buf[head.len..], b"\x16\x03\x01");
    }

    /// One row per input: the bytes and the outcome.
    #[test]
    fn table() {
        let long_target = format!("CONNECT {}:1 HTTP/1.1\r\n\r\n", "a".repeat(200));
        let long_line_partial = format!("GET http://{}", "a".repeat(200));
        let big_head = format!("CONNECT a:1 HTTP/1.1\r\nX: {}\r\n", "v".repeat(1100));
        type Row<'a> = (&'a [u8], Result<Option<Method>, HeadError>);
        let rows: Vec<Row> = vec![
            (b"", Ok(None)),
            (b"CONN", Ok(None)),
            (b"CONNECT a:1 HTTP/1.1\r\n", Ok(None)),
            (b"CONNECT a:1 HTTP/1.0\r\n\r\n", Ok(Some(Method::Connect))),
            (b"GET http://a/ HTTP/1.1\r\n\r\n", Ok(Some(Method::Get))),
            (
                b"BREW http://pot/ HTTP/1.1\r\n\r\n",
                Ok(Some(Method::Other)),
            ),
            (b"get http://a/ HTTP/1.1\r\n\r\n", Ok(Some(Method::Other))),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                Err(HeadError::Malformed),
            ),
            (b"CONNECT a:1 HTTP/2.0\r\n\r\n", Err(HeadError::Malformed)),
            (b"CONNECT a:1\r\n\r\n", Err(HeadError::Malformed)),
            (b"CONNECT  a:1 HTTP/1.1\r\n\r\n", Err(HeadError::Malformed)),
            (
                b"CONNECT a:1 HTTP/1.1\r\nBad Name: x\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            (
                b"CONNECT a:1 HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            (
                b"CONNECT a:1 HTTP/1.1\r\nX: a\rb\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            (
                b"CONNECT a:1 HTTP/1.1\r\nNoColon\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            (
                b"CONNECT a:1 HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
                Err(HeadError::TooManyHeaders),
            ),
            (long_target.as_bytes(), Err(HeadError::TargetTooLong)),
            (long_line_partial.as_bytes(), Err(HeadError::TargetTooLong)),
            (big_head.as_bytes(), Err(HeadError::TooLarge)),
        ];
        for (input, want) in rows {
            let got = p(input).map(|h| h.map(|h| h.method));
            assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn every_prefix_of_a_valid_head_is_incomplete_not_an_error() {
        let buf = b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\nUser-Agent: t\r\n\r\n";
        for end in 0..buf.len() {
            assert_eq!(p(&buf[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert!(p(buf).unwrap().is_some());
    }

    /// One row per header set: what the proxy reads from it, or the error.
    #[test]
    fn fields_table() {
        type Want = Result<(Body, bool, bool, bool), HeadError>;
        let rows: [(&str, Want); 20] = [
            ("", Ok((Body::None, false, false, true))),
            (
                "Content-Length: 5\r\n",
                Ok((Body::Length(5), false, false, true)),
            ),
            (
                "Content-Length: 0\r\n",
                Ok((Body::None, false, false, true)),
            ),
            (
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                Ok((Body::Length(5), false, false, true)),
            ),
            (
                "Content-Length: 5\r\nContent-Length: 6\r\n",
                Err(HeadError::BadFraming),
            ),
            ("Content-Length: +5\r\n", Err(HeadError::BadFraming)),
            ("Content-Length: 5, 5\r\n", Err(HeadError::BadFraming)),
            (
                "Content-Length: 99999999999999999999\r\n",
                Err(HeadError::BadFraming),
            ),
            (
                "Transfer-Encoding: chunked\r\n",
                Ok((Body::Chunked, false, false, true)),
            ),
            (
                "Transfer-Encoding: gzip, Chunked\r\n",
                Ok((Body::Chunked, false, false, true)),
            ),
            (
                "Transfer-Encoding: chunked, gzip\r\n",
                Err(HeadError::BadFraming),
            ),
            (
                "Transfer-Encoding: chunked, chunked\r\n",
                Err(HeadError::BadFraming),
            ),
            (
                "Transfer-Encoding: gzip, , chunked\r\n",
                Ok((Body::Chunked, false, false, true)),
            ),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                Err(HeadError::BadFraming),
            ),
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                Err(HeadError::BadFraming),
            ),
            (
                "Expect: 100-Continue\r\n",
                Ok((Body::None, true, false, true)),
            ),
            (
                "Connection: Close\r\n",
                Ok((Body::None, false, true, false)),
            ),
            (
                "Connection: keep-alive, Upgrade\r\n",
                Ok((Body::None, false, false, true)),
            ),
            (
                "Proxy-Connection: close\r\n",
                Ok((Body::None, false, true, false)),
            ),
            (
                "connection: foo,  close \r\n",
                Ok((Body::None, false, true, false)),
            ),
        ];
        for (fields, want) in rows {
            let text = format!("POST http://a/ HTTP/1.1\r\n{fields}\r\n");
            let limits = Limits {
                max_headers: 8,
                ..LIMITS
            };
            let got = parse(text.as_bytes(), &limits)
                .map(|h| h.map(|h| (h.body, h.expect_continue, h.wants_close, h.persistent())));
            assert_eq!(got, want.map(Some), "{fields:?}");
        }
    }

    #[test]
    fn http_1_0_persists_only_when_asked() {
        for (text, want) in [
            ("GET http://a/ HTTP/1.0\r\n\r\n", false),
            (
                "GET http://a/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            (
                "GET http://a/ HTTP/1.0\r\nProxy-Connection: Keep-Alive\r\n\r\n",
                true,
            ),
            ("GET http://a/ HTTP/1.1\r\n\r\n", true),
        ] {
            assert_eq!(
                p(text.as_bytes()).unwrap().unwrap().persistent(),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn proxy_authorization_is_a_span_and_repeats_are_flagged() {
        let buf = b"CONNECT a:1 HTTP/1.1\r\nproxy-authorization:  Basic YTpi \r\n\r\n";
        let head = p(buf).unwrap().unwrap();
        let Field::One(span) = head.proxy_authorization else {
            panic!("{:?}", head.proxy_authorization)
        };
        assert_eq!(span.get(buf), b"Basic YTpi");
        let twice = b"CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic YTpi\r\nProxy-Authorization: Basic YTpi\r\n\r\n";
        assert_eq!(
            p(twice).unwrap().unwrap().proxy_authorization,
            Field::Repeated
        );
        let none = b"CONNECT a:1 HTTP/1.1\r\n\r\n";
        assert_eq!(p(none).unwrap().unwrap().proxy_authorization, Field::Absent);
    }

    #[test]
    fn span_of_foreign_buffer_is_empty_not_a_panic() {
        let buf = b"CONNECT a:1 HTTP/1.1\r\n\r\n";
        let head = p(buf).unwrap().unwrap();
        assert_eq!(head.target.get(b"x"), b"");
        assert_eq!(head.target.len(), 3);
    }
}
