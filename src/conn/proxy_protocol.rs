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
pub fn parse(buf: &[u8]) -> Parsed {
    // What can start a header at all; decided here, as soon as the first bytes are in.
    let starts = |signature: &[u8]| {
        let n = buf.len().min(signature.len());
        buf[..n] == signature[..n]
    };
    if !starts(V1_SIGNATURE) && !starts(V2_SIGNATURE) {
        return Parsed::Invalid;
    }
    let parsed = HeaderResult::parse(buf);
    // A v1 header ends at its CRLF, within 107 bytes: after that, "incomplete" means invalid.
    let v1_ended =
        starts(V1_SIGNATURE) && (buf.len() >= V1_MAX || buf.windows(2).any(|w| w == b"\r\n"));
    if parsed.is_incomplete() && v1_ended {
        return Parsed::Invalid;
    }
    if parsed.is_incomplete() {
        return if buf.len() < MAX_HEADER {
            Parsed::Incomplete
        } else {
            Parsed::Invalid
        };
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
