//! Response heads from origins, parsed in place and as strictly as request heads (RFC 9112 §6.3):
//! the framing of what the proxy relays must be unambiguous, or the origin could smuggle a second
//! response past it. Anything ambiguous is an error the caller answers with 502.

use std::mem::MaybeUninit;

use super::head::{Body, HeadError, Limits, MAX_HEADERS_CAP, Method, scan_fields};

/// How the response's content is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    None,
    Length(u64),
    Chunked,
    /// No length: the content runs until the origin closes (the client connection then closes too).
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub minor_version: u8,
    /// Bytes of the head, CRLFCRLF included.
    pub len: usize,
    pub body: ResponseBody,
    /// The origin said `Connection: close` (or spoke HTTP/1.0 without keep-alive).
    pub closes: bool,
}

/// Parses the bytes received so far of the response to a `method` request. `Ok(None)`: incomplete.
pub fn parse(
    buf: &[u8],
    limits: &Limits,
    method: Method,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
    let headers = &mut headers[..limits.max_headers.min(MAX_HEADERS_CAP)];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, headers)
    {
        Ok(httparse::Status::Complete(len)) => {
            let (Some(status), Some(minor_version)) = (resp.code, resp.version) else {
                return Err(HeadError::Malformed);
            };
            // RFC 9110 §15: codes outside 100..=599 are invalid. httparse reads any three digits,
            // and `014` passed on would reach the client as the two-digit `14` (found by the
            // `response_head` fuzz target).
            if !(100..=599).contains(&status) {
                return Err(HeadError::Malformed);
            }
            if len > limits.max_head_bytes {
                return Err(HeadError::TooLarge);
            }
            let fields = scan_fields(buf, resp.headers)?;
            let no_content = method == Method::Head
                || (100..200).contains(&status)
                || status == 204
                || status == 304;
            let body = match fields.body {
                _ if no_content => ResponseBody::None,
                Body::Chunked => ResponseBody::Chunked,
                Body::Length(n) => ResponseBody::Length(n),
                // No Content-Length and no Transfer-Encoding: until close — unless the header said
                // `Content-Length: 0`, which `scan_fields` reports as no body.
                Body::None if fields.explicit_length => ResponseBody::None,
                Body::None => ResponseBody::UntilClose,
            };
            let closes = fields.wants_close || (minor_version == 0 && !fields.wants_keep_alive);
            Ok(Some(ResponseHead {
                status,
                minor_version,
                len,
                body,
                closes,
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head_bytes => {
            Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(_) => Err(HeadError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head_bytes: 4096,
        max_target_bytes: 100,
        max_headers: 16,
    };

    fn p(text: &str, method: Method) -> Result<Option<(u16, ResponseBody, bool)>, HeadError> {
        parse(text.as_bytes(), &LIMITS, method).map(|h| h.map(|h| (h.status, h.body, h.closes)))
    }

    /// One row per response: the text, the request method, and the outcome.
    #[test]
    fn table() {
        use ResponseBody::*;
        let get = Method::Get;
        type Row<'a> = (
            &'a str,
            Method,
            Result<Option<(u16, ResponseBody, bool)>, HeadError>,
        );
        let rows: Vec<Row> = vec![
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                get,
                Ok(Some((200, Length(5), false))),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                get,
                Ok(Some((200, None, false))),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                get,
                Ok(Some((200, Chunked, false))),
            ),
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                get,
                Ok(Some((200, UntilClose, false))),
            ),
            (
                "HTTP/1.0 200 OK\r\n\r\n",
                get,
                Ok(Some((200, UntilClose, true))),
            ),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                get,
                Ok(Some((200, Length(1), false))),
            ),
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                get,
                Ok(Some((200, Length(1), true))),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::Head,
                Ok(Some((200, None, false))),
            ),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                get,
                Ok(Some((204, None, false))),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                get,
                Ok(Some((304, None, false))),
            ),
            (
                "HTTP/1.1 100 Continue\r\n\r\n",
                get,
                Ok(Some((100, None, false))),
            ),
            ("HTTP/1.1 200 OK\r\nContent-Len", get, Ok(Option::None)),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                get,
                Err(HeadError::BadFraming),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                get,
                Err(HeadError::BadFraming),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                get,
                Err(HeadError::BadFraming),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                get,
                Err(HeadError::BadFraming),
            ),
            (
                "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
                get,
                Err(HeadError::Malformed),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
                get,
                Err(HeadError::Malformed),
            ),
            (
                "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
                get,
                Err(HeadError::Malformed),
            ),
            ("HTTP/2 200 OK\r\n\r\n", get, Err(HeadError::Malformed)),
            ("HTTP/1.1 2000 OK\r\n\r\n", get, Err(HeadError::Malformed)),
            // Three digits outside 100..=599 (the fuzz target's `014`, which went out as `14`).
            (
                "HTTP/1.1 014 X\r\nContent-Length: 0\r\n\r\n",
                get,
                Err(HeadError::Malformed),
            ),
            ("HTTP/1.1 099 X\r\n\r\n", get, Err(HeadError::Malformed)),
            ("HTTP/1.1 600 X\r\n\r\n", get, Err(HeadError::Malformed)),
            (
                "HTTP/1.1 599 X\r\n\r\n",
                get,
                Ok(Some((599, UntilClose, false))),
            ),
            ("SSH-2.0-OpenSSH\r\n\r\n", get, Err(HeadError::Malformed)),
        ];
        for (text, method, want) in rows {
            assert_eq!(p(text, method), want, "{text:?}");
        }
    }
}
