//! ringgate's load generator. Scenarios: `throughput` — bytes pushed through one CONNECT tunnel into
//! a built-in sink, against the same sink directly; `tunnels` and `challenges` (see `requests.rs`).
//! Targets are measured interleaved round by round so every target sees the same machine
//! conditions. Every byte and status is checked; a wrong one is an error, shown and counted, never a
//! figure.
//!
//! Bounded: a fixed number of rounds of a fixed number of bytes, each with a timeout.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod idle;
mod latency;
mod requests;

#[derive(Parser)]
#[command(
    name = "loadtest",
    about = "Load generator for ringgate and other forward proxies"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// One tunnel at a time pushes --bytes to a sink; GB/s per target, direct connection included.
    Throughput {
        /// A proxy to measure, as NAME=HOST:PORT (repeatable).
        #[arg(long = "proxy", value_name = "NAME=ADDR")]
        proxies: Vec<String>,
        /// Basic credentials sent on every CONNECT.
        #[arg(long, value_name = "USER:PASSWORD")]
        proxy_user: Option<String>,
        /// Bytes per run.
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        /// Rounds; each round measures every target once (direct first).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// New connection + CONNECT + 16-byte echo + close per iteration; tunnels/s and latency.
    Tunnels {
        /// A proxy to measure, as NAME=HOST:PORT (repeatable).
        #[arg(long = "proxy", value_name = "NAME=ADDR")]
        proxies: Vec<String>,
        /// Basic credentials sent on every CONNECT.
        #[arg(long, value_name = "USER:PASSWORD")]
        proxy_user: Option<String>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Tunnels per client per round.
        #[arg(long, default_value_t = 2000)]
        tunnels: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Small GETs on kept-alive connections through each proxy and directly; requests/s, latency.
    Forward {
        /// A proxy to measure, as NAME=HOST:PORT (repeatable).
        #[arg(long = "proxy", value_name = "NAME=ADDR")]
        proxies: Vec<String>,
        /// Basic credentials sent on every request.
        #[arg(long, value_name = "USER:PASSWORD")]
        proxy_user: Option<String>,
        /// Concurrent kept-alive clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Requests per client per round.
        #[arg(long, default_value_t = 20000)]
        requests: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Ping-pong (64 bytes) through one tunnel per proxy and directly; µs percentiles.
    Latency {
        /// A proxy to measure, as NAME=HOST:PORT (repeatable).
        #[arg(long = "proxy", value_name = "NAME=ADDR")]
        proxies: Vec<String>,
        /// Basic credentials sent on the CONNECT.
        #[arg(long, value_name = "USER:PASSWORD")]
        proxy_user: Option<String>,
        /// Round trips per target per round.
        #[arg(long, default_value_t = 10000)]
        pings: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// K authenticated tunnels left idle: the proxy's RSS and threads per tunnel, then each proven.
    Idle {
        /// The proxy, HOST:PORT.
        #[arg(long)]
        proxy: SocketAddr,
        /// The proxy's process id (its /proc/PID is read).
        #[arg(long)]
        pid: u32,
        /// Basic credentials sent on every CONNECT.
        #[arg(long, value_name = "USER:PASSWORD")]
        proxy_user: Option<String>,
        /// Tunnels to open (this process holds two fds per tunnel).
        #[arg(long, default_value_t = 9000)]
        tunnels: usize,
    },
    /// Requests without credentials on kept-alive connections; 407s/s and latency.
    Challenges {
        /// A proxy to measure, as NAME=HOST:PORT (repeatable).
        #[arg(long = "proxy", value_name = "NAME=ADDR")]
        proxies: Vec<String>,
        /// Concurrent kept-alive clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Requests per client per round.
        #[arg(long, default_value_t = 20000)]
        requests: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

fn parse_targets(proxies: &[String]) -> Result<Vec<requests::Target>, String> {
    proxies
        .iter()
        .map(|p| {
            let (name, addr) = p
                .split_once('=')
                .ok_or(format!("--proxy {p}: expected NAME=ADDR"))?;
            let addr = addr
                .parse()
                .map_err(|_| format!("--proxy {p}: bad address"))?;
            Ok((name.to_owned(), Some(addr)))
        })
        .collect()
}

/// The sink's check block: the sender repeats it, the sink compares every byte with it.
const BLOCK: usize = 64 * 1024;

fn block() -> Vec<u8> {
    (0..BLOCK)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// Accepts connections; each starts with the count of bytes to come (8 bytes, big-endian), which
/// are read and checked against the block; then the sink answers with the count of good bytes (8
/// bytes, big-endian) or u64::MAX on the first bad byte. No half-close is needed (squid and
/// tinyproxy close both ways when the client half-closes a tunnel).
fn start_sink() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            thread::spawn(move || sink(conn));
        }
    });
    Ok(addr)
}

fn sink(mut conn: TcpStream) {
    let pattern = block();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos: u64 = 0;
    let mut good = true;
    let mut len = [0u8; 8];
    if conn.read_exact(&mut len).is_err() {
        return;
    }
    let want = u64::from_be_bytes(len);
    while pos < want {
        let room = buf
            .len()
            .min(usize::try_from(want - pos).unwrap_or(usize::MAX));
        let n = match conn.read(&mut buf[..room]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if good {
            let mut off = 0;
            while off < n {
                let at = (pos as usize + off) % BLOCK;
                let take = (BLOCK - at).min(n - off);
                good &= buf[off..off + take] == pattern[at..at + take];
                off += take;
            }
        }
        pos += n as u64;
    }
    let answer = if good { pos } else { u64::MAX };
    let _ = conn.write_all(&answer.to_be_bytes());
}

/// One run: connect (through `proxy` if given), push `bytes`, wait for the sink's verdict.
fn push(
    sink: SocketAddr,
    proxy: Option<SocketAddr>,
    credentials: &str,
    bytes: u64,
) -> Result<Duration, String> {
    let mut s = TcpStream::connect(proxy.unwrap_or(sink)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    if proxy.is_some() {
        requests::open_tunnel(&mut s, sink, credentials)?;
    }
    let pattern = block();
    let chunk: Vec<u8> = pattern.iter().cycle().take(16 * BLOCK).copied().collect();
    let started = Instant::now();
    s.write_all(&bytes.to_be_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).map_err(|e| format!("send: {e}"))?;
        sent += n as u64;
    }
    let mut verdict = [0u8; 8];
    s.read_exact(&mut verdict)
        .map_err(|e| format!("no verdict from sink: {e}"))?;
    let elapsed = started.elapsed();
    match u64::from_be_bytes(verdict) {
        u64::MAX => Err("sink saw a wrong byte".into()),
        n if n != bytes => Err(format!("sink got {n} bytes of {bytes}")),
        _ => Ok(elapsed),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn throughput(
    proxies: &[String],
    proxy_user: Option<&str>,
    bytes: u64,
    rounds: usize,
) -> Result<(), String> {
    let credentials = requests::credentials_header(proxy_user);
    let sink = start_sink().map_err(|e| format!("sink: {e}"))?;
    let mut targets: Vec<(String, Option<SocketAddr>)> = vec![("direct".into(), None)];
    targets.extend(parse_targets(proxies)?);
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut errors = vec![0usize; targets.len()];
    for round in 0..rounds {
        for (i, (name, proxy)) in targets.iter().enumerate() {
            match push(sink, *proxy, &credentials, bytes) {
                Ok(t) => rates[i].push(bytes as f64 / t.as_secs_f64() / 1e9),
                Err(e) => {
                    errors[i] += 1;
                    eprintln!("round {round} {name}: {e}");
                }
            }
        }
    }
    let direct = median(&mut rates[0].clone());
    println!(
        "throughput: {rounds} rounds × {bytes} bytes, one tunnel, every byte checked by the sink"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "target", "median", "min", "max", "×direct", "errors"
    );
    let mut json = Vec::new();
    for (i, (name, _)) in targets.iter().enumerate() {
        let r = &mut rates[i];
        let med = median(r);
        let (min, max) = (
            r.first().copied().unwrap_or(f64::NAN),
            r.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "{name:<12} {med:>7.2} GB/s {min:>5.2} GB/s {max:>5.2} GB/s {:>9.2} {:>7}",
            med / direct,
            errors[i]
        );
        json.push(format!(
            "{{\"target\":\"{name}\",\"median_gbps\":{med:.3},\"min_gbps\":{min:.3},\"max_gbps\":{max:.3},\"ratio_direct\":{:.3},\"errors\":{}}}",
            med / direct,
            errors[i]
        ));
    }
    println!(
        "{{\"scenario\":\"throughput\",\"bytes\":{bytes},\"rounds\":{rounds},\"results\":[{}]}}",
        json.join(",")
    );
    if errors.iter().any(|&e| e > 0) {
        return Err("some runs failed".into());
    }
    Ok(())
}

/// This process's CPU time so far (user + system), from /proc/self/stat.
fn own_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

fn main() {
    let cli = Cli::parse();
    let (cpu_before, wall) = (own_cpu(), Instant::now());
    let result = match cli.scenario {
        Scenario::Throughput {
            proxies,
            proxy_user,
            bytes,
            rounds,
        } => throughput(&proxies, proxy_user.as_deref(), bytes, rounds),
        Scenario::Tunnels {
            proxies,
            proxy_user,
            clients,
            tunnels,
            rounds,
        } => parse_targets(&proxies)
            .and_then(|t| requests::tunnels(&t, proxy_user.as_deref(), clients, tunnels, rounds)),
        Scenario::Forward {
            proxies,
            proxy_user,
            clients,
            requests,
            rounds,
        } => parse_targets(&proxies)
            .and_then(|t| requests::forward(&t, proxy_user.as_deref(), clients, requests, rounds)),
        Scenario::Latency {
            proxies,
            proxy_user,
            pings,
            rounds,
        } => parse_targets(&proxies)
            .and_then(|t| latency::latency(&t, proxy_user.as_deref(), pings, rounds)),
        Scenario::Idle {
            proxy,
            pid,
            proxy_user,
            tunnels,
        } => idle::idle(proxy, pid, proxy_user.as_deref(), tunnels),
        Scenario::Challenges {
            proxies,
            clients,
            requests,
            rounds,
        } => parse_targets(&proxies)
            .and_then(|t| requests::challenges(&t, clients, requests, rounds)),
    };
    // So a reader can tell when the generator itself was the bottleneck.
    if let (Some(before), Some(after)) = (cpu_before, own_cpu()) {
        let (cpu, wall) = ((after - before).as_secs_f64(), wall.elapsed().as_secs_f64());
        println!(
            "loadtest's own CPU: {cpu:.1} s over {wall:.1} s ({:.0} % of one core; the machine has {} cores)",
            100.0 * cpu / wall,
            thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
    if let Err(e) = result {
        eprintln!("loadtest: {e}");
        std::process::exit(1);
    }
}
