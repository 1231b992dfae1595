//! Every bad input gets its status and body, the proxy keeps serving others, and no fd is leaked.
// Test clients are not worker code: they may block and lock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// Each row: the raw request, the status, and a piece of the body.
fn corpus(closed: u16) -> Vec<(Vec<u8>, u16, &'static str)> {
    let long_target = format!("CONNECT {}.com:443 HTTP/1.1\r\n\r\n", "a".repeat(9000));
    let big_head = format!(
        "CONNECT a.com:443 HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "v".repeat(17_000)
    );
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let many_headers = format!("CONNECT a.com:443 HTTP/1.1\r\n{many}\r\n");
    vec![
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage".to_vec(),
            400,
            "malformed request head",
        ),
        (b"HELLO\r\n\r\n".to_vec(), 400, "malformed"),
        (
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc".to_vec(),
            400,
            "conflicting Content-Length",
        ),
        (
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc".to_vec(),
            400,
            "conflicting Content-Length",
        ),
        (
            b"POST http://a/ HTTP/1.1\r\nContent-Length: -3\r\n\r\n".to_vec(),
            400,
            "invalid or conflicting",
        ),
        (
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n".to_vec(),
            400,
            "Transfer-Encoding",
        ),
        (
            b"CONNECT example.com HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "host:port",
        ),
        (
            b"CONNECT example.com: HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "host:port",
        ),
        (
            b"CONNECT example.com:99999 HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "host:port",
        ),
        (
            b"CONNECT http://example.com/ HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "host:port",
        ),
        (
            b"CONNECT ::1:443 HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "host:port",
        ),
        (
            b"CONNECT a.com:443 HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(),
            400,
            "malformed",
        ),
        (
            b"CONNECT a.com:443 HTTP/1.1\r\nX: a\r\n folded\r\n\r\n".to_vec(),
            400,
            "malformed",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "this is a proxy",
        ),
        (
            b"BREW http://pot/ HTTP/1.1\r\n\r\n".to_vec(),
            405,
            "method not served",
        ),
        (
            b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            502,
            "refused",
        ),
        (
            b"GET https://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "only http://",
        ),
        (
            b"GET http://u:p@example.com/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "only http://",
        ),
        (long_target.into_bytes(), 414, "request-target too long"),
        (big_head.into_bytes(), 431, "request head too large"),
        (many_headers.into_bytes(), 431, "too many header fields"),
        (
            format!("CONNECT 127.0.0.1:{closed} HTTP/1.1\r\n\r\n").into_bytes(),
            502,
            "refused",
        ),
        (
            b"CONNECT no-such-host.invalid:443 HTTP/1.1\r\n\r\n".to_vec(),
            502,
            "cannot resolve",
        ),
    ]
}

#[test]
fn every_bad_request_gets_its_status_and_nothing_leaks() {
    for driver in DRIVERS {
        let proxy = Proxy::start(&["--io-driver", driver]);
        let echo = echo_server();
        // A tunnel that stays open throughout: other clients' failures must not disturb it.
        let mut bystander = tunnel(proxy.addr, &echo.to_string());
        let mut warm = [0u8; 4];
        bystander.write_all(b"warm").unwrap();
        bystander.read_exact(&mut warm).unwrap();
        let base = proxy.fds(); // with the bystander's pipes back in the pool

        for (request, want, body) in corpus(closed_port()) {
            let resp = exchange(proxy.addr, &request);
            let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
            assert_eq!(status(&resp), want, "{driver}: {shown:?} → {resp}");
            assert!(resp.contains("\r\nConnection: close\r\n"), "{resp}");
            assert!(resp.contains(body), "{driver}: {shown:?} → {resp}");
            let (head, text) = resp.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("Content-Length: {}", text.len())),
                "{resp}"
            );
            bystander.write_all(b"still here").unwrap();
            let mut back = [0u8; 10];
            bystander.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"still here");
        }
        assert!(proxy.wait_log("refused"), "errors are logged");
        proxy.assert_fds_return_to(base);
    }
}

#[test]
fn slowloris_gets_408_after_the_header_timeout() {
    let proxy = Proxy::start(&["--header-timeout", "1"]);
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    s.write_all(b"CONNECT a.com:443 HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert_eq!(status(&resp), 408, "{resp}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn silent_client_is_closed_after_the_header_timeout() {
    let proxy = Proxy::start(&["--header-timeout", "1"]);
    let base = proxy.fds();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    assert!(
        resp.is_empty(),
        "nothing to answer a client that said nothing"
    );
    proxy.assert_fds_return_to(base);
}

#[test]
fn connect_timeout_gives_504() {
    // A listener whose accept queue is full leaves further SYNs unanswered: a connect that hangs.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    full.listen(0).unwrap();
    let addr = full.local_addr().unwrap().as_socket().unwrap();
    let _fillers: Vec<_> = (0..4)
        .filter_map(|_| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            s.set_nonblocking(true).ok()?;
            let _ = s.connect(&addr.into());
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let proxy = Proxy::start(&["--connect-timeout", "1"]);
    let started = Instant::now();
    let resp = exchange(
        proxy.addr,
        format!("CONNECT {addr} HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(status(&resp), 504, "{resp}");
    assert!(resp.contains("timed out connecting"), "{resp}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn curl_sees_the_errors() {
    let proxy = Proxy::start(&[]);
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "-p",
        "-x",
        &format!("http://{}", proxy.addr),
        &format!("http://127.0.0.1:{}/", closed_port()),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "502");
}

#[test]
fn python_requests_sees_502_for_an_unreachable_plain_http_origin() {
    let proxy = Proxy::start(&[]);
    let script = format!(
        "import requests\nr = requests.get('http://127.0.0.1:1/x', proxies={{'http': 'http://{}'}})\nprint(r.status_code, r.headers['Connection'], r.text.strip())",
        proxy.addr
    );
    assert_eq!(
        python(&script, &[]).trim(),
        "502 close target refused the connection"
    );
}

#[test]
fn refusals_of_head_requests_carry_no_body() {
    let proxy = Proxy::start(&[]);
    for (request, want) in [
        (&b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"[..], 400),
        (
            &b"HEAD http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            502,
        ),
        (
            &b"HEAD https://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            400,
        ),
    ] {
        let resp = exchange(proxy.addr, request);
        assert_eq!(status(&resp), want, "{resp}");
        assert!(resp.contains("Content-Length: "), "{resp}");
        assert!(
            resp.ends_with("\r\n\r\n"),
            "a response to HEAD has no content: {resp:?}"
        );
    }
}
