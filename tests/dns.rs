//! Name resolution against the real binary with a DNS server started by the test (UDP on
//! loopback, answering by name and counting the questions): answers cached for their TTL, names
//! that do not exist remembered briefly (502), a silent server (504), a name that resolves to a
//! forbidden address (403), /etc/hosts first, and Happy Eyeballs over a black-holed address.
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

/// Answers: name → (addresses, ttl). Unknown names get NXDOMAIN; `silent.test` no answer at all.
struct Dns {
    addr: SocketAddr,
    questions: Arc<Mutex<Vec<String>>>,
}

impl Dns {
    fn start(zone: Vec<(&'static str, Vec<[u8; 4]>, u32)>) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
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
                if name == "silent.test" || (name == "a-only.test" && aaaa) {
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
    let origin = http_origin("x");
    let port = origin.port();
    let dns = Dns::start(vec![
        ("sneaky.test", vec![[127, 0, 0, 1]], 60),
        ("metadata.test", vec![[169, 254, 169, 254]], 60),
        // What /etc/hosts says about localhost wins over the server.
        ("localhost", vec![[192, 0, 2, 1]], 60),
    ]);
    let server = dns.addr.to_string();
    let proxy = Proxy::start_strict(&["--dns-server", &server]);
    let denied = (403, "destination address not allowed".to_owned());
    assert_eq!(get(&proxy, &format!("http://sneaky.test:{port}/")), denied);
    assert_eq!(
        get(&proxy, "http://metadata.test/latest/meta-data/"),
        denied
    );
    assert_eq!(get(&proxy, &format!("http://localhost:{port}/")), denied);
    assert_eq!(dns.asked("localhost"), 0, "/etc/hosts answered");
}

#[test]
fn happy_eyeballs_does_not_wait_for_a_black_holed_first_address() {
    // 127.0.0.2 takes no connections (its backlog is full: SYNs are dropped, connects hang);
    // 127.0.0.3 serves. The name resolves to both, the dead one first.
    let port = {
        let probe = TcpListener::bind("127.0.0.3:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let hole = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
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
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
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
    let proxy = Proxy::start(&["--dns-server", &server, "--connect-timeout", "8"]);
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
