//! Address and port lists as written in the config: CIDRs (a bare address is a single-address
//! network, IPv4-mapped networks are IPv4) and port ranges.

use std::net::IpAddr;

use ipnet::IpNet;

use super::PolicyError;

/// Parses CIDRs; a bare address is a single-address network.
pub fn parse_nets(key: &str, list: &[String]) -> Result<Vec<IpNet>, PolicyError> {
    nets(key, list)
}

pub(super) fn nets(key: &str, list: &[String]) -> Result<Vec<IpNet>, PolicyError> {
    list.iter()
        .map(|t| {
            t.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .map(|n| match n {
                    // Mapped IPv6 networks are checked as IPv4 (see `canonical`).
                    IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
                        Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(n),
                        None => n,
                    },
                    n => n,
                })
                .map_err(|_| PolicyError {
                    key: key.to_owned(),
                    reason: format!("{t:?} is not an address or CIDR"),
                })
        })
        .collect()
}

/// Parses port lists: `443`, `8000-9000`, or `any`.
pub fn ports(key: &str, list: &[String]) -> Result<Vec<(u16, u16)>, PolicyError> {
    let bad = |t: &str| PolicyError {
        key: key.to_owned(),
        reason: format!("{t:?}: a port, a range LOW-HIGH, or any"),
    };
    list.iter()
        .map(|t| {
            let t = t.trim();
            if t.eq_ignore_ascii_case("any") {
                return Ok((1, 65535));
            }
            let (lo, hi) = t.split_once('-').unwrap_or((t, t));
            let lo: u16 = lo.trim().parse().map_err(|_| bad(t))?;
            let hi: u16 = hi.trim().parse().map_err(|_| bad(t))?;
            if lo == 0 || hi < lo {
                return Err(bad(t));
            }
            Ok((lo, hi))
        })
        .collect()
}

pub(super) fn in_ranges(ranges: &[(u16, u16)], port: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
}
