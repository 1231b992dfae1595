//! `idle`: K authenticated CONNECT tunnels opened and left idle, from several 127.0.0.x source
//! addresses, to the holding origin (which keeps their far ends without a thread each). The
//! tunnels are held by client processes (as many as their fd limit needs, or `--processes`),
//! which this process drives in step: each opens its first half, then the rest. The proxy's RSS
//! and threads are read from `/proc/PID` at both points, and the cost per tunnel is taken over the
//! second half (what earlier load left in the allocator does not count). Then every tunnel is
//! proven to work: a ping through each, echoed by the origin.
//!
//! Bounded: K tunnels, each socket with a read timeout; the conversation has three steps.

#![allow(
    clippy::disallowed_methods,
    reason = "a client tool on plain threads: sleeping here parks no proxy worker"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::raise_fd_limit;
use crate::requests::{connect_from, credentials_header, open_tunnel};
use crate::tls::{Stream, maybe_wrap};

/// Sources used in turn: 127.0.0.30 to 127.0.0.45.
const SOURCES: u8 = 16;

pub struct Proc {
    pub rss_kib: u64,
    pub threads: u64,
}

pub fn read_proc(pid: u32) -> Result<Proc, String> {
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

/// What `idle` and each of its client processes do.
pub struct Spec<'a> {
    pub proxy: SocketAddr,
    /// The holding origin: it keeps every tunnel's far end and echoes pings.
    pub hold: SocketAddr,
    pub proxy_user: Option<&'a str>,
    pub tunnels: usize,
    /// TLS to the proxy, and the flags that say so to a client process.
    pub tls: Option<&'a crate::tls::Tls>,
    pub tls_flags: Vec<String>,
}

/// Opens tunnel number `i` (of all processes' tunnels) to the holding origin.
fn open(spec: &Spec<'_>, credentials: &str, i: usize) -> Result<Stream, String> {
    let source = 30 + (i % SOURCES as usize) as u8;
    let tcp = connect_from(source, spec.proxy).map_err(|e| format!("connect: {e}"))?;
    let mut s = maybe_wrap(tcp, spec.tls)?;
    open_tunnel(&mut s, spec.hold, credentials)?;
    Ok(s)
}

/// Fds a process keeps for everything but tunnels.
const SPARE_FDS: u64 = 64;

/// One client process: opens its first half of `spec.tunnels`, says `half`, waits for a line;
/// opens the rest, says `full`, waits for a line; pings through each and says `working N`.
pub fn client(spec: &Spec<'_>, first: usize) -> Result<(), String> {
    let result = (|| {
        raise_fd_limit();
        let credentials = credentials_header(spec.proxy_user);
        let mut held = Vec::with_capacity(spec.tunnels);
        let mut stdin = std::io::stdin().lock();
        let mut line = String::new();
        for (phase, upto) in [("half", spec.tunnels / 2), ("full", spec.tunnels)] {
            while held.len() < upto {
                held.push(open(spec, &credentials, first + held.len())?);
            }
            println!("{phase}");
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            line.clear();
            if stdin.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the parent went away".into());
            }
        }
        // All pings out first, then all answers: the origin answers many per wake-up.
        let sent: Vec<bool> = held
            .iter_mut()
            .map(|s| s.write_all(b"ping").is_ok())
            .collect();
        let working = held
            .iter_mut()
            .zip(sent)
            .map(|(s, sent)| sent && echoed(s))
            .filter(|&ok| ok)
            .count();
        println!("working {working}");
        Ok(())
    })();
    if let Err(e) = &result {
        println!("error {e}");
    }
    result
}

fn echoed(s: &mut Stream) -> bool {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).is_ok() && &b == b"ping"
}

/// A client process and its line-by-line conversation.
struct Child {
    process: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Child {
    /// The next line, which must start with `expect`; what follows it.
    fn expect(&mut self, expect: &str) -> Result<String, String> {
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .map_err(|e| format!("client process: {e}"))?;
        match line.trim_end().strip_prefix(expect) {
            Some(rest) => Ok(rest.trim().to_owned()),
            None if line.is_empty() => Err("a client process ended early".into()),
            None => Err(format!("client process: {}", line.trim_end())),
        }
    }

    fn say(&mut self, what: &str) -> Result<(), String> {
        let stdin = self.process.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{what}").map_err(|e| format!("client process: {e}"))
    }
}

pub fn idle(spec: &Spec<'_>, pid: u32, processes: usize) -> Result<(), String> {
    let limit = raise_fd_limit();
    let per_process = limit.saturating_sub(SPARE_FDS).max(1) as usize;
    let processes = match processes {
        0 => spec.tunnels.div_ceil(per_process).max(1),
        n => n,
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut children: Vec<(Child, usize)> = Vec::with_capacity(processes);
    let mut first = 0;
    for p in 0..processes {
        let n = spec.tunnels / processes + usize::from(p < spec.tunnels % processes);
        let mut cmd = Command::new(&exe);
        cmd.args(&spec.tls_flags)
            .arg("idle-client")
            .args(["--proxy", &spec.proxy.to_string()])
            .args(["--hold", &spec.hold.to_string()])
            .args(["--tunnels", &n.to_string(), "--first", &first.to_string()]);
        if let Some(user) = spec.proxy_user {
            cmd.args(["--proxy-user", user]);
        }
        let spawned = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
        let mut process = match spawned {
            Ok(p) => p,
            Err(e) => {
                for (mut child, _) in children {
                    let _ = child.process.kill();
                    let _ = child.process.wait();
                }
                return Err(format!("{}: {e}", exe.display()));
            }
        };
        let Some(stdout) = process.stdout.take() else {
            let _ = process.kill();
            let _ = process.wait();
            return Err("no stdout from a client process".into());
        };
        children.push((
            Child {
                process,
                out: BufReader::new(stdout),
            },
            n,
        ));
        first += n;
    }
    let outcome = converse(&mut children, pid);
    for (child, _) in &mut children {
        if outcome.is_err() {
            let _ = child.process.kill();
        }
        let _ = child.process.wait();
    }
    let (half, full, at_half, working) = outcome?;
    let opened = started.elapsed();
    let tunnels = spec.tunnels;
    let per_tunnel = (full.rss_kib.saturating_sub(half.rss_kib)) as f64 * 1024.0
        / (tunnels - at_half).max(1) as f64;
    println!(
        "idle: {tunnels} authenticated CONNECT tunnels{} from {SOURCES} source addresses in {processes} client process(es), opened and proven in {:.1} s",
        if spec.tls.is_some() { " over TLS" } else { "" },
        opened.as_secs_f64()
    );
    println!(
        "proxy RSS {} KiB at {at_half} tunnels, {} KiB at {tunnels}: {per_tunnel:.0} bytes per tunnel over the second half",
        half.rss_kib, full.rss_kib
    );
    println!(
        "proxy threads {} at {at_half} tunnels, {} at {tunnels}",
        half.threads, full.threads
    );
    println!("working after the idle period: {working} of {tunnels}");
    println!(
        "{{\"scenario\":\"idle\",\"tunnels\":{tunnels},\"processes\":{processes},\"rss_kib_half\":{},\"rss_kib_full\":{},\"bytes_per_tunnel\":{per_tunnel:.0},\"threads_half\":{},\"threads_full\":{},\"working\":{working}}}",
        half.rss_kib, full.rss_kib, half.threads, full.threads
    );
    if working != tunnels {
        return Err(format!("{} tunnels did not work", tunnels - working));
    }
    Ok(())
}

/// Drives the client processes through their halves; the proxy's state at each, the tunnels open
/// at the first, and how many work at the end.
fn converse(
    children: &mut [(Child, usize)],
    pid: u32,
) -> Result<(Proc, Proc, usize, usize), String> {
    for (child, _) in children.iter_mut() {
        child.expect("half")?;
    }
    // Let the proxy settle (its last tunnels' tasks) before reading it.
    std::thread::sleep(Duration::from_millis(500));
    let half = read_proc(pid)?;
    for (child, _) in children.iter_mut() {
        child.say("go")?;
    }
    for (child, _) in children.iter_mut() {
        child.expect("full")?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let full = read_proc(pid)?;
    let mut working = 0;
    for (child, _) in children.iter_mut() {
        child.say("check")?;
    }
    for (child, _) in children.iter_mut() {
        working += child
            .expect("working")?
            .parse::<usize>()
            .map_err(|e| e.to_string())?;
    }
    let at_half = children.iter().map(|(_, n)| n / 2).sum();
    Ok((half, full, at_half, working))
}
