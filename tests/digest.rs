//! Digest proxy authentication (RFC 7616) against the real binary: curl (`--proxy-digest` for
//! plain http and CONNECT, `--proxy-anyauth` choosing Digest over Basic), Python's urllib, users
//! made by Apache's `htdigest`, and raw sockets for the rules a client cannot be made to break:
//! stale nonces, replayed counts, wrong `uri`/realm/opaque, `userhash`, users with one hash only,
//! and malformed parameter lists.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ringgate::auth::digest::{Hash, ha1, sum, userhash};
use support::*;

const REALM: &str = "ringgate";

/// The HA1 line `htdigest` writes, for `hash`.
fn ha1_line(user: &str, password: &str, hash: Hash) -> String {
    let h = ha1(hash, user, REALM, password.as_bytes()).hex();
    format!("{user}:{REALM}:{}\n", std::str::from_utf8(&h).unwrap())
}

/// An htdigest-format file with `lines`.
fn user_file(name: &str, lines: &[String]) -> PathBuf {
    let path = scratch(name).join("htdigest");
    std::fs::write(&path, lines.concat()).unwrap();
    path
}

/// A proxy serving Digest (and Basic for `--user`) users.
fn proxy(file: &std::path::Path, extra: &[&str]) -> Proxy {
    Proxy::start(&[&["--htdigest", file.to_str().unwrap()][..], extra].concat())
}

/// One Digest challenge of a 407.
#[derive(Debug)]
struct Challenge {
    algorithm: String,
    nonce: String,
    opaque: String,
    stale: bool,
}

fn param(line: &str, name: &str) -> Option<String> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[at..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q[..q.find('"')?].to_owned(),
        None => rest.split([',', '\r']).next()?.trim().to_owned(),
    })
}

fn digest_challenges(head: &str) -> Vec<Challenge> {
    head.lines()
        .filter_map(|l| l.strip_prefix("Proxy-Authenticate: Digest"))
        .map(|l| Challenge {
            algorithm: param(l, "algorithm").unwrap(),
            nonce: param(l, "nonce").unwrap(),
            opaque: param(l, "opaque").unwrap(),
            stale: param(l, "stale").as_deref() == Some("true"),
        })
        .collect()
}

/// What a client that knows `password` answers.
struct Answer<'a> {
    user: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nc: u32,
    hash: Hash,
    realm: &'a str,
    userhash: bool,
}

impl Answer<'_> {
    fn new<'a>(user: &'a str, password: &'a str, method: &'a str, uri: &'a str) -> Answer<'a> {
        Answer {
            user,
            password,
            method,
            uri,
            nc: 1,
            hash: Hash::Sha256,
            realm: REALM,
            userhash: false,
        }
    }

    fn header(&self, c: &Challenge) -> String {
        let h = self.hash;
        let hex = |s: ringgate::auth::digest::Sum| String::from_utf8(s.hex().to_vec()).unwrap();
        let a1 = hex(ha1(h, self.user, self.realm, self.password.as_bytes()));
        let a2 = hex(sum(h, &[self.method.as_bytes(), self.uri.as_bytes()]));
        let nc = format!("{:08x}", self.nc);
        let response = hex(sum(
            h,
            &[
                a1.as_bytes(),
                c.nonce.as_bytes(),
                nc.as_bytes(),
                b"cn0nce",
                b"auth",
                a2.as_bytes(),
            ],
        ));
        let (username, flag) = if self.userhash {
            (hex(userhash(h, self.user, self.realm)), ", userhash=true")
        } else {
            (self.user.to_owned(), "")
        };
        let algorithm = match h {
            Hash::Md5 => "MD5",
            Hash::Sha256 => "SHA-256",
        };
        format!(
            "Proxy-Authorization: Digest username=\"{username}\", realm=\"{}\", uri=\"{}\", \
             algorithm={algorithm}, nonce=\"{}\", nc={nc}, cnonce=\"cn0nce\", qop=auth, \
             response=\"{response}\", opaque=\"{}\"{flag}\r\n",
            self.realm, self.uri, c.nonce, c.opaque
        )
    }
}

fn get(origin: &str, extra: &str) -> String {
    format!("GET http://{origin}/path?q=1 HTTP/1.1\r\nHost: {origin}\r\n{extra}\r\n")
}

/// Asks without credentials and returns the 407's first Digest challenge.
fn challenge(s: &mut TcpStream, origin: &str) -> Challenge {
    let (code, head, _) = ask(s, &get(origin, ""));
    assert_eq!(code, 407, "{head}");
    digest_challenges(&head).remove(0)
}

#[test]
fn the_407_offers_each_algorithm_strongest_first_then_basic() {
    let file = user_file("dg-offer", &[ha1_line("alice", "pw", Hash::Md5)]);
    let proxy = proxy(&file, &["--user", "bob:pw"]);
    let origin = http_origin("hello\n");
    let mut s = open(&proxy);
    let (code, head, _) = ask(&mut s, &get(&origin.to_string(), ""));
    assert_eq!(code, 407);
    let fields: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("Proxy-Authenticate: "))
        .collect();
    assert_eq!(fields.len(), 3, "{head}");
    assert!(
        fields[0]
            .starts_with("Digest realm=\"ringgate\", qop=\"auth\", algorithm=SHA-256, nonce=\"")
    );
    assert!(
        fields[0].ends_with(", charset=UTF-8, userhash=true"),
        "{}",
        fields[0]
    );
    assert!(fields[1].contains("algorithm=MD5, nonce=\""));
    assert_eq!(fields[2], "Basic realm=\"ringgate\", charset=\"UTF-8\"");
    let c = digest_challenges(&head);
    assert_eq!(c[0].nonce, c[1].nonce, "one nonce per 407");
    // A second 407 on the same connection has a new nonce.
    let again = challenge(&mut s, &origin.to_string());
    assert_ne!(again.nonce, c[0].nonce);
}

#[test]
fn curl_proxy_digest_forwards_and_tunnels() {
    let file = user_file(
        "dg-curl",
        &[
            ha1_line("alice", "s3cret", Hash::Md5),
            ha1_line("alice", "s3cret", Hash::Sha256),
        ],
    );
    let origin = http_origin("through digest\n");
    for driver in DRIVERS {
        let proxy = proxy(&file, &["--io-driver", driver]);
        let url = format!("http://{origin}/x?y=1");
        let proxy_url = format!("http://{}", proxy.addr);
        for tunnel in [false, true] {
            let mut args = vec![
                "--proxy-digest",
                "--proxy-user",
                "alice:s3cret",
                "-x",
                &proxy_url,
                &url,
            ];
            if tunnel {
                args.insert(0, "-p");
            }
            let (out, err) = curl_text(&args);
            assert_eq!(out, "through digest\n", "{driver} tunnel={tunnel}: {err}");
        }
        let (out, _) = curl_text(&[
            "-i",
            "--proxy-digest",
            "--proxy-user",
            "alice:wrong",
            "-x",
            &proxy_url,
            &url,
        ]);
        assert!(out.starts_with("HTTP/1.1 407"), "{out}");
    }
}

#[test]
fn curl_anyauth_picks_digest_when_basic_is_offered_too() {
    // alice is an inline user (both schemes); the file holds another.
    let file = user_file("dg-any", &[ha1_line("dora", "pw", Hash::Md5)]);
    let proxy = proxy(
        &file,
        &["--auth-schemes", "basic,digest", "--user", "alice:pw"],
    );
    let origin = http_origin("any\n");
    let out = curl(&[
        "-v",
        "--proxy-anyauth",
        "--proxy-user",
        "alice:pw",
        "-x",
        &format!("http://{}", proxy.addr),
        &format!("http://{origin}/"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "any\n", "{err}");
    assert!(err.contains("> Proxy-Authorization: Digest "), "{err}");
    assert!(!err.contains("> Proxy-Authorization: Basic "), "{err}");
}

#[test]
fn python_urllib_digest_handler_with_md5_first() {
    let file = user_file("dg-py", &[ha1_line("alice", "pw", Hash::Md5)]);
    let proxy = proxy(&file, &["--digest-algorithms", "MD5,SHA-256"]);
    let origin = http_origin("from python\n");
    let out = python(
        "import sys, urllib.request as u\n\
         h = u.ProxyDigestAuthHandler()\n\
         h.add_password('ringgate', sys.argv[2], 'alice', 'pw')\n\
         o = u.build_opener(u.ProxyHandler({'http': sys.argv[1]}), h)\n\
         print(o.open(sys.argv[2]).read().decode(), end='')\n",
        &[
            &format!("http://{}", proxy.addr),
            &format!("http://{origin}/py"),
        ],
    );
    assert_eq!(out, "from python\n");
}

#[test]
fn users_made_by_apache_htdigest_log_in() {
    let dir = scratch("dg-apache");
    let file = dir.join("users");
    let _ = std::fs::remove_file(&file);
    // htdigest reads the password from its terminal only: give it one.
    let (code, out) = on_a_terminal(
        &[
            "htdigest",
            "-c",
            file.to_str().unwrap(),
            "ringgate",
            "carol",
        ],
        &["c4rol", "c4rol"],
    );
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("carol:ringgate:"), "{text}");
    // htdigest writes MD5 HA1s only, and curl answers the first Digest challenge.
    let proxy = proxy(&file, &["--digest-algorithms", "MD5"]);
    let origin = http_origin("apache user\n");
    let (out, err) = curl_text(&[
        "--proxy-digest",
        "--proxy-user",
        "carol:c4rol",
        "-x",
        &format!("http://{}", proxy.addr),
        &format!("http://{origin}/"),
    ]);
    assert_eq!(out, "apache user\n", "{err}");
}

#[test]
fn raw_answers_stale_replayed_and_mismatched() {
    let file = user_file(
        "dg-raw",
        &[
            ha1_line("alice", "pw", Hash::Sha256),
            ha1_line("alice", "pw", Hash::Md5),
            ha1_line("md5only", "pw", Hash::Md5),
            ha1_line("shaonly", "pw", Hash::Sha256),
        ],
    );
    let proxy = proxy(&file, &["--digest-nonce-ttl", "2"]);
    let origin = http_origin("ok\n");
    let o = origin.to_string();
    let uri = "/path?q=1";
    let mut s = open(&proxy);
    let c = challenge(&mut s, &o);
    assert!(!c.stale);
    assert_eq!(c.algorithm, "SHA-256");

    // Right, on the same connection; then a replayed count, refused with stale=true.
    let mut a = Answer::new("alice", "pw", "GET", uri);
    let (code, head, body) = ask(&mut s, &get(&o, &a.header(&c)));
    assert_eq!((code, body.as_str()), (200, "ok\n"), "{head}");
    let mut s = open(&proxy);
    let (code, head, _) = ask(&mut s, &get(&o, &a.header(&c)));
    assert_eq!(code, 407, "a replayed nc on another connection");
    assert!(digest_challenges(&head)[0].stale, "{head}");
    // A higher count on another connection passes (any worker judges any nonce).
    a.nc = 2;
    let (code, _, _) = ask(&mut open(&proxy), &get(&o, &a.header(&c)));
    assert_eq!(code, 200);
    // The full URL as uri (what urllib sends) is this request too.
    let full = format!("http://{o}/path?q=1");
    let whole = Answer {
        uri: &full,
        nc: 3,
        ..Answer::new("alice", "pw", "GET", uri)
    };
    assert_eq!(ask(&mut open(&proxy), &get(&o, &whole.header(&c))).0, 200);

    // Each mismatch: 407 without stale.
    let cases: Vec<(&str, Answer<'_>)> = vec![
        (
            "wrong password",
            Answer {
                nc: 10,
                ..Answer::new("alice", "nope", "GET", uri)
            },
        ),
        (
            "wrong uri",
            Answer {
                nc: 11,
                ..Answer::new("alice", "pw", "GET", "/other")
            },
        ),
        (
            "wrong method in HA2",
            Answer {
                nc: 12,
                ..Answer::new("alice", "pw", "POST", uri)
            },
        ),
        (
            "another realm",
            Answer {
                nc: 13,
                realm: "elsewhere",
                ..Answer::new("alice", "pw", "GET", uri)
            },
        ),
        (
            "MD5-only user on SHA-256",
            Answer {
                nc: 14,
                ..Answer::new("md5only", "pw", "GET", uri)
            },
        ),
        (
            "SHA-256-only user on MD5",
            Answer {
                nc: 15,
                hash: Hash::Md5,
                ..Answer::new("shaonly", "pw", "GET", uri)
            },
        ),
        (
            "unknown user",
            Answer {
                nc: 16,
                ..Answer::new("mallory", "pw", "GET", uri)
            },
        ),
    ];
    for (what, answer) in cases {
        let (code, head, _) = ask(&mut open(&proxy), &get(&o, &answer.header(&c)));
        assert_eq!(code, 407, "{what}");
        assert!(!digest_challenges(&head)[0].stale, "{what}: {head}");
    }
    // Each user with its own hash, and a hashed user name.
    for answer in [
        Answer {
            nc: 20,
            hash: Hash::Md5,
            ..Answer::new("md5only", "pw", "GET", uri)
        },
        Answer {
            nc: 21,
            ..Answer::new("shaonly", "pw", "GET", uri)
        },
        Answer {
            nc: 22,
            userhash: true,
            ..Answer::new("alice", "pw", "GET", uri)
        },
        Answer {
            nc: 23,
            userhash: true,
            hash: Hash::Md5,
            ..Answer::new("alice", "pw", "GET", uri)
        },
    ] {
        let (code, head, _) = ask(&mut open(&proxy), &get(&o, &answer.header(&c)));
        assert_eq!(code, 200, "{} {:?}: {head}", answer.user, answer.hash);
    }
    // CONNECT: the uri is the authority.
    let connect = |uri: &str, nc: u32| {
        let a = Answer {
            nc,
            ..Answer::new("alice", "pw", "CONNECT", uri)
        };
        format!("CONNECT {o} HTTP/1.1\r\nHost: {o}\r\n{}\r\n", a.header(&c))
    };
    let mut t = open(&proxy);
    t.write_all(connect(&o, 30).as_bytes()).unwrap();
    assert_eq!(
        read_head(&mut t),
        "HTTP/1.1 200 Connection established\r\n\r\n"
    );
    let (code, _, _) = ask(&mut open(&proxy), &connect("/", 31));
    assert_eq!(code, 407, "CONNECT with a path as uri");

    // Past its lifetime, the same right answer is told stale=true; the new nonce works.
    let mut nc = 40;
    assert!(
        wait_until(Duration::from_secs(10), || {
            nc += 1;
            let a = Answer {
                nc,
                ..Answer::new("alice", "pw", "GET", uri)
            };
            let (code, head, _) = ask(&mut open(&proxy), &get(&o, &a.header(&c)));
            code == 407 && digest_challenges(&head)[0].stale
        }),
        "the nonce goes stale"
    );
    let mut s = open(&proxy);
    let fresh = challenge(&mut s, &o);
    let a = Answer::new("alice", "pw", "GET", uri);
    assert_eq!(ask(&mut s, &get(&o, &a.header(&fresh))).0, 200);
}

#[test]
fn malformed_lists_get_407_and_others_are_served() {
    let file = user_file("dg-bad", &[ha1_line("alice", "pw", Hash::Sha256)]);
    let proxy = proxy(&file, &[]);
    let origin = http_origin("ok\n");
    let o = origin.to_string();
    let base = proxy.fds();
    let long = "x".repeat(9000);
    let bad = [
        "Digest".to_owned(),
        "Digest ,,,".to_owned(),
        "Digest username=alice".to_owned(),
        "Digest username=\"alice\", username=\"alice\"".to_owned(),
        "Digest username=\"alice\", realm=\"ringgate\", uri=\"/\", nonce=\"n\", nc=1, cnonce=\"c\", qop=auth, response=\"00\"".to_owned(),
        format!("Digest username=\"{long}\""),
        "Digest username=\"unterminated".to_owned(),
        "Digest qop=auth-int".to_owned(),
        "Digest algorithm=SHA-512-256".to_owned(),
    ];
    for value in &bad {
        let mut s = open(&proxy);
        let (code, head, _) = ask(
            &mut s,
            &get(&o, &format!("Proxy-Authorization: {value}\r\n")),
        );
        assert_eq!(code, 407, "{value:?}: {head}");
    }
    // Not UTF-8 and a NUL, written as raw bytes.
    for raw in [
        &b"Digest username=\"\xff\xfe\""[..],
        b"Digest username=\"a\0b\"",
    ] {
        let mut s = open(&proxy);
        let request = [
            format!("GET http://{o}/ HTTP/1.1\r\nHost: {o}\r\nProxy-Authorization: ").as_bytes(),
            raw,
            b"\r\n\r\n",
        ]
        .concat();
        let (code, _, _) = ask(&mut s, &request);
        assert!(code == 407 || code == 400, "{code}");
    }
    let mut s = open(&proxy);
    let c = challenge(&mut s, &o);
    let a = Answer::new("alice", "pw", "GET", "/path?q=1");
    assert_eq!(ask(&mut s, &get(&o, &a.header(&c))).0, 200);
    drop(s);
    proxy.assert_fds_return_to(base);
}

#[test]
fn a_broken_htdigest_file_stops_the_start_naming_its_line() {
    let file = user_file("dg-broken", &["alice:ringgate:nothex\n".to_owned()]);
    let out = Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args([
            "--htdigest",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn the_access_log_and_metrics_name_the_scheme() {
    let file = user_file("dg-observe", &[ha1_line("alice", "pw", Hash::Sha256)]);
    let log = scratch("dg-observe").join("access.log");
    let proxy = proxy(
        &file,
        &[
            "--access-log",
            log.to_str().unwrap(),
            "--access-log-format",
            "json",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let origin = http_origin("ok\n");
    let o = origin.to_string();
    let mut s = open(&proxy);
    let c = challenge(&mut s, &o);
    let a = Answer::new("alice", "pw", "GET", "/path?q=1");
    assert_eq!(ask(&mut s, &get(&o, &a.header(&c))).0, 200);
    let wrong = Answer {
        nc: 2,
        ..Answer::new("alice", "nope", "GET", "/path?q=1")
    };
    assert_eq!(ask(&mut s, &get(&o, &wrong.header(&c))).0, 407);
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("\"status\":200"))),
        "the 200 is logged"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let ok = text.lines().find(|l| l.contains("\"status\":200")).unwrap();
    let line: serde_json::Value = serde_json::from_str(ok).unwrap();
    assert_eq!(
        (line["user"].as_str(), line["auth_scheme"].as_str()),
        (Some("alice"), Some("digest"))
    );
    // The admin address is in the start-up log.
    assert!(proxy.wait_log("admin endpoint"));
    let admin: std::net::SocketAddr = proxy
        .log_text()
        .split("admin=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap();
    let scrape = exchange(admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        scrape.contains("auth_checks_total{scheme=\"digest\",result=\"success\"} 1"),
        "{scrape}"
    );
    assert!(
        scrape.contains("auth_checks_total{scheme=\"digest\",result=\"failure\"} 1"),
        "{scrape}"
    );
}
