//! The admin endpoint (`--admin ADDR`, off by default): `GET /metrics` (Prometheus text format),
//! `GET /healthz` (the process answers), `GET /readyz` (all workers listen and no drain is under
//! way). One plain thread with blocking sockets, away from the workers: a slow scraper can delay
//! only other scrapes.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::Registry;

/// Binds `addr` and serves from a thread of its own; the address actually bound is logged.
pub fn start(addr: SocketAddr, metrics: Arc<Registry>) -> io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr} (admin): {e}")))?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        tracing::warn!(%bound, "admin endpoint on a non-loopback address: anyone who can reach it reads the metrics");
    }
    tracing::info!(admin = %bound, "admin endpoint: /metrics /healthz /readyz");
    std::thread::Builder::new()
        .name("ringgate-admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Err(e) = answer(stream, &metrics) {
                    tracing::debug!(error = %e, "admin request failed");
                }
            }
        })
}

fn answer(stream: TcpStream, metrics: &Registry) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
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
