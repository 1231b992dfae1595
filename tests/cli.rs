//! The command line and the process lifecycle: config errors, --print-config, defaults, shutdown.
// Test clients are not worker code: they may block and lock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use support::*;

fn ringgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args(args)
        .output()
        .unwrap()
}

/// A fresh scratch folder for this test process.
#[test]
fn bad_flags_and_configs_are_one_line_exit_2_naming_the_key() {
    let dir = scratch("cli");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "workers = \"lots\"\n").unwrap();
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "listen = [\"127.0.0.1:0\"]\nlsiten = 1\n").unwrap();
    let rows: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--workers", "x"], "--workers"),
        (vec!["--io-driver", "kqueue"], "--io-driver"),
        (vec!["--bogus"], "--bogus"),
        (vec!["--listen", "localhost:80"], "listen"),
        (vec!["--pipe-size", "10"], "pipe_size"),
        (vec!["--header-timeout", "0"], "header_timeout_secs"),
        (vec!["--bind-source", "10.0.0.1:80"], "bind_source"),
        (vec!["--config", bad.to_str().unwrap()], "workers"),
        (vec!["--config", unknown.to_str().unwrap()], "lsiten"),
        (
            vec!["--config", "/nonexistent/ringgate.toml"],
            "/nonexistent/ringgate.toml",
        ),
    ];
    for (args, key) in rows {
        let out = ringgate(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(key), "{args:?}: {err}");
    }
}

#[test]
fn print_config_shows_the_effective_config_flags_over_file() {
    let dir = scratch("print");
    let file = dir.join("c.toml");
    std::fs::write(&file, "workers = 3\nbacklog = 77\n").unwrap();
    let out = ringgate(&[
        "--config",
        file.to_str().unwrap(),
        "--workers",
        "1",
        "--print-config",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("workers = 1\n"), "{text}");
    assert!(text.contains("backlog = 77\n"), "{text}");
    assert!(text.contains("listen = [\"127.0.0.1:3128\"]"), "{text}");
    // What it prints is itself a valid config.
    std::fs::write(&file, text.as_bytes()).unwrap();
    let again = ringgate(&["--config", file.to_str().unwrap(), "--print-config"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
}

#[test]
fn start_log_names_driver_workers_and_addresses() {
    let proxy = Proxy::start(&["--workers", "2", "--listen", "[::1]:0"]);
    assert!(proxy.wait_log("workers=2"), "{}", proxy.log_text());
    let log = proxy.log_text();
    assert!(
        log.contains("driver=\"io_uring\"") || log.contains("driver=\"epoll\""),
        "{log}"
    );
    assert!(log.contains("[::1]:"), "{log}");
}

#[test]
fn ipv6_listener_serves_tunnels() {
    let proxy = Proxy::start(&["--listen", "[::1]:0"]);
    let log = proxy.log_text();
    let v6 = log
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap();
    let echo = echo_server();
    let mut s = tunnel(v6.parse().unwrap(), &echo.to_string());
    s.write_all(b"v6").unwrap();
    let mut b = [0u8; 2];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"v6");
}

#[test]
fn sigterm_refuses_new_connections_lets_tunnels_finish_and_exits_0() {
    let mut proxy = Proxy::start(&["--shutdown-grace", "20"]);
    let echo = echo_server();
    let mut open = tunnel(proxy.addr, &echo.to_string());
    proxy.terminate();
    assert!(proxy.wait_log("shutting down"));
    assert!(
        proxy.wait_refusing(),
        "new connections are refused while draining"
    );
    open.write_all(b"after sigterm").unwrap();
    let mut b = [0u8; 13];
    open.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"after sigterm");
    drop(open);
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn grace_period_over_closes_tunnels_and_exits_0() {
    let mut proxy = Proxy::start(&["--shutdown-grace", "1"]);
    let echo = echo_server();
    let mut open = tunnel(proxy.addr, &echo.to_string());
    proxy.terminate();
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
    let mut rest = Vec::new();
    assert_eq!(
        open.read_to_end(&mut rest).unwrap_or(0),
        0,
        "tunnel closed at exit"
    );
}

#[test]
fn systemd_is_told_when_ready_and_when_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = scratch("sd-notify");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args(["--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_host_prints_the_table_and_fails_when_the_fd_limit_is_too_low() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ringgate"))
            .args(args)
            .arg("check-host")
            .output()
            .unwrap()
    };
    let ok = run(&[]);
    let table = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{table}");
    for setting in [
        "RLIMIT_NOFILE (soft)",
        "net.core.somaxconn",
        "fs.pipe-user-pages-soft",
        "net.ipv4.ip_local_port_range",
    ] {
        assert!(table.contains(setting), "{table}");
    }
    // More connections than the fd limit can hold (the hard limit here is 20,000).
    let bad = run(&["--max-connections", "100000000"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("CRITICAL"));
}

/// `--help` shows the defaults of the embedded default config (it said 65536 and 64 for these two,
/// which are 262144 and 16); `config::keys` checks every flag against default.toml.
#[test]
fn help_shows_the_embedded_defaults() {
    let out = ringgate(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // Each option's entry: its flag line and its help, up to the next option.
    let entry_of = |flag: &str| {
        help.split("\n      --")
            .find(|e| e.starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} not in {help}"))
            .to_owned()
    };
    for (flag, default) in [
        ("pipe-size ", "[default: 262144]"),
        ("pipe-pool ", "[default: 16]"),
        ("listen ", "[default: 127.0.0.1:3128]"),
        ("io-driver ", "[default: auto]"),
        ("admin ", "[default: off]"),
    ] {
        let entry = entry_of(flag);
        assert!(entry.contains(default), "{entry}");
    }
}

/// The flags `--help` lists, without their dashes.
fn help_flags() -> Vec<String> {
    let out = ringgate(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let flags: Vec<String> = help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(flags.len() > 50, "{help}");
    flags
}

#[test]
fn generated_man_page_and_completions_name_every_flag() {
    let flags = help_flags();
    let man = ringgate(&["generate", "man"]);
    assert!(man.status.success());
    // roff writes a dash as `\-`.
    let page = String::from_utf8_lossy(&man.stdout).replace("\\-", "-");
    assert!(
        page.starts_with(".ie") || page.contains(".TH ringgate"),
        "{page}"
    );
    for flag in &flags {
        assert!(
            page.contains(&format!("--{flag}")),
            "man page lacks --{flag}"
        );
    }
    assert!(
        page.contains("[default: 262144]"),
        "man page shows no pipe_size default"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = ringgate(&["generate", "completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(!script.trim().is_empty(), "{shell}");
        for flag in &flags {
            assert!(
                script.contains(flag.as_str()),
                "{shell} completions lack --{flag}"
            );
        }
    }
}
