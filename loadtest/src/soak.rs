//! `soak`: mixed load against one proxy for a bounded time, every byte and every status checked.
//!
//! Client kinds run side by side, each on its own thread(s) and source address, until the time is
//! up: tunnels to the echo origin carrying payloads of varied sizes, verified byte for byte;
//! kept-alive forwarded GETs whose answers are checked whole; a 407 storm with wrong credentials
//! on kept-alive connections; and misbehaving clients in turn (a slowloris head, a handshake
//! abandoned after its 407, a tunnel reset mid-stream, a head cut off mid-way). Meanwhile the
//! proxy's RSS and open file descriptors are sampled from `/proc/PID`, printed as they come.
//!
//! What counts as a failure: a byte that differs (`mismatch`), and any outcome a well-behaved
//! proxy would not give (`unexpected`: a wrong status, a close mid-exchange, a timeout). The
//! misbehaving clients' outcomes are judged too: the proxy must answer them as documented (408 or
//! a close for the slowloris, 407 for the abandoned handshake) and never stall.

// Plain threads, not monoio workers: a lock around the tallies and a sleeping sampler are fine.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::origins::{HTTP_ANSWER, Origins};
use crate::requests::{connect_from, credentials_header, open_tunnel, read_response};

pub struct Spec<'a> {
    pub proxy: SocketAddr,
    pub pid: u32,
    pub user: &'a str,
    pub wrong_user: &'a str,
    pub seconds: u64,
    pub sample_secs: u64,
}

/// Outcomes per client kind: counted by name, the bad ones kept apart.
#[derive(Default)]
struct Book {
    ok: BTreeMap<&'static str, u64>,
    bad: BTreeMap<String, u64>,
    mismatches: u64,
}

struct Shared {
    book: Mutex<Book>,
    stop: AtomicBool,
    bytes: AtomicU64,
}

impl Shared {
    fn ok(&self, kind: &'static str) {
        if let Ok(mut b) = self.book.lock() {
            *b.ok.entry(kind).or_default() += 1;
        }
    }

    fn bad(&self, kind: &str, what: String) {
        if let Ok(mut b) = self.book.lock() {
            *b.bad.entry(format!("{kind}: {what}")).or_default() += 1;
        }
    }

    fn mismatch(&self, kind: &str) {
        if let Ok(mut b) = self.book.lock() {
            b.mismatches += 1;
            *b.bad
                .entry(format!("{kind}: content mismatch"))
                .or_default() += 1;
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }
}

/// A small deterministic generator: payload sizes and contents differ per iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Tunnels to an echo origin, each carrying 1 B – 256 KiB checked on the way back.
fn tunnels(sh: &Shared, spec: &Spec<'_>, echo: SocketAddr, source: u8, seed: u64) {
    let creds = credentials_header(Some(spec.user));
    let mut rng = Rng(seed | 1);
    let mut back = vec![0u8; 256 * 1024];
    while sh.running() {
        let len = 1 + (rng.next() % (256 * 1024)) as usize;
        let fill = rng.next() as u8;
        let payload: Vec<u8> = (0..len)
            .map(|i| fill.wrapping_add((i % 251) as u8))
            .collect();
        let result = (|| -> Result<bool, String> {
            let mut s =
                connect_from(source, spec.proxy).map_err(|e| format!("connect: {}", e.kind()))?;
            open_tunnel(&mut s, echo, &creds)?;
            let mut w = s.try_clone().map_err(|e| e.to_string())?;
            let out = payload.clone();
            let writer = thread::spawn(move || w.write_all(&out).map_err(|e| e.kind()));
            s.read_exact(&mut back[..len])
                .map_err(|e| format!("echo: {}", e.kind()))?;
            writer
                .join()
                .map_err(|_| "writer panicked".to_owned())?
                .map_err(|e| format!("write: {e}"))?;
            Ok(back[..len] == payload[..])
        })();
        match result {
            Ok(true) => {
                sh.ok("tunnel");
                sh.bytes.fetch_add(2 * len as u64, Ordering::Relaxed);
            }
            Ok(false) => sh.mismatch("tunnel"),
            Err(e) => sh.bad("tunnel", e),
        }
    }
}

/// Kept-alive forwarded GETs; every answer must be the origin's, whole.
fn forwarding(sh: &Shared, spec: &Spec<'_>, origin: SocketAddr, source: u8) {
    let request = format!(
        "GET http://{origin}/soak HTTP/1.1\r\nHost: {origin}\r\n{}\r\n",
        credentials_header(Some(spec.user))
    );
    let body = &HTTP_ANSWER[HTTP_ANSWER.len() - 2..];
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::new();
    while sh.running() {
        let result = (|| -> Result<bool, String> {
            if conn.is_none() {
                conn = Some(
                    connect_from(source, spec.proxy)
                        .map_err(|e| format!("connect: {}", e.kind()))?,
                );
            }
            let s = conn.as_mut().ok_or("no connection")?;
            s.write_all(request.as_bytes())
                .map_err(|e| format!("write: {}", e.kind()))?;
            let status = read_response(s, &mut buf, false)?;
            if status != 200 {
                return Err(format!("status {status}"));
            }
            Ok(buf.ends_with(body))
        })();
        match result {
            Ok(true) => sh.ok("forward"),
            Ok(false) => sh.mismatch("forward"),
            Err(e) => {
                conn = None;
                sh.bad("forward", e);
            }
        }
    }
}

/// Kept-alive requests with a wrong password: each must get 407. The proxy closes a connection
/// after its `max_challenges_per_connection`; then the storm reconnects (counted, not an error).
fn storm(sh: &Shared, spec: &Spec<'_>, origin: SocketAddr, source: u8) {
    let request = format!(
        "GET http://{origin}/storm HTTP/1.1\r\nHost: {origin}\r\n{}\r\n",
        credentials_header(Some(spec.wrong_user))
    );
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::new();
    while sh.running() {
        if conn.is_none() {
            match connect_from(source, spec.proxy) {
                Ok(s) => conn = Some(s),
                Err(e) => {
                    sh.bad("407 storm", format!("connect: {}", e.kind()));
                    continue;
                }
            }
        }
        let Some(s) = conn.as_mut() else { continue };
        if s.write_all(request.as_bytes()).is_err() {
            conn = None;
            sh.ok("407 storm reconnect");
            continue;
        }
        match read_response(s, &mut buf, false) {
            Ok(407) => {
                sh.ok("407 storm");
                let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                if head.contains("\r\nconnection: close\r\n") {
                    conn = None;
                    sh.ok("407 storm reconnect");
                }
            }
            Ok(status) => sh.bad("407 storm", format!("status {status}")),
            // The proxy ended the connection after its challenge budget (its last 407 said
            // `Connection: close`, or the next request found it closed).
            Err(e) if e == "closed" => {
                conn = None;
                sh.ok("407 storm reconnect");
            }
            Err(e) => {
                conn = None;
                sh.bad("407 storm", e);
            }
        }
    }
}

/// The misbehaving clients, each kind on its own thread.
const MISBEHAVING: [&str; 4] = [
    "slowloris",
    "abandoned handshake",
    "reset tunnel",
    "cut head",
];

/// One kind of misbehaving client, again and again.
fn misbehave(sh: &Shared, spec: &Spec<'_>, echo: SocketAddr, source: u8, kind: &'static str) {
    let creds = credentials_header(Some(spec.user));
    while sh.running() {
        let result = (|| -> Result<(), String> {
            let mut s =
                connect_from(source, spec.proxy).map_err(|e| format!("connect: {}", e.kind()))?;
            match kind {
                "slowloris" => {
                    // A byte at a time, never finishing the head: 408 (or a close) once the
                    // header timeout is up.
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .map_err(|e| e.to_string())?;
                    let _ = s.write_all(b"GET http://slow.test/ HTTP/1.1\r\nX-Slow: ");
                    let started = Instant::now();
                    let mut answer = Vec::new();
                    let mut b = [0u8; 512];
                    loop {
                        if started.elapsed() > Duration::from_secs(60) {
                            return Err("never cut off".into());
                        }
                        let _ = s.write_all(b"a");
                        match s.read(&mut b) {
                            Ok(0) => break,
                            Ok(n) => answer.extend_from_slice(&b[..n]),
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                    if !answer.is_empty() && !answer.starts_with(b"HTTP/1.1 408") {
                        return Err(format!(
                            "answered {}",
                            String::from_utf8_lossy(&answer[..answer.len().min(12)])
                        ));
                    }
                }
                "abandoned handshake" => {
                    // Asks without credentials, reads the 407, and goes.
                    s.write_all(
                        format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n").as_bytes(),
                    )
                    .map_err(|e| e.to_string())?;
                    let mut buf = Vec::new();
                    let status = read_response(&mut s, &mut buf, false)?;
                    if status != 407 {
                        return Err(format!("status {status}"));
                    }
                }
                "reset tunnel" => {
                    // A tunnel that ends with a reset while bytes are in flight.
                    open_tunnel(&mut s, echo, &creds)?;
                    let _ = s.write_all(&[7u8; 64 * 1024]);
                    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                }
                "cut head" => {
                    // Half a head, then gone.
                    let _ = s.write_all(b"CONNECT ");
                    let _ = s.write_all(echo.to_string().as_bytes());
                }
                _ => return Err(format!("no such kind: {kind}")),
            }
            Ok(())
        })();
        match result {
            Ok(()) => sh.ok(kind),
            Err(e) => sh.bad(kind, e),
        }
    }
}

/// The proxy's RSS (`idle`'s reading of `/proc/PID/status`) and its open fds.
fn sample(pid: u32) -> Option<(u64, usize)> {
    let rss = crate::idle::read_proc(pid).ok()?.rss_kib;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// Runs the soak; `Err` when anything was lost or unexpected.
pub fn soak(spec: &Spec<'_>, origins: &Origins) -> Result<(), String> {
    let sh = Arc::new(Shared {
        book: Mutex::default(),
        stop: AtomicBool::new(false),
        bytes: AtomicU64::new(0),
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(spec.seconds);
    println!("# t_secs\trss_kib\tfds");
    thread::scope(|scope| {
        for i in 0..2u8 {
            let (sh, echo) = (&sh, origins.echo[usize::from(i) % origins.echo.len()]);
            scope.spawn(move || tunnels(sh, spec, echo, 60 + i, 0x9e37_79b9 + u64::from(i)));
        }
        for i in 0..2u8 {
            let sh = &sh;
            scope.spawn(move || forwarding(sh, spec, origins.http, 62 + i));
        }
        let sh2 = &sh;
        scope.spawn(move || storm(sh2, spec, origins.http, 64));
        for (i, kind) in MISBEHAVING.into_iter().enumerate() {
            let (sh, echo) = (&sh, origins.echo[0]);
            scope.spawn(move || misbehave(sh, spec, echo, 65 + i as u8, kind));
        }
        // The sampler: this thread, until the deadline.
        while Instant::now() < deadline {
            if let Some((rss, fds)) = sample(spec.pid) {
                println!("{}\t{rss}\t{fds}", started.elapsed().as_secs());
            } else {
                println!("# the proxy (pid {}) is gone", spec.pid);
                break;
            }
            let next = Instant::now() + Duration::from_secs(spec.sample_secs);
            thread::sleep(next.min(deadline).saturating_duration_since(Instant::now()));
        }
        sh.stop.store(true, Ordering::Relaxed);
    });
    let book = sh.book.lock().map_err(|_| "book poisoned")?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "# {:.0} s, {:.1} MB through tunnels",
        secs,
        sh.bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    for (kind, n) in &book.ok {
        println!("# ok\t{kind}\t{n}");
    }
    for (what, n) in &book.bad {
        println!("# BAD\t{what}\t{n}");
    }
    println!("# mismatches\t{}", book.mismatches);
    if book.bad.is_empty() && book.mismatches == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} mismatches, {} unexpected outcomes",
            book.mismatches,
            book.bad.values().sum::<u64>()
        ))
    }
}
