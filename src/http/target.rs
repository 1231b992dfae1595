//! Request-targets: CONNECT's authority-form `host:port` (RFC 9110 §9.3.6) and the absolute-form
//! `http://host[:port]/path` of a request to forward (RFC 9112 §3.2.2).
//!
//! Pure functions; what they return borrows from the request buffer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host part of an authority: a literal address needs no resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// A validated `host:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    pub host: Host<'a>,
    pub port: u16,
}

/// Why a CONNECT target was refused (the client's fault; answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("CONNECT target is not host:port")]
    NotAuthority,
    #[error("CONNECT target has no valid port")]
    BadPort,
    #[error("CONNECT target has an invalid host")]
    BadHost,
    #[error("only http:// URLs are forwarded (https goes through CONNECT)")]
    NotHttp,
    #[error("URL with user info or a fragment")]
    BadUrl,
}

/// An absolute-form `http://` target, split for the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTarget<'a> {
    pub authority: Authority<'a>,
    /// The authority as written (`host` or `host:port`): the `Host` field for the origin.
    pub host: &'a str,
    /// Path and query as written; empty or starting with `?` means the origin-form begins
    /// with `/` ([`HttpTarget::write_origin_form`]).
    pub path: &'a str,
}

impl HttpTarget<'_> {
    /// Appends the origin-form request-target (`/path?query`).
    pub fn write_origin_form(&self, out: &mut Vec<u8>) {
        if !self.path.starts_with('/') {
            out.push(b'/');
        }
        out.extend_from_slice(self.path.as_bytes());
    }
}

/// Where `://` ends a syntactically valid scheme (RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" /
/// "-" / "." )`) at the start of `target`: the scheme's length. `None` for any other target, also
/// when a `://` appears only later (`host/?u=http://x`).
pub fn scheme_len(target: &[u8]) -> Option<usize> {
    let colon = target.windows(3).position(|w| w == b"://")?;
    let scheme = &target[..colon];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(colon)
}

/// Parses `http://authority[/path][?query]`; the scheme is case-insensitive, the port defaults to
/// 80, user info (`user:pass@`) and fragments are refused.
pub fn parse_absolute_http(target: &[u8]) -> Result<HttpTarget<'_>, TargetError> {
    let target = std::str::from_utf8(target).map_err(|_| TargetError::BadUrl)?;
    let scheme_end = target.find("://").ok_or(TargetError::NotHttp)?;
    if !target[..scheme_end].eq_ignore_ascii_case("http") {
        return Err(TargetError::NotHttp);
    }
    let rest = &target[scheme_end + 3..];
    let (host, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    if host.contains('@') || path.contains('#') || host.contains('#') {
        return Err(TargetError::BadUrl);
    }
    // A port is present when the last colon comes after any IPv6 bracket.
    let has_port = host
        .rfind(':')
        .is_some_and(|c| host.rfind(']').is_none_or(|b| c > b));
    let authority = if has_port {
        parse_authority(host.as_bytes())?
    } else {
        Authority {
            host: parse_host(host)?,
            port: 80,
        }
    };
    Ok(HttpTarget {
        authority,
        host,
        path,
    })
}

/// Longest DNS name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME: usize = 253;

/// Parses an authority-form target: `name:port`, `1.2.3.4:port` or `[v6]:port`.
pub fn parse_authority(target: &[u8]) -> Result<Authority<'_>, TargetError> {
    let target = std::str::from_utf8(target).map_err(|_| TargetError::BadHost)?;
    let (host, port) = target.rsplit_once(':').ok_or(TargetError::NotAuthority)?;
    let port = parse_port(port)?;
    Ok(Authority {
        host: parse_host(host)?,
        port,
    })
}

/// A host: `[v6]`, an IPv4 literal, or a DNS name.
fn parse_host(host: &str) -> Result<Host<'_>, TargetError> {
    let host = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(TargetError::BadHost)?;
        Host::Ip(IpAddr::V6(
            inner
                .parse::<Ipv6Addr>()
                .map_err(|_| TargetError::BadHost)?,
        ))
    } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
        Host::Ip(IpAddr::V4(v4))
    } else if is_reg_name(host) {
        Host::Name(host)
    } else if host.contains([':', '/', '@', '?', '#']) {
        return Err(TargetError::NotAuthority);
    } else {
        return Err(TargetError::BadHost);
    };
    Ok(host)
}

/// 1–65535, decimal digits only (no sign, no spaces; leading zeros are harmless).
fn parse_port(s: &str) -> Result<u16, TargetError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::BadPort);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(TargetError::BadPort),
        Ok(p) => Ok(p),
    }
}

/// A DNS host name: dot-separated labels of letters, digits, `-` and `_` (seen in the wild), each
/// 1–63 bytes, not starting or ending with `-`; an all-numeric last label would be a bad IPv4.
fn is_reg_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_NAME {
        return false;
    }
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let last_numeric = host
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && !last_numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per target: the input and the outcome.
    #[test]
    fn table() {
        use Host::*;
        let v6: IpAddr = "::1".parse().unwrap();
        let long = format!("{}.com:443", "a.".repeat(130));
        type Row<'a> = (&'a str, Result<(Host<'a>, u16), TargetError>);
        let rows: Vec<Row> = vec![
            ("example.com:443", Ok((Name("example.com"), 443))),
            ("EXAMPLE.com.:8443", Ok((Name("EXAMPLE.com."), 8443))),
            ("localhost:1", Ok((Name("localhost"), 1))),
            (
                "_srv.host-1.example:65535",
                Ok((Name("_srv.host-1.example"), 65535)),
            ),
            ("127.0.0.1:80", Ok((Ip("127.0.0.1".parse().unwrap()), 80))),
            ("[::1]:443", Ok((Ip(v6), 443))),
            (
                "[::ffff:10.0.0.1]:443",
                Ok((Ip("::ffff:10.0.0.1".parse().unwrap()), 443)),
            ),
            ("example.com", Err(TargetError::NotAuthority)),
            ("example.com:", Err(TargetError::BadPort)),
            ("example.com:0", Err(TargetError::BadPort)),
            ("example.com:65536", Err(TargetError::BadPort)),
            ("example.com:+443", Err(TargetError::BadPort)),
            ("example.com:44 3", Err(TargetError::BadPort)),
            ("example.com:443/", Err(TargetError::BadPort)),
            ("::1:443", Err(TargetError::NotAuthority)),
            ("[::1:443", Err(TargetError::BadHost)),
            ("[::1]x:443", Err(TargetError::BadHost)),
            ("[fe80::1%eth0]:443", Err(TargetError::BadHost)),
            ("[1.2.3.4]:443", Err(TargetError::BadHost)),
            (":443", Err(TargetError::BadHost)),
            ("user@example.com:443", Err(TargetError::NotAuthority)),
            ("http://example.com:443", Err(TargetError::NotAuthority)),
            ("/path:443", Err(TargetError::NotAuthority)),
            ("exa mple.com:443", Err(TargetError::BadHost)),
            ("-bad.com:443", Err(TargetError::BadHost)),
            ("a..b:443", Err(TargetError::BadHost)),
            ("1.2.3.256:443", Err(TargetError::BadHost)),
            ("999:443", Err(TargetError::BadHost)),
            (long.as_str(), Err(TargetError::BadHost)),
        ];
        for (input, want) in rows {
            let got = parse_authority(input.as_bytes()).map(|a| (a.host, a.port));
            assert_eq!(got, want, "target {input:?}");
        }
        assert_eq!(parse_authority(b"\xff:443"), Err(TargetError::BadHost));
    }

    /// One row per absolute-form target: the input, and (host, port, Host field, origin-form).
    #[test]
    fn absolute_http_table() {
        type Row<'a> = (
            &'a str,
            Result<(&'a str, u16, &'a str, &'a str), TargetError>,
        );
        let rows: Vec<Row> = vec![
            (
                "http://example.com/a/b?c=d",
                Ok(("example.com", 80, "example.com", "/a/b?c=d")),
            ),
            (
                "HTTP://Example.com:8080",
                Ok(("Example.com", 8080, "Example.com:8080", "/")),
            ),
            (
                "http://example.com?q",
                Ok(("example.com", 80, "example.com", "/?q")),
            ),
            (
                "http://127.0.0.1:9/x",
                Ok(("127.0.0.1", 9, "127.0.0.1:9", "/x")),
            ),
            ("http://[::1]/x", Ok(("::1", 80, "[::1]", "/x"))),
            ("http://[::1]:81/", Ok(("::1", 81, "[::1]:81", "/"))),
            ("https://example.com/", Err(TargetError::NotHttp)),
            ("ftp://example.com/", Err(TargetError::NotHttp)),
            ("/just/a/path", Err(TargetError::NotHttp)),
            ("http://user:pw@example.com/", Err(TargetError::BadUrl)),
            ("http://example.com/#frag", Err(TargetError::BadUrl)),
            ("http:///path", Err(TargetError::BadHost)),
            ("http://exa mple.com/", Err(TargetError::BadHost)),
            ("http://example.com:0/", Err(TargetError::BadPort)),
            ("http://example.com:/", Err(TargetError::BadPort)),
            ("http://[::1/", Err(TargetError::BadHost)),
        ];
        for (input, want) in rows {
            let got = parse_absolute_http(input.as_bytes()).map(|t| {
                let host = match t.authority.host {
                    Host::Name(n) => n.to_owned(),
                    Host::Ip(ip) => ip.to_string(),
                };
                let mut origin = Vec::new();
                t.write_origin_form(&mut origin);
                (
                    host,
                    t.authority.port,
                    t.host.to_owned(),
                    String::from_utf8(origin).unwrap(),
                )
            });
            let want = want.map(|(h, p, hh, o)| (h.to_owned(), p, hh.to_owned(), o.to_owned()));
            assert_eq!(got, want, "target {input:?}");
        }
    }
}
