//! Shared test harness: the real `ringgate` binary on an ephemeral loopback port, test origins, and
//! helpers to open tunnels and read responses. Each test then reads as a few lines of behaviour.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The io drivers (`--io-driver`) a test that touches the runtime runs on: io_uring and epoll.
pub const DRIVERS: [&str; 2] = ["uring", "epoll"];

/// A running proxy; killed when dropped.
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Flags that let the tests reach their origins on loopback, on any port (the safe defaults deny
/// loopback destinations, and CONNECT to ports other than 443).
pub const LOOPBACK_ORIGINS: [&str; 6] = [
    "--allow-dest",
    "127.0.0.0/8",
    "--allow-dest",
    "::1",
    "--connect-ports",
    "any",
];

impl Proxy {
    /// Starts ringgate with `args` on 127.0.0.1:0, loopback origins allowed, and waits until it
    /// listens.
    pub fn start(args: &[&str]) -> Proxy {
        Proxy::start_strict(&[&LOOPBACK_ORIGINS[..], args].concat())
    }

    /// Starts ringgate (loopback origins allowed) with `env` added to its environment.
    pub fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Proxy {
        Proxy::start_under(&[], env, args)
    }

    /// [`Proxy::start_with_env`], run by the command line `wrapper` (`faketime -f +2d`), which
    /// gets the binary and its arguments after its own.
    pub fn start_under(wrapper: &[&str], env: &[(&str, &str)], args: &[&str]) -> Proxy {
        let bin = env!("CARGO_BIN_EXE_ringgate");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        command.envs(env.iter().copied());
        Proxy::spawn(command, &[&LOOPBACK_ORIGINS[..], args].concat())
    }

    /// Starts ringgate with `args` and the built-in policy defaults.
    pub fn start_strict(args: &[&str]) -> Proxy {
        Proxy::spawn(Command::new(env!("CARGO_BIN_EXE_ringgate")), args)
    }

    /// Starts ringgate (loopback origins allowed) under a limit of `fds` open files.
    pub fn start_with_fd_limit(fds: u32, args: &[&str]) -> Proxy {
        let mut shell = Command::new("sh");
        shell.args([
            "-c",
            &format!("ulimit -n {fds} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_ringgate"),
        ]);
        Proxy::spawn(shell, &[&LOOPBACK_ORIGINS[..], args].concat())
    }

    /// Starts ringgate (loopback origins allowed) in a mount namespace of its own where `conf` is
    /// mounted over /etc/resolv.conf, so the system resolver asks only the servers `conf` names.
    /// If the mount fails, ringgate is not started (and this panics).
    pub fn start_with_private_resolv_conf(conf: &str, args: &[&str]) -> Proxy {
        let mut shell = Command::new("unshare");
        shell.args([
            "-m",
            "sh",
            "-c",
            &format!("mount --bind '{conf}' /etc/resolv.conf && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_ringgate"),
        ]);
        Proxy::spawn(shell, &[&LOOPBACK_ORIGINS[..], args].concat())
    }

    fn spawn(mut command: Command, args: &[&str]) -> Proxy {
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--log-level", "debug"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringgate");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let addr = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned);
                // Logged before the start is announced, so a test reading the log right after
                // `start` sees the line.
                sink.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("ringgate did not start: {:?}", log.lock().unwrap()));
        Proxy {
            child,
            addr: addr.parse().unwrap(),
            log,
        }
    }

    /// An address the start-up line names in its field `field` (`tls=127.0.0.1:PORT`): where a
    /// listener bound to port 0 actually listens.
    pub fn listed(&self, field: &str) -> SocketAddr {
        let log = self.log.lock().unwrap();
        let line = log
            .iter()
            .find(|l| l.contains("listening on "))
            .expect("the start-up line");
        let prefix = format!(" {field}=");
        let at = line
            .find(&prefix)
            .unwrap_or_else(|| panic!("{field} in {line}"));
        let value = line[at + prefix.len()..].split_whitespace().next().unwrap();
        value.parse().unwrap_or_else(|_| panic!("{field}={value}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the proxy process.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Thread names of the proxy process.
    pub fn threads(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|s| s.trim().to_owned())
            .collect()
    }

    /// Waits until the fd count is back to `baseline` (closes are asynchronous on io_uring).
    pub fn assert_fds_return_to(&self, baseline: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.fds() > baseline && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(self.fds(), baseline, "proxy leaked file descriptors");
    }

    /// Waits (up to 10 s) for a log line containing `needle`; the log is written asynchronously.
    pub fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until the fd count is at most `baseline + slack` (pooled pipes are the slack).
    pub fn assert_fds_settle(&self, baseline: usize, slack: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.fds() > baseline + slack && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        assert!(
            self.fds() <= baseline + slack,
            "proxy leaked file descriptors: {} > {baseline} + {slack}",
            self.fds()
        );
    }

    /// Waits (up to 10 s) until the proxy refuses new connections (its listeners closed, as when
    /// draining); whether it does.
    pub fn wait_refusing(&self) -> bool {
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect(self.addr).is_err()
        })
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`HUP`, `TERM`…).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not exit in {within:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An echo server: every connection gets its bytes back; EOF is answered with EOF.
pub fn echo_server() -> SocketAddr {
    serve(|mut s| {
        let mut buf = vec![0; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// An HTTP origin answering every request with `body` and closing.
pub fn http_origin(body: &'static str) -> SocketAddr {
    serve(move |mut s| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
            head.push(byte[0]);
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Origin: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes());
    })
}

/// Accepts forever on an ephemeral loopback port, one thread per connection.
pub fn serve(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            let h = handler.clone();
            thread::spawn(move || h(s));
        }
    });
    addr
}

/// A loopback port that was free a moment ago (nothing listens on it now).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    free_port()
}

/// What a counting origin does after answering a request.
#[derive(Clone, Copy)]
pub enum After {
    /// Closes the connection: one response per connection.
    Close,
    /// Reads the next request head on the same connection.
    KeepAlive,
}

/// An origin that counts what reaches it: connections, request heads, and connections it has
/// seen end (so a test can wait for every connection to be over before it reads the counts).
pub struct CountingOrigin {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl CountingOrigin {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Request heads read so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Every request head read so far, in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Waits (up to `within`) until the origin is quiet: every connection it accepted has ended
    /// and nothing new (connection or request) has come for `quiet`. `false` if a connection is
    /// still open at the deadline. Counts read after a `true` cannot grow from a connection the
    /// proxy had opened by then, and a late one had `quiet` to show up.
    pub fn wait_quiet(&self, quiet: Duration, within: Duration) -> bool {
        let snapshot = || (self.connections(), self.requests());
        let mut last = snapshot();
        let mut since = Instant::now();
        wait_until(within, || {
            let now = snapshot();
            if now != last {
                (last, since) = (now, Instant::now());
            }
            self.closed.load(Ordering::SeqCst) == now.0 && since.elapsed() >= quiet
        })
    }
}

/// A counting origin on an ephemeral loopback port answering each request head with a 200 and
/// `body`, then doing `after`.
pub fn counting_origin(body: &'static str, after: After) -> CountingOrigin {
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (c, r, d, h) = (
        connections.clone(),
        requests.clone(),
        closed.clone(),
        heads.clone(),
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let addr = serve(move |mut s| {
        c.fetch_add(1, Ordering::SeqCst);
        loop {
            let head = read_head(&mut s);
            if head.is_empty() {
                break;
            }
            r.fetch_add(1, Ordering::SeqCst);
            h.lock().unwrap().push(head);
            if s.write_all(response.as_bytes()).is_err() || matches!(after, After::Close) {
                break;
            }
        }
        drop(s);
        d.fetch_add(1, Ordering::SeqCst);
    });
    CountingOrigin {
        addr,
        connections,
        requests,
        closed,
        heads,
    }
}

/// Polls `condition` every 10 ms until it holds or `within` has passed; whether it held.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A client connection to the proxy, with a 30 s read timeout (a hung proxy fails the test).
pub fn open(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends `request` on `s` and reads one response: its status, head and body.
pub fn ask(s: &mut TcpStream, request: &(impl AsRef<[u8]> + ?Sized)) -> (u16, String, String) {
    s.write_all(request.as_ref()).unwrap();
    let (head, body) = read_response(s);
    (status(&head), head, body)
}

/// Runs curl quietly (`-s -S`, at most 120 s in all) with `args`.
pub fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-s", "-S", "--max-time", "120"])
        .args(args)
        .output()
        .unwrap()
}

/// [`curl`]'s output and errors as text.
pub fn curl_text(args: &[&str]) -> (String, String) {
    let out = curl(args);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The embedded default config with `toml` laid over it, validated for this machine.
pub fn config(toml: &str) -> Arc<ringgate::config::Config> {
    layered_config(&[toml])
}

/// [`config`] with loopback origins on any port allowed (what [`LOOPBACK_ORIGINS`] does for the
/// binary).
pub fn loopback_config(toml: &str) -> Arc<ringgate::config::Config> {
    layered_config(&[
        toml,
        "allow_dest = [\"127.0.0.0/8\"]\nconnect_ports = [\"any\"]",
    ])
}

fn layered_config(layers: &[&str]) -> Arc<ringgate::config::Config> {
    use ringgate::config::{EMBEDDED_DEFAULT, Machine, RawConfig};
    let raw = layers.iter().fold(
        RawConfig::parse(EMBEDDED_DEFAULT, "embedded default").unwrap(),
        |raw, layer| raw.overlay(RawConfig::parse(layer, "test").unwrap()),
    );
    Arc::new(raw.validate(&Machine::probe()).unwrap())
}

/// Opens a CONNECT tunnel to `target` and checks the exact 200 answer.
pub fn tunnel(proxy: SocketAddr, target: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    let head = read_head(&mut s);
    assert_eq!(head, "HTTP/1.1 200 Connection established\r\n\r\n");
    s
}

/// Reads one response head byte by byte (so nothing after it is consumed).
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads one response: its head, then a body of its Content-Length (none without one).
pub fn read_response(s: &mut TcpStream) -> (String, String) {
    let head = read_head(s);
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// Whether the peer has closed: a read returns EOF (or a reset) within `within`.
pub fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    let closed = match s.read(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    closed
}

/// Runs a Python script (`python3 -c SCRIPT ARGS…`) with no proxy settings inherited from the
/// environment; asserts it succeeded and returns what it printed.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .args(args)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `argv` on a pseudo-terminal, typing each of `answers` at a prompt (output ending in `:`);
/// returns its exit status and everything it wrote. Programs that read passwords print their
/// prompt before turning echo off, and some (htdigest) discard what was typed before with
/// `TCSAFLUSH`: each answer waits until echo is off (a pty master reads the slave's flags), and
/// only a prompt written since the last answer is answered (the newline a reader echoes after a
/// hidden answer leaves the old prompt at the end of the output; typing then would lose the answer
/// to the `TCSAFLUSH` that restores echo). The program is killed after 30 s rather than waited for.
pub fn on_a_terminal(argv: &[&str], answers: &[&str]) -> (i32, String) {
    let script = "import os, pty, sys, termios, time, select\n\
                  answers = [a for a in sys.argv[1].split(',') if a]\n\
                  def quiet(fd):\n\
                  \x20   end = time.monotonic() + 10\n\
                  \x20   while termios.tcgetattr(fd)[3] & termios.ECHO and time.monotonic() < end: time.sleep(0.001)\n\
                  pid, fd = pty.fork()\n\
                  if pid == 0:\n    os.execvp(sys.argv[2], sys.argv[2:])\n\
                  out, seen = b'', 0\n\
                  end = time.monotonic() + 30\n\
                  while time.monotonic() < end:\n\
                  \x20   if not select.select([fd], [], [], 1)[0]: continue\n\
                  \x20   try: chunk = os.read(fd, 1024)\n\
                  \x20   except OSError: break\n\
                  \x20   if not chunk: break\n\
                  \x20   out += chunk\n\
                  \x20   if answers and out[seen:].strip().endswith(b':'):\n\
                  \x20       quiet(fd); os.write(fd, answers.pop(0).encode() + b'\\n'); seen = len(out)\n\
                  else:\n\
                  \x20   os.kill(pid, 9)\n\
                  _, status = os.waitpid(pid, 0)\n\
                  print(os.waitstatus_to_exitcode(status))\n\
                  sys.stdout.write(out.decode(errors='replace'))\n";
    let joined = answers.join(",");
    let out = python(script, &[&[joined.as_str()][..], argv].concat());
    let (code, text) = out.split_once('\n').unwrap_or((&out, ""));
    (code.trim().parse().unwrap(), text.to_owned())
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ringgate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sends raw bytes to the proxy and returns everything it answers until it closes.
pub fn exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends raw bytes to the proxy; the status and the trimmed body of what it answers until it closes.
pub fn exchange_body(proxy: SocketAddr, request: &str) -> (u16, String) {
    let resp = exchange(proxy, request.as_bytes());
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim()
        .to_owned();
    (status(&resp), body)
}

/// A connection to `to` from the loopback address `source` (e.g. "127.0.0.2").
pub fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// The `Proxy-Authorization` line (CRLF included) for Basic `user:password`.
pub fn credentials(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Proxy-Authorization: Basic {token}\r\n")
}

/// Status code of a raw response.
pub fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// The deterministic byte at stream position `pos` for stream `seed`.
#[inline]
pub fn pattern_byte(seed: u64, pos: u64) -> u8 {
    ((pos ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// Writes `len` pattern bytes of stream `seed`.
pub fn send_pattern(w: &mut impl Write, seed: u64, len: u64) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = 0;
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern_byte(seed, pos + i as u64);
        }
        w.write_all(&buf[..n]).unwrap();
        pos += n as u64;
    }
}

/// Reads to EOF, checking every byte against stream `seed`; returns the count.
pub fn check_pattern(r: &mut impl Read, seed: u64) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return pos;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            let want = pattern_byte(seed, pos + i as u64);
            assert_eq!(*b, want, "byte {} of stream {seed} differs", pos + i as u64);
        }
        pos += n as u64;
    }
}
