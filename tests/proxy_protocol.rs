//! PROXY protocol listeners against the real binary: v1 and v2 headers from a trusted source give
//! the client address that policy and logs use; untrusted sources, missing and forged headers are
//! closed; and HAProxy (Debian's) in TCP mode with `send-proxy-v2` in front of two ringgate
//! processes carries each client's own address through to the client rules and the logs.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The PROXY protocol listener's address, from the start line.
fn proxied_addr(proxy: &Proxy) -> SocketAddr {
    let log = proxy.log_text();
    log.split("proxy_protocol=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no PROXY protocol listener in {log}"))
}

/// Sends `bytes` from `source` to `to` and reads everything until the connection closes.
fn send(source: &str, to: SocketAddr, bytes: &[u8]) -> String {
    let mut s = connect_from(source, to);
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn v2_header(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(c), SocketAddr::V4(s)) = (client, server) else {
        panic!("IPv4 only here");
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&c.ip().octets());
    h.extend_from_slice(&s.ip().octets());
    h.extend_from_slice(&c.port().to_be_bytes());
    h.extend_from_slice(&s.port().to_be_bytes());
    h
}

#[test]
fn the_header_names_the_client_for_policy_and_logs_and_nothing_else_gets_in() {
    let origin = http_origin("hello from the origin");
    let proxy = Proxy::start(&[
        "--listen-proxy-protocol",
        "127.0.0.1:0",
        "--client",
        "198.51.100.7/32",
        "--open-proxy",
    ]);
    let pp = proxied_addr(&proxy);
    let request = format!("GET http://{origin}/ HTTP/1.1\r\nConnection: close\r\n\r\n");
    // Straight to the plain listener from 127.0.0.1: not an allowed client.
    let direct = send("127.0.0.1", proxy.addr, request.as_bytes());
    assert!(direct.starts_with("HTTP/1.1 403 "), "{direct}");
    // Through the PROXY listener as 198.51.100.7, in v1 and in v2: allowed.
    let v1 = format!(
        "PROXY TCP4 198.51.100.7 127.0.0.1 40001 {}\r\n{request}",
        pp.port()
    );
    let got = send("127.0.0.1", pp, v1.as_bytes());
    assert!(
        got.starts_with("HTTP/1.1 200 ") && got.ends_with("hello from the origin"),
        "{got}"
    );
    let mut v2 = v2_header("198.51.100.7:40002".parse().unwrap(), pp);
    v2.extend_from_slice(request.as_bytes());
    let got = send("127.0.0.1", pp, &v2);
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    // The same v1 header in pieces, cut where the PROXY parser once called a valid header's
    // start invalid (`PROXY`, and after the source port's space; found by fuzzing). The pause
    // only makes separate segments likely; the test passes on any segmentation once fixed.
    for cut in [5, v1.find("40001 ").unwrap() + 6] {
        let mut s = connect_from("127.0.0.1", pp);
        s.set_nodelay(true).unwrap();
        s.write_all(&v1.as_bytes()[..cut]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(&v1.as_bytes()[cut..]).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 200 "), "cut at {cut}: {got}");
    }
    assert!(
        proxy.wait_log("peer=198.51.100.7:40002"),
        "{}",
        proxy.log_text()
    );
    // As another client: refused, and logged as that client.
    let v1 = format!(
        "PROXY TCP4 198.51.100.8 127.0.0.1 40003 {}\r\n{request}",
        pp.port()
    );
    let got = send("127.0.0.1", pp, v1.as_bytes());
    assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
    assert!(
        proxy.wait_log("peer=198.51.100.8:40003"),
        "{}",
        proxy.log_text()
    );
    // No header, a broken one, or a header split over a slow start that never ends: closed
    // without an answer.
    for bytes in [
        request.as_bytes().to_vec(),
        b"PROXY TCP4 198.51.100.7 nonsense\r\n".to_vec(),
        b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\nGET".to_vec(),
    ] {
        assert_eq!(send("127.0.0.1", pp, &bytes), "", "{bytes:?}");
    }
    // A load balancer's own check (v1 UNKNOWN): the connection's own address stands (403 here).
    let got = send(
        "127.0.0.1",
        pp,
        format!("PROXY UNKNOWN\r\n{request}").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
}

#[test]
fn headers_from_untrusted_sources_are_refused() {
    let origin = http_origin("x");
    let proxy = Proxy::start(&[
        "--listen-proxy-protocol",
        "127.0.0.1:0",
        "--proxy-protocol-from",
        "127.0.0.2/32",
    ]);
    let pp = proxied_addr(&proxy);
    let forged = format!(
        "PROXY TCP4 127.0.0.9 127.0.0.1 40001 {}\r\nGET http://{origin}/ HTTP/1.1\r\nConnection: close\r\n\r\n",
        pp.port()
    );
    assert_eq!(send("127.0.0.1", pp, forged.as_bytes()), "");
    assert!(proxy.wait_log("source not in proxy_protocol_from"));
    let got = send("127.0.0.2", pp, forged.as_bytes());
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn haproxy_with_send_proxy_v2_in_front_of_two_ringgates_keeps_client_addresses() {
    let origin = http_origin("through haproxy");
    let args = [
        "--listen-proxy-protocol",
        "127.0.0.1:0",
        "--client",
        "127.0.0.5/32",
    ];
    let (a, b) = (Proxy::start(&args), Proxy::start(&args));
    let (pa, pb) = (proxied_addr(&a), proxied_addr(&b));
    let port = free_port();
    let dir = scratch("haproxy");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 200\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
             backend be\n    balance roundrobin\n\
             \x20   server a {pa} send-proxy-v2\n    server b {pb} send-proxy-v2\n"
        ),
    )
    .unwrap();
    let haproxy = ["/usr/sbin/haproxy", "haproxy"]
        .iter()
        .find_map(|bin| {
            Command::new(bin)
                .args(["-db", "-f"])
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })
        .map(Haproxy)
        .expect("haproxy is installed (scripts/install-test-deps.sh)");
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    while TcpStream::connect(front).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "haproxy did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let request = format!("GET http://{origin}/ HTTP/1.1\r\nConnection: close\r\n\r\n");
    for _ in 0..4 {
        let got = send("127.0.0.5", front, request.as_bytes());
        assert!(
            got.starts_with("HTTP/1.1 200 ") && got.ends_with("through haproxy"),
            "{got}"
        );
        let got = send("127.0.0.6", front, request.as_bytes());
        assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
    }
    // Both ringgates served (round robin), and they saw the clients' own addresses: every
    // allowed request as 127.0.0.5, every refusal as 127.0.0.6.
    let logs = || format!("{}\n{}", a.log_text(), b.log_text());
    let count = |needle: &str| logs().lines().filter(|l| l.contains(needle)).count();
    let waited = Instant::now();
    while count("forwarded peer=127.0.0.5:") + count("refused peer=127.0.0.6:") < 8
        && waited.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count("forwarded peer=127.0.0.5:"), 4, "{}", logs());
    assert_eq!(count("refused peer=127.0.0.6:"), 4, "{}", logs());
    for p in [&a, &b] {
        let text = p.log_text();
        assert!(text.contains("peer=127.0.0.5:") || text.contains("peer=127.0.0.6:"));
    }
    let logs = logs();
    assert!(!logs.contains("source not in proxy_protocol_from"));
    drop(haproxy);
    let _ = std::fs::remove_dir_all(dir);
}
