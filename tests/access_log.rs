//! The access log against the real binary: squid's native format (field by field), CLF and JSON
//! lines for a scripted run; never a credential in it; reopened on SIGUSR1 after a logrotate-style
//! rename; a log that cannot be written is counted as dropped while traffic goes on.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// A tunnel (1000 bytes each way), a 407, a forwarded GET, a 403: four lines.
fn scripted_run(proxy: SocketAddr, echo: SocketAddr, origin: SocketAddr) {
    let good = credentials("alice", "s3cret-pw");
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "CONNECT {echo} HTTP/1.1\r\n{good}\r\n").unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200 "));
    s.write_all(&[1u8; 1000]).unwrap();
    let mut back = [0u8; 1000];
    s.read_exact(&mut back).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    let resp = exchange(
        proxy,
        format!(
            "GET http://{origin}/x HTTP/1.1\r\n{}Connection: close\r\n\r\n",
            credentials("alice", "wrong")
        )
        .as_bytes(),
    );
    assert_eq!(status(&resp), 407);
    let resp = exchange(
        proxy,
        format!("GET http://{origin}/page?q=1 HTTP/1.1\r\n{good}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status(&resp), 200);
    let resp = exchange(
        proxy,
        format!("CONNECT 169.254.169.254:443 HTTP/1.1\r\n{good}\r\n").as_bytes(),
    );
    assert_eq!(status(&resp), 403);
}

fn lines_of(path: &Path, want: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= want || started.elapsed() > Duration::from_secs(10) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A proxy with user alice logging to `access.log` in a fresh folder named `name`, after the four
/// lines of [`scripted_run`]: the proxy, the log's path, the echo and the HTTP origin.
fn after_scripted_run(
    name: &str,
    extra: &[&str],
) -> (Proxy, std::path::PathBuf, SocketAddr, SocketAddr) {
    let (echo, origin) = (echo_server(), http_origin("logged"));
    let path = scratch(name).join("access.log");
    let args = [
        &[
            "--user",
            "alice:s3cret-pw",
            "--access-log",
            path.to_str().unwrap(),
            "--auth-failure-delay",
            "0",
        ][..],
        extra,
    ]
    .concat();
    let proxy = Proxy::start(&args);
    scripted_run(proxy.addr, echo, origin);
    (proxy, path, echo, origin)
}

#[test]
fn squid_format_field_by_field_and_reopened_on_sigusr1() {
    let (proxy, path, echo, origin) = after_scripted_run("access-log", &[]);
    let lines = lines_of(&path, 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let fields: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for f in &fields {
        assert_eq!(f.len(), 10, "{f:?}");
        let (secs, ms) = f[0].split_once('.').unwrap();
        assert!(secs.parse::<u64>().is_ok() && ms.len() == 3, "{f:?}");
        assert!(f[1].parse::<u64>().is_ok() && f[2] == "127.0.0.1", "{f:?}");
    }
    let find = |code: &str| {
        fields
            .iter()
            .find(|f| f[3] == code)
            .unwrap_or_else(|| panic!("no {code} in {lines:?}"))
    };
    let tunnel = find("TCP_TUNNEL/200");
    assert_eq!(
        &tunnel[4..],
        [
            "1000",
            "CONNECT",
            &echo.to_string(),
            "alice",
            &format!("HIER_DIRECT/{}", echo.ip()),
            "-"
        ]
    );
    let challenged = find("TCP_DENIED/407");
    assert_eq!(
        &challenged[5..8],
        ["GET", &format!("http://{origin}/x"), "-"]
    );
    let forwarded = find("TCP_MISS/200");
    assert_eq!(
        &forwarded[5..8],
        ["GET", &format!("http://{origin}/page?q=1"), "alice"]
    );
    assert!(forwarded[4].parse::<u64>().unwrap() > "logged".len() as u64);
    let denied = find("TCP_DENIED/403");
    assert_eq!(&denied[5..7], ["CONNECT", "169.254.169.254:443"]);
    let all = lines.join("\n");
    assert!(
        !all.contains("s3cret") && !all.contains("Basic") && !all.contains("YWxp"),
        "{all}"
    );

    // logrotate: rename, SIGUSR1, and the next lines go to a new file at the old path.
    let dir = path.parent().unwrap();
    let rotated = dir.join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    proxy.signal("USR1");
    assert!(proxy.wait_log("reopening the access log"));
    // The log writer reopens within its next turn, creating the file at the old path.
    assert!(
        wait_until(Duration::from_secs(10), || path.exists()),
        "the access log was not reopened"
    );
    let resp = exchange(
        proxy.addr,
        format!(
            "GET http://{origin}/after HTTP/1.1\r\n{}Connection: close\r\n\r\n",
            credentials("alice", "s3cret-pw")
        )
        .as_bytes(),
    );
    assert_eq!(status(&resp), 200);
    let fresh = lines_of(&path, 1);
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert!(fresh[0].contains("/after"), "{fresh:?}");
    assert_eq!(lines_of(&rotated, 4).len(), 4);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn common_and_json_formats() {
    let echo = echo_server();
    let origin = http_origin("logged");
    let dir = scratch("access-log-formats");
    for format in ["common", "json"] {
        let path = dir.join(format!("{format}.log"));
        let proxy = Proxy::start(&[
            "--user",
            "alice:s3cret-pw",
            "--access-log",
            path.to_str().unwrap(),
            "--access-log-format",
            format,
            "--auth-failure-delay",
            "0",
        ]);
        scripted_run(proxy.addr, echo, origin);
        let lines = lines_of(&path, 4);
        assert_eq!(lines.len(), 4, "{lines:?}");
        if format == "common" {
            let tunnel = lines.iter().find(|l| l.contains("\"CONNECT 127.")).unwrap();
            assert!(tunnel.starts_with("127.0.0.1 - alice ["), "{tunnel}");
            assert!(
                tunnel.ends_with(&format!("\"CONNECT {echo} HTTP/1.1\" 200 1000")),
                "{tunnel}"
            );
        } else {
            let parsed: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let tunnel = parsed
                .iter()
                .find(|v| v["method"] == "CONNECT" && v["status"] == 200)
                .unwrap();
            assert_eq!(tunnel["user"], "alice");
            assert_eq!(tunnel["auth_scheme"], "basic");
            assert_eq!(tunnel["bytes_up"], 1000);
            assert_eq!(tunnel["bytes_down"], 1000);
            assert_eq!(tunnel["termination"], "closed");
            assert_eq!(tunnel["upstream"], echo.to_string());
            let statuses: Vec<u64> = parsed
                .iter()
                .map(|v| v["status"].as_u64().unwrap())
                .collect();
            for want in [200, 407, 403] {
                assert!(statuses.contains(&want), "{statuses:?}");
            }
            let denied = parsed.iter().find(|v| v["status"] == 403).unwrap();
            assert_eq!(denied["termination"], "denied_acl");
            let challenged = parsed.iter().find(|v| v["status"] == 407).unwrap();
            assert_eq!(challenged["termination"], "auth_failed");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unwritable_log_counts_drops_and_traffic_goes_on() {
    let echo = echo_server();
    let origin = http_origin("logged");
    let proxy = Proxy::start(&[
        "--user",
        "alice:s3cret-pw",
        "--access-log",
        "/dev/full",
        "--admin",
        "127.0.0.1:0",
        "--auth-failure-delay",
        "0",
    ]);
    scripted_run(proxy.addr, echo, origin);
    assert!(
        proxy.wait_log("access log write failed"),
        "{}",
        proxy.log_text()
    );
    assert!(proxy.wait_log("admin endpoint"));
    let log = proxy.log_text();
    let admin: SocketAddr = log
        .split("admin=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap();
    // Each worker hands its lines over every 200 ms: wait until all four were counted.
    let want = "ringgate_log_lines_total{fate=\"dropped\"} 4";
    let started = Instant::now();
    let mut metrics = exchange(admin, b"GET /metrics HTTP/1.1\r\n\r\n");
    while !metrics.contains(want) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        metrics = exchange(admin, b"GET /metrics HTTP/1.1\r\n\r\n");
    }
    assert!(metrics.contains(want), "{metrics}");
}

/// SIGTERM with an access log, a tunnel open past the grace period and an idle kept-alive client:
/// the process exits (it once waited forever for the log writer, whose last sender sat in a
/// connection task that never ended), and every line logged before is in the file.
#[test]
fn sigterm_with_an_access_log_and_open_connections_writes_the_lines_and_exits() {
    let (mut proxy, path, echo, _) =
        after_scripted_run("access-log-exit", &["--shutdown-grace", "1"]);
    let mut open = TcpStream::connect(proxy.addr).unwrap();
    write!(
        open,
        "CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{}\r\n",
        credentials("alice", "s3cret-pw")
    )
    .unwrap();
    assert_eq!(
        read_head(&mut open),
        "HTTP/1.1 200 Connection established\r\n\r\n"
    );
    let _idle = TcpStream::connect(proxy.addr).unwrap();
    proxy.terminate();
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
    let lines = lines_of(&path, 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
}

/// Issue 13: with authentication on, `GET http://bob:hunter2@host/` without credentials was
/// logged with `bob:hunter2` (407 line), and `CONNECT bob:pw@h:443` as sent.
#[test]
fn user_info_in_a_target_never_reaches_a_log_line_in_any_format() {
    let origin = http_origin("logged");
    let dir = scratch("access-log-userinfo");
    for format in ["squid", "common", "json"] {
        let path = dir.join(format!("{format}.log"));
        let proxy = Proxy::start(&[
            "--user",
            "alice:s3cret-pw",
            "--access-log",
            path.to_str().unwrap(),
            "--access-log-format",
            format,
        ]);
        let port = origin.port();
        let good = credentials("alice", "s3cret-pw");
        for (request, want) in [
            // 407: no credentials.
            (
                format!(
                    "GET http://bob:hunter2@127.0.0.1:{port}/x HTTP/1.1\r\nConnection: close\r\n\r\n"
                ),
                407,
            ),
            (
                format!(
                    "CONNECT bob:hunter3@127.0.0.1:{port} HTTP/1.1\r\nConnection: close\r\n\r\n"
                ),
                407,
            ),
            // Authenticated: user info in an authority or a URL is refused (400).
            (
                format!("CONNECT bob:hunter4@127.0.0.1:{port} HTTP/1.1\r\n{good}\r\n"),
                400,
            ),
            (
                format!(
                    "GET http://bob:hunter5@127.0.0.1:{port}/y HTTP/1.1\r\n{good}Connection: close\r\n\r\n"
                ),
                400,
            ),
            (
                format!(
                    "GET http://bob:hunter6@169.254.169.254/ HTTP/1.1\r\n{good}Connection: close\r\n\r\n"
                ),
                400,
            ),
        ] {
            let resp = exchange(proxy.addr, request.as_bytes());
            assert_eq!(status(&resp), want, "{request}: {resp}");
        }
        let lines = lines_of(&path, 5);
        assert_eq!(lines.len(), 5, "{format}: {lines:?}");
        let all = lines.join("\n");
        assert!(
            !all.contains("hunter") && !all.contains("bob"),
            "{format}: {all}"
        );
        assert_eq!(all.matches("***@").count(), 5, "{format}: {all}");
        let text = proxy.log_text();
        assert!(!text.contains("hunter"), "{format}: the info log: {text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Each end is logged as whose doing it was (before, every 502 and 504 was `error`, and a
/// stalled request body a head timeout): one row per end, with its status and JSON termination.
#[test]
fn json_terminations_say_whose_fault_each_end_was() {
    let silent = serve(|mut s| {
        let _ = read_head(&mut s);
        std::thread::sleep(Duration::from_secs(5));
    });
    let origin = http_origin("logged");
    // Reads whatever it is sent and never answers.
    let sink = serve(|mut s| {
        let _ = s.read_to_end(&mut Vec::new());
    });
    let path = scratch("access-log-terminations").join("json.log");
    let proxy = Proxy::start(&[
        "--access-log",
        path.to_str().unwrap(),
        "--access-log-format",
        "json",
        "--response-timeout",
        "1",
        "--idle-timeout",
        "1",
    ]);
    let closed = closed_port();
    let rows: [(String, u16, &str); 6] = [
        (
            format!("GET http://127.0.0.1:{closed}/gone HTTP/1.1\r\n\r\n"),
            502,
            "upstream_error",
        ),
        (
            format!("GET http://{silent}/slow HTTP/1.1\r\n\r\n"),
            504,
            "upstream_timeout",
        ),
        (
            "GET /not-a-proxy-request HTTP/1.1\r\n\r\n".into(),
            400,
            "client_error",
        ),
        (
            "CONNECT 169.254.169.254:443 HTTP/1.1\r\n\r\n".into(),
            403,
            "denied_acl",
        ),
        (
            // Half of the body, then nothing: the body's own 408.
            format!(
                "POST http://{sink}/stalled HTTP/1.1\r\nContent-Length: 100000\r\n\r\n{}",
                "x".repeat(50_000)
            ),
            408,
            "client_timeout",
        ),
        (
            format!("GET http://{origin}/fine HTTP/1.1\r\nConnection: close\r\n\r\n"),
            200,
            "completed",
        ),
    ];
    for (request, want, _) in &rows {
        let resp = exchange(proxy.addr, request.as_bytes());
        assert_eq!(status(&resp), *want, "{request:.80}: {resp}");
    }
    let lines = lines_of(&path, rows.len());
    assert_eq!(lines.len(), rows.len(), "{lines:?}");
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (request, want, termination) in &rows {
        assert!(
            parsed
                .iter()
                .any(|v| v["status"] == *want && v["termination"] == *termination),
            "{request:.80}: no {want} {termination} in {lines:?}"
        );
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
