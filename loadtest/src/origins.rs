//! The built-in origins every scenario talks to, in this process or in another one started with
//! `loadtest serve` (so the generator's fds, threads and CPU are apart from the origins'):
//!
//! - `echo`: [`ECHO_PORTS`] ports, a thread per connection, echoes until EOF (`tunnels`, `latency`).
//!   Several ports, because the proxy dials it from one address, and each closed upstream
//!   connection holds its port in TIME_WAIT for 60 s per destination (measured: with one echo port,
//!   80k TIME_WAIT sockets after three short runs and tunnels/s falling by a third).
//! - `stream`: sink and source for `throughput`. A connection starts with a mode byte and a count
//!   (8 bytes, big-endian). `P` (push): the client sends that many bytes of [`pattern`], the origin
//!   checks each and answers with the count of good bytes (u64::MAX on the first bad one). `G`
//!   (get): the origin sends that many bytes of the pattern, the client checks them. `B` (both):
//!   both at once, the origin's verdict after its bytes.
//! - `http`: keep-alive HTTP/1.1 origin answering every request head with [`HTTP_ANSWER`].
//! - `hold`: accepts any number of connections and echoes what arrives, from one thread waiting in
//!   `poll(2)`: no thread per connection, no CPU while the connections are idle (`idle`).
//!
//! `loadtest serve` prints the addresses as one line (`echo=…;stream=…;http=…;hold=…`), which the
//! scenarios take with `--origins`.

#![allow(
    clippy::disallowed_methods,
    reason = "a client tool on plain threads: sleeping here parks no proxy worker"
)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

/// Ports the echo origin listens on (see the module note on TIME_WAIT).
pub const ECHO_PORTS: usize = 16;

/// The HTTP origin's one answer.
pub const HTTP_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Length of the repeating pattern the stream origin sends and checks.
pub const BLOCK: usize = 64 * 1024;

/// The stream origin's repeating pattern.
pub fn pattern() -> Vec<u8> {
    (0..BLOCK)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// Where the origins listen.
#[derive(Clone, Debug)]
pub struct Origins {
    pub echo: Vec<SocketAddr>,
    pub stream: SocketAddr,
    pub http: SocketAddr,
    pub hold: SocketAddr,
}

impl Origins {
    /// Starts every origin in this process, on ephemeral ports of 127.0.0.1.
    pub fn start() -> io::Result<Origins> {
        Ok(Origins {
            echo: (0..ECHO_PORTS)
                .map(|_| listen(echo))
                .collect::<io::Result<_>>()?,
            stream: listen(stream)?,
            http: listen(http)?,
            hold: start_hold()?,
        })
    }

    /// Reads the line `loadtest serve` prints.
    pub fn parse(line: &str) -> Result<Origins, String> {
        let mut echo = Vec::new();
        let (mut stream, mut http, mut hold) = (None, None, None);
        for part in line.trim().split(';') {
            let (name, addrs) = part
                .split_once('=')
                .ok_or(format!("--origins: expected NAME=ADDR, got {part:?}"))?;
            let mut addrs = addrs.split(',').map(|a| {
                a.parse::<SocketAddr>()
                    .map_err(|_| format!("--origins {name}: bad address {a:?}"))
            });
            match name {
                "echo" => echo = addrs.collect::<Result<_, _>>()?,
                "stream" => stream = addrs.next().transpose()?,
                "http" => http = addrs.next().transpose()?,
                "hold" => hold = addrs.next().transpose()?,
                _ => return Err(format!("--origins: unknown origin {name:?}")),
            }
        }
        let missing = |n: &str| format!("--origins: no {n}= address");
        if echo.is_empty() {
            return Err(missing("echo"));
        }
        Ok(Origins {
            echo,
            stream: stream.ok_or_else(|| missing("stream"))?,
            http: http.ok_or_else(|| missing("http"))?,
            hold: hold.ok_or_else(|| missing("hold"))?,
        })
    }

    /// The line [`Origins::parse`] reads.
    pub fn line(&self) -> String {
        let echo: Vec<String> = self.echo.iter().map(ToString::to_string).collect();
        format!(
            "echo={};stream={};http={};hold={}",
            echo.join(","),
            self.stream,
            self.http,
            self.hold
        )
    }
}

/// `loadtest serve`: the origins for `seconds`, then exit. The first line of output is the one
/// to pass as `--origins`.
pub fn serve(seconds: u64) -> Result<(), String> {
    // The holding origin keeps one fd per idle tunnel.
    crate::raise_fd_limit();
    let origins = Origins::start().map_err(|e| format!("origins: {e}"))?;
    println!("{}", origins.line());
    io::stdout().flush().map_err(|e| e.to_string())?;
    thread::sleep(Duration::from_secs(seconds));
    Ok(())
}

/// Listens on an ephemeral port and runs `each` on its own thread per accepted connection.
fn listen(each: fn(TcpStream)) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            thread::spawn(move || each(conn));
        }
    });
    Ok(addr)
}

fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if conn.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

fn http(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            if conn.write_all(HTTP_ANSWER).is_err() {
                return;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn stream(mut conn: TcpStream) {
    let mut head = [0u8; 9];
    if conn.read_exact(&mut head).is_err() {
        return;
    }
    let count = u64::from_be_bytes(head[1..].try_into().unwrap_or_default());
    let sender = match head[0] {
        b'P' => None,
        b'G' | b'B' => match conn.try_clone() {
            Ok(mut out) => Some(thread::spawn(move || send_pattern(&mut out, count).is_ok())),
            Err(_) => return,
        },
        _ => return,
    };
    let verdict = if head[0] == b'G' {
        None
    } else {
        Some(match check_pattern(&mut conn, count) {
            Ok(()) => count,
            Err(_) => u64::MAX,
        })
    };
    if let Some(sender) = sender
        && !sender.join().unwrap_or(false)
    {
        return;
    }
    if let Some(verdict) = verdict {
        let _ = conn.write_all(&verdict.to_be_bytes());
    }
}

/// Sends `count` bytes of the pattern.
pub fn send_pattern(out: &mut impl Write, count: u64) -> io::Result<()> {
    let pattern = pattern();
    let chunk: Vec<u8> = pattern.iter().cycle().take(16 * BLOCK).copied().collect();
    let mut sent = 0u64;
    while sent < count {
        let n = (count - sent).min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n])?;
        sent += n as u64;
    }
    Ok(())
}

/// Reads `count` bytes and checks each against the pattern.
pub fn check_pattern(conn: &mut impl Read, count: u64) -> io::Result<()> {
    let pattern = pattern();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos: u64 = 0;
    while pos < count {
        let room = buf
            .len()
            .min(usize::try_from(count - pos).unwrap_or(usize::MAX));
        let n = match conn.read(&mut buf[..room])? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => n,
        };
        let mut off = 0;
        while off < n {
            let at = (pos as usize + off) % BLOCK;
            let take = (BLOCK - at).min(n - off);
            if buf[off..off + take] != pattern[at..at + take] {
                return Err(io::Error::new(ErrorKind::InvalidData, "wrong byte"));
            }
            off += take;
        }
        pos += n as u64;
    }
    Ok(())
}

/// The holding origin: one thread, `poll(2)` over the listener and every connection.
fn start_hold() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    thread::spawn(move || hold(&listener));
    Ok(addr)
}

fn hold(listener: &TcpListener) {
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let watch = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    fds.push(watch(listener.as_raw_fd()));
    let mut buf = [0u8; 4096];
    let mut complained = false;
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd entries for
        // the whole call; the kernel writes only their `revents`.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if ready < 0 {
            if io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let mut i = 1;
        while i < fds.len() {
            if fds[i].revents == 0 {
                i += 1;
                continue;
            }
            let conn = &mut conns[i - 1];
            let keep = match conn.read(&mut buf) {
                Ok(0) => false,
                // Blocking for the echo, so a full send buffer cannot cut it short.
                Ok(n) => {
                    conn.set_nonblocking(false).is_ok()
                        && conn.write_all(&buf[..n]).is_ok()
                        && conn.set_nonblocking(true).is_ok()
                }
                Err(e) => e.kind() == ErrorKind::WouldBlock,
            };
            if keep {
                fds[i].revents = 0;
                i += 1;
            } else {
                conns.swap_remove(i - 1);
                fds.swap_remove(i);
            }
        }
        if fds[0].revents != 0 {
            fds[0].revents = 0;
            loop {
                match listener.accept() {
                    Ok((conn, _)) => {
                        if conn.set_nonblocking(true).is_ok() {
                            fds.push(watch(conn.as_raw_fd()));
                            conns.push(conn);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // Out of fds (or another failure): the listener stays readable, so waiting
                    // in poll would spin; say so once and back off.
                    Err(e) => {
                        if !complained {
                            eprintln!("loadtest serve: hold origin cannot accept: {e}");
                            complained = true;
                        }
                        thread::sleep(Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
    }
}
