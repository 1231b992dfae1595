//! Request-head parsing: a pure function over the bytes read so far.
//!
//! The head is parsed in place with `httparse` and summarised into a [`RequestHead`] that records
//! *where* things are in the connection's buffer ([`Span`]s), not copies of them: the caller keeps
//! the buffer, and nothing here allocates. Limits are enforced on every call, so a head that can
//! never become valid is refused as soon as that is known, not when the buffer is full.

use std::mem::MaybeUninit;

use crate::config::MAX_HEADERS_CAP;

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

/// Request methods the proxy distinguishes; `Other` is any other valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    Other,
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

/// What the proxy needs from a complete request head, as spans into the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub target: Span,
    /// HTTP/1.x minor version.
    pub minor_version: u8,
    /// Bytes of the head, CRLFCRLF included; what follows belongs to the body or the tunnel.
    pub len: usize,
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
            Ok(Some(RequestHead {
                method: Method::from_token(method),
                target: Span::of(buf, target.as_bytes()),
                minor_version,
                len,
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

    #[test]
    fn span_of_foreign_buffer_is_empty_not_a_panic() {
        let buf = b"CONNECT a:1 HTTP/1.1\r\n\r\n";
        let head = p(buf).unwrap().unwrap();
        assert_eq!(head.target.get(b"x"), b"");
        assert_eq!(head.target.len(), 3);
    }
}
