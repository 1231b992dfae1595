//! The admin endpoint (`--admin ADDR`, off by default): `GET /metrics` (Prometheus text format),
//! `GET /healthz` (the process answers), `GET /readyz` (all workers listen and no drain is under
//! way). One plain thread with blocking sockets, away from the workers: a slow scraper can delay
//! only other scrapes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::observe::metrics::Registry;

/// Binds the admin address (early, so the policy can count it among the proxy's own sockets).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr} (admin): {e}")))
}

/// Serves from a thread of its own; the address is logged.
pub fn start(listener: TcpListener, metrics: Arc<Registry>) -> io::Result<JoinHandle<()>> {
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        tracing::warn!(%bound, "admin endpoint on a non-loopback address: anyone who can reach it reads the metrics");
    }
    tracing::info!(admin = %bound, "admin endpoint: /metrics /healthz /readyz");
    std::thread::Builder::new()
        .name("ringgate-admin".into())
        .spawn(move || {
            let open = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                // A thread per scrape, a few at a time: a slow client cannot hold the others up.
                if open.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
                    open.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                let (metrics, open) = (metrics.clone(), open.clone());
                let spawned = std::thread::Builder::new()
                    .name("ringgate-admin-conn".into())
                    .spawn(move || {
                        if let Err(e) = answer(stream, &metrics) {
                            tracing::debug!(error = %e, "admin request failed");
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    tracing::warn!("admin endpoint: cannot start a thread");
                }
            }
        })
}

/// Scrapes served at once; more are closed unanswered.
const MAX_CLIENTS: usize = 8;

/// Longest request head read; a client that sends more is answered from what was read.
const MAX_HEAD: u64 = 8192;

/// The whole request head must arrive within this, however it trickles in: a per-read timeout
/// alone let a client sending a byte a second hold a slot for as long as it liked, and
/// `MAX_CLIENTS` of them shut every scraper (and health check) out.
const HEAD_DEADLINE: Duration = Duration::from_secs(5);

/// Reads from a socket until a fixed instant: each read may wait only for what is left of it.
struct Until<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Read for Until<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received in time",
            ));
        }
        // `set_read_timeout` refuses a zero duration; `left` is not zero here.
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

fn answer(stream: TcpStream, metrics: &Registry) -> io::Result<()> {
    // One deadline for the whole head and a bounded head: one slow or endless client cannot hold
    // a slot for long or grow its memory.
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let until = Until {
        stream: &stream,
        deadline: Instant::now() + HEAD_DEADLINE,
    };
    let mut reader = BufReader::new(until.take(MAX_HEAD));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // The rest of the head is read and ignored (bounded).
    let mut header = String::new();
    for _ in 0..100 {
        header.clear();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        ("GET" | "HEAD", "/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("GET" | "HEAD", "/readyz") => {
            if metrics.ready.load(Ordering::Relaxed) && !metrics.draining.load(Ordering::Relaxed) {
                ("200 OK", "text/plain", "ready\n".to_owned())
            } else if metrics.draining.load(Ordering::Relaxed) {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "draining\n".to_owned(),
                )
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "starting\n".to_owned(),
                )
            }
        }
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}
