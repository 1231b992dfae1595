//! Request-rate scenarios, each bounded by a fixed count per connection and a timeout per read:
//!
//! - `tunnels`: every iteration opens a new connection, CONNECTs (with Basic credentials when given)
//!   to the built-in echo server, echoes 16 bytes, closes. Tunnels/s and latency percentiles; the
//!   same echo without a proxy is the `direct` baseline.
//! - `challenges`: requests without credentials on kept-alive connections; every answer must be a
//!   complete 407. Answers/s and latency; a proxy that closes after a 407 is reconnected, counted.
//! - `forward`: small absolute-form GETs on kept-alive connections to the built-in keep-alive HTTP
//!   origin; requests/s and latency, the same GETs straight to the origin being the baseline.
//!
//! Client sockets are bound to several 127.0.0.x source addresses, because one address runs out of
//! ephemeral ports near 14k new connections/s; the echo origin listens on several ports for the
//! same reason on the proxy's side (see `origins`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use socket2::{Domain, Socket, Type};

use crate::digest::DigestClient;
use crate::ntlm::NtlmClient;
use crate::origins::HTTP_ANSWER;

/// A target: a name and, for a proxy, its address.
pub type Target = (String, Option<SocketAddr>);

const READ_TIMEOUT: Duration = Duration::from_secs(10);
const ECHO_BYTES: &[u8; 16] = b"ringgate-echo-16";

/// Connects from 127.0.0.`source`, so the ephemeral ports of several addresses share the load.
/// With `IP_BIND_ADDRESS_NO_PORT` the port is chosen at connect time, per destination; without
/// it, bind picks one unused towards every destination, and with tens of thousands of sockets
/// in TIME_WAIT that search stalls (seen: a tunnels round at 746/s, the generator at 1.7 cores).
pub fn connect_from(source: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let on: libc::c_int = 1;
    // SAFETY: the socket is open for the whole call; the option value is a c_int that outlives
    // the call, and its size is passed with it.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(&SocketAddr::from((Ipv4Addr::new(127, 0, 0, source), 0)).into())?;
    socket.connect(&to.into())?;
    let s: TcpStream = socket.into();
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(s)
}

/// Reads one response head and its Content-Length body; returns the status code. Reads in chunks:
/// one request is outstanding at a time, so nothing after the response can arrive early.
/// `tunnel`: the request was a CONNECT, whose 2xx has no body whatever its fields say.
pub fn read_response(s: &mut impl Read, buf: &mut Vec<u8>, tunnel: bool) -> Result<u16, String> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err("head too long".into());
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {}", e.kind())),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("no status line")?;
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let body_len = if tunnel && status == 200 { 0 } else { len };
    let mut have = buf.len() - head_end;
    while have < body_len {
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed in body".into()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                have += n;
            }
            Err(e) => return Err(format!("body: {}", e.kind())),
        }
    }
    if have != body_len {
        return Err("bytes after the response".into());
    }
    Ok(status)
}

/// Latency samples and errors of one target, over all rounds.
#[derive(Default)]
struct Tally {
    rates: Vec<f64>,
    micros: Vec<u32>,
    errors: std::collections::BTreeMap<String, u64>,
    extra: u64,
}

impl Tally {
    /// Adds one batch's rate, latencies, errors and extra count.
    fn add(&mut self, (rate, micros, errors, extra): (f64, Vec<u32>, Vec<String>, u64)) {
        self.rates.push(rate);
        self.micros.extend(micros);
        self.extra += extra;
        for e in errors {
            *self.errors.entry(e).or_default() += 1;
        }
    }
}

/// The client's kept-alive connection, opened (from 127.0.0.`10 + t % 16`) when there is none.
fn kept_alive(
    slot: &mut Option<TcpStream>,
    t: usize,
    to: SocketAddr,
) -> Result<&mut TcpStream, String> {
    if slot.is_none() {
        *slot = Some(
            connect_from(10 + (t % 16) as u8, to).map_err(|e| format!("connect: {}", e.kind()))?,
        );
    }
    slot.as_mut().ok_or_else(|| "no connection".to_owned())
}

pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One batch: `threads` clients, each running `per_thread` iterations of `one`. Returns the rate,
/// the latency samples and the errors.
fn batch<F>(threads: usize, per_thread: u64, one: F) -> (f64, Vec<u32>, Vec<String>, u64)
where
    F: Fn(usize, &mut Vec<u8>, &mut Option<TcpStream>) -> Result<u64, String> + Sync,
{
    let started = Instant::now();
    let results: Vec<(Vec<u32>, Vec<String>, u64)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let one = &one;
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(1024);
                    // A kept-alive connection, for scenarios that keep one per client.
                    let mut conn = None;
                    let mut micros = Vec::with_capacity(per_thread as usize);
                    let mut errors = Vec::new();
                    let mut extra = 0;
                    for _ in 0..per_thread {
                        let t0 = Instant::now();
                        match one(t, &mut buf, &mut conn) {
                            Ok(x) => {
                                micros.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                                extra += x;
                            }
                            Err(e) => errors.push(e),
                        }
                    }
                    (micros, errors, extra)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut micros = Vec::new();
    let mut errors = Vec::new();
    let mut extra = 0;
    for (m, e, x) in results {
        micros.extend(m);
        errors.extend(e);
        extra += x;
    }
    (micros.len() as f64 / elapsed, micros, errors, extra)
}

fn report(
    scenario: &str,
    unit: &str,
    extra_name: &str,
    targets: &[Target],
    tallies: &mut [Tally],
    conditions: &str,
) {
    println!("{scenario}: {conditions}");
    println!(
        "{:<12} {:>11} {:>11} {:>11} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8}",
        "target",
        "median",
        "min",
        "max",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "×first",
        "errors",
        extra_name
    );
    let first = median(&tallies[0].rates);
    let mut json = Vec::new();
    for ((name, _), t) in targets.iter().zip(tallies.iter_mut()) {
        t.micros.sort_unstable();
        let med = median(&t.rates);
        let min = t.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = t.rates.iter().copied().fold(0.0, f64::max);
        let (p50, p99, p999) = (
            percentile(&t.micros, 0.5),
            percentile(&t.micros, 0.99),
            percentile(&t.micros, 0.999),
        );
        let errors: u64 = t.errors.values().sum();
        println!(
            "{name:<12} {med:>7.0} {unit} {min:>7.0} {unit} {max:>7.0} {unit} {p50:>8.0} {p99:>8.0} {p999:>8.0} {:>9.2} {errors:>7} {:>8}",
            med / first,
            t.extra
        );
        for (kind, n) in &t.errors {
            println!("    {n} × {kind}");
        }
        json.push(format!(
            "{{\"target\":\"{name}\",\"median_per_s\":{med:.0},\"min_per_s\":{min:.0},\"max_per_s\":{max:.0},\"p50_us\":{p50},\"p99_us\":{p99},\"p999_us\":{p999},\"ratio_first\":{:.3},\"errors\":{errors},\"{extra_name}\":{}}}",
            med / first,
            t.extra
        ));
    }
    println!(
        "{{\"scenario\":\"{scenario}\",\"conditions\":\"{conditions}\",\"results\":[{}]}}",
        json.join(",")
    );
}

/// Sends `CONNECT target` (with `credentials`, a header line or nothing) on `s` and reads the
/// answer's head; anything but a 200 is an error that quotes it.
pub fn open_tunnel(
    s: &mut (impl Read + Write),
    target: SocketAddr,
    credentials: &str,
) -> Result<(), String> {
    write!(
        s,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{credentials}\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return Err("proxy closed during CONNECT".into()),
        }
    }
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Err(format!(
            "CONNECT refused: {}",
            String::from_utf8_lossy(&head).trim()
        ));
    }
    Ok(())
}

pub fn credentials_header(user: Option<&str>) -> String {
    user.map_or(String::new(), |u| {
        let token = base64::engine::general_purpose::STANDARD.encode(u);
        format!("Proxy-Authorization: Basic {token}\r\n")
    })
}

/// CONNECTs to `echo` on `s` answering Digest: learns a nonce from a 407 when the client has none
/// (or when the proxy calls it stale) and retries, reconnecting when the proxy closed. Returns the
/// connection the tunnel is open on and how many 407s it took.
fn digest_tunnel(
    mut s: TcpStream,
    reopen: impl Fn() -> Result<TcpStream, String>,
    echo: SocketAddr,
    client: &mut DigestClient,
    buf: &mut Vec<u8>,
) -> Result<(TcpStream, u64), String> {
    let uri = echo.to_string();
    let mut challenged = 0;
    for _ in 0..3 {
        let credentials = if client.has_nonce() {
            client.header("CONNECT", &uri)?
        } else {
            String::new()
        };
        write!(
            s,
            "CONNECT {uri} HTTP/1.1\r\nHost: {uri}\r\n{credentials}\r\n"
        )
        .map_err(|e| format!("write: {}", e.kind()))?;
        match read_response(&mut s, buf, true)? {
            200 => return Ok((s, challenged)),
            407 => {
                challenged += 1;
                let head = String::from_utf8_lossy(buf).into_owned();
                if !client.learn(&head) {
                    return Err("407 without a Digest challenge".into());
                }
                if head.to_ascii_lowercase().contains("connection: close") {
                    s = reopen()?;
                }
            }
            code => return Err(format!("CONNECT answered {code}")),
        }
    }
    Err("CONNECT still 407 after three Digest answers".into())
}

/// CONNECTs to `echo` on `s` with a whole NTLM handshake: type 1, the 407's type 2, type 3, 200.
fn ntlm_tunnel(
    s: &mut TcpStream,
    echo: SocketAddr,
    client: &mut NtlmClient,
    buf: &mut Vec<u8>,
) -> Result<u64, String> {
    let uri = echo.to_string();
    write!(
        s,
        "CONNECT {uri} HTTP/1.1\r\nHost: {uri}\r\nProxy-Authorization: NTLM {}\r\n\r\n",
        crate::ntlm::NEGOTIATE
    )
    .map_err(|e| format!("write: {}", e.kind()))?;
    match read_response(s, buf, true)? {
        407 => {}
        code => return Err(format!("NTLM type 1 answered {code}")),
    }
    let head = String::from_utf8_lossy(buf).into_owned();
    let answer = client.answer(&head).ok_or("407 without an NTLM type 2")?;
    write!(
        s,
        "CONNECT {uri} HTTP/1.1\r\nHost: {uri}\r\nProxy-Authorization: NTLM {answer}\r\n\r\n"
    )
    .map_err(|e| format!("write: {}", e.kind()))?;
    match read_response(s, buf, true)? {
        200 => Ok(1),
        code => Err(format!("NTLM type 3 answered {code}")),
    }
}

/// CONNECTs to `echo` on `s` with a fresh Negotiate token for `service`; a 407 (a proxy that
/// wants to challenge first) is answered once more with another token.
fn negotiate_tunnel(
    s: &mut TcpStream,
    echo: SocketAddr,
    service: &str,
    buf: &mut Vec<u8>,
) -> Result<u64, String> {
    let uri = echo.to_string();
    for challenged in 0..2 {
        let token = crate::negotiate::token(service)?;
        write!(
            s,
            "CONNECT {uri} HTTP/1.1\r\nHost: {uri}\r\nProxy-Authorization: Negotiate {token}\r\n\r\n"
        )
        .map_err(|e| format!("write: {}", e.kind()))?;
        match read_response(s, buf, true)? {
            200 => return Ok(challenged),
            407 if !String::from_utf8_lossy(buf)
                .to_ascii_lowercase()
                .contains("connection: close") => {}
            code => return Err(format!("Negotiate CONNECT answered {code}")),
        }
    }
    Err("Negotiate CONNECT still 407 after two tokens".into())
}

/// The targets (by name) answered with Digest, with NTLM, and with Negotiate, instead of Basic.
#[derive(Clone, Copy)]
pub struct Answered<'a> {
    pub digest: &'a [String],
    pub ntlm: &'a [String],
    pub negotiate: &'a [String],
    /// The service Negotiate tokens are for (`HTTP@localhost`).
    pub negotiate_service: &'a str,
    /// The targets reached over TLS (with Basic), and how.
    pub tls: &'a [String],
    pub tls_client: Option<&'a crate::tls::Tls>,
}

/// New connection, CONNECT, 16-byte echo, close — per iteration. Targets named in `digest`
/// answer Digest with `user`'s credentials (one nonce per client, reused with nc counting up, as
/// a long-running client does), the others send Basic.
pub fn tunnels(
    proxies: &[Target],
    echoes: &[SocketAddr],
    user: Option<&str>,
    answered: Answered<'_>,
    threads: usize,
    per_thread: u64,
    rounds: usize,
) -> Result<(), String> {
    let Answered {
        digest,
        ntlm,
        negotiate,
        negotiate_service,
        tls,
        tls_client,
    } = answered;
    for name in tls {
        if digest.contains(name) || ntlm.contains(name) || negotiate.contains(name) {
            return Err(format!("--tls {name}: Basic only"));
        }
        if !proxies.iter().any(|(n, _)| n == name) {
            return Err(format!("--tls {name}: no such --proxy"));
        }
    }
    if !(digest.is_empty() && ntlm.is_empty()) && user.is_none() {
        return Err("--digest and --ntlm need --proxy-user".into());
    }
    for name in digest.iter().chain(ntlm).chain(negotiate) {
        if !proxies.iter().any(|(n, _)| n == name) {
            return Err(format!(
                "--digest/--ntlm/--negotiate {name}: no such --proxy"
            ));
        }
    }
    // Per target and client thread, kept across rounds. Each lock is only ever taken by its own
    // client thread (the generator is not worker code).
    #[allow(clippy::disallowed_types)]
    let clients: Vec<Vec<std::sync::Mutex<DigestClient>>> = proxies
        .iter()
        .map(|_| {
            (0..threads)
                .map(|t| std::sync::Mutex::new(DigestClient::new(user.unwrap_or(""), t as u64)))
                .collect()
        })
        .collect();
    let mut targets: Vec<Target> = vec![("direct".into(), None)];
    targets.extend(proxies.iter().cloned());
    let requests: Vec<String> = echoes
        .iter()
        .map(|echo| {
            format!(
                "CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{}\r\n",
                credentials_header(user)
            )
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut tallies: Vec<Tally> = targets.iter().map(|_| Tally::default()).collect();
    for _ in 0..rounds {
        for (i, ((name, proxy), tally)) in targets.iter().zip(tallies.iter_mut()).enumerate() {
            let digest_clients = digest.contains(name).then(|| &clients[i - 1]);
            let ntlm_here = ntlm.contains(name);
            let negotiate_here = negotiate.contains(name);
            let tls_here = tls_client.filter(|_| tls.contains(name));
            let one = |t: usize, buf: &mut Vec<u8>, _: &mut Option<TcpStream>| {
                let source = 10 + (t % 16) as u8;
                let e = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % echoes.len();
                let open = || {
                    connect_from(source, proxy.unwrap_or(echoes[e]))
                        .map_err(|e| format!("connect: {}", e.kind()))
                };
                let mut s = open()?;
                let mut challenged = 0;
                if let Some(client) = tls_here {
                    let mut t = client.wrap(s)?;
                    t.write_all(requests[e].as_bytes())
                        .map_err(|e| format!("write: {}", e.kind()))?;
                    match read_response(&mut t, buf, true)? {
                        200 => {}
                        code => return Err(format!("CONNECT answered {code}")),
                    }
                    t.write_all(ECHO_BYTES)
                        .map_err(|e| format!("write: {}", e.kind()))?;
                    let mut back = [0u8; 16];
                    t.read_exact(&mut back)
                        .map_err(|e| format!("echo: {}", e.kind()))?;
                    if &back != ECHO_BYTES {
                        return Err("wrong echo".into());
                    }
                    return Ok(0);
                }
                if negotiate_here {
                    challenged = negotiate_tunnel(&mut s, echoes[e], negotiate_service, buf)?;
                } else if ntlm_here {
                    let mut client = NtlmClient::new(user.unwrap_or(""));
                    challenged = ntlm_tunnel(&mut s, echoes[e], &mut client, buf)?;
                } else if let (Some(clients), Some(_)) = (digest_clients, proxy) {
                    let mut client = clients[t].lock().map_err(|_| "poisoned")?;
                    (s, challenged) = digest_tunnel(s, open, echoes[e], &mut client, buf)?;
                } else if proxy.is_some() {
                    s.write_all(requests[e].as_bytes())
                        .map_err(|e| format!("write: {}", e.kind()))?;
                    match read_response(&mut s, buf, true)? {
                        200 => {}
                        code => return Err(format!("CONNECT answered {code}")),
                    }
                }
                s.write_all(ECHO_BYTES)
                    .map_err(|e| format!("write: {}", e.kind()))?;
                let mut back = [0u8; 16];
                s.read_exact(&mut back)
                    .map_err(|e| format!("echo: {}", e.kind()))?;
                if &back != ECHO_BYTES {
                    return Err("wrong echo".into());
                }
                Ok(challenged)
            };
            tally.add(batch(threads, per_thread, one));
        }
    }
    let conditions = format!(
        "{rounds} rounds × {threads} clients × {per_thread} tunnels, 16-byte echo each{}{}",
        if user.is_some() {
            ", Basic credentials"
        } else {
            ""
        },
        if digest.is_empty() {
            String::new()
        } else {
            format!(
                " (Digest for {}: a nonce per client, reused)",
                digest.join(", ")
            )
        },
    ) + &if ntlm.is_empty() {
        String::new()
    } else {
        format!(
            " (NTLM for {}: a whole handshake per tunnel)",
            ntlm.join(", ")
        )
    } + &if tls.is_empty() {
        String::new()
    } else {
        format!(" (TLS to {}: a full handshake per tunnel)", tls.join(", "))
    } + &if negotiate.is_empty() {
        String::new()
    } else {
        format!(
            " (Negotiate for {}: a fresh Kerberos token per tunnel)",
            negotiate.join(", ")
        )
    };
    report("tunnels", "/s", "407s", &targets, &mut tallies, &conditions);
    check(&tallies)
}

/// Requests without credentials (or with `user`'s, which must be wrong) on kept-alive
/// connections; each answer must be a 407.
pub fn challenges(
    proxies: &[Target],
    user: Option<&str>,
    threads: usize,
    per_thread: u64,
    rounds: usize,
) -> Result<(), String> {
    if proxies.is_empty() {
        return Err("challenges needs at least one --proxy".into());
    }
    let targets: Vec<Target> = proxies.to_vec();
    let request = format!(
        "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n{}\r\n",
        credentials_header(user)
    );
    let mut tallies: Vec<Tally> = targets.iter().map(|_| Tally::default()).collect();
    for _ in 0..rounds {
        for ((_, proxy), tally) in targets.iter().zip(tallies.iter_mut()) {
            let addr = proxy.ok_or("a challenge target needs an address")?;
            // One kept-alive connection per client thread, reopened if the proxy closes it.
            let one = |t: usize, buf: &mut Vec<u8>, slot: &mut Option<TcpStream>| {
                let mut reconnects = 0;
                let s = kept_alive(slot, t, addr)?;
                s.write_all(request.as_bytes())
                    .map_err(|e| format!("write: {}", e.kind()))?;
                let code = read_response(s, buf, true);
                let closes = buf
                    .windows(17)
                    .any(|w| w.eq_ignore_ascii_case(b"connection: close"));
                if closes || code.is_err() {
                    *slot = None;
                    reconnects = 1;
                }
                match code? {
                    407 => Ok(reconnects),
                    other => Err(format!("answered {other}")),
                }
            };
            tally.add(batch(threads, per_thread, one));
        }
    }
    let conditions = format!(
        "{rounds} rounds × {threads} kept-alive clients × {per_thread} requests {}",
        if user.is_some() {
            "with a wrong password"
        } else {
            "without credentials"
        }
    );
    report(
        "challenges",
        "/s",
        "reconnects",
        &targets,
        &mut tallies,
        &conditions,
    );
    check(&tallies)
}

/// Small GETs on kept-alive connections, through each proxy and straight to the origin.
pub fn forward(
    proxies: &[Target],
    origin: SocketAddr,
    user: Option<&str>,
    threads: usize,
    per_thread: u64,
    rounds: usize,
) -> Result<(), String> {
    let mut targets: Vec<Target> = vec![("direct".into(), None)];
    targets.extend(proxies.iter().cloned());
    let via_proxy = format!(
        "GET http://{origin}/small HTTP/1.1\r\nHost: {origin}\r\n{}\r\n",
        credentials_header(user)
    );
    let direct = format!("GET /small HTTP/1.1\r\nHost: {origin}\r\n\r\n");
    let mut tallies: Vec<Tally> = targets.iter().map(|_| Tally::default()).collect();
    for _ in 0..rounds {
        for ((_, proxy), tally) in targets.iter().zip(tallies.iter_mut()) {
            let request = if proxy.is_some() { &via_proxy } else { &direct };
            let one = |t: usize, buf: &mut Vec<u8>, slot: &mut Option<TcpStream>| {
                let mut reconnects = 0;
                let s = kept_alive(slot, t, proxy.unwrap_or(origin))?;
                s.write_all(request.as_bytes())
                    .map_err(|e| format!("write: {}", e.kind()))?;
                let code = read_response(s, buf, false);
                if code.is_err() {
                    *slot = None;
                    reconnects = 1;
                }
                match code? {
                    200 if buf.ends_with(&HTTP_ANSWER[HTTP_ANSWER.len() - 6..]) => Ok(reconnects),
                    200 => Err("wrong body".into()),
                    other => Err(format!("answered {other}")),
                }
            };
            tally.add(batch(threads, per_thread, one));
        }
    }
    let conditions = format!(
        "{rounds} rounds × {threads} kept-alive clients × {per_thread} small GETs{}",
        if user.is_some() {
            ", Basic credentials"
        } else {
            ""
        }
    );
    report(
        "forward",
        "/s",
        "reconnects",
        &targets,
        &mut tallies,
        &conditions,
    );
    check(&tallies)
}

fn check(tallies: &[Tally]) -> Result<(), String> {
    if tallies.iter().any(|t| !t.errors.is_empty()) {
        Err("some iterations failed (see the error lines)".into())
    } else {
        Ok(())
    }
}
