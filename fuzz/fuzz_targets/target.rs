//! Request-targets: CONNECT authorities and absolute `http://` URLs. What is accepted is what a
//! resolver and an origin may safely be given: a name of DNS characters only, a port 1–65535, no
//! user info, no fragment; and an accepted authority, written again, reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::http::target::{self, Authority, Host};

fn check_authority(a: &Authority<'_>) {
    assert_ne!(a.port, 0);
    let written = match a.host {
        Host::Name(n) => {
            assert!(!n.is_empty() && n.len() <= 254, "{n:?}");
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
                "{n:?}"
            );
            format!("{n}:{}", a.port)
        }
        Host::Ip(std::net::IpAddr::V4(ip)) => format!("{ip}:{}", a.port),
        Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", a.port),
    };
    let again = target::parse_authority(written.as_bytes()).expect("a written authority reads");
    assert_eq!(again.port, a.port);
    match (again.host, a.host) {
        (Host::Name(x), Host::Name(y)) => assert_eq!(x, y),
        (Host::Ip(x), Host::Ip(y)) => assert_eq!(x, y),
        (x, y) => panic!("{x:?} read back as {y:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = target::parse_authority(data) {
        check_authority(&a);
    }
    if let Some(n) = target::scheme_len(data) {
        assert_eq!(&data[n..n + 3], b"://");
    }
    if let Ok(u) = target::parse_absolute_http(data) {
        check_authority(&u.authority);
        assert!(!u.host.contains(['@', '#', '/', '?']), "{:?}", u.host);
        assert!(!u.path.contains('#'), "{:?}", u.path);
        assert!(
            u.path.is_empty() || u.path.starts_with(['/', '?']),
            "{:?}",
            u.path
        );
        let text = std::str::from_utf8(data).expect("accepted as text");
        assert!(text.ends_with(&format!("{}{}", u.host, u.path)));
        let mut out = Vec::new();
        u.write_origin_form(&mut out);
        assert!(out.starts_with(b"/"));
    }
});
