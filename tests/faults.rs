//! Fault injection against the real binary: broken origins and vanishing clients at each stage.
//! For each: the right status or a clean close, other clients served meanwhile, and afterwards
//! the proxy's fds and threads back to their baseline (pooled pipes aside). The other faults of
//! this kind live beside the feature they hit: fd exhaustion (`exhaustion.rs`), full verifier and
//! resolver queues (`auth.rs`, `dns.rs`), an unwritable log (`access_log.rs`), stalled TLS and
//! NTLM handshakes (`tls.rs`, `ntlm.rs`), a tunnel's origin half-closing (`tunnel.rs`). Pipes
//! that cannot be made are here: the fd limit lowered under a running proxy with `prlimit`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use support::*;

/// A forwarded GET of `origin` with alice's credentials.
fn get_as_alice(origin: SocketAddr, path: &str) -> String {
    format!(
        "GET http://{origin}{path} HTTP/1.1\r\nHost: {origin}\r\n{}\r\n",
        credentials("alice", "pw")
    )
}

/// The proxy still serves a plain forwarded GET (the check after each fault).
fn healthy(proxy: &Proxy, origin: SocketAddr) {
    let mut s = open(proxy);
    let (code, _, body) = ask(&mut s, &get_as_alice(origin, "/"));
    assert_eq!((code, body.as_str()), (200, "fine"));
}

/// After a fault: fds back to the baseline (pooled pipes and origin connections are the slack)
/// and as many threads as before (counted: a thread names itself once it runs).
fn assert_back_to(proxy: &Proxy, &(fds, threads): &(usize, usize), slack: usize) {
    proxy.assert_fds_settle(fds, slack);
    let settled = wait_until(Duration::from_secs(10), || proxy.threads().len() == threads);
    assert!(settled, "threads {:?}, {threads} before", proxy.threads());
}

fn baseline(proxy: &Proxy) -> (usize, usize) {
    (proxy.fds(), proxy.threads().len())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Reads a head and body as the origin sees them; `None` at a close.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Resets its connection (SO_LINGER 0) as soon as a request head has arrived.
fn resetting_origin() -> SocketAddr {
    serve(|mut s| {
        let _ = read_request(&mut s);
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    })
}

#[test]
fn an_origin_that_resets_gets_502_or_a_closed_tunnel_and_others_are_served() {
    for driver in DRIVERS {
        let fine = http_origin("fine");
        let reset = resetting_origin();
        let proxy = Proxy::start(&["--io-driver", driver, "--user", "alice:pw"]);
        healthy(&proxy, fine);
        let baseline = baseline(&proxy);
        let creds = credentials("alice", "pw");
        for _ in 0..20 {
            let mut s = open(&proxy);
            let (code, _, _) = ask(&mut s, &get_as_alice(reset, "/"));
            assert_eq!(code, 502, "{driver}");
            // A tunnel to it: established, then ended by the reset (never a hang).
            let mut t = open(&proxy);
            write!(
                t,
                "CONNECT {reset} HTTP/1.1\r\nHost: {reset}\r\n{creds}\r\n"
            )
            .unwrap();
            assert!(read_head(&mut t).starts_with("HTTP/1.1 200 "));
            t.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            assert!(closed_within(&mut t, Duration::from_secs(10)), "{driver}");
            healthy(&proxy, fine);
        }
        assert_back_to(&proxy, &baseline, 8);
    }
}

#[test]
fn a_response_longer_than_announced_is_cut_to_its_length_and_its_tail_never_answers_a_request() {
    // Each response carries a forged second response after its announced body; the origin
    // counts its connections.
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    let origin = serve(move |mut s| {
        c.fetch_add(1, Ordering::SeqCst);
        while read_request(&mut s).is_some() {
            let n = c.load(Ordering::SeqCst);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreal-{n}\
                 HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
            );
        }
    });
    let proxy = Proxy::start(&["--user", "alice:pw"]);
    let baseline = baseline(&proxy);
    let mut s = open(&proxy);
    let request = get_as_alice(origin, "/");
    for i in 1..=5 {
        let (code, _, body) = ask(&mut s, &request);
        assert_eq!(code, 200);
        // Every answer is the start of a response the origin wrote for this request, on an
        // origin connection of its own: the tail of the previous one was never read as it.
        assert_eq!(body, format!("real-{i}"));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 5);
    drop(s);
    assert_back_to(&proxy, &baseline, 4);
}

#[test]
fn an_origin_head_of_100_mib_gets_502_and_the_proxy_stays_small() {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let huge = serve(move |mut s| {
        let _ = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Big: ");
        let block = vec![b'a'; 64 * 1024];
        // Up to 100 MiB of one header field, until the proxy stops reading.
        for _ in 0..1600 {
            if s.write_all(&block).is_err() {
                return;
            }
            counter.fetch_add(block.len() as u64, Ordering::Relaxed);
        }
    });
    let fine = http_origin("fine");
    let proxy = Proxy::start(&["--user", "alice:pw"]);
    healthy(&proxy, fine);
    let baseline = baseline(&proxy);
    let before = rss_kib(proxy.pid());
    for _ in 0..10 {
        let mut s = open(&proxy);
        let (code, _, _) = ask(&mut s, &get_as_alice(huge, "/"));
        assert_eq!(code, 502);
        healthy(&proxy, fine);
    }
    // The proxy read no more than its head limit and socket buffers of each: far from 100 MiB.
    assert!(
        sent.load(Ordering::Relaxed) < 10 * 16 * 1024 * 1024,
        "{}",
        sent.load(Ordering::Relaxed)
    );
    let grown = rss_kib(proxy.pid()).saturating_sub(before);
    assert!(grown < 4096, "RSS grew by {grown} KiB");
    assert_back_to(&proxy, &baseline, 4);
}

/// Keeps reading what it is sent, and answers a complete request: for uploads cut mid-body.
fn sink_origin() -> SocketAddr {
    serve(|mut s| {
        let mut b = [0u8; 16 * 1024];
        while let Ok(1..) = s.read(&mut b) {}
    })
}

#[test]
fn a_client_vanishing_at_any_stage_leaves_nothing_behind() {
    for driver in DRIVERS {
        let fine = http_origin("fine");
        let echo = echo_server();
        let sink = sink_origin();
        let mut proxy = Proxy::start(&["--io-driver", driver, "--user", "alice:pw"]);
        healthy(&proxy, fine);
        let baseline = baseline(&proxy);
        let creds = credentials("alice", "pw");
        type Stage = Box<dyn Fn(&mut TcpStream)>;
        let stages: Vec<(&str, Stage)> = vec![
            (
                "mid request line",
                Box::new(|s| s.write_all(b"GET http://exa").unwrap()),
            ),
            (
                "mid head",
                Box::new(move |s| {
                    write!(s, "GET http://{fine}/ HTTP/1.1\r\nHost: x\r\nX-Half: ").unwrap()
                }),
            ),
            (
                "after a 407",
                Box::new(move |s| {
                    write!(s, "GET http://{fine}/ HTTP/1.1\r\nHost: {fine}\r\n\r\n").unwrap();
                    assert!(read_head(s).starts_with("HTTP/1.1 407 "));
                }),
            ),
            (
                "mid chunked upload",
                Box::new({
                    let creds = creds.clone();
                    move |s| {
                        write!(
                            s,
                            "POST http://{sink}/up HTTP/1.1\r\nHost: {sink}\r\n{creds}\
                             Transfer-Encoding: chunked\r\n\r\n4000\r\n"
                        )
                        .unwrap();
                        s.write_all(&[b'x'; 8000]).unwrap();
                    }
                }),
            ),
            (
                "mid content-length upload",
                Box::new({
                    let creds = creds.clone();
                    move |s| {
                        write!(
                            s,
                            "POST http://{sink}/up HTTP/1.1\r\nHost: {sink}\r\n{creds}\
                             Content-Length: 1000000\r\n\r\n"
                        )
                        .unwrap();
                        s.write_all(&[b'x'; 100_000]).unwrap();
                    }
                }),
            ),
            (
                "mid tunnel",
                Box::new({
                    let creds = creds.clone();
                    move |s| {
                        write!(s, "CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{creds}\r\n")
                            .unwrap();
                        assert!(read_head(s).starts_with("HTTP/1.1 200 "));
                        s.write_all(&[7u8; 100_000]).unwrap();
                    }
                }),
            ),
            (
                "mid tunnel, with a reset",
                Box::new({
                    let creds = creds.clone();
                    move |s| {
                        write!(s, "CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{creds}\r\n")
                            .unwrap();
                        assert!(read_head(s).starts_with("HTTP/1.1 200 "));
                        s.write_all(&[7u8; 100_000]).unwrap();
                        socket2::SockRef::from(&*s)
                            .set_linger(Some(Duration::ZERO))
                            .unwrap();
                    }
                }),
            ),
        ];
        for (stage, act) in &stages {
            for _ in 0..5 {
                let mut s = open(&proxy);
                act(&mut s);
                drop(s);
                healthy(&proxy, fine);
            }
            assert_back_to(&proxy, &baseline, 8);
            assert!(
                proxy.child.try_wait().unwrap().is_none(),
                "{driver}, {stage}: the proxy exited"
            );
        }
    }
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let fine = http_origin("fine");
    let echo = echo_server();
    let proxy = Proxy::start(&["--user", "alice:pw"]);
    let creds = credentials("alice", "pw");
    let mut s = open(&proxy);
    s.write_all(get_as_alice(fine, "/").as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    assert!(
        got.starts_with("HTTP/1.1 200 ") && got.ends_with("fine"),
        "{got}"
    );
    // In a tunnel: what was sent before the half-close comes back, then the end.
    let mut t = open(&proxy);
    write!(t, "CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{creds}\r\n").unwrap();
    assert!(read_head(&mut t).starts_with("HTTP/1.1 200 "));
    t.write_all(b"last words").unwrap();
    t.shutdown(Shutdown::Write).unwrap();
    let mut back = String::new();
    let _ = t.read_to_string(&mut back);
    assert_eq!(back, "last words");
}

/// Streams up to 1 GiB to each connection (after a request head, or at once for a tunnel),
/// counting what the socket took.
fn download_origin(written: Arc<AtomicU64>, http: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let written = written.clone();
            thread::spawn(move || {
                let mut s = s;
                if http {
                    if read_request(&mut s).is_none() {
                        return;
                    }
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
                }
                let block = vec![b'd'; 64 * 1024];
                for _ in 0..(1 << 30) / block.len() {
                    match s.write(&block) {
                        Ok(n) => written.fetch_add(n as u64, Ordering::Relaxed),
                        Err(_) => return,
                    };
                }
            });
        }
    });
    addr
}

/// Until what the origins could write stops growing: every stream has stalled on a client that
/// does not read.
fn wait_stalled(written: &AtomicU64) {
    let mut last = u64::MAX;
    assert!(wait_until(Duration::from_secs(60), || {
        thread::sleep(Duration::from_millis(300));
        let now = written.load(Ordering::Relaxed);
        let stalled = now == last && now > 0;
        last = now;
        stalled
    }));
}

#[test]
fn a_hundred_clients_that_never_read_a_1_gib_download_keep_the_proxy_small() {
    let written = Arc::new(AtomicU64::new(0));
    let http = download_origin(written.clone(), true);
    let raw = download_origin(written.clone(), false);
    let fine = http_origin("fine");
    let proxy = Proxy::start(&["--user", "alice:pw", "--idle-timeout", "120"]);
    let creds = credentials("alice", "pw");
    healthy(&proxy, fine);
    let start = rss_kib(proxy.pid());
    let mut clients = Vec::new();
    // 50 forward a GET, then 50 tunnel; none reads a byte of the answer.
    for i in 0..50 {
        let mut s = open(&proxy);
        s.write_all(get_as_alice(http, &format!("/big{i}")).as_bytes())
            .unwrap();
        clients.push(s);
    }
    wait_stalled(&written);
    let forwarded = rss_kib(proxy.pid());
    for _ in 0..50 {
        let mut s = open(&proxy);
        write!(s, "CONNECT {raw} HTTP/1.1\r\nHost: {raw}\r\n{creds}\r\n").unwrap();
        clients.push(s);
    }
    wait_stalled(&written);
    let tunnelled = rss_kib(proxy.pid());
    let held = written.load(Ordering::Relaxed);
    eprintln!(
        "100 stalled 1 GiB downloads: the origins could write {} MiB in all (socket buffers and \
         pipes: kernel memory); proxy RSS {start} KiB, +{} KiB for 50 forwarded, +{} KiB for 50 \
         tunnelled",
        held >> 20,
        forwarded.saturating_sub(start),
        tunnelled.saturating_sub(forwarded)
    );
    // Back-pressure: each origin got only as far as the buffers between it and its client.
    assert!(held / 100 < 64 << 20, "{held}");
    let grown = tunnelled.saturating_sub(start);
    assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
    healthy(&proxy, fine);
}

/// The numbers of the proxy's open fds.
fn open_fds(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn pipes_open(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("pipe:"))
        .count()
}

fn set_fd_limit(pid: u32, soft: &str, hard: &str) {
    let ok = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={soft}:{hard}"),
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "prlimit");
}

#[test]
fn when_no_pipe_can_be_made_an_open_tunnel_copies_its_bytes_and_the_proxy_recovers() {
    for driver in DRIVERS {
        let echo = echo_server();
        // A fresh proxy holds no pooled pipe: a tunnel makes its pipes when bytes first move.
        let proxy = Proxy::start(&["--io-driver", driver]);
        let pid = proxy.pid();
        let s = tunnel(proxy.addr, &echo.to_string());
        let base = baseline(&proxy);
        let pipes = pipes_open(pid);
        // No new fd from now on: the soft limit at the lowest free fd number (pipe2 needs two).
        let fds = open_fds(pid);
        let lowest_free = (0..).find(|n| !fds.contains(n)).unwrap();
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let nofile: Vec<&str> = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .split_whitespace()
            .skip(3)
            .take(2)
            .collect();
        set_fd_limit(pid, &lowest_free.to_string(), nofile[1]);
        // 8 MiB each way, every byte checked: the relay copies through user space instead.
        let mut writer = s.try_clone().unwrap();
        let sender = thread::spawn(move || {
            send_pattern(&mut writer, 7, 8 << 20);
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut reader = s;
        assert_eq!(check_pattern(&mut reader, 7), 8 << 20, "{driver}");
        sender.join().unwrap();
        assert_eq!(
            pipes_open(pid),
            pipes,
            "{driver}: a pipe was made after all"
        );
        // The limit back: new tunnels splice again, and nothing was left behind.
        set_fd_limit(pid, nofile[0], nofile[1]);
        drop(reader);
        let mut t = tunnel(proxy.addr, &echo.to_string());
        t.write_all(b"after").unwrap();
        let mut back = [0u8; 5];
        t.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"after");
        drop(t);
        assert_back_to(&proxy, &base, 8);
        assert!(proxy.log_text().lines().all(|l| !l.contains("panicked")));
    }
}
