//! CONNECT tunnels end to end: real clients, the real binary, every driver × relay combination.
// Test clients are not worker code: they may block and lock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::Command;
use std::thread;
use std::time::Duration;

use support::*;

/// Pushes `len` bytes both ways at once through one tunnel to the echo server, checking every byte.
fn echo_both_ways(proxy: &Proxy, echo: std::net::SocketAddr, seed: u64, len: u64) {
    let s = tunnel(proxy.addr, &echo.to_string());
    let mut writer = s.try_clone().unwrap();
    let sender = thread::spawn(move || {
        send_pattern(&mut writer, seed, len);
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = s;
    assert_eq!(check_pattern(&mut reader, seed), len, "echoed byte count");
    sender.join().unwrap();
}

fn curl_through_tunnel(args: &[&str]) {
    let proxy = Proxy::start(args);
    let origin = http_origin("hello through the tunnel\n");
    let out = curl(&[
        "-i",
        "-p",
        "-x",
        &format!("http://{}", proxy.addr),
        &format!("http://{origin}/path"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("HTTP/1.1 200 Connection established"),
        "{text}"
    );
    assert!(text.contains("X-Origin: test"), "{text}");
    assert!(text.ends_with("hello through the tunnel\n"), "{text}");
}

fn socat_echo(args: &[&str]) {
    let proxy = Proxy::start(args);
    let echo = echo_server();
    let out = Command::new("socat")
        .arg("-")
        .arg(format!(
            "PROXY:{}:{}:{},proxyport={}",
            proxy.addr.ip(),
            echo.ip(),
            echo.port(),
            proxy.addr.port()
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"ping through socat\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ping through socat\n");
}

fn one_gib_each_way(args: &[&str]) {
    let proxy = Proxy::start(args);
    let echo = echo_server();
    echo_both_ways(&proxy, echo, 7, 1 << 30);
}

fn sixty_four_tunnels_of_16_mib(args: &[&str]) {
    // Pooled pipes stay open by design: at most 2 workers × 8 pipes × 2 fds.
    let proxy = Proxy::start(&[args, &["--workers", "2", "--pipe-pool", "8"]].concat());
    let base = proxy.fds();
    let echo = echo_server();
    thread::scope(|scope| {
        for seed in 0..64u64 {
            let proxy = &proxy;
            scope.spawn(move || echo_both_ways(proxy, echo, seed, 16 << 20));
        }
    });
    proxy.assert_fds_settle(base, 2 * 8 * 2);
}

/// The client stops sending first and still receives everything the upstream sends after that.
fn client_half_close(args: &[&str]) {
    let proxy = Proxy::start(args);
    let echo = echo_server();
    let mut s = tunnel(proxy.addr, &echo.to_string());
    send_pattern(&mut s, 3, 4 << 20);
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(check_pattern(&mut s, 3), 4 << 20);
}

/// The upstream stops sending first; the client reads EOF, then still sends, and all of it arrives.
fn upstream_half_close(args: &[&str]) {
    let proxy = Proxy::start(args);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let origin = serve(move |mut s| {
        send_pattern(&mut s, 11, 1 << 20);
        s.shutdown(Shutdown::Write).unwrap();
        let got = check_pattern(&mut s, 12);
        tx.lock().unwrap().send(got).unwrap();
    });
    let mut s = tunnel(proxy.addr, &origin.to_string());
    assert_eq!(
        check_pattern(&mut s, 11),
        1 << 20,
        "client got all, then EOF"
    );
    send_pattern(&mut s, 12, 2 << 20);
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), 2 << 20);
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "tunnel closed after both EOFs"
    );
}

/// Bytes sent in the same packet as the CONNECT head reach the upstream first.
fn early_data_goes_first(args: &[&str]) {
    let proxy = Proxy::start(args);
    let echo = echo_server();
    let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let target = echo.to_string();
    s.write_all(
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n\x16\x03\x01early").as_bytes(),
    )
    .unwrap();
    assert_eq!(
        read_head(&mut s),
        "HTTP/1.1 200 Connection established\r\n\r\n"
    );
    s.write_all(b"-late").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"\x16\x03\x01early-late");
}

/// A client that vanishes mid-tunnel costs the proxy nothing afterwards.
fn client_vanishes_mid_tunnel(args: &[&str]) {
    let proxy = Proxy::start(&[args, &["--workers", "2", "--pipe-pool", "2"]].concat());
    let base = proxy.fds();
    let echo = echo_server();
    for _ in 0..20 {
        let mut s = tunnel(proxy.addr, &echo.to_string());
        s.write_all(&[1; 100_000]).unwrap();
        drop(s);
    }
    proxy.assert_fds_settle(base, 2 * 2 * 2);
    echo_both_ways(&proxy, echo, 5, 1 << 20);
}

/// Idle tunnels hold no kernel worker threads and no extra threads of ours, and all still work.
fn thousand_idle_tunnels(args: &[&str]) {
    let proxy = Proxy::start(&[args, &["--workers", "2", "--resolver-threads", "2"]].concat());
    let echo = echo_server();
    let mut tunnels: Vec<_> = (0..1000)
        .map(|_| tunnel(proxy.addr, &echo.to_string()))
        .collect();
    thread::sleep(Duration::from_millis(500));
    let threads = proxy.threads();
    // main + signals + log writer + 2 resolver threads + 2 workers.
    assert!(threads.len() <= 7, "threads: {threads:?}");
    assert!(
        !threads.iter().any(|t| t.starts_with("iou-wrk")),
        "kernel workers parked: {threads:?}"
    );
    for (i, t) in tunnels.iter_mut().enumerate() {
        t.write_all(&[i as u8]).unwrap();
    }
    for (i, t) in tunnels.iter_mut().enumerate() {
        let mut b = [0u8; 1];
        t.read_exact(&mut b).unwrap();
        assert_eq!(b[0], i as u8, "tunnel {i}");
    }
}

/// A tunnel with nothing moving is closed after the idle timeout.
fn idle_timeout_closes(args: &[&str]) {
    let proxy = Proxy::start(&[args, &["--idle-timeout", "1"]].concat());
    let echo = echo_server();
    let mut s = tunnel(proxy.addr, &echo.to_string());
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let mut rest = Vec::new();
    let started = std::time::Instant::now();
    assert_eq!(s.read_to_end(&mut rest).unwrap_or(0), 0);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "closed too early"
    );
    assert!(
        proxy.wait_log("end=\"idle_timeout\""),
        "{}",
        proxy.log_text()
    );
}

macro_rules! on_every_driver_and_relay {
    ($($name:ident),* $(,)?) => {
        mod uring_splice { $( #[test] fn $name() { super::$name(&["--io-driver", "uring", "--relay", "splice"]); } )* }
        mod uring_copy { $( #[test] fn $name() { super::$name(&["--io-driver", "uring", "--relay", "copy"]); } )* }
        mod epoll_splice { $( #[test] fn $name() { super::$name(&["--io-driver", "epoll", "--relay", "splice"]); } )* }
        mod epoll_copy { $( #[test] fn $name() { super::$name(&["--io-driver", "epoll", "--relay", "copy"]); } )* }
    };
}

on_every_driver_and_relay!(
    curl_through_tunnel,
    socat_echo,
    one_gib_each_way,
    sixty_four_tunnels_of_16_mib,
    client_half_close,
    upstream_half_close,
    early_data_goes_first,
    client_vanishes_mid_tunnel,
    thousand_idle_tunnels,
    idle_timeout_closes,
);
