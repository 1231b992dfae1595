//! Request smuggling defences of plain forwarding, against the real binary: every malformed or
//! ambiguous request gets its status and never reaches the origin as a message; every malformed
//! response from an origin gets 502 (or, once a response has started, a cut connection); and the
//! proxy stays healthy for other clients throughout.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

/// How long an origin must see nothing new before its counts are read.
const QUIET: Duration = Duration::from_millis(300);

fn healthy(proxy: &Proxy, origin: std::net::SocketAddr) {
    let resp = exchange(
        proxy.addr,
        format!("GET http://{origin}/ok HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(
        resp.starts_with("HTTP/1.1 200 ") && resp.ends_with("ok"),
        "{resp}"
    );
}

#[test]
fn malformed_and_ambiguous_requests_never_reach_the_origin() {
    let origin = counting_origin("ok", After::KeepAlive);
    let o = origin.addr;
    let proxy = Proxy::start(&[]);
    let post = |fields: &str, body: &str| {
        format!("POST http://{o}/x HTTP/1.1\r\nHost: {o}\r\n{fields}\r\n{body}")
    };
    // Head-level refusals: the origin must never see a request.
    let rows: Vec<(&str, String)> = vec![
        (
            "CL.TE",
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\nG",
            ),
        ),
        (
            "TE.CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                "8\r\nSMUGGLED\r\n0\r\n\r\n",
            ),
        ),
        (
            "CL 0 with TE",
            post(
                "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "differing CLs",
            post("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"),
        ),
        ("CL list", post("Content-Length: 3, 3\r\n", "abc")),
        ("CL with sign", post("Content-Length: +3\r\n", "abc")),
        ("negative CL", post("Content-Length: -1\r\n", "")),
        ("hex CL", post("Content-Length: 0x3\r\n", "abc")),
        (
            "CL overflow",
            post("Content-Length: 99999999999999999999\r\n", ""),
        ),
        (
            "TE last not chunked",
            post("Transfer-Encoding: chunked, identity\r\n", ""),
        ),
        (
            "TE identity",
            post("Transfer-Encoding: identity\r\n", "abc"),
        ),
        ("TE xchunked", post("Transfer-Encoding: xchunked\r\n", "")),
        (
            "TE split over fields",
            post(
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "TE obs-fold",
            post("Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n"),
        ),
        (
            "space before colon",
            post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
        ),
        ("bare CR in value", post("X-A: a\rb\r\n", "")),
        ("NUL in value", post("X-A: a\0b\r\n", "")),
        ("bad name", post("Bad[Name]: x\r\n", "")),
        (
            "https in absolute-form",
            format!("GET https://{o}/ HTTP/1.1\r\n\r\n"),
        ),
        ("user info", format!("GET http://u:p@{o}/ HTTP/1.1\r\n\r\n")),
        (
            "origin-form",
            "GET /x HTTP/1.1\r\nHost: a\r\n\r\n".to_string(),
        ),
    ];
    for (what, request) in &rows {
        let resp = exchange(proxy.addr, request.as_bytes());
        assert_eq!(status(&resp), 400, "{what}: {resp}");
        assert!(resp.contains("Connection: close"), "{what}");
    }
    // A request forwarded late would still be counted: wait for the origin to be quiet first.
    assert!(
        origin.wait_quiet(QUIET, Duration::from_secs(10)),
        "an origin connection stayed open"
    );
    assert_eq!(origin.requests(), 0, "a refused request reached the origin");

    // Body-level refusals (chunked framing): the connection is refused and closed; what follows
    // the bad chunk never becomes a request at the origin.
    let chunked = |body: &str| post("Transfer-Encoding: chunked\r\n", body);
    let smuggled = "GET http://evil/ HTTP/1.1\r\n\r\n";
    let rows: Vec<(&str, String)> = vec![
        (
            "signed chunk size",
            chunked(&format!("-5\r\nhello\r\n0\r\n\r\n{smuggled}")),
        ),
        (
            "hex prefix",
            chunked(&format!("0x5\r\nhello\r\n0\r\n\r\n{smuggled}")),
        ),
        (
            "size overflow",
            chunked(&format!("fffffffffffffffff\r\n{smuggled}")),
        ),
        (
            "no CRLF after data",
            chunked(&format!("5\r\nhelloX0\r\n\r\n{smuggled}")),
        ),
        (
            "bare LF size line",
            chunked(&format!("5\nhello\r\n0\r\n\r\n{smuggled}")),
        ),
        (
            "LF in extension",
            chunked(&format!("5;a\nb\r\nhello\r\n0\r\n\r\n{smuggled}")),
        ),
        (
            "folded trailer",
            chunked(&format!("0\r\nX: a\r\n b\r\n\r\n{smuggled}")),
        ),
    ];
    let before = origin.requests();
    for (what, request) in &rows {
        let resp = exchange(proxy.addr, request.as_bytes());
        assert_eq!(status(&resp), 400, "{what}: {resp}");
    }
    // Each bad body reached the origin only as an unfinished POST head; nothing after it, even
    // counted late: the origin's connections are all over before the counts are read.
    assert!(
        origin.wait_quiet(QUIET, Duration::from_secs(10)),
        "an origin connection stayed open after a refused body"
    );
    let heads = origin.heads();
    assert!(origin.requests() - before <= rows.len(), "{heads:?}");
    assert!(
        !heads.iter().any(|h| h.contains("evil")),
        "the smuggled request reached the origin: {heads:?}"
    );
    healthy(&proxy, o);
}

#[test]
fn malformed_origin_responses_get_502_and_started_ones_are_cut() {
    let proxy = Proxy::start(&[]);
    let good = counting_origin("ok", After::KeepAlive).addr;
    let rows: Vec<(&str, &'static [u8])> = vec![
        (
            "CL and TE",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "differing CLs",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        ),
        (
            "negative CL",
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        ),
        (
            "TE not ending chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ),
        (
            "obs-fold",
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "space before colon",
            b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        ),
        (
            "bare CR",
            b"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "four-digit status",
            b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            // Three digits below 100 (found by fuzzing: it went to the client as `14`).
            "status 014",
            b"HTTP/1.1 014 X\r\nContent-Length: 0\r\n\r\n",
        ),
        ("HTTP/2 status line", b"HTTP/2 200\r\n\r\n"),
        ("not HTTP", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
        (
            "101 without Upgrade asked",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        ),
        ("closed without answer", b""),
    ];
    for (what, answer) in rows {
        let o = serve(move |mut s| {
            let _ = read_head(&mut s);
            let _ = s.write_all(answer);
        });
        let resp = exchange(
            proxy.addr,
            format!("GET http://{o}/ HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&resp), 502, "{what}: {resp}");
    }
    // A bad chunk after the head has gone out: the client sees the head, then the connection ends
    // before a complete body.
    let o = serve(|mut s| {
        let _ = read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
        );
    });
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("GET http://{o}/ HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut body must not look complete: {text}"
    );
    healthy(&proxy, good);
}
