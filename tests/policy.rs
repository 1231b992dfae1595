//! Egress policy against the real binary: the safe destination defaults (every spelling of
//! loopback, metadata, unspecified, mapped IPv6, names that resolve to loopback, the proxy itself),
//! CONNECT ports, client access without authentication, rules from a config file, and start-up
//! refusal of an accidental open proxy. Each denial is a 403 with its reason, and the destination
//! never sees a connection.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const DEST: &str = "destination address not allowed";

#[test]
fn every_spelling_of_a_forbidden_destination_is_refused_before_connecting() {
    for driver in DRIVERS {
        let origin = counting_origin("origin", After::Close);
        let o = origin.addr;
        let port = o.port();
        let proxy = Proxy::start_strict(&["--io-driver", driver, "--connect-ports", "any"]);
        let baseline = proxy.fds();
        for (request, want) in [
            (format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n"), DEST),
            (format!("CONNECT 127.1.2.3:{port} HTTP/1.1\r\n\r\n"), DEST),
            (format!("CONNECT localhost:{port} HTTP/1.1\r\n\r\n"), DEST),
            (format!("CONNECT LocalHost:{port} HTTP/1.1\r\n\r\n"), DEST),
            (format!("CONNECT [::1]:{port} HTTP/1.1\r\n\r\n"), DEST),
            (
                format!("CONNECT [::ffff:127.0.0.1]:{port} HTTP/1.1\r\n\r\n"),
                DEST,
            ),
            (
                format!("CONNECT [::ffff:7f00:1]:{port} HTTP/1.1\r\n\r\n"),
                DEST,
            ),
            (format!("CONNECT 0.0.0.0:{port} HTTP/1.1\r\n\r\n"), DEST),
            ("CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n".into(), DEST),
            (
                "CONNECT [::ffff:169.254.169.254]:80 HTTP/1.1\r\n\r\n".into(),
                DEST,
            ),
            ("CONNECT [fe80::1]:80 HTTP/1.1\r\n\r\n".into(), DEST),
            ("CONNECT [fd00:ec2::254]:80 HTTP/1.1\r\n\r\n".into(), DEST),
            ("CONNECT 224.0.0.1:80 HTTP/1.1\r\n\r\n".into(), DEST),
            (
                format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n"),
                DEST,
            ),
            (
                format!("GET http://localhost:{port}/ HTTP/1.1\r\n\r\n"),
                DEST,
            ),
            (
                "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n".into(),
                DEST,
            ),
            (
                format!("GET http://[::ffff:127.0.0.1]:{port}/ HTTP/1.1\r\n\r\n"),
                DEST,
            ),
        ] {
            let (code, body) = exchange_body(proxy.addr, &request);
            assert_eq!((code, body.as_str()), (403, want), "{request:?}");
        }
        assert_eq!(
            origin.connections(),
            0,
            "a forbidden destination was reached"
        );
        assert!(proxy.wait_log("denied by policy"), "{}", proxy.log_text());
        proxy.assert_fds_settle(baseline, 0);
    }
}

#[test]
fn connect_is_limited_to_port_443_unless_configured_and_allow_dest_opens_loopback() {
    for driver in DRIVERS {
        let origin = counting_origin("origin", After::Close);
        let o = origin.addr;
        let port = o.port();
        let proxy = Proxy::start_strict(&["--io-driver", driver]);
        let (code, body) = exchange_body(
            proxy.addr,
            &format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n"),
        );
        assert_eq!(
            (code, body.as_str()),
            (403, "CONNECT to this port is not allowed")
        );
        // Forwarding is not limited to 443; the loopback destination still is.
        let (code, body) = exchange_body(
            proxy.addr,
            &format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n"),
        );
        assert_eq!((code, body.as_str()), (403, DEST));
        assert_eq!(origin.connections(), 0);

        let list = format!("443,{}-{}", port - 1, port + 1);
        let proxy = Proxy::start_strict(&[
            "--io-driver",
            driver,
            "--connect-ports",
            &list,
            "--allow-dest",
            "127.0.0.0/8",
        ]);
        let mut t = tunnel(proxy.addr, &format!("localhost:{port}"));
        t.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut got = String::new();
        let _ = t.read_to_string(&mut got);
        assert!(got.ends_with("origin"), "{got}");
        let (code, body) = exchange_body(
            proxy.addr,
            &format!("GET http://localhost:{port}/ HTTP/1.1\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!((code, body.as_str()), (200, "origin"));
        // ::1 is not in the allowed network: a name resolving to both is dialled on 127.0.0.1 only.
        let (code, body) = exchange_body(
            proxy.addr,
            &format!("GET http://[::1]:{port}/ HTTP/1.1\r\n\r\n"),
        );
        assert_eq!((code, body.as_str()), (403, DEST));
        assert_eq!(origin.connections(), 2);
    }
}

#[test]
fn the_proxy_never_connects_to_itself() {
    for driver in DRIVERS {
        let proxy = Proxy::start_strict(&[
            "--io-driver",
            driver,
            "--connect-ports",
            "any",
            "--allow-dest",
            "127.0.0.0/8",
            "--listen",
            "0.0.0.0:0",
        ]);
        let own = proxy.addr.port();
        let (code, body) = exchange_body(
            proxy.addr,
            &format!("CONNECT 127.0.0.1:{own} HTTP/1.1\r\n\r\n"),
        );
        assert_eq!((code, body.as_str()), (403, "destination is this proxy"));
        // The wildcard listener's port, reached at another loopback address: caught too.
        let log = proxy.log_text();
        let wildcard: u16 = log
            .split("0.0.0.0:")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no wildcard listener in {log}"));
        for target in [
            format!("127.0.0.2:{wildcard}"),
            format!("localhost:{wildcard}"),
        ] {
            let (code, body) =
                exchange_body(proxy.addr, &format!("CONNECT {target} HTTP/1.1\r\n\r\n"));
            assert_eq!(
                (code, body.as_str()),
                (403, "destination is this proxy"),
                "{target}"
            );
        }
    }
}

/// This host's address on its default route, if it has one (a UDP `connect` picks it without
/// sending anything).
fn own_non_loopback_address() -> Option<std::net::IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("198.51.100.1:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn with_bind_source_and_a_wildcard_listener_another_host_address_is_still_a_loop() {
    // Upstream connections come from 127.0.0.2, so "the connection comes from the address it
    // went to" no longer tells a loop: the host's own addresses have to be recognised as such.
    let wildcard = {
        let probe = TcpListener::bind("0.0.0.0:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let own = own_non_loopback_address();
    let mut args = vec![
        "--connect-ports".to_owned(),
        "any".to_owned(),
        "--allow-dest".to_owned(),
        "127.0.0.0/8".to_owned(),
        "--listen".to_owned(),
        format!("0.0.0.0:{wildcard}"),
        "--bind-source".to_owned(),
        "127.0.0.2".to_owned(),
    ];
    if let Some(ip) = own {
        args.extend(["--allow-dest".to_owned(), format!("{ip}/32")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = Proxy::start_strict(&args);
    let mut targets = vec![format!("127.0.0.3:{wildcard}")];
    match own {
        Some(ip) => targets.push(format!("{ip}:{wildcard}")),
        None => eprintln!("no non-loopback address on this host: only the loopback case checked"),
    }
    for target in &targets {
        for request in [
            format!("CONNECT {target} HTTP/1.1\r\n\r\n"),
            format!("GET http://{target}/ HTTP/1.1\r\nConnection: close\r\n\r\n"),
        ] {
            let (code, body) = exchange_body(proxy.addr, &request);
            assert_eq!(
                (code, body.as_str()),
                (403, "destination is this proxy"),
                "{request:?}"
            );
        }
    }
}

#[test]
fn without_authentication_only_allowed_clients_get_in() {
    for driver in DRIVERS {
        let o = counting_origin("origin", After::Close).addr;
        let proxy = Proxy::start(&["--io-driver", driver, "--client", "127.0.0.2/32"]);
        let request = format!("GET http://{o}/ HTTP/1.1\r\nConnection: close\r\n\r\n");
        // From 127.0.0.1: refused before any request is read.
        let (code, body) = exchange_body(proxy.addr, &request);
        assert_eq!(
            (code, body.as_str()),
            (403, "your address may not use this proxy")
        );
        // From 127.0.0.2: served.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.connect(&proxy.addr.into()).unwrap();
        let mut s: TcpStream = socket.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        assert!(
            got.starts_with("HTTP/1.1 200 ") && got.ends_with("origin"),
            "{got}"
        );
    }
}

#[test]
fn an_accidental_open_proxy_does_not_start() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ringgate"))
            .args(["--listen", "127.0.0.1:0", "--print-config"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--client", "0.0.0.0/0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`clients`") && err.contains("open_proxy"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        run(&["--client", "0.0.0.0/0", "--open-proxy"])
            .status
            .success()
    );
    assert!(
        run(&["--client", "0.0.0.0/0", "--user", "a:b"])
            .status
            .success()
    );
}

#[test]
fn rules_from_a_config_file_decide_by_user_group_host_destination_and_method() {
    for driver in DRIVERS {
        let origin = counting_origin("origin", After::Close);
        let o = origin.addr;
        let port = o.port();
        let dir = scratch("policy-rules");
        let config = dir.join("rules.toml");
        std::fs::write(
            &config,
            format!(
                r#"
    allow_dest = ["127.0.0.0/8"]
    connect_ports = ["any"]
    users = ["alice:pw", "bob:pw", "carol:pw"]
    default_action = "deny"

    [groups]
    staff = ["alice", "carol"]

    [[rules]]
    name = "blocked sites"
    action = "deny"
    hosts = ["*.blocked.test"]

    [[rules]]
    name = "carol forwards only"
    action = "deny"
    users = ["carol"]
    methods = ["CONNECT"]

    [[rules]]
    name = "staff to loopback"
    action = "allow"
    groups = ["staff"]
    dest = ["127.0.0.0/8"]
    ports = ["{port}"]
    "#
            ),
        )
        .unwrap();
        let proxy =
            Proxy::start_strict(&["--io-driver", driver, "--config", config.to_str().unwrap()]);
        let auth = |u: &str| {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:pw"));
            format!("Proxy-Authorization: Basic {token}\r\n")
        };
        let rule = "denied by the proxy's access rules";
        for (user, request, want) in [
            (
                "alice",
                format!("CONNECT localhost:{port} HTTP/1.1\r\n"),
                (200, ""),
            ),
            (
                "alice",
                format!("GET http://localhost:{port}/ HTTP/1.1\r\n"),
                (200, "origin"),
            ),
            (
                "carol",
                format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\n"),
                (200, "origin"),
            ),
            (
                "carol",
                format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n"),
                (403, rule),
            ),
            (
                "bob",
                format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\n"),
                (403, rule),
            ),
            (
                "alice",
                format!("GET http://127.0.0.1:{}/ HTTP/1.1\r\n", port + 1),
                (403, rule),
            ),
            (
                "alice",
                "CONNECT www.blocked.test:443 HTTP/1.1\r\n".to_owned(),
                (403, rule),
            ),
        ] {
            let full = format!("{request}{}Connection: close\r\n\r\n", auth(user));
            if request.starts_with("CONNECT") && want.0 == 200 {
                let mut s = TcpStream::connect(proxy.addr).unwrap();
                s.write_all(full.as_bytes()).unwrap();
                assert!(
                    read_head(&mut s).starts_with("HTTP/1.1 200 "),
                    "{user} {request}"
                );
                continue;
            }
            let (code, body) = exchange_body(proxy.addr, &full);
            assert_eq!((code, body.as_str()), want, "{user} {request}");
        }
        assert_eq!(
            origin.connections(),
            3,
            "only the allowed requests reached the origin"
        );
        assert!(proxy.wait_log("blocked sites"), "{}", proxy.log_text());
        assert!(proxy.wait_log("carol forwards only"));
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Opens a tunnel to `echo` from `source` and proves it relays.
fn working_tunnel(source: &str, proxy: SocketAddr, echo: SocketAddr) -> TcpStream {
    let mut s = connect_from(source, proxy);
    s.write_all(format!("CONNECT {echo} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200 "));
    s.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    s
}

fn refused_with(source: &str, proxy: SocketAddr) -> String {
    let mut s = connect_from(source, proxy);
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    got
}

#[test]
fn connection_limits_answer_429_and_503_and_free_places_on_close() {
    for driver in DRIVERS {
        let echo = echo_server();
        let proxy = Proxy::start(&[
            "--io-driver",
            driver,
            "--max-connections",
            "3",
            "--max-connections-per-client",
            "2",
        ]);
        let a1 = working_tunnel("127.0.0.1", proxy.addr, echo);
        let _a2 = working_tunnel("127.0.0.1", proxy.addr, echo);
        let got = refused_with("127.0.0.1", proxy.addr);
        assert!(
            got.starts_with("HTTP/1.1 429 ") && got.contains("Retry-After: 1\r\n"),
            "{got}"
        );
        assert!(
            got.ends_with("too many connections from your address; retry\n"),
            "{got}"
        );
        let _b = working_tunnel("127.0.0.2", proxy.addr, echo);
        let got = refused_with("127.0.0.3", proxy.addr);
        assert!(
            got.starts_with("HTTP/1.1 503 ") && got.ends_with("too many connections; retry\n"),
            "{got}"
        );
        // A closed connection gives its place back (in all and for its address).
        drop(a1);
        let mut ok = false;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(20));
            let mut s = connect_from("127.0.0.1", proxy.addr);
            s.write_all(format!("CONNECT {echo} HTTP/1.1\r\n\r\n").as_bytes())
                .unwrap();
            if read_head(&mut s).starts_with("HTTP/1.1 200 ") {
                ok = true;
                break;
            }
        }
        assert!(ok, "the place of a closed connection was not given back");
    }
}

#[test]
fn sighup_reloads_the_policy_keeps_open_tunnels_and_refuses_a_bad_config() {
    let echo = echo_server();
    let dir = scratch("policy-reload");
    let config = dir.join("ringgate.toml");
    let base = "allow_dest = [\"127.0.0.0/8\"]\nconnect_ports = [\"any\"]\n";
    std::fs::write(&config, base).unwrap();
    let proxy = Proxy::start_strict(&["--config", config.to_str().unwrap()]);
    let mut open = working_tunnel("127.0.0.1", proxy.addr, echo);
    // A busy tunnel through all the reloads below: every byte must arrive.
    let mut busy = working_tunnel("127.0.0.1", proxy.addr, echo);
    let load = std::thread::spawn(move || {
        let mut w = busy.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..32u64 {
                let mut chunk = Vec::new();
                send_pattern(&mut chunk, 3, (i + 1) << 20);
                w.write_all(&chunk[(i << 20) as usize..]).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let got = check_pattern(&mut busy, 3);
        writer.join().unwrap();
        got
    });

    // A rule added: new requests meet it; the open tunnel goes on.
    std::fs::write(
        &config,
        format!(
            "{base}[[rules]]\nname = \"reloaded\"\naction = \"deny\"\nports = [\"{}\"]\n",
            echo.port()
        ),
    )
    .unwrap();
    proxy.signal("HUP");
    assert!(proxy.wait_log("config reloaded"), "{}", proxy.log_text());
    let (code, body) = exchange_body(proxy.addr, &format!("CONNECT {echo} HTTP/1.1\r\n\r\n"));
    assert_eq!(
        (code, body.as_str()),
        (403, "denied by the proxy's access rules")
    );
    open.write_all(b"pong").unwrap();
    let mut got = [0u8; 4];
    open.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pong");

    // A bad config: logged, and the running policy stays.
    std::fs::write(&config, format!("{base}[[rules]]\naction = \"maybe\"\n")).unwrap();
    proxy.signal("HUP");
    assert!(
        proxy.wait_log("config reload failed"),
        "{}",
        proxy.log_text()
    );
    let (code, _) = exchange_body(proxy.addr, &format!("CONNECT {echo} HTTP/1.1\r\n\r\n"));
    assert_eq!(code, 403);

    // A setting only a restart applies: named in a warning; the policy part is applied.
    std::fs::write(&config, format!("{base}backlog = 64\n")).unwrap();
    proxy.signal("HUP");
    assert!(
        proxy.wait_log("after a restart: backlog"),
        "{}",
        proxy.log_text()
    );
    working_tunnel("127.0.0.1", proxy.addr, echo);
    assert_eq!(
        load.join().unwrap(),
        32 << 20,
        "the busy tunnel lost bytes across reloads"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn connection_rate_per_client_and_tunnels_per_user_answer_429() {
    let echo = echo_server();
    let proxy = Proxy::start(&["--max-connection-rate-per-client", "5"]);
    // Thirty new connections at once from one address: at most five in each second are served.
    let started = Instant::now();
    let answers: Vec<String> = (0..30)
        .map(|_| {
            let mut s = connect_from("127.0.0.7", proxy.addr);
            s.write_all(format!("CONNECT {echo} HTTP/1.1\r\n\r\n").as_bytes())
                .unwrap();
            read_head(&mut s)
        })
        .collect();
    let seconds = started.elapsed().as_secs() + 2; // the windows the burst can have touched
    let served = answers
        .iter()
        .filter(|h| h.starts_with("HTTP/1.1 200 "))
        .count();
    let refused = answers
        .iter()
        .filter(|h| h.starts_with("HTTP/1.1 429 "))
        .count();
    assert_eq!(served + refused, 30, "{answers:?}");
    assert!(
        served >= 5 && served as u64 <= 5 * seconds,
        "{served} served in {seconds} windows"
    );
    // Another address is not affected.
    working_tunnel("127.0.0.8", proxy.addr, echo);

    use base64::Engine;
    let proxy = Proxy::start(&[
        "--user",
        "alice:pw",
        "--user",
        "bob:pw",
        "--max-tunnels-per-user",
        "2",
    ]);
    let open_as = |user: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            format!("CONNECT {echo} HTTP/1.1\r\nProxy-Authorization: Basic {token}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let head = read_head(&mut s);
        (head, s)
    };
    let (h1, t1) = open_as("alice");
    let (h2, _t2) = open_as("alice");
    assert!(h1.starts_with("HTTP/1.1 200 ") && h2.starts_with("HTTP/1.1 200 "));
    let (h3, _) = open_as("alice");
    assert!(h3.starts_with("HTTP/1.1 429 "), "{h3}");
    let (h4, _t4) = open_as("bob");
    assert!(h4.starts_with("HTTP/1.1 200 "), "{h4}");
    // A closed tunnel gives its place back.
    drop(t1);
    let mut freed = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        if open_as("alice").0.starts_with("HTTP/1.1 200 ") {
            freed = true;
            break;
        }
    }
    assert!(freed);
}

#[test]
fn a_users_tunnels_share_its_bandwidth() {
    use base64::Engine;
    const RATE: u64 = 2 << 20;
    const EACH_WAY: u64 = 4 << 20;
    let echo = echo_server();
    let proxy = Proxy::start(&["--user", "alice:pw", "--user-bandwidth", &RATE.to_string()]);
    let token = base64::engine::general_purpose::STANDARD.encode("alice:pw");
    // Two tunnels of one user, each echoing 4 MiB: 16 MiB moved in all (both directions of both
    // tunnels count), at 2 MiB/s after a one-second burst: at least 7 s.
    let started = Instant::now();
    let tunnels: Vec<_> = (0..2u64)
        .map(|seed| {
            let mut s = TcpStream::connect(proxy.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.write_all(
                format!("CONNECT {echo} HTTP/1.1\r\nProxy-Authorization: Basic {token}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            assert!(read_head(&mut s).starts_with("HTTP/1.1 200 "));
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    send_pattern(&mut w, seed, EACH_WAY);
                    w.shutdown(std::net::Shutdown::Write).unwrap();
                });
                let got = check_pattern(&mut s, seed);
                writer.join().unwrap();
                got
            })
        })
        .collect();
    for t in tunnels {
        assert_eq!(t.join().unwrap(), EACH_WAY);
    }
    let took = started.elapsed();
    let floor = Duration::from_secs_f64((4 * EACH_WAY) as f64 / RATE as f64 - 1.0);
    assert!(
        took >= floor.mul_f64(0.9),
        "16 MiB in {took:?}: the limit did not hold"
    );
}

#[test]
fn a_changed_config_file_is_reloaded_without_a_signal() {
    let echo = echo_server();
    let dir = scratch("policy-watch");
    let config = dir.join("ringgate.toml");
    let base = "allow_dest = [\"127.0.0.0/8\"]\nconnect_ports = [\"any\"]\nusers_watch_secs = 1\n";
    std::fs::write(&config, base).unwrap();
    let proxy = Proxy::start_strict(&["--config", config.to_str().unwrap()]);
    working_tunnel("127.0.0.1", proxy.addr, echo);
    std::fs::write(&config, format!("{base}default_action = \"deny\"\n")).unwrap();
    assert!(
        proxy.wait_log("config file changed"),
        "{}",
        proxy.log_text()
    );
    assert!(proxy.wait_log("config reloaded"));
    let (code, body) = exchange_body(proxy.addr, &format!("CONNECT {echo} HTTP/1.1\r\n\r\n"));
    assert_eq!(
        (code, body.as_str()),
        (403, "denied by the proxy's access rules")
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// An origin that tells each connection the address it came from: as the body of an HTTP answer
/// to a GET, or as the answer to anything else (a tunnel's client asks with `who?`).
fn source_telling_origin() -> SocketAddr {
    serve(|mut s| {
        let from = s.peer_addr().unwrap().ip().to_string();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut first = [0u8; 4];
        if s.read_exact(&mut first).is_err() {
            return;
        }
        if &first == b"GET " {
            let _ = read_head(&mut s);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{from}",
                from.len()
            );
        } else {
            let _ = s.write_all(from.as_bytes());
        }
    })
}

#[test]
fn bind_source_spreads_upstream_connections_over_the_source_addresses_in_turn() {
    for driver in DRIVERS {
        bind_source_in_turn(driver);
    }
}

fn bind_source_in_turn(driver: &str) {
    let origin = source_telling_origin();
    let proxy = Proxy::start(&[
        "--io-driver",
        driver,
        "--workers",
        "1",
        "--bind-source",
        "127.0.0.7",
        "--bind-source",
        "127.0.0.8",
    ]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut t = tunnel(proxy.addr, &origin.to_string());
        t.write_all(b"who?").unwrap();
        let mut from = String::new();
        t.read_to_string(&mut from).unwrap();
        seen.push(from);
    }
    assert_eq!(
        seen,
        ["127.0.0.7", "127.0.0.8", "127.0.0.7", "127.0.0.8"],
        "{driver}"
    );
    // Forwarded requests take their turn from the same sources.
    let mut forwarded = Vec::new();
    for _ in 0..2 {
        let (code, body) = exchange_body(
            proxy.addr,
            &format!(
                "GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(code, 200);
        forwarded.push(body);
    }
    forwarded.sort();
    assert_eq!(forwarded, ["127.0.0.7", "127.0.0.8"]);
    // An IPv6 destination with only IPv4 sources: the kernel chooses, the tunnel works.
    if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
        let addr = v6.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = v6.accept() {
                let _ = s.write_all(b"v6");
            }
        });
        let mut t = tunnel(proxy.addr, &addr.to_string());
        let mut answer = String::new();
        t.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "v6");
    }
}

#[test]
fn a_bind_source_that_is_not_an_address_of_this_host_stops_the_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args(["--listen", "127.0.0.1:0", "--bind-source", "192.0.2.77"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("bind_source 192.0.2.77"), "{err}");
}
