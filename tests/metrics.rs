//! The admin endpoint against the real binary: /healthz, /readyz (ready once listening, not while
//! draining), and /metrics after a scripted run, read with a real Prometheus text parser (Python's
//! `prometheus_client`), with every count checked exactly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::*;

fn admin_addr(proxy: &Proxy) -> SocketAddr {
    assert!(proxy.wait_log("admin endpoint"));
    let log = proxy.log_text();
    log.split("admin=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no admin address in {log}"))
}

fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let resp = exchange(
        admin,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status(&resp), body)
}

/// Scrapes /metrics and parses it with prometheus_client: sample name + sorted labels → value.
fn scrape(admin: SocketAddr) -> HashMap<String, f64> {
    let script = format!(
        "import urllib.request\n\
         from prometheus_client.parser import text_string_to_metric_families\n\
         text = urllib.request.urlopen('http://{admin}/metrics').read().decode()\n\
         for family in text_string_to_metric_families(text):\n\
         \x20   for s in family.samples:\n\
         \x20       labels = ','.join(f'{{k}}={{v}}' for k, v in sorted(s.labels.items()))\n\
         \x20       print(f'{{s.name}}{{{{{{labels}}}}}} {{s.value}}')\n"
    );
    python(&script, &[])
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn health_readiness_and_exact_counts_after_a_scripted_run() {
    let echo = echo_server();
    let origin = http_origin("metered");
    let mut proxy = Proxy::start(&[
        "--user",
        "alice:pw",
        "--admin",
        "127.0.0.1:0",
        "--auth-failure-delay",
        "0",
        "--shutdown-grace",
        "20",
    ]);
    let admin = admin_addr(&proxy);
    assert_eq!(admin_get(admin, "/healthz"), (200, "ok\n".into()));
    assert_eq!(admin_get(admin, "/readyz"), (200, "ready\n".into()));
    assert_eq!(admin_get(admin, "/nope").0, 404);
    // The admin endpoint is one of the proxy's own sockets: not reachable through the proxy.
    let through = exchange(
        proxy.addr,
        format!(
            "GET http://{admin}/metrics HTTP/1.1\r\n{}Connection: close\r\n\r\n",
            credentials("alice", "pw")
        )
        .as_bytes(),
    );
    assert!(
        through.starts_with("HTTP/1.1 403 ") && through.ends_with("destination is this proxy\n"),
        "{through}"
    );

    let good = credentials("alice", "pw");
    // Three tunnels, 1000 bytes each way.
    for _ in 0..3 {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "CONNECT {echo} HTTP/1.1\r\n{good}\r\n").unwrap();
        assert!(read_head(&mut s).starts_with("HTTP/1.1 200 "));
        s.write_all(&[7u8; 1000]).unwrap();
        let mut back = [0u8; 1000];
        s.read_exact(&mut back).unwrap();
    }
    // Two without credentials, one with a wrong password: 407s.
    for creds in ["", "", &credentials("alice", "nope")] {
        let resp = exchange(
            proxy.addr,
            format!("CONNECT {echo} HTTP/1.1\r\n{creds}Connection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&resp), 407, "{resp}");
    }
    // Two forwarded GETs.
    for _ in 0..2 {
        let resp = exchange(
            proxy.addr,
            format!("GET http://{origin}/ HTTP/1.1\r\n{good}Connection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&resp), 200, "{resp}");
    }
    // A refused dial and a denied destination.
    let port = closed_port();
    for (target, want) in [
        (format!("127.0.0.1:{port}"), 502),
        ("169.254.169.254:443".into(), 403),
    ] {
        let resp = exchange(
            proxy.addr,
            format!("CONNECT {target} HTTP/1.1\r\n{good}\r\n").as_bytes(),
        );
        assert_eq!(status(&resp), want, "{resp}");
    }

    // Tunnels are closed by now; the gauges settle.
    let started = Instant::now();
    let mut m = scrape(admin);
    while (m["ringgate_tunnels_active{}"] != 0.0 || m["ringgate_connections_active{}"] != 0.0)
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
        m = scrape(admin);
    }
    for (sample, want) in [
        ("ringgate_connections_accepted_total{}", 11.0),
        ("ringgate_requests_total{method=GET,status=403}", 1.0),
        ("ringgate_policy_denials_total{kind=loop}", 1.0),
        ("ringgate_connections_active{}", 0.0),
        ("ringgate_tunnels_total{}", 3.0),
        ("ringgate_tunnels_active{}", 0.0),
        ("ringgate_tunnel_bytes_total{direction=up}", 3000.0),
        ("ringgate_tunnel_bytes_total{direction=down}", 3000.0),
        ("ringgate_requests_total{method=CONNECT,status=200}", 3.0),
        ("ringgate_requests_total{method=CONNECT,status=407}", 3.0),
        ("ringgate_requests_total{method=GET,status=200}", 2.0),
        ("ringgate_requests_total{method=CONNECT,status=502}", 1.0),
        ("ringgate_requests_total{method=CONNECT,status=403}", 1.0),
        ("ringgate_auth_challenges_total{reason=no credentials}", 2.0),
        (
            "ringgate_auth_challenges_total{reason=wrong credentials}",
            1.0,
        ),
        (
            "ringgate_auth_checks_total{result=failure,scheme=basic}",
            1.0,
        ),
        ("ringgate_upstream_connect_errors_total{kind=refused}", 1.0),
        ("ringgate_upstream_connect_errors_total{kind=denied}", 1.0),
        ("ringgate_policy_denials_total{kind=destination}", 1.0),
        ("ringgate_tunnel_setup_seconds_count{}", 3.0),
        ("ringgate_request_duration_seconds_count{}", 2.0),
        ("ringgate_io_driver_info{driver=io_uring}", 1.0),
        ("ringgate_workers{}", 2.0),
    ] {
        assert_eq!(m.get(sample), Some(&want), "{sample}: {m:?}");
    }
    // Nine requests carried credentials: each a cache hit or a miss (a first sight on its
    // worker); eight were right.
    let checks = m["ringgate_auth_checks_total{result=success,scheme=basic}"];
    let hits = m["ringgate_credential_cache_total{result=hit}"];
    let misses = m["ringgate_credential_cache_total{result=miss}"];
    assert_eq!(hits + misses, 9.0, "{m:?}");
    assert_eq!(checks, 8.0, "{m:?}");

    // Draining: not ready any more.
    let mut open = TcpStream::connect(proxy.addr).unwrap();
    write!(open, "CONNECT {echo} HTTP/1.1\r\n{good}\r\n").unwrap();
    assert!(read_head(&mut open).starts_with("HTTP/1.1 200 "));
    proxy.terminate();
    assert!(proxy.wait_log("shutting down"));
    assert_eq!(admin_get(admin, "/readyz"), (503, "draining\n".into()));
    drop(open);
    assert_eq!(proxy.wait_exit(Duration::from_secs(20)), Some(0));
}

/// A `GET` to the admin endpoint that tolerates being closed unanswered: the status, if any.
fn try_admin_get(admin: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(admin).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
}

#[test]
fn clients_trickling_a_head_into_every_admin_slot_are_cut_off_and_health_checks_get_through() {
    let proxy = Proxy::start(&["--admin", "127.0.0.1:0"]);
    let admin = admin_addr(&proxy);
    let started = Instant::now();
    // As many tricklers as the endpoint has slots (8), each sending a byte a second, for at most
    // 20 s; each reports when the endpoint closed it.
    let tricklers: Vec<_> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(admin).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            std::thread::spawn(move || {
                let mut byte = [0u8; 1];
                for b in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa"
                    .iter()
                    .take(20)
                {
                    if s.write_all(&[*b]).is_err() {
                        return Some(Instant::now());
                    }
                    match s.read(&mut byte) {
                        Ok(_) => return Some(Instant::now()),
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                            return Some(Instant::now());
                        }
                        Err(_) => {}
                    }
                }
                None
            })
        })
        .collect();
    // A health check gets through once the tricklers' head deadline (5 s) has passed.
    let mut healthy = None;
    while healthy.is_none() && started.elapsed() < Duration::from_secs(10) {
        if try_admin_get(admin, "/healthz") == Some(200) {
            healthy = Some(started.elapsed());
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        healthy.is_some(),
        "no /healthz answer in 10 s with the slots trickled"
    );
    for t in tricklers {
        let closed = t.join().unwrap();
        let after = closed.map(|at| at - started);
        assert!(
            after.is_some_and(|d| d < Duration::from_secs(8)),
            "a trickler was not cut off by the head deadline: {after:?}"
        );
    }
}
