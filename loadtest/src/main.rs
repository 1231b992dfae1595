//! ringgate's load generator. Scenarios: `throughput` — bytes pushed through one CONNECT tunnel into
//! a built-in sink, against the same sink directly; `tunnels` and `challenges` (see `requests.rs`).
//! Targets are measured interleaved round by round so every target sees the same machine
//! conditions. Every byte and status is checked; a wrong one is an error, shown and counted, never a
//! figure.
//!
//! Bounded: a fixed number of rounds of a fixed number of bytes, each with a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod digest;
mod idle;
mod latency;
mod negotiate;
mod ntlm;
mod origins;
mod requests;
mod soak;
mod tls;

use origins::Origins;

#[derive(Parser)]
#[command(
    name = "loadtest",
    about = "Load generator for ringgate and other forward proxies"
)]
struct Cli {
    /// The origins of a `loadtest serve` running elsewhere (the line it printed); without it, the
    /// origins run in this process.
    #[arg(long, global = true, value_name = "LINE")]
    origins: Option<String>,
    /// A --proxy (by NAME) reached over TLS, https://NAME (repeatable; for `idle`, any name
    /// turns TLS on). Basic credentials only.
    #[arg(long = "tls", global = true, value_name = "NAME")]
    tls: Vec<String>,
    /// The CA certificate (PEM) the --tls proxies' certificates chain to.
    #[arg(long, global = true, value_name = "FILE")]
    proxy_cacert: Option<std::path::PathBuf>,
    /// The name asked for and checked in the --tls proxies' certificates.
    #[arg(long, global = true, value_name = "HOST", default_value = "localhost")]
    tls_name: String,
    #[command(subcommand)]
    scenario: Scenario,
}

/// A throughput run's shape.
#[derive(clap::Args, Clone, Copy)]
struct Run {
    /// Which way the bytes go.
    #[arg(long, value_enum, default_value = "push")]
    mode: Mode,
    /// Tunnels at once, each moving its share of --bytes.
    #[arg(long, default_value_t = 1)]
    tunnels: usize,
    /// Bytes per run (per direction; all tunnels together).
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Rounds; each round measures every target once (direct first).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

#[derive(Subcommand)]
enum Scenario {
    /// N tunnels push bytes to a sink, pull them from a source, or both; GB/s per target, the
    /// direct connection included.
    Throughput {
        /// A proxy to measure, as NAME=HOST:PORT (repeatable).
        #[arg(long = "proxy", value_name = "NAME=ADDR")]
        proxies: Vec<String>,
        /// Basic credentials sent on every CONNECT.
        #[arg(long, value_name = "USER:PASSWORD")]
        proxy_user: Option<String>,
        #[command(flatten)]
        run: Run,
    },
    /// The built-in origins (echo, stream, HTTP, hold) for --seconds; prints the --origins line.
    Serve {
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
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
        /// A --proxy (by NAME) that is sent Digest instead of Basic (repeatable).
        #[arg(long, value_name = "NAME")]
        digest: Vec<String>,
        /// A --proxy (by NAME) that is sent NTLM instead (a full handshake per tunnel: type 1,
        /// 407, type 3, 200; --proxy-user as DOMAIN\\user:password) (repeatable).
        #[arg(long, value_name = "NAME")]
        ntlm: Vec<String>,
        /// A --proxy (by NAME) that is sent Negotiate instead: a fresh Kerberos token per tunnel
        /// from KRB5CCNAME's credential cache (repeatable).
        #[arg(long, value_name = "NAME")]
        negotiate: Vec<String>,
        /// The host-based service the Negotiate tokens are for.
        #[arg(long, value_name = "SERVICE", default_value = "HTTP@localhost")]
        negotiate_service: String,
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
        /// Tunnels to open.
        #[arg(long, default_value_t = 9000)]
        tunnels: usize,
        /// Client processes holding the tunnels (0: as many as their fd limit needs).
        #[arg(long, default_value_t = 0)]
        processes: usize,
    },
    /// One of `idle`'s client processes (started by `idle`, driven over stdin/stdout).
    #[command(hide = true)]
    IdleClient {
        #[arg(long)]
        proxy: SocketAddr,
        #[arg(long)]
        hold: SocketAddr,
        #[arg(long, value_name = "USER:PASSWORD")]
        proxy_user: Option<String>,
        #[arg(long)]
        tunnels: usize,
        /// Index of this process's first tunnel among all (chooses source addresses).
        #[arg(long)]
        first: usize,
    },
    /// Mixed load for --seconds, every byte and status checked: verified tunnels, kept-alive
    /// forwarding, a 407 storm, misbehaving clients; the proxy's RSS and fds sampled meanwhile.
    /// Fails when anything was lost or unexpected.
    Soak {
        /// The proxy, HOST:PORT.
        #[arg(long)]
        proxy: SocketAddr,
        /// The proxy's process id (its /proc/PID is sampled).
        #[arg(long)]
        pid: u32,
        /// Valid Basic credentials.
        #[arg(long, value_name = "USER:PASSWORD")]
        proxy_user: String,
        /// Credentials the proxy must refuse (the 407 storm).
        #[arg(long, value_name = "USER:PASSWORD")]
        wrong_user: String,
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Seconds between samples of RSS and fds.
        #[arg(long, default_value_t = 5)]
        sample_secs: u64,
    },
    /// Requests without credentials (or with wrong ones) on kept-alive connections; 407s/s and
    /// latency.
    Challenges {
        /// A proxy to measure, as NAME=HOST:PORT (repeatable).
        #[arg(long = "proxy", value_name = "NAME=ADDR")]
        proxies: Vec<String>,
        /// Send these (wrong) credentials, USER:PASSWORD, with every request: a client with a
        /// stale saved password.
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

/// What a throughput run moves.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Client → origin (upload to a sink).
    Push,
    /// Origin → client (download from a source).
    Pull,
    /// Both at once; the bytes of both directions count.
    Both,
}

impl Mode {
    fn byte(self) -> u8 {
        match self {
            Mode::Push => b'P',
            Mode::Pull => b'G',
            Mode::Both => b'B',
        }
    }

    /// Bytes moved by a run of `count` bytes per direction.
    fn moved(self, count: u64) -> u64 {
        if self == Mode::Both { 2 * count } else { count }
    }
}

/// One tunnel's run: connect (through `proxy` if given), move `count` bytes per direction as
/// `mode` says, every byte checked (by the origin when pushed, here when pulled).
fn run_one(
    origin: SocketAddr,
    proxy: Option<SocketAddr>,
    credentials: &str,
    mode: Mode,
    count: u64,
    tls: Option<&tls::Tls>,
) -> Result<(), String> {
    let mut s = TcpStream::connect(proxy.unwrap_or(origin)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    if let Some(tls) = tls {
        return run_one_tls(tls.wrap(s)?, origin, credentials, mode, count);
    }
    if proxy.is_some() {
        requests::open_tunnel(&mut s, origin, credentials)?;
    }
    let mut head = [mode.byte(); 9];
    head[1..].copy_from_slice(&count.to_be_bytes());
    s.write_all(&head).map_err(|e| format!("send: {e}"))?;
    let sender = match mode {
        Mode::Pull => None,
        Mode::Push | Mode::Both => {
            let mut out = s.try_clone().map_err(|e| e.to_string())?;
            Some(thread::spawn(move || {
                origins::send_pattern(&mut out, count).map_err(|e| format!("send: {e}"))
            }))
        }
    };
    if mode != Mode::Push {
        origins::check_pattern(&mut s, count).map_err(|e| format!("receive: {e}"))?;
    }
    if let Some(sender) = sender {
        sender.join().map_err(|_| "sender panicked")??;
        let mut verdict = [0u8; 8];
        s.read_exact(&mut verdict)
            .map_err(|e| format!("no verdict from the origin: {e}"))?;
        match u64::from_be_bytes(verdict) {
            u64::MAX => return Err("the origin saw a wrong byte".into()),
            n if n != count => return Err(format!("the origin got {n} bytes of {count}")),
            _ => {}
        }
    }
    Ok(())
}

/// [`run_one`] through a TLS connection to the proxy: one stream, so one direction per run.
fn run_one_tls(
    mut s: tls::Stream,
    origin: SocketAddr,
    credentials: &str,
    mode: Mode,
    count: u64,
) -> Result<(), String> {
    requests::open_tunnel(&mut s, origin, credentials)?;
    let mut head = [mode.byte(); 9];
    head[1..].copy_from_slice(&count.to_be_bytes());
    s.write_all(&head).map_err(|e| format!("send: {e}"))?;
    match mode {
        Mode::Both => {
            Err("--mode both is not measured through --tls (one stream, one thread)".into())
        }
        Mode::Pull => origins::check_pattern(&mut s, count).map_err(|e| format!("receive: {e}")),
        Mode::Push => {
            origins::send_pattern(&mut s, count).map_err(|e| format!("send: {e}"))?;
            s.flush().map_err(|e| format!("send: {e}"))?;
            let mut verdict = [0u8; 8];
            s.read_exact(&mut verdict)
                .map_err(|e| format!("no verdict from the origin: {e}"))?;
            match u64::from_be_bytes(verdict) {
                u64::MAX => Err("the origin saw a wrong byte".into()),
                n if n != count => Err(format!("the origin got {n} bytes of {count}")),
                _ => Ok(()),
            }
        }
    }
}

/// `tunnels` runs at once; the time until the last one finished.
fn run_many(
    origin: SocketAddr,
    proxy: Option<SocketAddr>,
    credentials: &str,
    mode: Mode,
    count: u64,
    tunnels: usize,
    tls: Option<&tls::Tls>,
) -> Result<Duration, String> {
    let started = Instant::now();
    thread::scope(|scope| {
        let runs: Vec<_> = (0..tunnels)
            .map(|_| scope.spawn(|| run_one(origin, proxy, credentials, mode, count, tls)))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap_or(Err("a tunnel's thread panicked".into())))
            .collect::<Result<Vec<()>, String>>()
    })?;
    Ok(started.elapsed())
}

/// The proxies reached over TLS, by name, and the client side for them.
#[derive(Clone, Copy)]
struct Targets<'a> {
    names: &'a [String],
    client: Option<&'a tls::Tls>,
}

impl Targets<'_> {
    fn of(&self, name: &str) -> Option<&tls::Tls> {
        self.client.filter(|_| self.names.iter().any(|n| n == name))
    }
}

fn throughput(
    proxies: &[String],
    proxy_user: Option<&str>,
    origins: &Origins,
    run: &Run,
    tls: Targets<'_>,
) -> Result<(), String> {
    let Run {
        mode,
        tunnels,
        bytes,
        rounds,
    } = *run;
    if tunnels == 0 {
        return Err("--tunnels must be at least 1".into());
    }
    let credentials = requests::credentials_header(proxy_user);
    let mut targets: Vec<(String, Option<SocketAddr>)> = vec![("direct".into(), None)];
    targets.extend(parse_targets(proxies)?);
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut errors = vec![0usize; targets.len()];
    // Each tunnel moves its share; together they move `bytes` each way the mode says.
    let count = bytes / tunnels as u64;
    let moved = mode.moved(count) * tunnels as u64;
    for round in 0..rounds {
        for (i, (name, proxy)) in targets.iter().enumerate() {
            let over = tls.of(name);
            match run_many(
                origins.stream,
                *proxy,
                &credentials,
                mode,
                count,
                tunnels,
                over,
            ) {
                Ok(t) => rates[i].push(moved as f64 / t.as_secs_f64() / 1e9),
                Err(e) => {
                    errors[i] += 1;
                    eprintln!("round {round} {name}: {e}");
                }
            }
        }
    }
    let direct = requests::median(&rates[0]);
    let mode_name = match mode {
        Mode::Push => "push",
        Mode::Pull => "pull",
        Mode::Both => "both",
    };
    println!(
        "throughput ({mode_name}): {rounds} rounds × {tunnels} tunnels moving {moved} bytes in all, every byte checked"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "target", "median", "min", "max", "×direct", "errors"
    );
    let mut json = Vec::new();
    for (i, (name, _)) in targets.iter().enumerate() {
        let r = &mut rates[i];
        let med = requests::median(r);
        r.sort_by(f64::total_cmp);
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
        "{{\"scenario\":\"throughput\",\"mode\":\"{mode_name}\",\"tunnels\":{tunnels},\"bytes\":{moved},\"rounds\":{rounds},\"results\":[{}]}}",
        json.join(",")
    );
    if errors.iter().any(|&e| e > 0) {
        return Err("some runs failed".into());
    }
    Ok(())
}

/// Raises this process's soft fd limit to its hard one (children inherit it); returns it.
pub(crate) fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, exclusively borrowed rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        // SAFETY: as above; on failure the old soft limit is still in force and read back.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    }
    limit.rlim_cur
}

/// This process's CPU time so far (user + system), its finished client processes' included, from
/// /proc/self/stat.
fn own_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime.
    let ticks = (11..15)
        .map(|i| fields.get(i)?.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// The global TLS flags again, for a client process of `idle`.
fn tls_flags(cli: &Cli) -> Vec<String> {
    let mut flags = Vec::new();
    for name in &cli.tls {
        flags.extend(["--tls".to_owned(), name.clone()]);
    }
    if let Some(ca) = &cli.proxy_cacert {
        flags.extend(["--proxy-cacert".to_owned(), ca.display().to_string()]);
    }
    flags.extend(["--tls-name".to_owned(), cli.tls_name.clone()]);
    flags
}

fn main() {
    let cli = Cli::parse();
    let (cpu_before, wall) = (own_cpu(), Instant::now());
    let origins = || match &cli.origins {
        Some(line) => Origins::parse(line),
        None => Origins::start().map_err(|e| format!("origins: {e}")),
    };
    let tls = match (&cli.proxy_cacert, cli.tls.is_empty()) {
        (_, true) => Ok(None),
        (Some(ca), false) => tls::Tls::new(ca, &cli.tls_name).map(Some),
        (None, false) => Err("--tls needs --proxy-cacert".to_owned()),
    };
    let tls = match tls {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadtest: {e}");
            std::process::exit(2);
        }
    };
    let idle_tls_flags = tls_flags(&cli);
    let result = match cli.scenario {
        Scenario::Throughput {
            ref proxies,
            ref proxy_user,
            run,
        } => origins().and_then(|o| {
            let tls = Targets {
                names: &cli.tls,
                client: tls.as_ref(),
            };
            throughput(proxies, proxy_user.as_deref(), &o, &run, tls)
        }),
        Scenario::Serve { seconds } => origins::serve(seconds),
        Scenario::Tunnels {
            proxies,
            proxy_user,
            digest,
            ntlm,
            negotiate,
            negotiate_service,
            clients,
            tunnels,
            rounds,
        } => parse_targets(&proxies).and_then(|t| {
            let o = origins()?;
            requests::tunnels(
                &t,
                &o.echo,
                proxy_user.as_deref(),
                requests::Answered {
                    digest: &digest,
                    ntlm: &ntlm,
                    negotiate: &negotiate,
                    negotiate_service: &negotiate_service,
                    tls: &cli.tls,
                    tls_client: tls.as_ref(),
                },
                clients,
                tunnels,
                rounds,
            )
        }),
        Scenario::Forward {
            proxies,
            proxy_user,
            clients,
            requests,
            rounds,
        } => parse_targets(&proxies).and_then(|t| {
            let o = origins()?;
            requests::forward(&t, o.http, proxy_user.as_deref(), clients, requests, rounds)
        }),
        Scenario::Latency {
            proxies,
            proxy_user,
            pings,
            rounds,
        } => parse_targets(&proxies).and_then(|t| {
            let o = origins()?;
            latency::latency(&t, o.echo[0], proxy_user.as_deref(), pings, rounds)
        }),
        Scenario::Idle {
            proxy,
            pid,
            proxy_user,
            tunnels,
            processes,
        } => origins().and_then(|o| {
            let spec = idle::Spec {
                proxy,
                hold: o.hold,
                proxy_user: proxy_user.as_deref(),
                tunnels,
                tls: tls.as_ref(),
                tls_flags: idle_tls_flags,
            };
            idle::idle(&spec, pid, processes)
        }),
        Scenario::IdleClient {
            proxy,
            hold,
            proxy_user,
            tunnels,
            first,
        } => {
            let spec = idle::Spec {
                proxy,
                hold,
                proxy_user: proxy_user.as_deref(),
                tunnels,
                tls: tls.as_ref(),
                tls_flags: Vec::new(),
            };
            idle::client(&spec, first)
        }
        Scenario::Soak {
            proxy,
            pid,
            proxy_user,
            wrong_user,
            seconds,
            sample_secs,
        } => origins().and_then(|o| {
            let spec = soak::Spec {
                proxy,
                pid,
                user: &proxy_user,
                wrong_user: &wrong_user,
                seconds,
                sample_secs: sample_secs.max(1),
            };
            soak::soak(&spec, &o)
        }),
        Scenario::Challenges {
            proxies,
            proxy_user,
            clients,
            requests,
            rounds,
        } => parse_targets(&proxies).and_then(|t| {
            requests::challenges(&t, proxy_user.as_deref(), clients, requests, rounds)
        }),
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
