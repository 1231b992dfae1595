//! The proxy's own responses, rendered once at start-up and written from shared immutable bytes.
//!
//! Hot path: answering never formats or allocates; [`Reply::bytes`] is a table lookup.

use std::sync::LazyLock;

/// Every response ringgate itself produces. The variant fixes status, headers and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Established,
    MalformedHead,
    BadConnectTarget,
    NotAProxyRequest,
    MethodNotAllowed,
    HeaderTimeout,
    BodyTimeout,
    TargetTooLong,
    HeadTooLarge,
    TooManyHeaders,
    BadUrl,
    ResolveFailed,
    ConnectRefused,
    Unreachable,
    ConnectFailed,
    ConnectTimeout,
    BadFraming,
    AuthBusy,
    BadResponse,
    OriginClosed,
    OriginTimeout,
    ClientGone,
    DeniedClient,
    DeniedPort,
    DeniedDestination,
    DeniedLoop,
    DeniedRule,
    ResolveTimeout,
    TooManyConnections,
    TooManyFromClient,
    TooManyTunnels,
    ResolverBusy,
}

impl Reply {
    pub const ALL: [Reply; 32] = [
        Reply::Established,
        Reply::MalformedHead,
        Reply::BadConnectTarget,
        Reply::NotAProxyRequest,
        Reply::MethodNotAllowed,
        Reply::HeaderTimeout,
        Reply::BodyTimeout,
        Reply::TargetTooLong,
        Reply::HeadTooLarge,
        Reply::TooManyHeaders,
        Reply::BadUrl,
        Reply::ResolveFailed,
        Reply::ConnectRefused,
        Reply::Unreachable,
        Reply::ConnectFailed,
        Reply::ConnectTimeout,
        Reply::BadFraming,
        Reply::AuthBusy,
        Reply::BadResponse,
        Reply::OriginClosed,
        Reply::OriginTimeout,
        Reply::ClientGone,
        Reply::DeniedClient,
        Reply::DeniedPort,
        Reply::DeniedDestination,
        Reply::DeniedLoop,
        Reply::DeniedRule,
        Reply::ResolveTimeout,
        Reply::TooManyConnections,
        Reply::TooManyFromClient,
        Reply::TooManyTunnels,
        Reply::ResolverBusy,
    ];

    /// Status code, reason phrase, short body (also the log reason).
    const fn parts(self) -> (u16, &'static str, &'static str) {
        match self {
            Reply::Established => (200, "Connection established", ""),
            Reply::MalformedHead => (400, "Bad Request", "malformed request head"),
            Reply::BadConnectTarget => (400, "Bad Request", "CONNECT target must be host:port"),
            Reply::NotAProxyRequest => (
                400,
                "Bad Request",
                "this is a proxy: send CONNECT host:port or an absolute-form URL",
            ),
            Reply::MethodNotAllowed => {
                (405, "Method Not Allowed", "method not served by this proxy")
            }
            Reply::HeaderTimeout => (408, "Request Timeout", "request head not received in time"),
            Reply::BodyTimeout => (408, "Request Timeout", "request body not received in time"),
            Reply::TargetTooLong => (414, "URI Too Long", "request-target too long"),
            Reply::HeadTooLarge => (
                431,
                "Request Header Fields Too Large",
                "request head too large",
            ),
            Reply::TooManyHeaders => (
                431,
                "Request Header Fields Too Large",
                "too many header fields",
            ),
            Reply::BadUrl => (
                400,
                "Bad Request",
                "only http://host[:port]/path URLs are forwarded (https goes through CONNECT)",
            ),
            Reply::ResolveFailed => (502, "Bad Gateway", "cannot resolve the target host"),
            Reply::ConnectRefused => (502, "Bad Gateway", "target refused the connection"),
            Reply::Unreachable => (502, "Bad Gateway", "target unreachable"),
            Reply::ConnectFailed => (502, "Bad Gateway", "cannot connect to the target"),
            Reply::ConnectTimeout => (504, "Gateway Timeout", "timed out connecting to the target"),
            Reply::BadFraming => (
                400,
                "Bad Request",
                "invalid or conflicting Content-Length / Transfer-Encoding",
            ),
            Reply::AuthBusy => (
                503,
                "Service Unavailable",
                "too many credential checks waiting; retry",
            ),
            Reply::BadResponse => (502, "Bad Gateway", "invalid response from the origin"),
            Reply::OriginClosed => (
                502,
                "Bad Gateway",
                "origin closed the connection without a response",
            ),
            Reply::OriginTimeout => (504, "Gateway Timeout", "origin did not answer in time"),
            Reply::ClientGone => (400, "Bad Request", "request body incomplete"),
            Reply::DeniedClient => (403, "Forbidden", "your address may not use this proxy"),
            Reply::DeniedPort => (403, "Forbidden", "CONNECT to this port is not allowed"),
            Reply::DeniedDestination => (403, "Forbidden", "destination address not allowed"),
            Reply::DeniedLoop => (403, "Forbidden", "destination is this proxy"),
            Reply::DeniedRule => (403, "Forbidden", "denied by the proxy's access rules"),
            Reply::ResolveTimeout => (
                504,
                "Gateway Timeout",
                "timed out resolving the target host",
            ),
            Reply::TooManyConnections => {
                (503, "Service Unavailable", "too many connections; retry")
            }
            Reply::TooManyTunnels => (
                429,
                "Too Many Requests",
                "too many open tunnels for this user; retry later",
            ),
            Reply::TooManyFromClient => (
                429,
                "Too Many Requests",
                "too many connections from your address; retry",
            ),
            Reply::ResolverBusy => (
                503,
                "Service Unavailable",
                "too many name lookups in flight; retry",
            ),
        }
    }

    pub const fn status(self) -> u16 {
        self.parts().0
    }

    /// A fixed reason for logs and metrics; never contains peer data.
    pub const fn reason(self) -> &'static str {
        let (_, phrase, body) = self.parts();
        if body.is_empty() { phrase } else { body }
    }

    /// The complete response on the wire.
    pub fn bytes(self) -> &'static [u8] {
        &RENDERED[self as usize]
    }

    /// The response without its body, for a request that was `HEAD` (RFC 9110 §9.3.2).
    pub fn head_only(self) -> &'static [u8] {
        let all = self.bytes();
        let end = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(all.len(), |p| p + 4);
        &all[..end]
    }

    fn render(self) -> Vec<u8> {
        let (status, phrase, body) = self.parts();
        if self == Reply::Established {
            // Exactly this: a 2xx to CONNECT carries no Content-Length or Transfer-Encoding.
            return format!("HTTP/1.1 {status} {phrase}\r\n\r\n").into_bytes();
        }
        let allow = match self {
            Reply::MethodNotAllowed => {
                "Allow: CONNECT, GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n"
            }
            Reply::AuthBusy
            | Reply::TooManyConnections
            | Reply::TooManyFromClient
            | Reply::ResolverBusy => "Retry-After: 1\r\n",
            _ => "",
        };
        format!(
            "HTTP/1.1 {status} {phrase}\r\nServer: ringgate\r\n{allow}Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
            body.len() + 1
        )
        .into_bytes()
    }
}

static RENDERED: LazyLock<Vec<Box<[u8]>>> = LazyLock::new(|| {
    Reply::ALL
        .iter()
        .map(|r| r.render().into_boxed_slice())
        .collect()
});

/// Renders every response now, so the first client does not pay for it.
pub fn prerender() {
    LazyLock::force(&RENDERED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_variant() {
        for (i, r) in Reply::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} out of order in ALL");
            let text = std::str::from_utf8(r.bytes()).unwrap();
            assert!(
                text.starts_with(&format!("HTTP/1.1 {} ", r.status())),
                "{text}"
            );
        }
    }

    #[test]
    fn head_only_keeps_the_length_and_drops_the_body() {
        let head = std::str::from_utf8(Reply::NotAProxyRequest.head_only()).unwrap();
        assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
        assert!(head.contains("Content-Length: "), "{head}");
    }

    #[test]
    fn established_is_exact() {
        assert_eq!(
            Reply::Established.bytes(),
            b"HTTP/1.1 200 Connection established\r\n\r\n"
        );
    }

    #[test]
    fn errors_are_well_formed_and_close() {
        for r in Reply::ALL.into_iter().filter(|r| *r != Reply::Established) {
            let text = std::str::from_utf8(r.bytes()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains("\r\nConnection: close"), "{head}");
            let cl: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(cl, body.len(), "{r:?}");
            assert_eq!(body.trim_end(), r.reason());
        }
        assert!(
            std::str::from_utf8(Reply::MethodNotAllowed.bytes())
                .unwrap()
                .contains("\r\nAllow: CONNECT")
        );
    }
}
