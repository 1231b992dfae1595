//! NTLM proxy authentication against the real binary: curl `--proxy-ntlm` (plain http and
//! CONNECT, `DOMAIN\user`, bare `user`, `user@domain`, right and wrong passwords), curl
//! `--proxy-anyauth` picking NTLM, users written by `ringgate passwd --ntlm`, and raw sockets for
//! what a client cannot be made to do: interleaved handshakes, a type 3 replayed on another
//! connection or answering another challenge, abandoned and expired handshakes, NTLMv1 with and
//! without `ntlm_allow_v1`, skewed clocks, and a table of malformed messages.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use ringgate::auth::ntlm::{self, client, flags};
use support::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// curl's type 1 flags (checked: 0x00088206).
const CURL_FLAGS: u32 = 0x0008_8206;

/// An NT-hash file with `alice` (password `s3cret`) and `bob` in smbpasswd format (`hunter2`).
fn user_file(name: &str) -> PathBuf {
    let hex = |h: [u8; 16]| -> String { h.iter().map(|b| format!("{b:02x}")).collect() };
    let path = scratch(name).join("nthash");
    std::fs::write(
        &path,
        format!(
            "# NT hashes\nalice:{}\nbob:1001:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:{}:[U          ]:LCT-65F0A1B2:\n",
            hex(ntlm::nt_hash("s3cret")),
            hex(ntlm::nt_hash("hunter2")).to_uppercase(),
        ),
    )
    .unwrap();
    path
}

fn proxy(file: &std::path::Path, extra: &[&str]) -> Proxy {
    Proxy::start(
        &[
            &[
                "--ntlm-users",
                file.to_str().unwrap(),
                "--ntlm-domain",
                "CORP",
            ][..],
            extra,
        ]
        .concat(),
    )
}

fn get(origin: &str, auth: Option<&[u8]>) -> String {
    let field = auth.map_or(String::new(), |m| {
        format!("Proxy-Authorization: NTLM {}\r\n", B64.encode(m))
    });
    format!("GET http://{origin}/n HTTP/1.1\r\nHost: {origin}\r\n{field}\r\n")
}

/// Sends a type 1 and returns the type 2's challenge and target info; the 407 must keep the
/// connection and say `Proxy-Support`.
fn start(s: &mut TcpStream, origin: &str) -> ([u8; 8], Vec<u8>) {
    let (code, head, _) = ask(s, &get(origin, Some(&client::negotiate(CURL_FLAGS))));
    assert_eq!(code, 407, "{head}");
    assert!(
        head.contains("\r\nProxy-Support: Session-Based-Authentication\r\n"),
        "{head}"
    );
    assert!(!head.contains("Connection: close"), "{head}");
    let token = head
        .lines()
        .find_map(|l| l.strip_prefix("Proxy-Authenticate: NTLM "))
        .unwrap_or_else(|| panic!("no type 2: {head}"));
    let m = B64.decode(token.trim()).unwrap();
    client::read_challenge(&m).unwrap()
}

fn now_filetime() -> u64 {
    ntlm::filetime(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap(),
    )
}

/// A client's NTLMv2 type 3 for `user`/`domain` with `password`, answering `challenge`.
fn answer(user: &str, domain: &str, password: &str, c: &([u8; 8], Vec<u8>)) -> Vec<u8> {
    answer_at(user, domain, password, c, now_filetime())
}

fn answer_at(
    user: &str,
    domain: &str,
    password: &str,
    c: &([u8; 8], Vec<u8>),
    timestamp: u64,
) -> Vec<u8> {
    let nt = client::v2_response(
        &ntlm::nt_hash(password),
        user,
        domain,
        &c.0,
        &[7; 8],
        timestamp,
        &c.1,
    );
    client::authenticate(
        &[0; 24],
        &nt,
        domain,
        user,
        "WS",
        flags::UNICODE | flags::EXTENDED_SESSION_SECURITY | flags::NTLM,
    )
}

#[test]
fn curl_proxy_ntlm_forwards_and_tunnels_in_every_user_form() {
    let file = user_file("nt-curl");
    let origin = http_origin("through ntlm\n");
    for driver in DRIVERS {
        let proxy = proxy(&file, &["--io-driver", driver]);
        let url = format!("http://{origin}/x?y=1");
        let proxy_url = format!("http://{}", proxy.addr);
        for user in [
            "CORP\\alice:s3cret",
            "corp\\ALICE:s3cret",
            "alice:s3cret",
            "alice@corp.example:s3cret",
            "bob:hunter2",
        ] {
            for tunnel in [false, true] {
                let mut args = vec!["--proxy-ntlm", "--proxy-user", user, "-x", &proxy_url, &url];
                if tunnel {
                    args.insert(0, "-p");
                }
                let (out, err) = curl_text(&args);
                assert_eq!(
                    out, "through ntlm\n",
                    "{driver} {user} tunnel={tunnel}: {err}"
                );
            }
        }
        for user in ["CORP\\alice:wrong", "OTHER\\alice:s3cret", "carol:s3cret"] {
            let (out, _) = curl_text(&[
                "-i",
                "--proxy-ntlm",
                "--proxy-user",
                user,
                "-x",
                &proxy_url,
                &url,
            ]);
            assert!(out.starts_with("HTTP/1.1 407"), "{user}: {out}");
        }
    }
}

#[test]
fn curl_anyauth_picks_ntlm_over_basic() {
    let file = user_file("nt-any");
    let proxy = proxy(
        &file,
        &["--auth-schemes", "basic,ntlm", "--user", "dora:pw"],
    );
    let origin = http_origin("any\n");
    let out = curl(&[
        "-v",
        "--proxy-anyauth",
        "--proxy-user",
        "alice:s3cret",
        "-x",
        &format!("http://{}", proxy.addr),
        &format!("http://{origin}/"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "any\n", "{err}");
    assert!(err.contains("> Proxy-Authorization: NTLM "), "{err}");
    assert!(!err.contains("> Proxy-Authorization: Basic "), "{err}");
    assert!(err.contains("< Proxy-Authenticate: Basic"), "{err}");
    assert!(err.contains("< Proxy-Authenticate: NTLM\r"), "{err}");
}

#[test]
fn handshakes_are_bound_to_their_connection() {
    let file = user_file("nt-bound");
    let proxy = proxy(&file, &[]);
    let origin = http_origin("ok\n");
    let o = origin.to_string();
    // Two clients interleaved: each answers its own challenge.
    let (mut a, mut b) = (open(&proxy), open(&proxy));
    let ca = start(&mut a, &o);
    let cb = start(&mut b, &o);
    assert_ne!(ca.0, cb.0, "a fresh challenge per handshake");
    let ta = answer("alice", "CORP", "s3cret", &ca);
    let tb = answer("bob", "", "hunter2", &cb);
    assert_eq!(ask(&mut b, &get(&o, Some(&tb))).0, 200);
    let (code, head, _) = ask(&mut a, &get(&o, Some(&ta)));
    assert_eq!(code, 200, "{head}");
    assert!(
        head.contains("Proxy-Support: Session-Based-Authentication"),
        "{head}"
    );
    // The connection stays authenticated without the header.
    assert_eq!(ask(&mut a, &get(&o, None)).0, 200);
    // The type 3 replayed on another connection (no handshake there) → 407.
    let mut c = open(&proxy);
    assert_eq!(ask(&mut c, &get(&o, Some(&ta))).0, 407);
    // ... and on a connection with a handshake of its own: it answers another challenge → 407.
    let mut d = open(&proxy);
    let _ = start(&mut d, &o);
    assert_eq!(ask(&mut d, &get(&o, Some(&ta))).0, 407);
    // The handshake is over after one answer, right or wrong: the right one now is refused too.
    let mut e = open(&proxy);
    let ce = start(&mut e, &o);
    assert_eq!(
        ask(
            &mut e,
            &get(&o, Some(&answer("alice", "CORP", "nope", &ce)))
        )
        .0,
        407
    );
    assert_eq!(
        ask(
            &mut e,
            &get(&o, Some(&answer("alice", "CORP", "s3cret", &ce)))
        )
        .0,
        407
    );
    // A request without the header between the legs ends the handshake.
    let mut f = open(&proxy);
    let cf = start(&mut f, &o);
    assert_eq!(ask(&mut f, &get(&o, None)).0, 407);
    assert_eq!(
        ask(
            &mut f,
            &get(&o, Some(&answer("alice", "CORP", "s3cret", &cf)))
        )
        .0,
        407
    );
    // The same connection may start again and succeed.
    let cf = start(&mut f, &o);
    assert_eq!(
        ask(
            &mut f,
            &get(&o, Some(&answer("alice", "CORP", "s3cret", &cf)))
        )
        .0,
        200
    );
}

#[test]
fn a_connect_tunnel_says_proxy_support_and_carries_bytes() {
    let file = user_file("nt-connect");
    let proxy = proxy(&file, &[]);
    let echo = echo_server().to_string();
    let mut s = open(&proxy);
    let connect = |auth: Option<&[u8]>| {
        let field = auth.map_or(String::new(), |m| {
            format!("Proxy-Authorization: NTLM {}\r\n", B64.encode(m))
        });
        format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{field}\r\n")
    };
    let (code, head, _) = ask(&mut s, &connect(Some(&client::negotiate(CURL_FLAGS))));
    assert_eq!(code, 407, "{head}");
    let token = head
        .lines()
        .find_map(|l| l.strip_prefix("Proxy-Authenticate: NTLM "))
        .unwrap();
    let c = client::read_challenge(&B64.decode(token.trim()).unwrap()).unwrap();
    s.write_all(connect(Some(&answer("alice", "CORP", "s3cret", &c))).as_bytes())
        .unwrap();
    assert_eq!(
        read_head(&mut s),
        "HTTP/1.1 200 Connection established\r\nProxy-Support: Session-Based-Authentication\r\n\r\n"
    );
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    std::io::Read::read_exact(&mut s, &mut back).unwrap();
    assert_eq!(&back, b"ping");
}

#[test]
fn abandoned_and_expired_handshakes_leave_nothing_behind() {
    let file = user_file("nt-abandon");
    let proxy = proxy(&file, &["--ntlm-handshake-secs", "1"]);
    let origin = http_origin("ok\n");
    let o = origin.to_string();
    let base = proxy.fds();
    // 200 handshakes started and dropped after the type 2.
    for _ in 0..200 {
        let mut s = open(&proxy);
        let _ = start(&mut s, &o);
    }
    proxy.assert_fds_return_to(base);
    // An answer after `ntlm_handshake_secs` is refused.
    let mut s = open(&proxy);
    let c = start(&mut s, &o);
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(5), || started.elapsed()
        > Duration::from_millis(1100)));
    assert_eq!(
        ask(
            &mut s,
            &get(&o, Some(&answer("alice", "CORP", "s3cret", &c)))
        )
        .0,
        407
    );
    // New handshakes are served as before.
    let mut s = open(&proxy);
    let c = start(&mut s, &o);
    assert_eq!(
        ask(
            &mut s,
            &get(&o, Some(&answer("alice", "CORP", "s3cret", &c)))
        )
        .0,
        200
    );
}

/// An NTLMv1 type 3 (with extended session security, as clients send it).
fn v1_answer(password: &str, c: &([u8; 8], Vec<u8>)) -> Vec<u8> {
    let client_challenge = [9u8; 8];
    let nt = ntlm::v1_response(&ntlm::nt_hash(password), &c.0, Some(&client_challenge));
    let mut lm = client_challenge.to_vec();
    lm.resize(24, 0);
    client::authenticate(
        &lm,
        &nt,
        "CORP",
        "alice",
        "WS",
        flags::UNICODE | flags::EXTENDED_SESSION_SECURITY,
    )
}

#[test]
fn ntlmv1_only_when_allowed_lm_never_and_clocks_within_the_window() {
    let file = user_file("nt-v1");
    let origin = http_origin("ok\n");
    let o = origin.to_string();
    let strict = proxy(&file, &[]);
    let mut s = open(&strict);
    let c = start(&mut s, &o);
    assert_eq!(ask(&mut s, &get(&o, Some(&v1_answer("s3cret", &c)))).0, 407);
    // An NTLMv2 answer stamped 10 minutes off: refused (the window is 5 minutes).
    let mut s = open(&strict);
    let c = start(&mut s, &o);
    let skewed = now_filetime() - 600 * 10_000_000;
    assert_eq!(
        ask(
            &mut s,
            &get(&o, Some(&answer_at("alice", "CORP", "s3cret", &c, skewed)))
        )
        .0,
        407
    );
    assert!(strict.wait_log("reason=\"timestamp outside the window\""));
    let lenient = proxy(&file, &["--ntlm-allow-v1"]);
    assert!(lenient.wait_log("NTLMv1"), "a warning at start");
    let mut s = open(&lenient);
    let c = start(&mut s, &o);
    assert_eq!(ask(&mut s, &get(&o, Some(&v1_answer("s3cret", &c)))).0, 200);
    let mut s = open(&lenient);
    let c = start(&mut s, &o);
    assert_eq!(ask(&mut s, &get(&o, Some(&v1_answer("wrong", &c)))).0, 407);
    // LM only (no NT response): refused even so.
    let mut s = open(&lenient);
    let _ = start(&mut s, &o);
    let lm_only = client::authenticate(&[1; 24], &[], "CORP", "alice", "WS", flags::UNICODE);
    assert_eq!(ask(&mut s, &get(&o, Some(&lm_only))).0, 407);
}

#[test]
fn malformed_messages_get_407_and_others_are_served() {
    let file = user_file("nt-bad");
    let proxy = proxy(&file, &[]);
    let origin = http_origin("ok\n");
    let o = origin.to_string();
    let base = proxy.fds();
    let good = answer("alice", "CORP", "s3cret", &([0; 8], vec![0, 0, 0, 0]));
    let set = |at: usize, v: &[u8]| {
        let mut m = good.clone();
        m[at..at + v.len()].copy_from_slice(v);
        m
    };
    let bad_type3: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("signature only", b"NTLMSSP\0".to_vec()),
        ("wrong signature", set(0, b"NTLMSSX\0")),
        ("type 2", set(8, &2u32.to_le_bytes())),
        ("type 4", set(8, &4u32.to_le_bytes())),
        ("header cut", good[..40].to_vec()),
        ("header cut at 63", good[..63].to_vec()),
        ("nt length past the end", set(20, &[0xff, 0xff])),
        ("nt offset past the end", set(24, &[0xff, 0xff, 0, 0])),
        ("offset overflow", set(24, &[0xff; 4])),
        ("user inside the header", set(40, &[8, 0, 0, 0])),
        ("nt over lm", set(24, &[64, 0, 0, 0])),
        ("odd UTF-16 user", set(36, &[1, 0, 1, 0])),
        ("truncated blob", {
            let mut m = good.clone();
            m[20..22].copy_from_slice(&30u16.to_le_bytes());
            m
        }),
        (
            "huge user",
            answer(&"u".repeat(400), "CORP", "s3cret", &([0; 8], vec![])),
        ),
        (
            "anonymous",
            client::authenticate(&[], &[], "", "", "", flags::UNICODE),
        ),
        ("v2 blob with a wrong version", {
            let mut m = good.clone();
            let nt = u32::from_le_bytes(m[24..28].try_into().unwrap()) as usize;
            m[nt + 16] = 9;
            m
        }),
    ];
    let long = "A".repeat(12_000);
    let mut cases: Vec<(String, String)> = bad_type3
        .iter()
        .map(|(name, m)| (name.to_string(), format!("NTLM {}", B64.encode(m))))
        .collect();
    for (name, value) in [
        ("not base64", "NTLM !!!!".to_owned()),
        ("too long", format!("NTLM {long}")),
        ("no token", "NTLM".to_owned()),
        (
            "type 1 cut",
            format!("NTLM {}", B64.encode(b"NTLMSSP\0\x01\0\0\0")),
        ),
        (
            "type 0",
            format!("NTLM {}", B64.encode(b"NTLMSSP\0\0\0\0\0\0\0\0\0")),
        ),
    ] {
        cases.push((name.to_owned(), value));
    }
    assert!(cases.len() >= 20, "{}", cases.len());
    for (name, value) in &cases {
        // Each after a real type 1, so that the type 3 meets a handshake.
        let mut s = open(&proxy);
        let _ = start(&mut s, &o);
        let request = format!(
            "GET http://{o}/ HTTP/1.1\r\nHost: {o}\r\nProxy-Authorization: {value}\r\n\r\n"
        );
        s.write_all(request.as_bytes()).unwrap();
        let (head, _) = read_response(&mut s);
        let code = status(&head);
        assert!(
            code == 407 || (code == 431 && name == "too long"),
            "{name}: {head}"
        );
    }
    let mut s = open(&proxy);
    let c = start(&mut s, &o);
    assert_eq!(
        ask(
            &mut s,
            &get(&o, Some(&answer("alice", "CORP", "s3cret", &c)))
        )
        .0,
        200
    );
    drop(s);
    proxy.assert_fds_return_to(base);
}

#[test]
fn ringgate_passwd_ntlm_writes_a_line_that_logs_in_and_the_log_names_domain_and_user() {
    let dir = scratch("nt-passwd");
    let file = dir.join("nthash");
    let _ = std::fs::remove_file(&file);
    for password in ["first", "Secr3t pw"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate"))
            .args(["passwd", "--ntlm", "--password-stdin"])
            .arg(&file)
            .arg("Alice")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "the second run replaced the line: {text}"
    );
    let log = dir.join("access.log");
    let proxy = Proxy::start(&[
        "--ntlm-users",
        file.to_str().unwrap(),
        "--ntlm-domain",
        "CORP",
        "--access-log",
        log.to_str().unwrap(),
        "--access-log-format",
        "json",
        "--admin",
        "127.0.0.1:0",
    ]);
    let origin = http_origin("ok\n");
    let (out, err) = curl_text(&[
        "--proxy-ntlm",
        "--proxy-user",
        "CORP\\alice:Secr3t pw",
        "-x",
        &format!("http://{}", proxy.addr),
        &format!("http://{origin}/"),
    ]);
    assert_eq!(out, "ok\n", "{err}");
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
        (Some("CORP\\alice"), Some("ntlm"))
    );
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
        scrape.contains("auth_checks_total{scheme=\"ntlm\",result=\"success\"} 1"),
        "{scrape}"
    );
}

/// A Samba local SAM with a winbindd in the foreground (killed when dropped): the realm a
/// winbind-backed ringgate delegates to. Its domain is the NetBIOS name, `RGTEST`.
struct Samba {
    winbindd: std::process::Child,
    conf: PathBuf,
}

impl Drop for Samba {
    fn drop(&mut self) {
        let _ = self.winbindd.kill();
        let _ = self.winbindd.wait();
    }
}

fn run(program: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (installed by .ci/run): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

impl Samba {
    fn start(user: &str, password: &str) -> Samba {
        let dir = scratch("nt-samba");
        for d in ["private", "lock", "state", "cache", "pid"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::create_dir_all("/run/samba").unwrap();
        let d = dir.display();
        let conf = dir.join("smb.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\n  workgroup = RGTEST\n  netbios name = RGTEST\n  security = user\n  \
                 server role = standalone server\n  passdb backend = tdbsam:{d}/private/passdb.tdb\n  \
                 private dir = {d}/private\n  lock directory = {d}/lock\n  state directory = {d}/state\n  \
                 cache directory = {d}/cache\n  pid directory = {d}/pid\n  log file = {d}/log.%m\n"
            ),
        )
        .unwrap();
        // The SAM's users must be Unix accounts.
        if !run("id", &[user], "").status.success() {
            let out = run("useradd", &["-M", "-s", "/usr/sbin/nologin", user], "");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let c = conf.to_str().unwrap();
        let out = run(
            "smbpasswd",
            &["-c", c, "-s", "-a", user],
            &format!("{password}\n{password}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let winbindd = Command::new("winbindd")
            .args(["-F", "--no-process-group", "-s", c])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("winbindd (package winbind, installed by .ci/run)");
        let mut samba = Samba { winbindd, conf };
        assert!(
            wait_until(Duration::from_secs(30), || {
                samba.winbindd.try_wait().unwrap().is_none()
                    && run("wbinfo", &["-p"], "").status.success()
            }),
            "winbindd did not come up"
        );
        samba
    }
}

#[test]
fn the_winbind_backend_delegates_each_check_to_samba() {
    let samba = Samba::start("rgntlm", "Winb1nd!");
    let config = scratch("nt-samba").join("ringgate.toml");
    std::fs::write(
        &config,
        format!(
            "ntlm_backend = \"winbind\"\nntlm_domain = \"RGTEST\"\n\
             ntlm_auth_command = [\"ntlm_auth\", \"--configfile={}\", \"--helper-protocol=ntlm-server-1\"]\n",
            samba.conf.display()
        ),
    )
    .unwrap();
    let proxy = Proxy::start(&["--config", config.to_str().unwrap()]);
    let origin = http_origin("via samba\n");
    let proxy_url = format!("http://{}", proxy.addr);
    let url = format!("http://{origin}/");
    for user in ["RGTEST\\rgntlm:Winb1nd!", "rgntlm:Winb1nd!"] {
        for tunnel in [false, true] {
            let mut args = vec!["--proxy-ntlm", "--proxy-user", user, "-x", &proxy_url, &url];
            if tunnel {
                args.insert(0, "-p");
            }
            let (out, err) = curl_text(&args);
            assert_eq!(out, "via samba\n", "{user} tunnel={tunnel}: {err}");
        }
    }
    for user in [
        "RGTEST\\rgntlm:wrong",
        "nobody:Winb1nd!",
        "OTHER\\rgntlm:Winb1nd!",
    ] {
        let (out, _) = curl_text(&[
            "-i",
            "--proxy-ntlm",
            "--proxy-user",
            user,
            "-x",
            &proxy_url,
            &url,
        ]);
        assert!(out.starts_with("HTTP/1.1 407"), "{user}: {out}");
    }
    // Abandoned handshakes hold no helper: a hundred of them, then a login still goes through.
    let o = origin.to_string();
    let held: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = open(&proxy);
            let _ = start(&mut s, &o);
            s
        })
        .collect();
    let (out, err) = curl_text(&[
        "--proxy-ntlm",
        "--proxy-user",
        "rgntlm:Winb1nd!",
        "-x",
        &proxy_url,
        &url,
    ]);
    assert_eq!(out, "via samba\n", "{err}\n{}", proxy.log_text());
    drop(held);
    // A helper that dies is started again: kill every ntlm_auth child, then log in.
    let _ = run("pkill", &["-f", "helper-protocol=ntlm-server-1"], "");
    let (out, err) = curl_text(&[
        "--proxy-ntlm",
        "--proxy-user",
        "rgntlm:Winb1nd!",
        "-x",
        &proxy_url,
        &url,
    ]);
    assert_eq!(out, "via samba\n", "a new helper answers: {err}");
}
