//! The built-in destination denials, like Squid's and ATS's: never loopback, link-local (cloud
//! metadata included), unspecified, multicast or reserved addresses, judged on the canonical form
//! of an address (IPv4-mapped and NAT64 addresses as the IPv4 address they carry).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is the IPv4 address it carries: checked as such.
/// So is an address in the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052): a NAT64 gateway
/// delivers it to the IPv4 address in its last 32 bits.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else {
                v6.to_ipv4_mapped().map_or(ip, IpAddr::V4)
            }
        }
        v4 => v4,
    }
}

/// Cloud metadata services outside link-local space: Alibaba's (in 100.64/10) and Azure's
/// WireServer.
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];

/// The built-in denials: which range `ip` falls in, if any.
pub(super) fn denied_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("destination is a loopback address")
            } else if v4.is_link_local() || METADATA_V4.contains(&v4) {
                Some("destination is link-local (cloud metadata included)")
            } else if o[0] == 0 {
                Some("destination is an unspecified address")
            } else if v4.is_multicast() || o[0] >= 240 {
                Some("destination is a multicast, broadcast or reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_loopback() {
                Some("destination is a loopback address")
            } else if v6.is_unspecified() {
                Some("destination is an unspecified address")
            } else if (s[0] & 0xffc0) == 0xfe80 || v6 == AWS_METADATA_V6 {
                Some("destination is link-local (cloud metadata included)")
            } else if v6.is_multicast() {
                Some("destination is a multicast, broadcast or reserved address")
            } else if s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0 {
                // IPv4-compatible (deprecated) `::a.b.c.d`: judged as the IPv4 address inside.
                denied_range(IpAddr::V4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                )))
            } else {
                None
            }
        }
    }
}

/// The IPv6 address of the EC2 instance metadata service (a unique-local address).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

pub(super) fn is_loopback_net(n: &IpNet) -> bool {
    canonical(n.network()).is_loopback() && canonical(n.broadcast()).is_loopback()
}
