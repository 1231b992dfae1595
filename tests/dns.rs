//! Name resolution against the real binary with a DNS server started by the test (UDP on
//! loopback, answering by name and counting the questions): answers cached for their TTL, names
//! that do not exist remembered briefly (502), a silent server (504) whose timed-out names are
//! remembered too, a name that resolves to a forbidden address (403), /etc/hosts first, Happy
//! Eyeballs over a black-holed address, the default resolver reading a resolv.conf (search list,
//! ndots), one client's lookups in flight capped (503), and the system resolver's bounded queue.
//! No test sends a question anywhere but to its own server on loopback.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Name, Packet, PacketFlag, RCODE, ResourceRecord};
use support::*;

/// Answers: name → (addresses, ttl). Unknown names get NXDOMAIN; `silent.test` and names under it
/// no answer at all.
struct Dns {
    addr: SocketAddr,
    questions: Arc<Mutex<Vec<String>>>,
}

impl Dns {
    fn start(zone: Vec<(&'static str, Vec<[u8; 4]>, u32)>) -> Dns {
        Dns::serve(UdpSocket::bind("127.0.0.1:0").unwrap(), zone)
    }

    /// A server on port 53 of `ip` (a loopback address of its own per test), where a resolv.conf
    /// can name it; `None` where port 53 cannot be bound (not root).
    fn start_on_53(ip: &str, zone: Vec<(&'static str, Vec<[u8; 4]>, u32)>) -> Option<Dns> {
        match UdpSocket::bind((ip, 53)) {
            Ok(socket) => Some(Dns::serve(socket, zone)),
            Err(e) => {
                eprintln!("skipped: cannot bind {ip}:53 for a test name server: {e}");
                None
            }
        }
    }

    fn serve(socket: UdpSocket, zone: Vec<(&'static str, Vec<[u8; 4]>, u32)>) -> Dns {
        let addr = socket.local_addr().unwrap();
        let questions = Arc::new(Mutex::new(Vec::new()));
        let seen = questions.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    return;
                };
                let Ok(query) = Packet::parse(&buf[..n]) else {
                    continue;
                };
                let Some(q) = query.questions.first() else {
                    continue;
                };
                let name = q.qname.to_string().to_ascii_lowercase();
                seen.lock().unwrap().push(format!("{name} {:?}", q.qtype));
                let aaaa = matches!(q.qtype, simple_dns::QTYPE::TYPE(simple_dns::TYPE::AAAA));
                let silent = name == "silent.test" || name.ends_with(".silent.test");
                if silent || (name == "a-only.test" && aaaa) {
                    continue;
                }
                let refuse_aaaa = name == "servfail-aaaa.test" && aaaa;
                let mut reply = Packet::new_reply(query.id());
                reply.set_flags(PacketFlag::RESPONSE);
                reply.questions.push(q.clone());
                match zone.iter().find(|(n, _, _)| *n == name) {
                    _ if refuse_aaaa => *reply.rcode_mut() = RCODE::ServerFailure,
                    None => *reply.rcode_mut() = RCODE::NameError,
                    Some((_, addrs, ttl)) => {
                        if matches!(q.qtype, simple_dns::QTYPE::TYPE(simple_dns::TYPE::A)) {
                            for a in addrs {
                                reply.answers.push(ResourceRecord::new(
                                    Name::new_unchecked(zone_name(&name)),
                                    CLASS::IN,
                                    *ttl,
                                    RData::A(A {
                                        address: u32::from_be_bytes(*a),
                                    }),
                                ));
                            }
                        }
                    }
                }
                let bytes = reply.build_bytes_vec().unwrap();
                let _ = socket.send_to(&bytes, from);
            }
        });
        Dns { addr, questions }
    }

    /// Questions asked about `name` so far (A and AAAA count separately).
    fn asked(&self, name: &str) -> usize {
        let prefix = format!("{name} ");
        self.questions
            .lock()
            .unwrap()
            .iter()
            .filter(|q| q.starts_with(&prefix))
            .count()
    }
}

/// The zone's names live as long as the test: leak them for the `'static` packet names.
fn zone_name(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

fn get(proxy: &Proxy, url: &str) -> (u16, String) {
    exchange_body(
        proxy.addr,
        &format!("GET {url} HTTP/1.1\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn answers_are_cached_for_their_ttl_and_failures_are_answered_and_remembered() {
    let origin = http_origin("resolved");
    let port = origin.port();
    let dns = Dns::start(vec![
        ("cached.test", vec![[127, 0, 0, 1]], 300),
        ("short.test", vec![[127, 0, 0, 1]], 1),
        ("a-only.test", vec![[127, 0, 0, 1]], 60),
        ("servfail-aaaa.test", vec![[127, 0, 0, 1]], 60),
    ]);
    let server = dns.addr.to_string();
    let proxy = Proxy::start(&[
        "--workers",
        "1",
        "--dns-server",
        &server,
        "--dns-negative-ttl",
        "2",
        "--dns-timeout",
        "300",
        "--connect-timeout",
        "2",
    ]);
    for _ in 0..5 {
        assert_eq!(
            get(&proxy, &format!("http://cached.test:{port}/")),
            (200, "resolved".into())
        );
    }
    assert_eq!(
        dns.asked("cached.test"),
        2,
        "one A and one AAAA question for five requests"
    );

    assert_eq!(get(&proxy, &format!("http://short.test:{port}/")).0, 200);
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(get(&proxy, &format!("http://short.test:{port}/")).0, 200);
    assert_eq!(
        dns.asked("short.test"),
        4,
        "a 1 s TTL expired and the name was asked again"
    );

    let missing = (502, "cannot resolve the target host".to_owned());
    assert_eq!(
        get(&proxy, &format!("http://missing.test:{port}/")),
        missing
    );
    assert_eq!(
        get(&proxy, &format!("http://missing.test:{port}/")),
        missing
    );
    assert_eq!(dns.asked("missing.test"), 2, "no such name is remembered");
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        get(&proxy, &format!("http://missing.test:{port}/")),
        missing
    );
    assert_eq!(
        dns.asked("missing.test"),
        4,
        "and forgotten after dns_negative_ttl"
    );

    // A server that never answers: 504, within the connect timeout.
    let started = Instant::now();
    let silent = get(&proxy, &format!("http://silent.test:{port}/"));
    assert_eq!(
        silent,
        (504, "timed out resolving the target host".to_owned())
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A server that answers A but never AAAA: the A answer is used once the server's time is up.
    assert_eq!(
        get(&proxy, &format!("http://a-only.test:{port}/")),
        (200, "resolved".into())
    );

    // A server that fails the AAAA question but answers A: the A answer is used.
    assert_eq!(
        get(&proxy, &format!("http://servfail-aaaa.test:{port}/")),
        (200, "resolved".into())
    );

    // CONNECT uses the same resolver and cache.
    let mut t = tunnel(proxy.addr, &format!("cached.test:{port}"));
    t.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    let _ = t.read_to_string(&mut got);
    assert!(got.ends_with("resolved"), "{got}");
    assert_eq!(dns.asked("cached.test"), 2);
}

#[test]
fn names_that_resolve_to_forbidden_addresses_are_refused_and_etc_hosts_answers_first() {
    for driver in DRIVERS {
        let origin = http_origin("x");
        let port = origin.port();
        let dns = Dns::start(vec![
            ("sneaky.test", vec![[127, 0, 0, 1]], 60),
            ("metadata.test", vec![[169, 254, 169, 254]], 60),
            // What /etc/hosts says about localhost wins over the server.
            ("localhost", vec![[192, 0, 2, 1]], 60),
        ]);
        let server = dns.addr.to_string();
        let proxy = Proxy::start_strict(&["--io-driver", driver, "--dns-server", &server]);
        let denied = (403, "destination address not allowed".to_owned());
        assert_eq!(get(&proxy, &format!("http://sneaky.test:{port}/")), denied);
        assert_eq!(
            get(&proxy, "http://metadata.test/latest/meta-data/"),
            denied
        );
        assert_eq!(get(&proxy, &format!("http://localhost:{port}/")), denied);
        assert_eq!(dns.asked("localhost"), 0, "/etc/hosts answered");
    }
}

#[test]
fn happy_eyeballs_does_not_wait_for_a_black_holed_first_address() {
    for driver in DRIVERS {
        // 127.0.0.2 takes no connections (its backlog is full: SYNs are dropped, connects hang);
        // 127.0.0.3 serves. The name resolves to both, the dead one first.
        let port = {
            let probe = TcpListener::bind("127.0.0.3:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let hole =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        hole.bind(
            &format!("127.0.0.2:{port}")
                .parse::<SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        hole.listen(0).unwrap();
        let fillers: Vec<TcpStream> = (0..2)
            .filter_map(|_| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .ok()?;
                s.set_nonblocking(true).ok()?;
                let _ = s.connect(
                    &format!("127.0.0.2:{port}")
                        .parse::<SocketAddr>()
                        .unwrap()
                        .into(),
                );
                Some(s.into())
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let live = TcpListener::bind(format!("127.0.0.3:{port}")).unwrap();
        std::thread::spawn(move || {
            for s in live.incoming() {
                let Ok(mut s) = s else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = read_head(&mut s);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlive");
            }
        });
        let dns = Dns::start(vec![(
            "twice.test",
            vec![[127, 0, 0, 2], [127, 0, 0, 3]],
            60,
        )]);
        let server = dns.addr.to_string();
        let proxy = Proxy::start(&[
            "--io-driver",
            driver,
            "--dns-server",
            &server,
            "--connect-timeout",
            "8",
        ]);
        let started = Instant::now();
        assert_eq!(
            get(&proxy, &format!("http://twice.test:{port}/")),
            (200, "live".into())
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(4),
            "waited {took:?} for the dead address"
        );
        assert_eq!(served.load(Ordering::SeqCst), 1);
        drop(fillers);
    }
}

/// A resolv.conf with `text` in a scratch directory of the test's own.
fn resolv_conf(test: &str, text: &str) -> String {
    let path = scratch(test).join("resolv.conf");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn the_default_resolver_reads_resolv_conf_and_applies_its_search_list_and_ndots() {
    for driver in DRIVERS {
        let origin = http_origin("found");
        let port = origin.port();
        let here = vec![[127, 0, 0, 1]];
        let Some(dns) = Dns::start_on_53(
            "127.53.0.1",
            vec![
                ("www.corp.test", here.clone(), 60),
                ("api.other.test", here.clone(), 60),
                ("x.y", here.clone(), 60),
                ("two.dots.test", here.clone(), 60),
            ],
        ) else {
            return;
        };
        let conf = resolv_conf(
            "resolv-search",
            "# test\nnameserver 127.53.0.1\nsearch corp.test other.test\noptions ndots:2 timeout:1 attempts:1\n",
        );
        // No dns_servers: the name servers come from the file.
        let proxy = Proxy::start(&[
            "--io-driver",
            driver,
            "--workers",
            "1",
            "--resolv-conf",
            &conf,
        ]);
        let found = (200, "found".to_owned());
        // Fewer dots than ndots: the search list first, the name as given last (and only if needed).
        assert_eq!(get(&proxy, &format!("http://www:{port}/")), found);
        assert_eq!((dns.asked("www.corp.test"), dns.asked("www")), (2, 0));
        assert_eq!(get(&proxy, &format!("http://api:{port}/")), found);
        assert_eq!(
            (
                dns.asked("api.corp.test"),
                dns.asked("api.other.test"),
                dns.asked("api")
            ),
            (2, 2, 0)
        );
        assert_eq!(get(&proxy, &format!("http://x.y:{port}/")), found);
        assert_eq!(
            (
                dns.asked("x.y.corp.test"),
                dns.asked("x.y.other.test"),
                dns.asked("x.y")
            ),
            (2, 2, 2)
        );
        // At least ndots dots: the name as given first.
        assert_eq!(get(&proxy, &format!("http://two.dots.test:{port}/")), found);
        assert_eq!(
            (
                dns.asked("two.dots.test"),
                dns.asked("two.dots.test.corp.test")
            ),
            (2, 0)
        );
        // Found nowhere: every name tried, then 502.
        assert_eq!(
            get(&proxy, &format!("http://nowhere:{port}/")).0,
            502,
            "no such name"
        );
        assert_eq!(
            (
                dns.asked("nowhere.corp.test"),
                dns.asked("nowhere.other.test"),
                dns.asked("nowhere")
            ),
            (2, 2, 2)
        );
        // /etc/hosts still answers first.
        assert_eq!(get(&proxy, &format!("http://localhost:{port}/")), found);
        assert_eq!(dns.asked("localhost") + dns.asked("localhost.corp.test"), 0);
    }
}

#[test]
fn a_name_that_timed_out_is_not_asked_again_for_a_while() {
    let origin = http_origin("x");
    let port = origin.port();
    let dns = Dns::start(vec![]);
    let server = dns.addr.to_string();
    let proxy = Proxy::start(&[
        "--workers",
        "1",
        "--dns-server",
        &server,
        "--dns-timeout",
        "300",
        "--dns-negative-ttl",
        "2",
        "--connect-timeout",
        "2",
    ]);
    let url = format!("http://x.silent.test:{port}/");
    let timed_out = (504, "timed out resolving the target host".to_owned());
    assert_eq!(get(&proxy, &url), timed_out);
    assert_eq!(dns.asked("x.silent.test"), 2);
    // Remembered: answered at once, nothing asked.
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(get(&proxy, &url), timed_out);
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        dns.asked("x.silent.test"),
        2,
        "a timed-out name was asked again at once"
    );
    // Only for a while (dns_negative_ttl_secs): then asked again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dns.asked("x.silent.test") == 2 && Instant::now() < deadline {
        assert_eq!(get(&proxy, &url), timed_out);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        dns.asked("x.silent.test"),
        4,
        "asked again after the negative TTL"
    );
}

#[test]
fn one_client_has_at_most_8_lookups_in_flight_and_more_get_503() {
    let origin = http_origin("x");
    let port = origin.port();
    let dns = Arc::new(Dns::start(vec![]));
    let server = dns.addr.to_string();
    let proxy = Proxy::start(&[
        "--workers",
        "1",
        "--dns-server",
        &server,
        "--dns-timeout",
        "3000",
        "--connect-timeout",
        "5",
    ]);
    let addr = proxy.addr;
    let waiting: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                exchange_body(
                    addr,
                    &format!(
                        "GET http://u{i}.silent.test:{port}/ HTTP/1.1\r\nConnection: close\r\n\r\n"
                    ),
                )
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (0..8).any(|i| dns.asked(&format!("u{i}.silent.test")) == 0) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!((0..8).all(|i| dns.asked(&format!("u{i}.silent.test")) > 0));
    // The ninth from the same address: refused at once, nothing asked.
    let started = Instant::now();
    assert_eq!(
        get(&proxy, &format!("http://u8.silent.test:{port}/")),
        (503, "too many name lookups in flight; retry".to_owned())
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(dns.asked("u8.silent.test"), 0);
    // Another client address still gets its lookup.
    let mut other = connect_from("127.0.0.2", proxy.addr);
    write!(
        other,
        "GET http://v.silent.test:{port}/ HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while dns.asked("v.silent.test") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        dns.asked("v.silent.test") > 0,
        "another client's lookup was refused"
    );
    for w in waiting {
        assert_eq!(w.join().unwrap().0, 504);
    }
}

/// Whether the system resolver can be pointed at a test server safely here: a private mount
/// namespace can put a file over /etc/resolv.conf, and nsswitch sends host lookups only to
/// `files` and `dns` (another source, such as systemd-resolved, could ask the real resolver).
fn private_resolv_conf_possible(conf: &str) -> bool {
    let nss = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let hosts_line = nss
        .lines()
        .find(|l| l.trim_start().starts_with("hosts:"))
        .unwrap_or("hosts: files dns");
    let only_files_and_dns = hosts_line
        .trim_start()
        .trim_start_matches("hosts:")
        .split_whitespace()
        .all(|w| w == "files" || w == "dns");
    let mounted = std::process::Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/resolv.conf && grep -q 127.53.0.4 /etc/resolv.conf",
            conf,
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !(only_files_and_dns && mounted) {
        eprintln!(
            "skipped: no private resolv.conf here (nsswitch: {hosts_line:?}, unshare+mount: {mounted})"
        );
    }
    only_files_and_dns && mounted
}

#[test]
fn the_system_resolvers_queue_is_bounded_and_the_overflow_gets_503() {
    let origin = http_origin("x");
    let port = origin.port();
    let Some(dns) = Dns::start_on_53("127.53.0.4", vec![]) else {
        return;
    };
    let conf = resolv_conf(
        "resolv-system",
        "nameserver 127.53.0.4\noptions timeout:3 attempts:1\n",
    );
    if !private_resolv_conf_possible(&conf) {
        return;
    }
    // getaddrinfo in ringgate sees only the test's resolv.conf (a mount namespace of its own;
    // if the mount fails, ringgate is not started at all).
    let proxy = Proxy::start_with_private_resolv_conf(
        &conf,
        &[
            "--workers",
            "1",
            "--dns-resolver",
            "system",
            "--resolver-threads",
            "1",
            "--resolver-queue",
            "2",
            "--connect-timeout",
            "6",
        ],
    );
    let addr = proxy.addr;
    let ask = move |name: &'static str| {
        std::thread::spawn(move || {
            exchange_body(
                addr,
                &format!("GET http://{name}:{port}/ HTTP/1.1\r\nConnection: close\r\n\r\n"),
            )
        })
    };
    // The one thread is busy with the first name (its server never answers)...
    let first = ask("q1.silent.test");
    let deadline = Instant::now() + Duration::from_secs(5);
    while dns.asked("q1.silent.test") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        dns.asked("q1.silent.test") > 0,
        "getaddrinfo did not reach the test server"
    );
    // ...so of two more, one waits in the queue (2 places in all) and one is refused.
    let started = Instant::now();
    let (second, third) = (ask("q2.silent.test"), ask("q3.silent.test"));
    let answers = [second.join().unwrap(), third.join().unwrap()];
    let busy = (503, "too many name lookups in flight; retry".to_owned());
    assert_eq!(
        answers.iter().filter(|a| **a == busy).count(),
        1,
        "{answers:?} after {:?}",
        started.elapsed()
    );
    assert_ne!(first.join().unwrap(), busy);
}

#[test]
fn names_under_invalid_are_answered_502_without_a_question() {
    for driver in DRIVERS {
        let dns = Dns::start(vec![]);
        let server = dns.addr.to_string();
        let proxy = Proxy::start(&["--io-driver", driver, "--dns-server", &server]);
        assert_eq!(
            get(&proxy, "http://no-such-host.invalid/"),
            (502, "cannot resolve the target host".to_owned())
        );
        assert_eq!(
            dns.asked("no-such-host.invalid"),
            0,
            "RFC 6761: never asked"
        );
    }
}
