//! The access log: one line per request or tunnel, in squid's native format (what calamaris and
//! sarg read), the Common Log Format, or JSON lines.
//!
//! Off the hot path: a worker formats into its own buffer (grown once, then reused: no allocation
//! per line) and hands full buffers (or, every 200 ms, whatever it has) to the writer thread over
//! a bounded channel, getting empty ones back. If the writer falls behind (a stalled disk), the
//! worker drops the batch and counts its lines as dropped instead of waiting. SIGUSR1 makes the
//! writer reopen the file (logrotate). Credentials never reach a line: only the user name does.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::observe::labels::Termination;
use crate::observe::metrics::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Squid,
    Common,
    Json,
}

/// A batch is handed over when it grows past this.
const BATCH_BYTES: usize = 32 * 1024;
/// Batches that may wait for the writer; beyond, new ones are dropped.
const QUEUE: usize = 64;
/// How often a worker hands over a batch that is not full.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// One finished request or tunnel.
pub struct Entry<'a> {
    pub client: SocketAddr,
    /// The kind of listener the client came in on (JSON's `listener`).
    pub listener: crate::observe::labels::ListenerKind,
    pub user: Option<&'a str>,
    /// The scheme `user` authenticated with.
    pub auth_scheme: Option<crate::observe::labels::Scheme>,
    pub method: &'a str,
    /// The request-target as sent (`host:port` for CONNECT, the URL for forwarding).
    pub target: &'a [u8],
    pub status: u16,
    /// Bytes from the client (request body, tunnel upstream) and to it.
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration: Duration,
    pub upstream: Option<SocketAddr>,
    /// How it ended (JSON's `termination`), whose doing it was: a forwarded request
    /// `completed` or `upstream_early_answer`; a tunnel `closed` or `idle_timeout`; the client's
    /// `client_error` (400, 405, 414, 431, or a failure mid-tunnel) or `client_timeout` (408); the
    /// origin's `upstream_error` (502, or a failure mid-tunnel) or `upstream_timeout` (504); the
    /// policy's `denied_acl` (403); `auth_failed` (407); `limit` (429, 503); ours `local_error`.
    pub end: Termination,
}

struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

/// Where the writer thread writes.
pub struct Sink {
    path: Option<PathBuf>,
    reopen: Arc<AtomicBool>,
}

/// The writer thread, to be finished at exit.
pub struct Writer {
    thread: std::thread::JoinHandle<()>,
    closing: Arc<AtomicBool>,
}

impl Writer {
    /// Writes what is queued and ends the thread. Called once the workers are gone: it does not
    /// wait for every sender to be dropped (a connection task still open when its worker stopped
    /// may never drop its shard's handle).
    pub fn finish(self) {
        self.closing.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Starts the writer thread for `target` (`"stdout"` or a path; the file is opened now, so a bad
/// path stops start-up). Returns what workers log through, the flag SIGUSR1 sets, and the writer.
pub fn start(
    target: &str,
    format: Format,
    metrics: Arc<Registry>,
) -> io::Result<(Arc<LogShared>, Arc<AtomicBool>, Writer)> {
    let path = (target != "stdout").then(|| PathBuf::from(target));
    let mut out = open(path.as_ref())?;
    let reopen = Arc::new(AtomicBool::new(false));
    let sink = Sink {
        path,
        reopen: reopen.clone(),
    };
    let (tx, rx) = flume::bounded::<Batch>(QUEUE);
    let (spare_tx, spare_rx) = flume::bounded::<Vec<u8>>(QUEUE);
    let counts = metrics.clone();
    let closing = Arc::new(AtomicBool::new(false));
    let close = closing.clone();
    let thread = std::thread::Builder::new()
        .name("ringgate-log".into())
        .spawn(move || {
            loop {
                let wait = if close.load(Ordering::Relaxed) {
                    Duration::ZERO
                } else {
                    Duration::from_millis(100)
                };
                let batch = match rx.recv_timeout(wait) {
                    Ok(b) => Some(b),
                    // Closing and nothing left: done.
                    Err(flume::RecvTimeoutError::Timeout) if close.load(Ordering::Relaxed) => break,
                    Err(flume::RecvTimeoutError::Timeout) => None,
                    Err(flume::RecvTimeoutError::Disconnected) => break,
                };
                if sink.reopen.swap(false, Ordering::Relaxed) {
                    match open(sink.path.as_ref()) {
                        Ok(f) => out = f,
                        Err(e) => tracing::warn!(error = %e, "cannot reopen the access log; still writing the old file"),
                    }
                }
                let Some(mut batch) = batch else { continue };
                match out.write_all(&batch.bytes) {
                    Ok(()) => {
                        counts.log_lines_written.fetch_add(batch.lines, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counts.log_lines_dropped.fetch_add(batch.lines, Ordering::Relaxed);
                        tracing::warn!(error = %e, "access log write failed");
                    }
                }
                batch.bytes.clear();
                let _ = spare_tx.try_send(batch.bytes);
            }
            let _ = out.flush();
        })?;
    Ok((
        Arc::new(LogShared {
            tx,
            spare: spare_rx,
            format,
            metrics,
        }),
        reopen,
        Writer { thread, closing },
    ))
}

enum Out {
    Stdout(io::Stdout),
    File(File),
}

impl Write for Out {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Out::Stdout(s) => s.write(b),
            Out::File(f) => f.write(b),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Stdout(s) => s.flush(),
            Out::File(f) => f.flush(),
        }
    }
}

fn open(path: Option<&PathBuf>) -> io::Result<Out> {
    match path {
        None => Ok(Out::Stdout(io::stdout())),
        Some(p) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map(Out::File)
            .map_err(|e| io::Error::new(e.kind(), format!("access log {}: {e}", p.display()))),
    }
}

/// What all workers share: the channel to the writer and the format.
pub struct LogShared {
    tx: flume::Sender<Batch>,
    spare: flume::Receiver<Vec<u8>>,
    format: Format,
    metrics: Arc<Registry>,
}

/// A worker's side of the access log.
pub struct AccessLog {
    shared: Arc<LogShared>,
    buf: RefCell<Vec<u8>>,
    lines: Cell<u64>,
}

impl AccessLog {
    pub fn new(shared: Arc<LogShared>) -> AccessLog {
        AccessLog {
            shared,
            buf: RefCell::new(Vec::with_capacity(BATCH_BYTES + 1024)),
            lines: Cell::new(0),
        }
    }

    /// Formats `e` into this worker's buffer; hands the buffer over when it is full.
    pub fn record(&self, e: &Entry<'_>) {
        let full = {
            let mut buf = self.buf.borrow_mut();
            let _ = match self.shared.format {
                Format::Squid => squid(&mut buf, e),
                Format::Common => common(&mut buf, e),
                Format::Json => json(&mut buf, e),
            };
            buf.len() >= BATCH_BYTES
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.flush();
        }
    }

    /// Hands what is buffered to the writer, or drops it (counted) if the writer is behind.
    pub fn flush(&self) {
        if self.lines.get() == 0 {
            return;
        }
        let spare = self.shared.spare.try_recv().unwrap_or_default();
        let bytes = std::mem::replace(&mut *self.buf.borrow_mut(), spare);
        let lines = self.lines.replace(0);
        if let Err(flume::TrySendError::Full(mut b) | flume::TrySendError::Disconnected(mut b)) =
            self.shared.tx.try_send(Batch { bytes, lines })
        {
            self.shared
                .metrics
                .log_lines_dropped
                .fetch_add(b.lines, Ordering::Relaxed);
            // Keep the buffer: it is this worker's again.
            b.bytes.clear();
            let mut buf = self.buf.borrow_mut();
            if buf.capacity() < b.bytes.capacity() {
                *buf = b.bytes;
            }
        }
    }
}

/// Where a request-target's user info is, if it has any: the target before it and the rest from
/// its `@` on. Absolute URLs (`scheme://user:password@host/…`) and authorities (`user:pw@host:443`,
/// as a CONNECT may send) alike; an `@` in a path or query is not user info.
fn split_userinfo(target: &[u8]) -> Option<(&[u8], &[u8])> {
    // `://` counts only right after a scheme: `bob:pw@h/?u=http://x` is an authority with user
    // info, not a URL whose authority starts in its query.
    let start = match crate::http::target::scheme_len(target) {
        Some(scheme) => scheme + 3,
        // Origin-form (`/path`) and `*` have no authority.
        _ if matches!(target.first(), Some(b'/' | b'*') | None) => return None,
        _ => 0,
    };
    let authority_end = target[start..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(target.len(), |i| start + i);
    let at = target[start..authority_end]
        .iter()
        .rposition(|&b| b == b'@')?;
    Some((&target[..start], &target[start + at..]))
}

/// The target without its user info (`scheme://***@host/…`, `***@host:443`); others as they are.
/// Every access-log line goes through this, and so must every other log line that shows a target.
pub fn without_userinfo(target: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match split_userinfo(target) {
        None => target.into(),
        Some((before, after)) => [before, b"***", after].concat().into(),
    }
}

/// The target, safe for a space-separated line: user info masked, bytes outside visible ASCII
/// %-escaped. No allocation.
fn write_target(out: &mut Vec<u8>, target: &[u8]) {
    if target.is_empty() {
        out.push(b'-');
        return;
    }
    match split_userinfo(target) {
        None => write_escaped(out, target),
        Some((before, after)) => {
            write_escaped(out, before);
            out.extend_from_slice(b"***");
            write_escaped(out, after);
        }
    }
}

fn write_escaped(out: &mut Vec<u8>, text: &[u8]) {
    for &b in text.iter().take(4096) {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// A user name, safe for a space-separated line.
fn write_user(out: &mut Vec<u8>, user: Option<&str>) {
    match user {
        None | Some("") => out.push(b'-'),
        Some(u) => write_escaped(out, u.as_bytes()),
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Squid's native format: `time elapsed client code/status bytes method URL user hierarchy type`.
fn squid(out: &mut Vec<u8>, e: &Entry<'_>) -> io::Result<()> {
    let t = now();
    let code = match (e.status, e.method) {
        (200, "CONNECT") => "TCP_TUNNEL",
        (403 | 407, _) => "TCP_DENIED",
        (s, _) if s >= 400 && e.upstream.is_none() => "NONE_NONE",
        _ => "TCP_MISS",
    };
    write!(
        out,
        "{}.{:03} {:6} {} {code}/{:03} {} {} ",
        t.as_secs(),
        t.subsec_millis(),
        e.duration.as_millis(),
        e.client.ip(),
        e.status,
        e.bytes_down,
        e.method
    )?;
    write_target(out, e.target);
    out.push(b' ');
    write_user(out, e.user);
    match e.upstream {
        Some(u) => writeln!(out, " HIER_DIRECT/{} -", u.ip()),
        None => writeln!(out, " HIER_NONE/- -"),
    }
}

/// Common Log Format: `client - user [date] "method target HTTP/1.1" status bytes`.
fn common(out: &mut Vec<u8>, e: &Entry<'_>) -> io::Result<()> {
    let t = time::OffsetDateTime::from_unix_timestamp(now().as_secs() as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    write!(out, "{} - ", e.client.ip())?;
    write_user(out, e.user);
    write!(
        out,
        " [{:02}/{}/{}:{:02}:{:02}:{:02} +0000] \"{} ",
        t.day(),
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second(),
        e.method
    )?;
    write_target(out, e.target);
    writeln!(out, " HTTP/1.1\" {} {}", e.status, e.bytes_down)
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    client: String,
    listener: &'static str,
    user: Option<&'a str>,
    auth_scheme: Option<&'a str>,
    method: &'a str,
    target: std::borrow::Cow<'a, str>,
    status: u16,
    bytes_up: u64,
    bytes_down: u64,
    duration_ms: f64,
    upstream: Option<String>,
    termination: &'static str,
}

fn json(out: &mut Vec<u8>, e: &Entry<'_>) -> io::Result<()> {
    let t = time::OffsetDateTime::now_utc();
    let line = JsonLine {
        time: t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        client: e.client.to_string(),
        listener: e.listener.name(),
        user: e.user,
        auth_scheme: e.auth_scheme.map(|s| s.name()),
        method: e.method,
        target: match without_userinfo(e.target) {
            std::borrow::Cow::Borrowed(t) => String::from_utf8_lossy(t),
            std::borrow::Cow::Owned(t) => String::from_utf8_lossy(&t).into_owned().into(),
        },
        status: e.status,
        bytes_up: e.bytes_up,
        bytes_down: e.bytes_down,
        duration_ms: e.duration.as_secs_f64() * 1000.0,
        upstream: e.upstream.map(|u| u.to_string()),
        termination: e.end.name(),
    };
    serde_json::to_writer(&mut *out, &line).map_err(io::Error::other)?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(target: &'a [u8], user: Option<&'a str>) -> Entry<'a> {
        Entry {
            client: "10.0.0.7:40000".parse().unwrap(),
            listener: crate::observe::labels::ListenerKind::Tls,
            user,
            auth_scheme: user.map(|_| crate::observe::labels::Scheme::Digest),
            method: "CONNECT",
            target,
            status: 200,
            bytes_up: 10,
            bytes_down: 2048,
            duration: Duration::from_millis(1234),
            upstream: Some("93.184.216.34:443".parse().unwrap()),
            end: Termination::Closed,
        }
    }

    #[test]
    fn squid_line_has_its_ten_fields_and_no_injection() {
        let mut out = Vec::new();
        squid(&mut out, &entry(b"example.com:443", Some("alice"))).unwrap();
        let line = String::from_utf8(out).unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 10, "{line}");
        assert_eq!(
            &f[1..],
            [
                "1234",
                "10.0.0.7",
                "TCP_TUNNEL/200",
                "2048",
                "CONNECT",
                "example.com:443",
                "alice",
                "HIER_DIRECT/93.184.216.34",
                "-"
            ]
        );
        let mut out = Vec::new();
        squid(&mut out, &entry(b"a b\r\nforged 1 2", Some("x y"))).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line.lines().count(), 1);
        assert!(line.contains(" a%20b%0D%0Aforged%201%202 x%20y "), "{line}");
    }

    #[test]
    fn user_info_never_reaches_a_line() {
        for (target, want) in [
            (
                &b"http://alice:S3cret@intra.example/x?q=1"[..],
                &b"http://***@intra.example/x?q=1"[..],
            ),
            (b"http://a@b@host:8080", b"http://***@host:8080"),
            (
                b"http://host/path@not-userinfo",
                b"http://host/path@not-userinfo",
            ),
            (b"example.com:443", b"example.com:443"),
            (b"bob:pw@example.com:443", b"***@example.com:443"),
            (b"bob@[::1]:443", b"***@[::1]:443"),
            (b"/path@x", b"/path@x"),
            (b"*", b"*"),
            (b"", b""),
            (b"HTTP://u:p@h", b"HTTP://***@h"),
            (b"bob:pw@h/p?u=http://x", b"***@h/p?u=http://x"),
            (b"bob:pw@h:443", b"***@h:443"),
        ] {
            assert_eq!(&*without_userinfo(target), want);
            let mut line = Vec::new();
            write_target(&mut line, target);
            let mut escaped = Vec::new();
            write_escaped(&mut escaped, want);
            if want.is_empty() {
                escaped.push(b'-');
            }
            assert_eq!(line, escaped, "{}", String::from_utf8_lossy(target));
        }
    }

    #[test]
    fn common_and_json_lines() {
        let mut out = Vec::new();
        common(&mut out, &entry(b"example.com:443", None)).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("10.0.0.7 - - ["), "{line}");
        assert!(
            line.ends_with("] \"CONNECT example.com:443 HTTP/1.1\" 200 2048\n"),
            "{line}"
        );
        let mut out = Vec::new();
        json(&mut out, &entry(b"t\"x", Some("alice"))).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["user"], "alice");
        assert_eq!(v["auth_scheme"], "digest");
        assert_eq!(v["listener"], "tls");
        assert_eq!(v["target"], "t\"x");
        assert_eq!(v["bytes_down"], 2048);
        assert_eq!(v["termination"], "closed");
        assert_eq!(v["upstream"], "93.184.216.34:443");
    }
}
