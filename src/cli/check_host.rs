//! `ringgate check-host`: the kernel and process settings a high-connection-count gateway needs,
//! read from `/proc`, next to what `tuning/` recommends. Critical rows (the fd limit cannot hold
//! the configured connections) make the command exit non-zero.

use std::fmt::Write as _;

use crate::config::Config;
use crate::policy::limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, but below what a busy gateway wants.
    Low,
    /// The configuration cannot be served as set.
    Critical,
    /// Not readable here (another kernel, a container).
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub setting: &'static str,
    pub current: String,
    pub recommended: String,
    pub verdict: Verdict,
    pub why: &'static str,
}

/// What the host says; `None` where a value could not be read.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    pub nofile_soft: Option<u64>,
    pub nofile_hard: Option<u64>,
    pub memlock_soft: Option<u64>,
    pub nr_open: Option<u64>,
    pub somaxconn: Option<u64>,
    pub syn_backlog: Option<u64>,
    pub port_range: Option<(u64, u64)>,
    pub tw_reuse: Option<u64>,
    pub pipe_max_size: Option<u64>,
    pub pipe_user_pages_soft: Option<u64>,
    pub rmem_max: Option<u64>,
    pub wmem_max: Option<u64>,
    pub conntrack_max: Option<u64>,
}

fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn number(path: &str) -> Option<u64> {
    sysctl(path)?.parse().ok()
}

/// A limit from `/proc/self/limits` ("unlimited" as `u64::MAX`): soft and hard.
fn limit(name: &str) -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string("/proc/self/limits") else {
        return (None, None);
    };
    let Some(line) = text.lines().find(|l| l.starts_with(name)) else {
        return (None, None);
    };
    let mut values = line[name.len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    (values.next().flatten(), values.next().flatten())
}

impl Readings {
    pub fn read() -> Readings {
        let (nofile_soft, nofile_hard) = limit("Max open files");
        let (memlock_soft, _) = limit("Max locked memory");
        Readings {
            nofile_soft,
            nofile_hard,
            memlock_soft,
            nr_open: number("fs/nr_open"),
            somaxconn: number("net/core/somaxconn"),
            syn_backlog: number("net/ipv4/tcp_max_syn_backlog"),
            port_range: sysctl("net/ipv4/ip_local_port_range").and_then(|s| {
                let mut it = s.split_whitespace().map(|v| v.parse().ok());
                Some((it.next()??, it.next()??))
            }),
            tw_reuse: number("net/ipv4/tcp_tw_reuse"),
            pipe_max_size: number("fs/pipe-max-size"),
            pipe_user_pages_soft: number("fs/pipe-user-pages-soft"),
            rmem_max: number("net/core/rmem_max"),
            wmem_max: number("net/core/wmem_max"),
            conntrack_max: number("net/netfilter/nf_conntrack_max"),
        }
    }
}

fn show(v: Option<u64>) -> String {
    match v {
        None => "?".into(),
        Some(u64::MAX) => "unlimited".into(),
        Some(n) => n.to_string(),
    }
}

/// Compares `r` with what `config` needs and what `tuning/` recommends.
pub fn assess(r: &Readings, config: &Config) -> Vec<Row> {
    let max_connections = match config.max_connections {
        0 => limits::auto_max_connections(r.nofile_soft.map(|n| n as usize)) as u64,
        n => n as u64,
    };
    // Two sockets per tunnel, pipes in flight, listeners and logs.
    let fds_needed = max_connections * 2 + 256;
    let at_least = |v: Option<u64>, want: u64, short: Verdict| match v {
        None => Verdict::Unknown,
        Some(n) if n >= want => Verdict::Ok,
        Some(_) => short,
    };
    let mut rows = vec![
        Row {
            setting: "RLIMIT_NOFILE (soft)",
            current: show(r.nofile_soft),
            recommended: format!(
                ">= {fds_needed} (2 per connection, max_connections = {max_connections})"
            ),
            verdict: at_least(r.nofile_soft, fds_needed, Verdict::Critical),
            why: "each tunnel holds two sockets; LimitNOFILE= in the unit, limits.d for shells",
        },
        Row {
            setting: "RLIMIT_NOFILE (hard)",
            current: show(r.nofile_hard),
            recommended: ">= 1048576".into(),
            verdict: at_least(r.nofile_hard, 1 << 20, Verdict::Low),
            why: "room to raise the soft limit for a million tunnels",
        },
        Row {
            setting: "fs.nr_open",
            current: show(r.nr_open),
            recommended: ">= 2097152".into(),
            verdict: at_least(r.nr_open, 2 << 20, Verdict::Low),
            why: "caps RLIMIT_NOFILE",
        },
        Row {
            setting: "net.core.somaxconn",
            current: show(r.somaxconn),
            recommended: format!(">= {}", u64::from(config.backlog).max(65535)),
            verdict: at_least(
                r.somaxconn,
                u64::from(config.backlog).max(4096),
                Verdict::Low,
            ),
            why: "caps the listen backlog (config: backlog)",
        },
        Row {
            setting: "net.ipv4.tcp_max_syn_backlog",
            current: show(r.syn_backlog),
            recommended: ">= 65535".into(),
            verdict: at_least(r.syn_backlog, 65535, Verdict::Low),
            why: "half-open connections during bursts",
        },
        Row {
            setting: "net.ipv4.ip_local_port_range",
            current: r
                .port_range
                .map_or("?".into(), |(lo, hi)| format!("{lo} {hi}")),
            recommended: "1024 65535".into(),
            verdict: match r.port_range {
                None => Verdict::Unknown,
                Some((lo, hi)) if hi.saturating_sub(lo) >= 60000 => Verdict::Ok,
                Some(_) => Verdict::Low,
            },
            why: "upstream connections per destination and source address",
        },
        Row {
            setting: "net.ipv4.tcp_tw_reuse",
            current: show(r.tw_reuse),
            recommended: "1".into(),
            verdict: match r.tw_reuse {
                None => Verdict::Unknown,
                Some(1) => Verdict::Ok,
                Some(_) => Verdict::Low,
            },
            why: "reuse TIME_WAIT ports for new upstream connections",
        },
        Row {
            setting: "fs.pipe-max-size",
            current: show(r.pipe_max_size),
            recommended: format!(">= {} (pipe_size)", config.pipe_size),
            verdict: at_least(r.pipe_max_size, config.pipe_size as u64, Verdict::Critical),
            why: "relay pipes are resized to pipe_size",
        },
        Row {
            setting: "fs.pipe-user-pages-soft",
            current: show(r.pipe_user_pages_soft),
            recommended: "0 (no limit) or >= 1048576".into(),
            verdict: match r.pipe_user_pages_soft {
                None => Verdict::Unknown,
                Some(0) => Verdict::Ok,
                Some(n) if n >= 1 << 20 => Verdict::Ok,
                Some(_) => Verdict::Low,
            },
            why: "beyond it the kernel gives an unprivileged user's new pipes two pages",
        },
        Row {
            setting: "net.core.rmem_max / wmem_max",
            current: format!("{} / {}", show(r.rmem_max), show(r.wmem_max)),
            recommended: ">= 16777216".into(),
            verdict: match (r.rmem_max, r.wmem_max) {
                (Some(a), Some(b)) if a >= 16 << 20 && b >= 16 << 20 => Verdict::Ok,
                (Some(_), Some(_)) => Verdict::Low,
                _ => Verdict::Unknown,
            },
            why: "socket buffers for long fat upstream paths",
        },
        Row {
            setting: "RLIMIT_MEMLOCK (soft)",
            current: show(r.memlock_soft),
            recommended: ">= 67108864".into(),
            verdict: at_least(r.memlock_soft, 64 << 20, Verdict::Low),
            why: "io_uring rings on kernels before 5.12 count as locked memory",
        },
    ];
    if let Some(max) = r.conntrack_max {
        rows.push(Row {
            setting: "net.netfilter.nf_conntrack_max",
            current: max.to_string(),
            recommended: format!(">= {}", max_connections * 2),
            verdict: if max >= max_connections * 2 {
                Verdict::Ok
            } else {
                Verdict::Low
            },
            why: "each tunnel is two tracked connections when conntrack is loaded",
        });
    }
    rows
}

/// The table, one row per setting.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<22} {:<56} {:<8} why",
        "setting", "current", "recommended", "status"
    );
    for r in rows {
        let status = match r.verdict {
            Verdict::Ok => "ok",
            Verdict::Low => "low",
            Verdict::Critical => "CRITICAL",
            Verdict::Unknown => "?",
        };
        let _ = writeln!(
            out,
            "{:<32} {:<22} {:<56} {:<8} {}",
            r.setting, r.current, r.recommended, status, r.why
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EMBEDDED_DEFAULT, Machine, RawConfig};

    fn config(extra: &str) -> Config {
        RawConfig::parse(EMBEDDED_DEFAULT, "d")
            .unwrap()
            .overlay(RawConfig::parse(extra, "t").unwrap())
            .validate(&Machine::probe())
            .unwrap()
    }

    #[test]
    fn a_fd_limit_below_the_connections_is_critical() {
        let mut r = Readings {
            nofile_soft: Some(20_000),
            ..Readings::default()
        };
        let rows = assess(&r, &config("max_connections = 100000"));
        assert_eq!(rows[0].verdict, Verdict::Critical);
        // The automatic limit always fits the fd limit.
        assert_eq!(
            assess(&r, &config("")).first().unwrap().verdict,
            Verdict::Ok
        );
        r.nofile_soft = Some(1 << 20);
        assert_eq!(
            assess(&r, &config("max_connections = 100000"))[0].verdict,
            Verdict::Ok
        );
        assert!(
            rows.iter()
                .skip(1)
                .all(|row| row.verdict != Verdict::Critical || row.setting == "fs.pipe-max-size")
        );
        assert!(render(&rows).contains("CRITICAL"));
    }

    #[test]
    fn this_host_can_be_read() {
        let r = Readings::read();
        assert!(r.nofile_soft.is_some() && r.somaxconn.is_some(), "{r:?}");
    }
}
