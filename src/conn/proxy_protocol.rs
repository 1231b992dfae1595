//! The PROXY protocol header (v1 text and v2 binary, HAProxy's spec) that a load balancer in TCP
//! mode puts before the client's bytes, so the proxy sees the real client address. Parsing is
//! `ppp`'s; this module only decides what a header means for a connection.

use std::net::SocketAddr;

use ppp::{HeaderResult, PartialResult, v1, v2};

/// Longest header accepted: a v1 header is at most 107 bytes; a v2 header carries TLVs (cloud load
/// balancers add a few, well under this).
pub const MAX_HEADER: usize = 4096;

const V1_SIGNATURE: &[u8] = b"PROXY ";
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The connection is a client's, relayed: its address.
    Client(SocketAddr),
    /// The load balancer's own connection (v2 `LOCAL`, v1 `UNKNOWN`, e.g. a health check): the
    /// connection's own address stands.
    Local,
}

/// The state of the bytes at the start of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Incomplete,
    /// A header of this many bytes.
    Complete(usize, Origin),
    /// Not a valid header (or one too long).
    Invalid,
}

/// Parses the header at the start of `buf`.
///
/// Where a header ends is decided here, from its framing (a v1 line ends at its CRLF, within 107
/// bytes; a v2 header is 16 bytes plus the length they carry), and `ppp` judges only a header
/// that is all there: its view of a partial header depends on where the bytes stop (`PROXY` alone,
/// or a v1 line cut after a space, read as invalid), and the verdict must not depend on how the
/// load balancer's bytes were segmented.
pub fn parse(buf: &[u8]) -> Parsed {
    // What can start a header at all; decided here, as soon as the first bytes are in.
    let starts = |signature: &[u8]| {
        let n = buf.len().min(signature.len());
        buf[..n] == signature[..n]
    };
    let header = if starts(V1_SIGNATURE) {
        match buf.windows(2).position(|w| w == b"\r\n") {
            Some(cr) if cr + 2 <= V1_MAX => &buf[..cr + 2],
            Some(_) => return Parsed::Invalid,
            None if buf.len() >= V1_MAX => return Parsed::Invalid,
            None => return Parsed::Incomplete,
        }
    } else if starts(V2_SIGNATURE) {
        let Some(len) = buf.get(14..16) else {
            return Parsed::Incomplete;
        };
        let total = 16 + usize::from(u16::from_be_bytes([len[0], len[1]]));
        if total > MAX_HEADER {
            return Parsed::Invalid;
        }
        match buf.get(..total) {
            Some(header) => header,
            None => return Parsed::Incomplete,
        }
    } else {
        return Parsed::Invalid;
    };
    let parsed = HeaderResult::parse(header);
    if parsed.is_incomplete() {
        // The framing says the header is all there: a parser that wants more finds it invalid.
        return Parsed::Invalid;
    }
    match parsed {
        HeaderResult::V1(Ok(h)) => {
            let origin = match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    Origin::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Origin::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Unknown => Origin::Local,
            };
            // `ppp` reads an UNKNOWN line only up to a bare LF: a header whose end it sees
            // elsewhere than its CRLF is not one (found by fuzzing).
            if h.header.len() != header.len() {
                return Parsed::Invalid;
            }
            Parsed::Complete(h.header.len(), origin)
        }
        HeaderResult::V2(Ok(h)) => {
            let origin = match (h.command, h.addresses) {
                (v2::Command::Local, _) => Origin::Local,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Origin::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Origin::Client(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                // A relayed connection with no IP source (UNIX, unspecified): not for a TCP proxy.
                (v2::Command::Proxy, _) => return Parsed::Invalid,
            };
            if h.len() != header.len() {
                return Parsed::Invalid;
            }
            Parsed::Complete(h.len(), origin)
        }
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => Parsed::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    /// However the header arrives, each piece short of the whole is incomplete, never invalid
    /// (found by the `proxy_protocol` fuzz target: `PROXY` alone, five bytes, was invalid).
    #[test]
    fn every_prefix_of_a_valid_header_is_incomplete() {
        let mut a = vec![198, 51, 100, 9, 10, 0, 0, 1];
        a.extend_from_slice(&5555u16.to_be_bytes());
        a.extend_from_slice(&3128u16.to_be_bytes());
        let headers: [Vec<u8>; 5] = [
            b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 3128\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 3128\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(1, 0x11, &a),
            v2(0, 0x00, &[]),
        ];
        for h in &headers {
            assert!(matches!(parse(h), Parsed::Complete(n, _) if n == h.len()));
            for cut in 0..h.len() {
                assert_eq!(
                    parse(&h[..cut]),
                    Parsed::Incomplete,
                    "{:?}",
                    String::from_utf8_lossy(&h[..cut])
                );
            }
        }
    }

    #[test]
    fn headers_of_both_versions() {
        let text = b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 3128\r\nCONNECT a:443";
        assert_eq!(
            parse(text),
            Parsed::Complete(44, Origin::Client("203.0.113.7:40000".parse().unwrap()))
        );
        let text = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 3128\r\n";
        assert_eq!(
            parse(text),
            Parsed::Complete(47, Origin::Client("[2001:db8::7]:40000".parse().unwrap()))
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Complete(15, Origin::Local)
        );
        // Incomplete, then garbage.
        assert_eq!(parse(b"PROXY TCP4 203.0"), Parsed::Incomplete);
        assert_eq!(parse(b"\r\n\r\n\0\r"), Parsed::Incomplete);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse(b"PROXY TCP4 nonsense\r\n"), Parsed::Invalid);
        // A bare LF inside the line: `ppp` ended the header there, before its CRLF (fuzzing).
        assert_eq!(parse(b"PROXY UNKNOWN %1 \n 0\rN\r\n"), Parsed::Invalid);

        let mut a = vec![198, 51, 100, 9, 10, 0, 0, 1];
        a.extend_from_slice(&5555u16.to_be_bytes());
        a.extend_from_slice(&3128u16.to_be_bytes());
        let mut h = v2(1, 0x11, &a);
        let len = h.len();
        h.extend_from_slice(b"CONNECT");
        assert_eq!(
            parse(&h),
            Parsed::Complete(len, Origin::Client("198.51.100.9:5555".parse().unwrap()))
        );
        assert_eq!(parse(&h[..len - 3]), Parsed::Incomplete);
        assert_eq!(
            parse(&v2(0, 0x00, &[])),
            Parsed::Complete(16, Origin::Local)
        );
        // PROXY with an unspecified family: no client address to take.
        assert_eq!(parse(&v2(1, 0x00, &[])), Parsed::Invalid);
    }
}
