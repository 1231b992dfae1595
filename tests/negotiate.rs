//! Negotiate (SPNEGO/Kerberos) proxy authentication against the real binary and a real MIT KDC:
//! a rootless realm on loopback in a temporary directory (`kdb5_util`, `kadmin.local`,
//! `krb5kdc -n`, `kinit`), and curl `--proxy-negotiate -U :` as the client. Plain http and
//! CONNECT with the mutual token on the 200, two users, no ticket, a ticket for another service,
//! `--proxy-anyauth` with Basic offered too, a replayed token on another connection, 200
//! handshakes in parallel, the KDC stopped once the tickets are out, NTLMSSP under the word
//! Negotiate, names with the realm stripped, malformed tokens, and start-up refusals.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use base64::Engine;
use ringgate::auth::ntlm::{self, client, flags};
use support::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const REALM: &str = "RG.TEST";

/// An MIT Kerberos realm on loopback: alice (`alicepw`) and bob (`bobpw`), `HTTP/localhost`
/// and `HTTP/other` in the keytab `http.keytab`; the KDC is stopped when dropped.
struct Kdc {
    dir: PathBuf,
    kdc: Option<Child>,
}

impl Drop for Kdc {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Kdc {
    /// A realm whose KDC is up; a port taken meanwhile by another test's KDC means a new try.
    fn start(name: &str) -> Kdc {
        for attempt in 0..5 {
            if let Some(kdc) = Kdc::try_start(&format!("{name}-{attempt}")) {
                return kdc;
            }
        }
        panic!("the KDC did not come up in five tries");
    }

    fn try_start(name: &str) -> Option<Kdc> {
        let dir = scratch(&format!("krb-{name}"));
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("krb5.conf"),
            format!(
                "[libdefaults]\n    default_realm = {REALM}\n    dns_lookup_kdc = false\n    \
                 dns_lookup_realm = false\n    dns_canonicalize_hostname = false\n    rdns = false\n    \
                 udp_preference_limit = 1\n[realms]\n    {REALM} = {{\n        kdc = 127.0.0.1:{port}\n    }}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("kdc.conf"),
            format!(
                "[kdcdefaults]\n    kdc_ports = {port}\n    kdc_tcp_ports = {port}\n[realms]\n    {REALM} = {{\n        \
                 database_name = {d}/principal\n        key_stash_file = {d}/stash\n        \
                 acl_file = {d}/kadm5.acl\n    }}\n[logging]\n    kdc = FILE:{d}/kdc.log\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("kadm5.acl"), "").unwrap();
        let mut kdc = Kdc { dir, kdc: None };
        kdc.run(
            "kdb5_util",
            &["create", "-s", "-r", REALM, "-P", "master"],
            "",
        );
        for q in [
            "addprinc -pw alicepw alice",
            "addprinc -pw bobpw bob",
            "addprinc -randkey HTTP/localhost",
            "addprinc -randkey HTTP/other",
        ] {
            kdc.run("kadmin.local", &["-q", q], "");
        }
        let keytab = kdc.keytab();
        kdc.run(
            "kadmin.local",
            &[
                "-q",
                &format!("ktadd -k {} HTTP/localhost HTTP/other", keytab.display()),
            ],
            "",
        );
        let child = kdc
            .command("krb5kdc")
            .args(["-n", "-P"])
            .arg(kdc.dir.join("kdc.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("krb5kdc (package krb5-kdc, installed by .ci/run)");
        kdc.kdc = Some(child);
        // Up when a first kinit gets a ticket; a KDC that exits (its port taken) is a failed try.
        let running = |kdc: &mut Kdc| {
            kdc.kdc
                .as_mut()
                .is_some_and(|k| k.try_wait().ok().flatten().is_none())
        };
        let up = wait_until(Duration::from_secs(20), || {
            !running(&mut kdc) || kdc.try_kinit("alice", "alicepw", "probe").status.success()
        });
        if !(up && running(&mut kdc)) {
            eprintln!(
                "KDC try failed: {}",
                std::fs::read_to_string(kdc.dir.join("kdc.log")).unwrap_or_default()
            );
            return None;
        }
        Some(kdc)
    }

    fn keytab(&self) -> PathBuf {
        self.dir.join("http.keytab")
    }

    fn config(&self) -> String {
        self.dir.join("krb5.conf").display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        // The KDC's tools live in /usr/sbin, which a non-root PATH may lack.
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{path}:/usr/sbin:/sbin"))
            .env("KRB5_CONFIG", self.dir.join("krb5.conf"))
            .env("KRB5_KDC_PROFILE", self.dir.join("kdc.conf"));
        c
    }

    fn run(&self, program: &str, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(program)
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
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() || program == "kinit",
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ccache(&self, name: &str) -> PathBuf {
        self.dir.join(format!("cc-{name}"))
    }

    fn try_kinit(&self, user: &str, password: &str, cc: &str) -> Output {
        let mut c = self.command("kinit");
        c.env("KRB5CCNAME", self.ccache(cc))
            .arg(user)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("kinit (package krb5-user)");
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes());
        child.wait_with_output().unwrap()
    }

    /// A credential cache named `cc` with `user`'s TGT.
    fn kinit(&self, user: &str, password: &str, cc: &str) -> PathBuf {
        let out = self.try_kinit(user, password, cc);
        assert!(
            out.status.success(),
            "kinit {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.ccache(cc)
    }

    fn stop(&mut self) {
        if let Some(mut k) = self.kdc.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
    }

    /// ringgate with this realm's keytab and a replay cache in the realm's directory.
    fn proxy(&self, extra: &[&str]) -> Proxy {
        self.proxy_under(&[], extra)
    }

    /// [`Kdc::proxy`] run by `wrapper` (`faketime …`).
    fn proxy_under(&self, wrapper: &[&str], extra: &[&str]) -> Proxy {
        let rcache = self.dir.join("rcache");
        std::fs::create_dir_all(&rcache).unwrap();
        Proxy::start_under(
            wrapper,
            // The proxy's timers run on the real monotonic clock, whatever faketime says.
            &[
                ("KRB5_CONFIG", &self.config()),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
            &[
                &[
                    "--keytab",
                    self.keytab().to_str().unwrap(),
                    "--negotiate-rcache-dir",
                    rcache.to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat(),
        )
    }

    /// curl through `proxy` (addressed as `localhost`, so the ticket is for HTTP/localhost) with
    /// the credential cache `cc`: `--proxy-negotiate -U :` unless `auth` says otherwise.
    fn curl(&self, cc: &Path, proxy: &Proxy, auth: &[&str], args: &[&str]) -> Output {
        self.curl_under(&[], cc, proxy, auth, args)
    }

    /// [`Kdc::curl`] run by `wrapper` (`faketime …`).
    fn curl_under(
        &self,
        wrapper: &[&str],
        cc: &Path,
        proxy: &Proxy,
        auth: &[&str],
        args: &[&str],
    ) -> Output {
        let auth = if auth.is_empty() {
            &["--proxy-negotiate", "-U", ":"][..]
        } else {
            auth
        };
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg("curl");
                c
            }
            None => Command::new("curl"),
        };
        command
            .env("KRB5_CONFIG", self.config())
            .env("KRB5CCNAME", cc)
            .args(["-s", "-S", "--max-time", "60", "-v", "-x"])
            .arg(format!("http://localhost:{}", proxy.addr.port()))
            .args(auth)
            .args(args)
            .output()
            .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The status of the last response curl got (`-w %{http_code}` is the last line of stdout).
fn code(out: &Output) -> u16 {
    text(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// The Negotiate token curl sent to the proxy (from its `-v` trace).
fn sent_token(out: &Output) -> String {
    text(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("> Proxy-Authorization: Negotiate "))
        .unwrap_or_else(|| panic!("curl sent no Negotiate token: {}", text(&out.stderr)))
        .trim()
        .to_owned()
}

fn get(origin: std::net::SocketAddr, token: Option<&str>) -> String {
    let field = token.map_or(String::new(), |t| {
        format!("Proxy-Authorization: Negotiate {t}\r\n")
    });
    format!("GET http://{origin}/k HTTP/1.1\r\nHost: {origin}\r\n{field}\r\n")
}

#[test]
fn tickets_get_through_over_http_and_connect_with_the_mutual_token_on_the_200() {
    let kdc = Kdc::start("basic");
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let bob = kdc.kinit("bob", "bobpw", "bob");
    let proxy = kdc.proxy(&[]);
    let counted = counting_origin("through kerberos", After::Close);
    let origin = counted.addr;
    let url = format!("http://{origin}/x");

    let out = kdc.curl(&alice, &proxy, &[], &["-w", "\n%{http_code}", &url]);
    let (stdout, trace) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.starts_with("through kerberos"), "{stdout}\n{trace}");
    assert_eq!(code(&out), 200);
    assert!(
        trace.contains("< Proxy-Authenticate: Negotiate "),
        "no mutual token on the 200: {trace}"
    );
    assert!(trace.contains("< Proxy-Support: Session-Based-Authentication"));
    assert!(proxy.wait_log(&format!("user=\"alice@{REALM}\"")));

    // CONNECT, then plain HTTP through the tunnel.
    let out = kdc.curl(&bob, &proxy, &[], &["-p", "-w", "\n%{http_code}", &url]);
    let trace = text(&out.stderr);
    assert!(text(&out.stdout).starts_with("through kerberos"), "{trace}");
    assert!(
        trace.contains("< HTTP/1.1 200 Connection established"),
        "{trace}"
    );
    assert!(
        trace.contains("< Proxy-Authenticate: Negotiate "),
        "{trace}"
    );
    assert!(proxy.wait_log(&format!("user=\"bob@{REALM}\"")));
    // The origin never sees the proxy's credentials (the forwarded request; the tunnelled one
    // went inside the tunnel, after the CONNECT that carried them).
    let heads = counted.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(
        heads
            .iter()
            .all(|h| !h.to_ascii_lowercase().contains("proxy-authorization")),
        "{heads:?}"
    );
}

#[test]
fn no_ticket_or_a_ticket_for_another_service_gets_407() {
    let kdc = Kdc::start("refused");
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let origin = http_origin("never");
    let url = format!("http://{origin}/x");

    let proxy = kdc.proxy(&[]);
    let none = kdc.dir.join("cc-empty");
    let out = kdc.curl(&none, &proxy, &[], &["-w", "\n%{http_code}", &url]);
    assert_eq!(code(&out), 407, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("< Proxy-Authenticate: Negotiate\r"));

    // Only HTTP/other is accepted; curl's ticket is for HTTP/localhost.
    let pinned = kdc.proxy(&["--negotiate-service", "HTTP/other"]);
    let out = kdc.curl(&alice, &pinned, &[], &["-w", "\n%{http_code}", &url]);
    assert_eq!(code(&out), 407, "{}", text(&out.stderr));
    assert!(pinned.wait_log("negotiate token refused"));
    assert!(
        pinned.log_text().contains("major="),
        "the debug line names the GSS status: {}",
        pinned.log_text()
    );
}

#[test]
fn anyauth_picks_negotiate_among_basic_and_basic_still_works() {
    let kdc = Kdc::start("anyauth");
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let proxy = kdc.proxy(&["--auth-schemes", "basic,negotiate", "--user", "carol:pw"]);
    let origin = http_origin("either way");
    let url = format!("http://{origin}/x");
    let out = kdc.curl(
        &alice,
        &proxy,
        &["--proxy-anyauth", "-U", ":"],
        &["-w", "\n%{http_code}", &url],
    );
    assert_eq!(code(&out), 200, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("> Proxy-Authorization: Negotiate "),
        "{}",
        text(&out.stderr)
    );
    assert!(proxy.wait_log(&format!("user=\"alice@{REALM}\"")));
    let out = kdc.curl(
        &alice,
        &proxy,
        &["--proxy-basic", "-U", "carol:pw"],
        &["-w", "\n%{http_code}", &url],
    );
    assert_eq!(code(&out), 200, "{}", text(&out.stderr));
}

#[test]
fn a_token_replayed_on_another_connection_is_refused() {
    let kdc = Kdc::start("replay");
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let proxy = kdc.proxy(&[]);
    // Before any client: a closing connection counted in the baseline would make it too high.
    let baseline = proxy.fds();
    let origin = http_origin("once");
    let out = kdc.curl(
        &alice,
        &proxy,
        &[],
        &["-w", "\n%{http_code}", &format!("http://{origin}/x")],
    );
    assert_eq!(code(&out), 200, "{}", text(&out.stderr));
    let token = sent_token(&out);
    let mut s = open(&proxy);
    let (status, head, _) = ask(&mut s, &get(origin, Some(&token)));
    assert_eq!(status, 407, "{head}");
    assert!(
        proxy.wait_log("Request is a replay"),
        "{}",
        proxy.log_text()
    );
    // The connection stays open for the next try, and a request without credentials on it is
    // not let through on the failed one's word.
    let (status, _, _) = ask(&mut s, &get(origin, None));
    assert_eq!(status, 407);
    drop(s);
    proxy.assert_fds_return_to(baseline);
}

#[test]
fn two_hundred_handshakes_in_parallel_all_pass() {
    let kdc = std::sync::Arc::new(Kdc::start("parallel"));
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let proxy = std::sync::Arc::new(kdc.proxy(&[]));
    let origin = http_origin("many");
    let url = format!("http://{origin}/x");
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let (kdc, proxy, alice, url) = (kdc.clone(), proxy.clone(), alice.clone(), url.clone());
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| code(&kdc.curl(&alice, &proxy, &[], &["-w", "\n%{http_code}", &url])))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let codes: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(codes.len(), 200);
    assert!(codes.iter().all(|&c| c == 200), "{codes:?}");
}

#[test]
fn tickets_issued_before_the_kdc_stopped_are_still_accepted() {
    let mut kdc = Kdc::start("nokdc");
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let proxy = kdc.proxy(&[]);
    let origin = http_origin("offline");
    let url = format!("http://{origin}/x");
    // The first use fetches the service ticket into the cache.
    let out = kdc.curl(&alice, &proxy, &[], &["-w", "\n%{http_code}", &url]);
    assert_eq!(code(&out), 200, "{}", text(&out.stderr));
    kdc.stop();
    for _ in 0..3 {
        let out = kdc.curl(&alice, &proxy, &[], &["-w", "\n%{http_code}", &url]);
        assert_eq!(code(&out), 200, "{}", text(&out.stderr));
    }
}

#[test]
fn a_skewed_client_clock_or_an_expired_ticket_gets_407() {
    let kdc = Kdc::start("clock");
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let origin = http_origin("in time");
    let url = format!("http://{origin}/x");
    let proxy = kdc.proxy(&[]);
    // The service ticket is fetched with the right time; then a client an hour ahead makes its
    // authenticator from it (krb5's allowed skew is 5 minutes).
    let out = kdc.curl(&alice, &proxy, &[], &["-w", "\n%{http_code}", &url]);
    assert_eq!(code(&out), 200, "{}", text(&out.stderr));
    let out = kdc.curl_under(
        &["faketime", "-f", "+1h"],
        &alice,
        &proxy,
        &[],
        &["-w", "\n%{http_code}", &url],
    );
    assert_eq!(code(&out), 407, "{}", text(&out.stderr));
    assert!(
        proxy.wait_log("Clock skew too great"),
        "{}",
        proxy.log_text()
    );

    // A proxy two days ahead sees every ticket of this realm (valid for a day) as expired.
    let later = kdc.proxy_under(&["faketime", "-f", "+2d"], &[]);
    let out = kdc.curl(&alice, &later, &[], &["-w", "\n%{http_code}", &url]);
    assert_eq!(code(&out), 407, "{}", text(&out.stderr));
    assert!(later.wait_log("Ticket expired"), "{}", later.log_text());
    // The proxy on time still takes the same user's next token.
    let out = kdc.curl(&alice, &proxy, &[], &["-w", "\n%{http_code}", &url]);
    assert_eq!(code(&out), 200, "{}", text(&out.stderr));
}

#[test]
fn realms_can_be_stripped_from_user_names() {
    let kdc = Kdc::start("strip");
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let proxy = kdc.proxy(&["--negotiate-strip-realm"]);
    let origin = http_origin("short");
    let out = kdc.curl(
        &alice,
        &proxy,
        &[],
        &["-w", "\n%{http_code}", &format!("http://{origin}/x")],
    );
    assert_eq!(code(&out), 200, "{}", text(&out.stderr));
    assert!(proxy.wait_log("authenticated (negotiate) peer=127.0.0.1 user=\"alice\""));
}

#[test]
fn malformed_tokens_get_407_on_a_kept_connection_and_nothing_leaks() {
    let kdc = Kdc::start("malformed");
    let alice = kdc.kinit("alice", "alicepw", "alice");
    let proxy = kdc.proxy(&["--max-head-bytes", "131072"]);
    let origin = http_origin("after all");
    // Before any client: a closing connection counted in the baseline would make it too high.
    let baseline = proxy.fds();
    let url = format!("http://{origin}/x");
    let real = sent_token(&kdc.curl(&alice, &proxy, &[], &[&url]));
    let mut s = open(&proxy);
    let truncated = B64.encode(&B64.decode(&real).unwrap()[..300]);
    let garbage = B64.encode([0x60u8, 0x82, 0xff, 0xff, 1, 2, 3]);
    let spnego_junk = B64.encode([0x60u8, 0x06, 0x06, 0x04, 0x2b, 0x06, 0x01, 0x05]);
    let huge = B64.encode(vec![0x60u8; 70_000]);
    for token in [
        truncated.as_str(),
        garbage.as_str(),
        spnego_junk.as_str(),
        "not!base64",
        "AAAA",
        huge.as_str(),
    ] {
        let (status, head, _) = ask(&mut s, &get(origin, Some(token)));
        assert_eq!(status, 407, "{}: {head}", &token[..token.len().min(40)]);
        assert!(!head.contains("Connection: close"), "{head}");
    }
    // The kept connection got no session from any of them.
    let (status, _, _) = ask(&mut s, &get(origin, None));
    assert_eq!(status, 407);
    // A fresh token from the same user (on a new connection) still gets through: the refusals
    // slowed this client down, they did not lock it out.
    let fresh = kdc.curl(&alice, &proxy, &[], &["-w", "\n%{http_code}", &url]);
    assert_eq!(code(&fresh), 200, "{}", text(&fresh.stderr));
    assert!(proxy.wait_log("major="), "{}", proxy.log_text());
    drop(s);
    proxy.assert_fds_return_to(baseline);
}

/// An NT-hash file with alice (`s3cret`).
fn nt_users(dir: &Path) -> PathBuf {
    let path = dir.join("nthash");
    let hex: String = ntlm::nt_hash("s3cret")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&path, format!("alice:{hex}\n")).unwrap();
    path
}

#[test]
fn ntlmssp_under_the_word_negotiate_goes_to_the_ntlm_handshake() {
    let kdc = Kdc::start("ntlmssp");
    let users = nt_users(&kdc.dir);
    let origin = http_origin("ntlm inside");
    let type1 = B64.encode(client::negotiate(0x0008_8206));

    let proxy = kdc.proxy(&["--ntlm-users", users.to_str().unwrap()]);
    let mut s = open(&proxy);
    let (status, head, _) = ask(&mut s, &get(origin, Some(&type1)));
    assert_eq!(status, 407, "{head}");
    let type2 = head
        .lines()
        .find_map(|l| l.strip_prefix("Proxy-Authenticate: Negotiate "))
        .unwrap_or_else(|| panic!("no type 2 under Negotiate: {head}"));
    let c = client::read_challenge(&B64.decode(type2.trim()).unwrap()).unwrap();
    let now = ntlm::filetime(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap(),
    );
    let nt = client::v2_response(
        &ntlm::nt_hash("s3cret"),
        "alice",
        "WORKGROUP",
        &c.0,
        &[7; 8],
        now,
        &c.1,
    );
    let type3 = client::authenticate(
        &[0; 24],
        &nt,
        "WORKGROUP",
        "alice",
        "WS",
        flags::UNICODE | flags::EXTENDED_SESSION_SECURITY | flags::NTLM,
    );
    let (status, head, body) = ask(&mut s, &get(origin, Some(&B64.encode(type3))));
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, "ntlm inside");

    // Without NTLM users, NTLMSSP under Negotiate is refused with the plain offer.
    let kerberos_only = kdc.proxy(&[]);
    let mut s = open(&kerberos_only);
    let (status, head, _) = ask(&mut s, &get(origin, Some(&type1)));
    assert_eq!(status, 407, "{head}");
    assert!(head.contains("Proxy-Authenticate: Negotiate\r\n"), "{head}");
}

/// Runs ringgate with `args`, which must make it exit within 20 s (killed otherwise, and the
/// test fails).
fn refused_start(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(20), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(exited, "ringgate started: {}", text(&out.stderr));
    out
}

#[test]
fn a_missing_keytab_or_an_unwritable_replay_cache_stops_the_start() {
    let dir = scratch("krb-start");
    let missing = dir.join("no.keytab");
    let out = refused_start(&[
        "--listen",
        "127.0.0.1:0",
        "--keytab",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no.keytab"),
        "{}",
        text(&out.stderr)
    );

    let keytab = dir.join("empty.keytab");
    std::fs::write(&keytab, b"").unwrap();
    let out = refused_start(&[
        "--listen",
        "127.0.0.1:0",
        "--keytab",
        keytab.to_str().unwrap(),
        "--negotiate-rcache-dir",
        "/proc/self",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("replay cache directory /proc/self"),
        "{}",
        text(&out.stderr)
    );
}
