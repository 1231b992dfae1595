//! `idle`: K authenticated CONNECT tunnels opened and left idle, from several 127.0.0.x source
//! addresses, to a built-in origin that holds its ends without threads. The proxy's RSS and
//! threads are read from `/proc/PID` at K/2 and at K, and the cost per tunnel is taken over the
//! second half (what earlier load left in the allocator does not count). Then every tunnel is
//! proven to work: a ping through each, answered by the origin.
//!
//! Bounded: K tunnels, each with a read timeout; the proof makes a fixed number of passes.

#![allow(
    clippy::disallowed_methods,
    reason = "a client tool on plain threads: sleeping here parks no proxy worker"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::requests::{connect_from, credentials_header, open_tunnel};

/// Sources used in turn: 127.0.0.30 to 127.0.0.45.
const SOURCES: u8 = 16;

struct Proc {
    rss_kib: u64,
    threads: u64,
}

fn read_proc(pid: u32) -> Result<Proc, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or(format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Proc {
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
    })
}

fn open(
    proxy: SocketAddr,
    origin: SocketAddr,
    credentials: &str,
    i: usize,
) -> Result<TcpStream, String> {
    let source = 30 + (i % SOURCES as usize) as u8;
    let mut s = connect_from(source, proxy).map_err(|e| format!("connect: {e}"))?;
    open_tunnel(&mut s, origin, credentials)?;
    Ok(s)
}

pub fn idle(
    proxy: SocketAddr,
    pid: u32,
    proxy_user: Option<&str>,
    tunnels: usize,
) -> Result<(), String> {
    let credentials = credentials_header(proxy_user);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let origin = listener.local_addr().map_err(|e| e.to_string())?;
    let mut held: Vec<TcpStream> = Vec::with_capacity(tunnels);
    let mut ends: Vec<TcpStream> = Vec::with_capacity(tunnels);
    let accept = |ends: &mut Vec<TcpStream>| {
        while let Ok((s, _)) = listener.accept() {
            ends.push(s);
        }
    };
    let started = Instant::now();
    let mut half = None;
    for i in 0..tunnels {
        held.push(open(proxy, origin, &credentials, i)?);
        accept(&mut ends);
        if i + 1 == tunnels / 2 {
            std::thread::sleep(Duration::from_millis(500));
            half = Some(read_proc(pid)?);
        }
    }
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    accept(&mut ends);
    let full = read_proc(pid)?;
    let half = half.ok_or("too few tunnels to measure half")?;
    let per_tunnel = (full.rss_kib.saturating_sub(half.rss_kib)) as f64 * 1024.0
        / (tunnels - tunnels / 2) as f64;

    // Proof: a ping through every tunnel, echoed by the origin's end.
    for s in &mut held {
        s.write_all(b"ping").map_err(|e| format!("ping: {e}"))?;
    }
    for e in &ends {
        e.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let mut answered = vec![false; ends.len()];
    let mut left = ends.len();
    for _ in 0..200 {
        accept(&mut ends);
        answered.resize(ends.len(), false);
        left = answered.iter().filter(|a| !**a).count();
        if left == 0 {
            break;
        }
        for (i, e) in ends.iter_mut().enumerate() {
            if answered[i] {
                continue;
            }
            let mut b = [0u8; 4];
            match e.read(&mut b) {
                Ok(4) => {
                    let _ = e.set_nonblocking(false);
                    e.write_all(&b).map_err(|e| format!("echo: {e}"))?;
                    answered[i] = true;
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut working = 0;
    for s in &mut held {
        let mut b = [0u8; 4];
        if s.read_exact(&mut b).is_ok() && &b == b"ping" {
            working += 1;
        }
    }
    println!(
        "idle: {tunnels} authenticated CONNECT tunnels from {SOURCES} source addresses, opened in {:.1} s",
        opened.as_secs_f64()
    );
    println!(
        "proxy RSS {} KiB at {} tunnels, {} KiB at {tunnels}: {per_tunnel:.0} bytes per tunnel over the second half",
        half.rss_kib,
        tunnels / 2,
        full.rss_kib
    );
    println!(
        "proxy threads {} at {} tunnels, {} at {tunnels}",
        half.threads,
        tunnels / 2,
        full.threads
    );
    println!(
        "working after the idle period: {working} of {tunnels} (origin ends unanswered: {left})"
    );
    println!(
        "{{\"scenario\":\"idle\",\"tunnels\":{tunnels},\"rss_kib_half\":{},\"rss_kib_full\":{},\"bytes_per_tunnel\":{per_tunnel:.0},\"threads_half\":{},\"threads_full\":{},\"working\":{working}}}",
        half.rss_kib, full.rss_kib, half.threads, full.threads
    );
    if working != tunnels {
        return Err(format!("{} tunnels did not work", tunnels - working));
    }
    Ok(())
}
