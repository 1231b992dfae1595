//! Running out of things, against the real binary: file descriptors (a low `ulimit -n`: the
//! workers back off instead of spinning, say so, and recover when fds are freed) and a SIGTERM
//! while tunnels are busy (every byte of every open tunnel arrives; new connections are refused;
//! exit 0 within the grace period).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces) end with ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_the_proxy_backs_off_and_recovers() {
    let echo = echo_server();
    let proxy = Proxy::start_with_fd_limit(
        64,
        &[
            "--workers",
            "1",
            "--max-connections",
            "1000",
            "--pipe-pool",
            "0",
        ],
    );
    // Tunnels until the proxy can take no more (each holds two of its fds): then either the
    // dial fails (502) or the accept does (the client waits).
    let mut held = Vec::new();
    for _ in 0..60 {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        write!(s, "CONNECT {echo} HTTP/1.1\r\n\r\n").unwrap();
        let mut head = [0u8; 39];
        match s.read_exact(&mut head) {
            Ok(()) if head.starts_with(b"HTTP/1.1 200 ") => held.push(s),
            _ => break,
        }
    }
    assert!(
        (10..60).contains(&held.len()),
        "64 fds held {} tunnels",
        held.len()
    );
    // Connections that send nothing take what fds are left; later ones wait in the backlog.
    let idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(proxy.addr).unwrap())
        .collect();
    assert!(
        proxy.wait_log("out of resources; backing off"),
        "{}",
        proxy.log_text()
    );
    // While out of fds, the worker waits instead of spinning on accept.
    let before = cpu_ticks(proxy.pid());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(proxy.pid()) - before;
    assert!(
        spent < 30,
        "{spent} ticks of CPU in one second while out of fds"
    );
    // The tunnels that were open still work.
    for s in &mut held {
        s.write_all(b"ok").unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ok");
    }
    // Freed fds: new connections are served again.
    held.truncate(held.len() / 2);
    drop(idle);
    let started = Instant::now();
    loop {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        write!(s, "CONNECT {echo} HTTP/1.1\r\n\r\n").unwrap();
        let mut head = [0u8; 39];
        if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200 ") {
            s.write_all(b"back").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"back");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_under_load_lets_every_busy_tunnel_finish_and_refuses_new_ones() {
    const TUNNELS: u64 = 16;
    const BYTES: u64 = 16 << 20;
    let echo = echo_server();
    let mut proxy = Proxy::start(&["--shutdown-grace", "30"]);
    let started = std::sync::Arc::new(std::sync::Barrier::new(TUNNELS as usize + 1));
    let clients: Vec<_> = (0..TUNNELS)
        .map(|seed| {
            let mut s = tunnel(proxy.addr, &echo.to_string());
            let started = started.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    // Slow enough to be mid-transfer when the signal comes.
                    let block = 1 << 20;
                    for i in 0..BYTES / block {
                        let mut chunk = Vec::with_capacity(block as usize);
                        send_pattern(&mut chunk, seed, (i + 1) * block);
                        w.write_all(&chunk[(i * block) as usize..]).unwrap();
                        if i == 0 {
                            started.wait();
                        }
                        std::thread::sleep(Duration::from_millis(40));
                    }
                    w.shutdown(std::net::Shutdown::Write).unwrap();
                });
                let got = check_pattern(&mut s, seed);
                writer.join().unwrap();
                got
            })
        })
        .collect();
    started.wait();
    proxy.terminate();
    assert!(proxy.wait_log("shutting down"));
    assert!(
        proxy.wait_refusing(),
        "a new connection was accepted while draining"
    );
    for c in clients {
        assert_eq!(c.join().unwrap(), BYTES, "a tunnel lost bytes in the drain");
    }
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
}
