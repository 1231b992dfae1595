//! Plain HTTP forwarding against the real binary: absolute-form requests rewritten for the origin,
//! bodies both ways (Content-Length and chunked), body-less responses, keep-alive on both sides,
//! proxy authentication on forwarded requests, and the errors. Real clients: raw sockets, curl,
//! Python requests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::*;

/// One request as the test origin received it.
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        body.resize(len.parse().ok()?, 0);
        r.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some() {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end).ok()?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

/// A keep-alive HTTP/1.1 origin. It answers each request with `respond`, and counts connections.
fn origin(
    respond: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let respond = Arc::new(respond);
    let addr = serve(move |s| {
        count.fetch_add(1, Ordering::SeqCst);
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        while let Some(seen) = read_request(&mut r) {
            if w.write_all(&respond(&seen)).is_err() {
                break;
            }
        }
    });
    (addr, connections)
}

/// Answers with what it saw: method, target, the headers that matter, body length and checksum.
fn mirror(seen: &Seen) -> Vec<u8> {
    let get = |n: &str| {
        seen.headers
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let sum: u64 = seen.body.iter().map(|&b| u64::from(b)).sum();
    let text = format!(
        "{} {}\nhost={}\nproxy-authorization={}\nproxy-connection={}\nvia={}\nx-secret={}\nlen={} sum={}\n",
        seen.method,
        seen.target,
        get("host"),
        get("proxy-authorization"),
        get("proxy-connection"),
        get("via"),
        get("x-secret"),
        seen.body.len(),
        sum
    );
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

#[test]
fn requests_are_rewritten_for_the_origin_and_answers_come_back_with_via() {
    for driver in DRIVERS {
        let (o, _) = origin(mirror);
        let proxy = Proxy::start(&["--io-driver", driver, "--user", "alice:pw"]);
        let mut s = open(&proxy);
        let req = format!(
            "GET http://{o}/a/b?c=d HTTP/1.1\r\nHost: wrong.example\r\nProxy-Authorization: Basic YWxpY2U6cHc=\r\n\
             Proxy-Connection: keep-alive\r\nConnection: X-Secret\r\nX-Secret: hop\r\n\r\n"
        );
        let (code, head, body) = ask(&mut s, req.as_bytes());
        assert_eq!(code, 200, "{head}");
        assert!(head.contains("\r\nVia: 1.1 ringgate\r\n"), "{head}");
        assert_eq!(
            body,
            format!(
                "GET /a/b?c=d\nhost={o}\nproxy-authorization=\nproxy-connection=\nvia=1.1 ringgate\nx-secret=\nlen=0 sum=0\n"
            )
        );
        // The connection authenticated once; its next request may omit the header.
        let (code, _, body) = ask(
            &mut s,
            format!("GET http://{o}/again HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(code, 200);
        assert!(body.starts_with("GET /again\n"), "{body}");
        // A new connection without credentials is challenged.
        let mut t = open(&proxy);
        let (code, _, _) = ask(
            &mut t,
            format!("GET http://{o}/ HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(code, 407);
    }
}

#[test]
fn bodies_pass_both_ways_with_content_length_and_chunked() {
    for driver in DRIVERS {
        let (o, _) = origin(mirror);
        let proxy = Proxy::start(&["--io-driver", driver]);
        let mut s = open(&proxy);
        let body: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
        let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
        let mut req = format!(
            "POST http://{o}/up HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        let (code, _, answer) = ask(&mut s, &req);
        assert_eq!(code, 200);
        assert!(
            answer.contains(&format!("len=1048576 sum={sum}")),
            "{answer}"
        );
        // Chunked upload on the same connection, in pieces.
        let mut req =
            format!("POST http://{o}/chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .into_bytes();
        for piece in body.chunks(100_000) {
            req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            req.extend_from_slice(piece);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        let (code, _, answer) = ask(&mut s, &req);
        assert_eq!(code, 200);
        assert!(
            answer.contains(&format!("len=1048576 sum={sum}")),
            "{answer}"
        );

        // A chunked download, checked by curl.
        let (chunky, _) = origin(|_| {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n"
                .to_vec()
        });
        let out = curl(&[
            "-x",
            &format!("http://{}", proxy.addr),
            &format!("http://{chunky}/"),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, world");
    }
}

#[test]
fn body_less_and_unframed_responses() {
    for driver in DRIVERS {
        let (o, _) = origin(|seen| match seen.target.as_str() {
            "/204" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world".to_vec(),
        });
        let proxy = Proxy::start(&["--io-driver", driver]);
        let mut s = open(&proxy);
        for (req, want, length) in [
            (format!("HEAD http://{o}/ HTTP/1.1\r\n\r\n"), 200, "11"),
            (format!("GET http://{o}/204 HTTP/1.1\r\n\r\n"), 204, ""),
            (format!("GET http://{o}/304 HTTP/1.1\r\n\r\n"), 304, ""),
            (format!("GET http://{o}/ HTTP/1.1\r\n\r\n"), 200, "11"),
        ] {
            s.write_all(req.as_bytes()).unwrap();
            let head = read_head(&mut s);
            assert_eq!(status(&head), want, "{req}: {head}");
            if !length.is_empty() {
                assert!(
                    head.contains(&format!("Content-Length: {length}\r\n")),
                    "{head}"
                );
            }
            if req.starts_with("GET http") && want == 200 {
                let mut body = [0u8; 11];
                s.read_exact(&mut body).unwrap();
                assert_eq!(&body, b"hello world");
            }
        }
        // No length: the body runs to the origin's close, and the client connection closes after.
        let unframed = serve(|mut s| {
            let _ = read_head(&mut s);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil the end");
        });
        let mut s = open(&proxy);
        s.write_all(format!("GET http://{unframed}/ HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert!(all.contains("\r\nConnection: close\r\n"), "{all}");
        assert!(all.ends_with("\r\n\r\nuntil the end"), "{all}");
    }
}

#[test]
fn a_kept_alive_client_reuses_one_origin_connection() {
    for driver in DRIVERS {
        let (o, connections) = origin(mirror);
        let proxy = Proxy::start(&["--io-driver", driver]);
        let mut s = open(&proxy);
        for i in 0..100 {
            let (code, _, body) = ask(
                &mut s,
                format!("GET http://{o}/{i} HTTP/1.1\r\n\r\n").as_bytes(),
            );
            assert_eq!(code, 200);
            assert!(body.starts_with(&format!("GET /{i}\n")));
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "100 requests, one origin connection"
        );
        // Pipelined requests are answered in order.
        let two = format!("GET http://{o}/p1 HTTP/1.1\r\n\r\nGET http://{o}/p2 HTTP/1.1\r\n\r\n");
        s.write_all(two.as_bytes()).unwrap();
        let (_, b1) = read_response(&mut s);
        let (_, b2) = read_response(&mut s);
        assert!(
            b1.starts_with("GET /p1\n") && b2.starts_with("GET /p2\n"),
            "{b1} {b2}"
        );
    }
}

#[test]
fn forwarding_errors_have_their_status() {
    for driver in DRIVERS {
        let bad = serve(|mut s| {
            let _ = read_head(&mut s);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
        });
        let silent = serve(|mut s| {
            let _ = read_head(&mut s);
        });
        let proxy = Proxy::start(&["--io-driver", driver]);
        let baseline = proxy.fds();
        for (target, want) in [
            (format!("https://127.0.0.1:{}/", closed_port()), 400),
            (format!("http://user:pw@127.0.0.1:{}/", closed_port()), 400),
            (format!("http://127.0.0.1:{}/", closed_port()), 502),
            (format!("http://{bad}/"), 502),
            (format!("http://{silent}/"), 502),
        ] {
            let resp = exchange(
                proxy.addr,
                format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes(),
            );
            assert_eq!(status(&resp), want, "{target}: {resp}");
        }
        proxy.assert_fds_settle(baseline, 2);
    }
}

#[test]
fn curl_and_python_requests_forward_plain_http() {
    let (o, _) = origin(mirror);
    let proxy = Proxy::start(&["--user", "bob:s:cret"]);
    let out = curl(&[
        "--proxy-user",
        "bob:s:cret",
        "-x",
        &format!("http://{}", proxy.addr),
        "-d",
        "form=data",
        &format!("http://{o}/form"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("POST /form\n") && text.contains("len=9 "),
        "{text}"
    );
    assert!(
        text.contains("proxy-authorization=\n"),
        "credentials reached the origin: {text}"
    );
    let script = format!(
        "import requests\nr = requests.get('http://{o}/py', proxies={{'http': 'http://bob:s%3Acret@{}'}})\nprint(r.status_code, r.headers['Via'], r.text.splitlines()[0])",
        proxy.addr
    );
    assert_eq!(python(&script, &[]).trim(), "200 1.1 ringgate GET /py");
}

/// An origin that answers the first request on each connection; a second request on the same
/// connection is read and dropped with the connection (a close racing with a request).
fn one_shot_origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let addr = serve(move |s| {
        count.fetch_add(1, Ordering::SeqCst);
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        if let Some(seen) = read_request(&mut r) {
            let _ = w.write_all(&mirror(&seen));
        }
        let _ = read_request(&mut r);
    });
    (addr, connections)
}

#[test]
fn a_request_the_origin_drops_on_a_kept_connection_is_retried_once_if_idempotent() {
    for driver in DRIVERS {
        let (o, connections) = one_shot_origin();
        let proxy = Proxy::start(&["--io-driver", driver, "--workers", "1"]);
        let mut s = open(&proxy);
        for i in 0..3 {
            let (code, head, body) = ask(
                &mut s,
                format!("GET http://{o}/{i} HTTP/1.1\r\n\r\n").as_bytes(),
            );
            assert_eq!(code, 200, "request {i}: {head}");
            assert!(body.starts_with(&format!("GET /{i}\n")), "{body}");
        }
        // The first on a new connection; each later one dropped once on the kept one, then resent.
        assert_eq!(connections.load(Ordering::SeqCst), 3);
        // A POST (not idempotent, and with a body) is not resent: it gets a 502.
        let (code, _, _) = ask(
            &mut s,
            format!("POST http://{o}/p HTTP/1.1\r\nContent-Length: 1\r\n\r\nx").as_bytes(),
        );
        assert_eq!(code, 502);
    }
}

#[test]
fn an_origin_connection_closed_while_idle_is_never_reused() {
    for driver in DRIVERS {
        // The origin answers one request per connection, says nothing about closing, then closes.
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let o = serve(move |s| {
            count.fetch_add(1, Ordering::SeqCst);
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            if let Some(seen) = read_request(&mut r) {
                let _ = w.write_all(&mirror(&seen));
            }
        });
        let proxy = Proxy::start(&["--io-driver", driver, "--workers", "1"]);
        let mut s = open(&proxy);
        for i in 0..3 {
            std::thread::sleep(Duration::from_millis(100));
            // POSTs: never resent, so each succeeds only because the pool's check saw the close.
            let (code, head, body) = ask(
                &mut s,
                format!("POST http://{o}/{i} HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi").as_bytes(),
            );
            assert_eq!(code, 200, "request {i}: {head}");
            assert!(body.starts_with(&format!("POST /{i}\n")), "{body}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }
}

#[test]
fn the_workers_pool_serves_every_client_and_is_bounded_in_time_and_size() {
    let (o, connections) = origin(mirror);
    let proxy = Proxy::start(&["--workers", "1", "--upstream-idle", "1"]);
    let baseline = proxy.fds();
    // Three clients one after another, 20 requests each: one origin connection for all.
    for c in 0..3 {
        let mut s = open(&proxy);
        for i in 0..20 {
            let (code, _, body) = ask(
                &mut s,
                format!("GET http://{o}/{c}/{i} HTTP/1.1\r\n\r\n").as_bytes(),
            );
            assert_eq!(code, 200);
            assert!(body.starts_with(&format!("GET /{c}/{i}\n")), "{body}");
        }
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    // Host names are case-insensitive and the default port is the same origin.
    let name = format!("LocalHost:{}", o.port());
    let (code, _, _) = ask(
        &mut open(&proxy),
        format!("GET http://{name}/x HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(code, 200);
    // Idle longer than upstream_idle: the sweep closes it (the fd count returns) and the next
    // request dials again.
    std::thread::sleep(Duration::from_millis(2600));
    proxy.assert_fds_settle(baseline, 0);
    let before = connections.load(Ordering::SeqCst);
    let (code, _, _) = ask(
        &mut open(&proxy),
        format!("GET http://{o}/later HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(code, 200);
    assert_eq!(connections.load(Ordering::SeqCst), before + 1);

    // Pool size 0: no reuse at all, even on one client connection.
    let (o, connections) = origin(mirror);
    let proxy = Proxy::start(&["--upstream-pool-size", "0"]);
    let mut s = open(&proxy);
    for i in 0..5 {
        let (code, _, _) = ask(
            &mut s,
            format!("GET http://{o}/{i} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(code, 200);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 5);

    // Per host bound: 4 clients at once need 4 origin connections; 2 are kept.
    let (o, connections) = origin(mirror);
    let proxy = Proxy::start(&["--workers", "1", "--upstream-pool-per-host", "2"]);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| open(&proxy)).collect();
    for c in &mut clients {
        c.write_all(format!("GET http://{o}/slow HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
    }
    for c in &mut clients {
        let (head, _) = read_response(c);
        assert_eq!(status(&head), 200);
    }
    let opened = connections.load(Ordering::SeqCst);
    assert!((1..=4).contains(&opened), "{opened}");
    drop(clients);
    for i in 0..4 {
        let (code, _, _) = ask(
            &mut open(&proxy),
            format!("GET http://{o}/{i} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(code, 200);
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        opened,
        "kept ones reused"
    );
}

#[test]
fn via_and_x_forwarded_for_follow_the_config() {
    let (o, _) = origin(|seen| {
        let get = |n: &str| {
            seen.headers
                .iter()
                .find(|(k, _)| k == n)
                .map_or("-", |(_, v)| v.as_str())
                .to_owned()
        };
        let text = format!("via={} xff={}", get("via"), get("x-forwarded-for"));
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )
        .into_bytes()
    });
    for (args, via_out, via_back, xff) in [
        (&[][..], "1.1 ringgate", true, "-"),
        (
            &["--via", "gw-7.example"][..],
            "1.1 gw-7.example",
            true,
            "-",
        ),
        (&["--via", ""][..], "-", false, "-"),
        (&["--forwarded-for"][..], "1.1 ringgate", true, "127.0.0.1"),
    ] {
        let proxy = Proxy::start(args);
        let (code, head, body) = ask(
            &mut open(&proxy),
            format!("GET http://{o}/ HTTP/1.1\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n").as_bytes(),
        );
        assert_eq!(code, 200);
        let xff = if xff == "-" {
            "10.9.9.9".to_owned()
        } else {
            format!("10.9.9.9, {xff}")
        };
        assert_eq!(body, format!("via={via_out} xff={xff}"), "{args:?}");
        assert_eq!(head.contains("\r\nVia: "), via_back, "{args:?}: {head}");
    }
}

#[test]
fn a_slow_origin_gets_504_after_the_response_timeout() {
    let silent = serve(|mut s| {
        let _ = read_head(&mut s);
        std::thread::sleep(Duration::from_secs(5));
    });
    let proxy = Proxy::start(&["--response-timeout", "1"]);
    let started = std::time::Instant::now();
    let resp = exchange(
        proxy.addr,
        format!("GET http://{silent}/ HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(status(&resp), 504, "{resp}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_early_answer_to_a_large_upload_reaches_the_client() {
    // The origin refuses the body from the head alone (413), without reading it, and closes.
    let o = serve(|mut s| {
        let _ = read_head(&mut s);
        let _ = s.write_all(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n",
        );
        std::thread::sleep(Duration::from_millis(100));
    });
    let proxy = Proxy::start(&[]);
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "|%{http_code}",
            "-x",
        ])
        .arg(format!("http://{}", proxy.addr))
        .args(["-H", "Expect:", "--data-binary", "@-"])
        .arg(format!("http://{o}/upload"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let block = vec![b'x'; 1 << 20];
        for _ in 0..16 {
            if stdin.write_all(&block).is_err() {
                break;
            }
        }
    });
    let result = child.wait_with_output().unwrap();
    let _ = feeder.join();
    let text = String::from_utf8_lossy(&result.stdout);
    assert_eq!(text, "too big\n|413");
    // The origin stopped reading the body: the answer came after a failed write, and neither
    // connection is kept.
    assert!(proxy.wait_log("request_cut=true"), "{}", proxy.log_text());
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn pattern(seed: u64, len: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len as usize);
    send_pattern(&mut v, seed, len);
    v
}

/// Serves `GET /cl/N` and `GET /chunked/N` (N pattern bytes of stream 7, with a length or in
/// 1 MiB chunks) and answers anything with a body with its length and SHA-256.
fn bulk_origin() -> SocketAddr {
    serve(|s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        while let Some(seen) = read_request(&mut r) {
            let n = |p: &str| {
                seen.target
                    .strip_prefix(p)
                    .and_then(|n| n.parse::<u64>().ok())
            };
            let sent = if let Some(n) = n("/cl/") {
                w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes())
                    .map(|()| send_pattern(&mut w, 7, n))
            } else if let Some(n) = n("/chunked/") {
                let body = pattern(7, n);
                let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for c in body.chunks(1 << 20) {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                w.write_all(&out)
            } else {
                let text = format!("len={} sha={}", seen.body.len(), sha256_hex(&seen.body));
                w.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    )
                    .as_bytes(),
                )
            };
            if sent.is_err() {
                break;
            }
        }
    })
}

/// curl through `proxy` (`--fail`: an error status fails the test); what it downloaded.
fn curl_via(proxy: &Proxy, args: &[&str]) -> Vec<u8> {
    let px = format!("http://{}", proxy.addr);
    let out = curl(&[&["--fail", "-x", &px][..], args].concat());
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn sixty_four_mib_bodies_stream_both_ways_with_every_byte_intact() {
    const SIZE: u64 = 64 << 20;
    let o = bulk_origin();
    let proxy = Proxy::start(&["--workers", "1"]);
    let dir = scratch("bulk");
    let upload = dir.join("upload");
    let up_bytes = pattern(9, SIZE);
    std::fs::write(&upload, &up_bytes).unwrap();
    let up_want = format!("len={SIZE} sha={}", sha256_hex(&up_bytes));
    drop(up_bytes);
    let file = format!("@{}", upload.display());
    let url = format!("http://{o}/upload");
    // Uploads with a Content-Length and chunked.
    for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let mut args = vec!["-H", "Expect:", "--data-binary", &file];
        args.extend_from_slice(extra);
        args.push(&url);
        assert_eq!(
            String::from_utf8_lossy(&curl_via(&proxy, &args)),
            up_want,
            "{extra:?}"
        );
    }
    // Downloads with a Content-Length and chunked.
    let down_want = sha256_hex(&pattern(7, SIZE));
    for kind in ["cl", "chunked"] {
        let got = curl_via(&proxy, &[&format!("http://{o}/{kind}/{SIZE}")]);
        assert_eq!(got.len() as u64, SIZE, "{kind}");
        assert_eq!(sha256_hex(&got), down_want, "{kind}");
    }
    // Python requests: a generator body goes out chunked; a streamed download is hashed as it comes.
    let script = format!(
        "import hashlib, os, requests\n\
         p = {{'http': 'http://{proxy}'}}\n\
         h = hashlib.sha256()\n\
         def gen():\n    for _ in range(64):\n        b = os.urandom(1 << 20)\n        h.update(b)\n        yield b\n\
         r = requests.post('http://{o}/py', data=gen(), proxies=p)\n\
         print(r.status_code, r.text, h.hexdigest())\n\
         d = hashlib.sha256()\n\
         r = requests.get('http://{o}/chunked/{SIZE}', proxies=p, stream=True)\n\
         for c in r.iter_content(1 << 16):\n    d.update(c)\n\
         print(r.status_code, d.hexdigest())\n",
        proxy = proxy.addr
    );
    let out = python(&script, &[]);
    let mut lines = out.lines();
    let up: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(up[0], "200", "{out}");
    assert_eq!(up[1], format!("len={SIZE}"), "{out}");
    assert_eq!(up[2], format!("sha={}", up[3]), "{out}");
    assert_eq!(lines.next().unwrap(), format!("200 {down_want}"));
    // Streamed, never held whole: the proxy's peak memory stays far below one body.
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!("proxy peak RSS after 6 × 64 MiB: {peak_kib} KiB");
    assert!(peak_kib < 32 * 1024, "peak RSS {peak_kib} KiB");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn connection_bound_origin_auth_keeps_its_origin_connection_for_one_client() {
    // An origin speaking NTLM-style connection authentication: 401 with a challenge until the
    // request carries `Authorization: NTLM …`.
    let (o, connections) = origin(|seen| {
        let authed = seen
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.starts_with("NTLM "));
        if authed {
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nauthed".to_vec()
        } else {
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        }
    });
    let proxy = Proxy::start(&["--workers", "1"]);
    let mut alice = open(&proxy);
    let (code, head, _) = ask(
        &mut alice,
        format!("GET http://{o}/ HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(code, 401, "{head}");
    assert!(
        head.contains("WWW-Authenticate: NTLM"),
        "the origin's 401 passes untouched: {head}"
    );
    let (code, _, body) = ask(
        &mut alice,
        format!("GET http://{o}/ HTTP/1.1\r\nAuthorization: NTLM TlRMTVNTUAAB\r\n\r\n").as_bytes(),
    );
    assert_eq!((code, body.as_str()), (200, "authed"));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "the handshake stayed on one connection"
    );
    // Another client never gets that connection.
    let mut bob = open(&proxy);
    let (code, _, _) = ask(
        &mut bob,
        format!("GET http://{o}/ HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(code, 401);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

/// An origin that authenticates TCP connections, NTLM-style: a connection becomes authenticated
/// by one request with `Authorization: NTLM …`, and every later request on it is then served as
/// that user's, headers or not; an unauthenticated connection gets a 401 challenge. Each answer
/// names the origin connection it came on (`X-Conn`) and whether that one was authenticated.
fn connection_authenticating_origin() -> SocketAddr {
    let next_id = Arc::new(AtomicUsize::new(0));
    serve(move |s| {
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        let mut authed = false;
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        while let Some(seen) = read_request(&mut r) {
            authed |= seen
                .headers
                .iter()
                .any(|(k, v)| k == "authorization" && v.starts_with("NTLM "));
            let answer = if authed {
                format!("HTTP/1.1 200 OK\r\nX-Conn: {id}\r\nContent-Length: 6\r\n\r\nauthed")
            } else {
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nX-Conn: {id}\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n"
                )
            };
            if w.write_all(answer.as_bytes()).is_err() {
                break;
            }
        }
    })
}

fn x_conn(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("X-Conn: "))
        .unwrap_or_else(|| panic!("no X-Conn in {head}"))
        .to_owned()
}

#[test]
fn a_connection_bound_by_origin_ntlm_stays_bound_after_a_plain_exchange() {
    let o = connection_authenticating_origin();
    // One worker: one pool, shared by both clients.
    let proxy = Proxy::start(&["--workers", "1"]);
    let mut alice = open(&proxy);
    let get = format!("GET http://{o}/ HTTP/1.1\r\n\r\n");
    let (code, head, _) = ask(&mut alice, get.as_bytes());
    assert_eq!(code, 401, "{head}");
    let authed = format!("GET http://{o}/ HTTP/1.1\r\nAuthorization: NTLM TlRMTVNTUAAD\r\n\r\n");
    let (code, head, _) = ask(&mut alice, authed.as_bytes());
    assert_eq!(code, 200, "{head}");
    let alices = x_conn(&head);
    // A plain exchange on the bound connection: neither head names NTLM any more.
    let (code, head, body) = ask(&mut alice, get.as_bytes());
    assert_eq!((code, body.as_str()), (200, "authed"), "{head}");
    assert_eq!(x_conn(&head), alices);
    // Another client's request must not be sent on Alice's authenticated origin connection.
    let mut bob = open(&proxy);
    let (code, head, _) = ask(&mut bob, get.as_bytes());
    assert_ne!(
        x_conn(&head),
        alices,
        "Bob was served on Alice's origin connection: {head}"
    );
    assert_eq!(code, 401, "{head}");
    // Alice keeps hers.
    let (code, head, _) = ask(&mut alice, get.as_bytes());
    assert_eq!((code, x_conn(&head)), (200, alices));
}

/// Reads until the peer closes (EOF or a reset); what arrived, or `None` if it was still open
/// after `within`.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = std::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn a_client_that_never_reads_a_large_response_is_cut_off_after_the_idle_timeout() {
    const SIZE: usize = 64 << 20;
    // The origin streams 64 MiB and reports how its writing ended.
    let (tx, ended) = std::sync::mpsc::channel();
    let o = serve(move |mut s| {
        let _ = read_head(&mut s);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n");
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        let how = match s.write_all(head.as_bytes()) {
            Err(_) => "cut",
            Ok(()) => loop {
                if sent >= SIZE {
                    break "finished";
                }
                match s.write(&block[..block.len().min(SIZE - sent)]) {
                    Ok(n) if n > 0 => sent += n,
                    _ => break "cut",
                }
            },
        };
        let _ = tx.send(how);
    });
    let proxy = Proxy::start(&["--workers", "1", "--idle-timeout", "2"]);
    let baseline = proxy.fds();
    let mut s = open(&proxy);
    s.write_all(format!("GET http://{o}/big HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    // Never read: the buffers fill, then nothing moves. The proxy must give up on both sides.
    assert_eq!(
        ended.recv_timeout(Duration::from_secs(20)),
        Ok("cut"),
        "the origin connection was not closed"
    );
    let got = read_until_closed(&mut s, Duration::from_secs(20))
        .expect("the client connection was not closed");
    assert!(got.len() < SIZE, "all of it arrived");
    proxy.assert_fds_return_to(baseline);
}

#[test]
fn an_origin_that_never_reads_a_large_upload_is_cut_off_after_the_idle_timeout() {
    // The origin reads the head, then holds the connection without reading: the test keeps it.
    let (tx, held) = std::sync::mpsc::channel::<TcpStream>();
    let stuck = serve(move |mut s| {
        let _ = read_head(&mut s);
        let _ = tx.send(s);
    });
    let (o, _) = origin(mirror);
    let proxy = Proxy::start(&["--workers", "1", "--idle-timeout", "2"]);
    let mut s = open(&proxy);
    let size: u64 = 64 << 20;
    s.write_all(
        format!("POST http://{stuck}/up HTTP/1.1\r\nContent-Length: {size}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut w = s.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let block = vec![b'u'; 64 * 1024];
        for _ in 0..size / block.len() as u64 {
            if w.write_all(&block).is_err() {
                break;
            }
        }
    });
    let _origin_side = held.recv_timeout(Duration::from_secs(10)).unwrap();
    let started = std::time::Instant::now();
    let got = read_until_closed(&mut s, Duration::from_secs(20))
        .expect("the client connection was still open 20 s later");
    let text = String::from_utf8_lossy(&got);
    // The 504 arrives unless the reset of the unread upload overtook it.
    assert!(got.is_empty() || status(&text) == 504, "{text}");
    eprintln!(
        "client cut after {:?}: {:?}",
        started.elapsed(),
        text.lines().next()
    );
    drop(s);
    feeder.join().unwrap();
    // The worker is free: the next client is served.
    let (code, _, body) = ask(
        &mut open(&proxy),
        format!("GET http://{o}/after HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(code, 200);
    assert!(body.starts_with("GET /after\n"), "{body}");
}

/// An origin that records each request's head and raw body bytes exactly as they arrived (the
/// body runs to its final empty line; the test bodies hold no blank line) and answers 200.
fn recording_origin() -> (SocketAddr, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = serve(move |mut s| {
        let head = read_head(&mut s);
        let mut body = Vec::new();
        let mut byte = [0u8; 1];
        while !body.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => body.push(byte[0]),
                _ => break,
            }
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let _ = tx.send((head, body));
    });
    (addr, rx)
}

#[test]
fn chunk_extensions_and_forbidden_trailer_fields_never_reach_the_origin() {
    for driver in DRIVERS {
        let (o, seen) = recording_origin();
        let proxy = Proxy::start(&["--io-driver", driver]);
        let mut s = open(&proxy);
        let req = format!(
            "POST http://{o}/up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;a=1;b=\"x y\"\r\nhello\r\n7 ;q\r\n, world\r\n0;last=1\r\nContent-Length: 5\r\nX-Ok: 1\r\nHost: evil.example\r\n\r\n"
        );
        let (code, head, _) = ask(&mut s, req.as_bytes());
        assert_eq!(code, 200, "{head}");
        let (head, body) = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            head.contains("\r\nTransfer-Encoding: chunked\r\n"),
            "{head}"
        );
        assert_eq!(
            String::from_utf8_lossy(&body),
            "5\r\nhello\r\n7\r\n, world\r\n0\r\nX-Ok: 1\r\n\r\n"
        );
        // The same on the way back.
        let chunky = serve(|mut s| {
            let _ = read_head(&mut s);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"v\"\r\nhello\r\n0\r\nSet-Cookie: a=1\r\nX-T: 1\r\n\r\n",
            );
        });
        let mut s = open(&proxy);
        s.write_all(format!("GET http://{chunky}/ HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let head = read_head(&mut s);
        assert_eq!(status(&head), 200, "{head}");
        let mut body = Vec::new();
        let mut byte = [0u8; 1];
        while !body.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            body.push(byte[0]);
        }
        assert_eq!(
            String::from_utf8_lossy(&body),
            "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
        );
    }
}

#[test]
fn a_malformed_chunk_extension_is_refused_both_ways() {
    for driver in DRIVERS {
        let (o, _seen) = recording_origin();
        let proxy = Proxy::start(&["--io-driver", driver]);
        // Request: an unbalanced quote in an extension is a 400.
        let resp = exchange(
            proxy.addr,
            format!(
                "POST http://{o}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\"open\r\nhello\r\n0\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(status(&resp), 400, "{resp}");
        // Response: the head has gone out; the body is cut before any of it is passed on.
        let bad = serve(|mut s| {
            let _ = read_head(&mut s);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\"open\r\nhello\r\n0\r\n\r\n",
            );
            std::thread::sleep(Duration::from_millis(200));
        });
        let mut s = open(&proxy);
        s.write_all(format!("GET http://{bad}/ HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let head = read_head(&mut s);
        assert_eq!(status(&head), 200, "{head}");
        let rest = read_until_closed(&mut s, Duration::from_secs(20)).expect("still open");
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
}

/// A chunked body of `content` in pieces of `piece` bytes, no extensions, no trailers.
fn chunked(content: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in content.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// An origin answering every request with `head` (ending in its blank line) and `body`.
fn fixed_origin(head: &'static str, body: Vec<u8>) -> SocketAddr {
    serve(move |mut s| {
        let _ = read_head(&mut s);
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    })
}

#[test]
fn every_transfer_coding_reaches_an_http_1_1_client_with_the_identical_bytes() {
    for driver in DRIVERS {
        // Bytes that look like a gzip stream; the proxy must not care what they are.
        let content = pattern(3, 300_000);
        let body = chunked(&content, 100_000);
        let o = fixed_origin(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            body.clone(),
        );
        let proxy = Proxy::start(&["--io-driver", driver]);
        let mut s = open(&proxy);
        s.write_all(format!("GET http://{o}/ HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let head = read_head(&mut s);
        assert_eq!(status(&head), 200, "{head}");
        assert!(
            head.contains("\r\nTransfer-Encoding: gzip, chunked\r\n"),
            "{head}"
        );
        let mut got = vec![0u8; body.len()];
        s.read_exact(&mut got).unwrap();
        assert!(got == body, "the body changed on the way");
        // And to the origin.
        let (o, seen) = recording_origin();
        let req = format!(
            "POST http://{o}/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"
        );
        let (code, head, _) = ask(&mut open(&proxy), req.as_bytes());
        assert_eq!(code, 200, "{head}");
        let (head, body) = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            head.contains("\r\nTransfer-Encoding: gzip, chunked\r\n"),
            "{head}"
        );
        assert_eq!(body, b"5\r\nabcde\r\n0\r\n\r\n");
    }
}

#[test]
fn an_http_1_0_client_gets_a_chunked_response_de_chunked_and_close_delimited() {
    for driver in DRIVERS {
        let content = pattern(5, 300_000);
        let mut body = chunked(&content[..299_995], 100_000);
        // Extensions and a trailer on the way: gone too.
        body.truncate(body.len() - 5);
        body.extend_from_slice(b"5;e=\"1\"\r\n");
        body.extend_from_slice(&content[299_995..]);
        body.extend_from_slice(b"\r\n0\r\nX-T: 1\r\n\r\n");
        let o = fixed_origin(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-O: 1\r\n\r\n",
            body,
        );
        let proxy = Proxy::start(&["--io-driver", driver]);
        for request in [
            format!("GET http://{o}/ HTTP/1.0\r\n\r\n"),
            format!("GET http://{o}/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        ] {
            let resp = {
                let mut s = open(&proxy);
                s.write_all(request.as_bytes()).unwrap();
                read_until_closed(&mut s, Duration::from_secs(20)).expect("not close-delimited")
            };
            let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&resp[..split]);
            assert_eq!(status(&head), 200, "{head}");
            assert!(
                !head.to_ascii_lowercase().contains("transfer-encoding"),
                "{head}"
            );
            assert!(
                !head.to_ascii_lowercase().contains("content-length"),
                "{head}"
            );
            assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
            assert!(head.contains("\r\nX-O: 1\r\n"), "{head}");
            assert!(
                resp[split..] == content[..],
                "{request:?}: the content differs"
            );
        }
        // A coding besides chunked cannot be told to a 1.0 client: 502, not coded bytes unlabelled.
        let gz = fixed_origin(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            chunked(b"coded", 5),
        );
        let resp = exchange(
            proxy.addr,
            format!("GET http://{gz}/ HTTP/1.0\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&resp), 502, "{resp}");
    }
}

/// A client that stops sending in the middle of a request body is answered 408 for the body, not
/// for a head it sent long ago, and only its own connection waits: the worker serves others.
#[test]
fn a_stalled_request_body_gets_its_own_408_and_others_are_served_meanwhile() {
    let (o, _) = origin(mirror);
    let proxy = Proxy::start(&["--workers", "1", "--idle-timeout", "2"]);
    let mut s = open(&proxy);
    s.write_all(
        format!("POST http://{o}/up HTTP/1.1\r\nContent-Length: 100000\r\n\r\n").as_bytes(),
    )
    .unwrap();
    s.write_all(&[b'x'; 1000]).unwrap();
    // While that body stalls, another client on the same worker is served.
    let (code, _, body) = ask(
        &mut open(&proxy),
        format!("GET http://{o}/meanwhile HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(code, 200);
    assert!(body.starts_with("GET /meanwhile\n"), "{body}");
    let got = read_until_closed(&mut s, Duration::from_secs(20))
        .expect("the stalled client was still open 20 s later");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n\r\nrequest body not received in time\n"),
        "{text}"
    );
}
