//! TLS to the proxy (`listen_tls`): a test CA and certificates made here with rcgen; curl with
//! `--proxy https://…`, Python requests with an https:// proxy URL, and a rustls client of the
//! test's own where a test needs to hold a tunnel or look at the certificate it was shown.
// Test code, not a worker: blocking sleeps and std locks are fine here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::*;

/// A CA that issues certificates into files of one scratch directory.
struct Ca {
    dir: PathBuf,
    pem: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("ringgate test {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca {
            dir: dir.to_owned(),
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    fn pem(&self) -> &Path {
        &self.pem
    }

    /// A server certificate for `hosts` (`file`.pem and `file`.key), chain: leaf then CA.
    fn server(&self, file: &str, hosts: &[&str]) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, hosts[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(file, params)
    }

    /// A client certificate whose subject CN is `cn`.
    fn client(&self, file: &str, cn: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names.push(SanType::Rfc822Name(
            format!("{cn}@corp.example").try_into().unwrap(),
        ));
        self.issue(file, params)
    }

    fn issue(&self, file: &str, params: CertificateParams) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        let ca = std::fs::read_to_string(self.pem()).unwrap();
        std::fs::write(&cert_path, cert.pem() + &ca).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A proxy with a TLS listener for `cert`/`key` (and the users and flags in `args`); its TLS
/// address.
fn tls_proxy(cert: &Path, key: &Path, args: &[&str]) -> (Proxy, SocketAddr) {
    let base = [
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        s(cert),
        "--tls-key",
        s(key),
    ];
    let proxy = Proxy::start(&[&base[..], args].concat());
    let tls = proxy.listed("tls");
    (proxy, tls)
}

fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to the proxy, handshake done.
fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// Reads one response head from a TLS stream, byte by byte.
fn tls_head(s: &mut Tls) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Opens a CONNECT tunnel to `target` through a TLS connection to the proxy.
fn tls_tunnel(addr: SocketAddr, config: Arc<ClientConfig>, target: SocketAddr, auth: &str) -> Tls {
    let mut s = tls_connect(addr, config);
    write!(
        s,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n"
    )
    .unwrap();
    let head = tls_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head:?}");
    s
}

#[test]
fn curl_basic_forwarding_and_connect_over_tls_on_both_drivers() {
    let dir = scratch("tls-curl");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let origin = http_origin("hello through TLS");
    for driver in DRIVERS {
        let (proxy, tls) = tls_proxy(
            &cert,
            &key,
            &["--io-driver", driver, "--user", "alice:secret"],
        );
        let url = format!("http://{origin}/x");
        let via = format!("https://localhost:{}", tls.port());
        let common = ["--proxy", &via, "--proxy-cacert", s(ca.pem())];
        let with_user = [&common[..], &["-U", "alice:secret"]].concat();
        // Forwarded over the TLS connection, then through a tunnel (-p: CONNECT).
        let (body, err) = curl_text(&[&with_user[..], &[url.as_str()]].concat());
        assert_eq!(body, "hello through TLS", "{driver}: {err}");
        let (body, err) = curl_text(&[&with_user[..], &["-p", url.as_str()]].concat());
        assert_eq!(body, "hello through TLS", "{driver}: {err}");
        // No credentials: the 407 comes inside TLS.
        let (code, _) = curl_text(
            &[
                &common[..],
                &["-o", "/dev/null", "-w", "%{http_code}", &url],
            ]
            .concat(),
        );
        assert_eq!(code, "407", "{driver}");
        let (code, _) = curl_text(
            &[
                &common[..],
                &[
                    "-U",
                    "alice:wrong",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &url,
                ],
            ]
            .concat(),
        );
        assert_eq!(code, "407", "{driver}");
        assert!(proxy.wait_log("tunnel closed"), "{driver}");
    }
}

#[test]
fn python_requests_through_an_https_proxy() {
    let dir = scratch("tls-requests");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let origin = http_origin("requests says hi");
    let (_proxy, tls) = tls_proxy(&cert, &key, &["--user", "bob:pw"]);
    let script = "import sys, requests\n\
                  proxy = 'https://bob:pw@localhost:' + sys.argv[1]\n\
                  r = requests.get(sys.argv[2], proxies={'http': proxy}, verify=sys.argv[3], timeout=30)\n\
                  print(r.status_code, r.text)\n\
                  bad = 'https://bob:nope@localhost:' + sys.argv[1]\n\
                  r = requests.get(sys.argv[2], proxies={'http': bad}, verify=sys.argv[3], timeout=30)\n\
                  print(r.status_code)\n";
    let out = python(
        script,
        &[
            &tls.port().to_string(),
            &format!("http://{origin}/"),
            s(ca.pem()),
        ],
    );
    assert_eq!(out, "200 requests says hi\n407\n");
}

#[test]
fn digest_and_ntlm_over_tls() {
    let dir = scratch("tls-schemes");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let origin = http_origin("schemes");
    let (_proxy, tls) = tls_proxy(
        &cert,
        &key,
        &[
            "--user",
            "carol:pa55",
            "--auth-schemes",
            "digest,ntlm,basic",
        ],
    );
    let via = format!("https://localhost:{}", tls.port());
    let url = format!("http://{origin}/");
    for scheme in ["--proxy-digest", "--proxy-ntlm"] {
        for tunnel in [false, true] {
            let mut args = vec!["--proxy", &via, "--proxy-cacert", s(ca.pem()), scheme];
            args.extend(["-U", "carol:pa55"]);
            if tunnel {
                args.push("-p");
            }
            args.push(&url);
            let (body, err) = curl_text(&args);
            assert_eq!(body, "schemes", "{scheme} tunnel={tunnel}: {err}");
        }
    }
}

#[test]
fn a_tls_tunnel_keeps_every_byte_and_half_closes_on_both_drivers() {
    let dir = scratch("tls-bulk");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let echo = echo_server();
    let config = client_config(ca.pem(), None);
    for driver in DRIVERS {
        let (proxy, tls) = tls_proxy(&cert, &key, &["--io-driver", driver]);
        let mut t = tls_tunnel(tls, config.clone(), echo, "");
        // 24 MiB out and back, at most 1 MiB in flight, every byte checked.
        let total: u64 = 24 << 20;
        let (mut sent, mut got) = (0u64, 0u64);
        let mut out = vec![0u8; 64 * 1024];
        let mut back = vec![0u8; 64 * 1024];
        while got < total {
            if sent < total && sent - got < (1 << 20) {
                let n = (total - sent).min(out.len() as u64) as usize;
                for (i, b) in out[..n].iter_mut().enumerate() {
                    *b = pattern_byte(7, sent + i as u64);
                }
                t.write_all(&out[..n]).unwrap();
                sent += n as u64;
                continue;
            }
            let n = t.read(&mut back).unwrap();
            assert!(n > 0, "{driver}: tunnel closed after {got} bytes");
            for (i, b) in back[..n].iter().enumerate() {
                assert_eq!(
                    *b,
                    pattern_byte(7, got + i as u64),
                    "{driver}: byte {}",
                    got + i as u64
                );
            }
            got += n as u64;
        }
        // Our half-close (close_notify, FIN) reaches the echo server, whose close comes back as
        // the end of the stream.
        t.conn.send_close_notify();
        t.flush().unwrap();
        t.sock.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        match t.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{driver}: {e}"),
        }
        assert!(rest.is_empty(), "{driver}");
        assert!(
            proxy.wait_log("end=\"closed\""),
            "{driver}: {}",
            proxy.log_text()
        );
    }
}

#[test]
fn plain_http_and_garbage_on_the_tls_port_are_closed_and_others_go_on() {
    let dir = scratch("tls-plain");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let origin = http_origin("still here");
    let (proxy, tls) = tls_proxy(&cert, &key, &[]);
    let config = client_config(ca.pem(), None);
    // Warm up one TLS connection so that the fd baseline counts what the proxy keeps anyway.
    drop(tls_tunnel(tls, config.clone(), origin, ""));
    let baseline = proxy.fds();
    for junk in [
        &b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
        b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
        // A TLS record header announcing a handshake, then nothing sensible.
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
        b"\x16\x03\x01\xff\xff",
        &[0u8; 600][..],
    ] {
        let mut s = TcpStream::connect(tls).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(junk);
        let _ = s.shutdown(Shutdown::Write);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        // Never an HTTP answer in clear: a TLS alert record (0x15) at most.
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "{junk:?} got {answer:?}"
        );
    }
    assert!(proxy.wait_log("reason=\"not_tls\""));
    let mut t = tls_connect(tls, config);
    write!(
        t,
        "GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    let _ = t.read_to_string(&mut all);
    assert!(all.ends_with("still here"), "{all}");
    drop(t);
    proxy.assert_fds_settle(baseline, 0);
}

#[test]
fn a_stalled_handshake_times_out_and_frees_its_fd() {
    let dir = scratch("tls-stall");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let (proxy, tls) = tls_proxy(&cert, &key, &["--tls-handshake-timeout", "1"]);
    let baseline = proxy.fds();
    // One client says nothing at all; one sends half a ClientHello's record and stops.
    let mut silent = TcpStream::connect(tls).unwrap();
    let mut half = TcpStream::connect(tls).unwrap();
    half.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .unwrap();
    let started = Instant::now();
    for s in [&mut silent, &mut half] {
        assert!(closed_within(s, Duration::from_secs(10)));
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(proxy.wait_log("reason=\"timeout\""));
    proxy.assert_fds_settle(baseline, 0);
}

#[test]
fn curl_refuses_a_certificate_for_another_host() {
    let dir = scratch("tls-wrong-host");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("other", &["proxy.other.example"]);
    let origin = http_origin("never");
    let (proxy, tls) = tls_proxy(&cert, &key, &[]);
    let via = format!("https://localhost:{}", tls.port());
    let out = curl(&[
        "--proxy",
        &via,
        "--proxy-cacert",
        s(ca.pem()),
        &format!("http://{origin}/"),
    ]);
    // 60: the peer's certificate cannot be authenticated (no name matches). curl checks the
    // name after the handshake and then closes: the proxy sees a client that asked nothing.
    assert_eq!(out.status.code(), Some(60), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(
        !proxy.log_text().contains("GET http"),
        "{}",
        proxy.log_text()
    );
}

#[test]
fn client_certificates_name_users_and_others_are_refused() {
    let dir = scratch("tls-client-cert");
    let ca = Ca::new(&dir, "ca");
    let other = Ca::new(&dir, "other-ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let (dave, dave_key) = ca.client("dave", "dave");
    let (mallory, mallory_key) = other.client("mallory", "mallory");
    let origin = http_origin("certified");
    let echo = echo_server();
    let log = dir.join("access.json");
    let (proxy, tls) = tls_proxy(
        &cert,
        &key,
        &[
            "--tls-client-ca",
            s(ca.pem()),
            "--tls-client-cert-user",
            "--access-log",
            s(&log),
            "--access-log-format",
            "json",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let via = format!("https://localhost:{}", tls.port());
    let url = format!("http://{origin}/");
    let base = ["--proxy", &via, "--proxy-cacert", s(ca.pem())];
    let (body, err) = curl_text(
        &[
            &base[..],
            &["--proxy-cert", s(&dave), "--proxy-key", s(&dave_key), &url],
        ]
        .concat(),
    );
    assert_eq!(body, "certified", "{err}");
    // A tunnel too, with a Proxy-Authorization that is ignored (the certificate names the user).
    let config = client_config(ca.pem(), Some((&dave, &dave_key)));
    let mut t = tls_tunnel(tls, config, echo, &credentials("eve", "guess"));
    t.write_all(b"ping").unwrap();
    let mut four = [0u8; 4];
    t.read_exact(&mut four).unwrap();
    assert_eq!(&four, b"ping");
    drop(t);
    // No certificate, or one from another CA: no handshake.
    for extra in [
        vec![],
        vec!["--proxy-cert", s(&mallory), "--proxy-key", s(&mallory_key)],
    ] {
        let out = curl(&[&base[..], &extra[..], &[url.as_str()]].concat());
        assert!(!out.status.success(), "{extra:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{extra:?}");
    }
    assert!(proxy.wait_log("reason=\"client_certificate\""));
    // The plain listener has no certificates to go by: 403.
    let (code, _) = curl_text(&[
        "--proxy",
        &format!("http://{}", proxy.addr),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!(code, "403");
    // The access log names the user, the scheme and the listener.
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 3)
    }));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // (Each worker writes its own lines: not in the order of the requests.)
    let forwarded = lines
        .iter()
        .find(|l| l["method"] == "GET" && l["status"] == 200)
        .unwrap();
    assert_eq!(forwarded["user"], "dave", "{text}");
    assert_eq!(forwarded["auth_scheme"], "certificate");
    assert_eq!(forwarded["listener"], "tls");
    let tunnel = lines.iter().find(|l| l["method"] == "CONNECT").unwrap();
    assert_eq!(tunnel["user"], "dave", "{text}");
    let refused = lines.iter().find(|l| l["status"] == 403).unwrap();
    assert_eq!(refused["listener"], "plain");
    assert_eq!(refused["target"], url.as_str());
    // And the metrics count both kinds of handshake.
    assert!(proxy.wait_log("admin endpoint"));
    let log_text = proxy.log_text();
    let admin: SocketAddr = log_text
        .split("admin=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no admin address in {log_text}"));
    let metrics = exchange(
        admin,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        metrics.contains("ringgate_tls_handshakes_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringgate_tls_handshake_failures_total{reason=\"client_certificate\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_reload_swaps_the_certificate_keeps_open_tunnels_and_refuses_a_broken_pair() {
    let dir = scratch("tls-reload");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let echo = echo_server();
    let (proxy, tls) = tls_proxy(&cert, &key, &[]);
    let config = client_config(ca.pem(), None);
    let shown = |addr| {
        let t = tls_connect(addr, config.clone());
        t.conn.peer_certificates().unwrap()[0].to_vec()
    };
    let first = shown(tls);
    let mut open = tls_tunnel(tls, config.clone(), echo, "");
    // A renewed certificate for the same name, moved over the old files (as certbot's deploy
    // hooks do): the file watch sees it, no signal needed.
    let (new_cert, new_key) = ca.server("renewed", &["localhost"]);
    std::fs::copy(&new_key, dir.join("next.key")).unwrap();
    std::fs::copy(&new_cert, dir.join("next.pem")).unwrap();
    std::fs::rename(dir.join("next.key"), &key).unwrap();
    std::fs::rename(dir.join("next.pem"), &cert).unwrap();
    assert!(proxy.wait_log("TLS certificate reloaded"));
    let second = shown(tls);
    assert_ne!(first, second, "the new certificate is shown to new clients");
    let renewed = CertificateDer::pem_file_iter(&new_cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(second, renewed.to_vec());
    // The tunnel opened before the reload still carries bytes.
    open.write_all(b"still open").unwrap();
    let mut back = [0u8; 10];
    open.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still open");
    // A key that does not match the certificate: refused, the running pair stays.
    // (The watch may have seen the new key before the new certificate: count from here.)
    let refused = "TLS reload failed, the running certificate stays";
    let before = proxy.log_text().matches(refused).count();
    let (_, stray_key) = ca.server("stray", &["localhost"]);
    std::fs::copy(&stray_key, &key).unwrap();
    proxy.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || {
        proxy.log_text().matches(refused).count() > before
    }));
    assert_eq!(shown(tls), second);
}

#[test]
fn tls_keys_are_checked_at_start() {
    let dir = scratch("tls-config");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    let bin = env!("CARGO_BIN_EXE_ringgate");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = dir.join("missing.pem");
    let (_, other_key) = ca.server("other", &["localhost"]);
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for (args, needle) in [
        (vec!["--listen-tls", "127.0.0.1:0"], "tls_cert"),
        (
            vec!["--listen-tls", "127.0.0.1:0", "--tls-cert", s(&cert)],
            "tls_key",
        ),
        (
            vec!["--tls-cert", s(&cert), "--tls-key", s(&key)],
            "add listen_tls",
        ),
        (
            vec![
                "--listen-tls",
                "127.0.0.1:0",
                "--tls-cert",
                s(&missing),
                "--tls-key",
                s(&key),
            ],
            "tls_cert",
        ),
        (
            vec![
                "--listen-tls",
                "127.0.0.1:0",
                "--tls-cert",
                s(&garbage),
                "--tls-key",
                s(&key),
            ],
            "no certificate",
        ),
        (
            vec![
                "--listen-tls",
                "127.0.0.1:0",
                "--tls-cert",
                s(&cert),
                "--tls-key",
                s(&other_key),
            ],
            "tls_key",
        ),
        (
            vec![
                "--listen-tls",
                "127.0.0.1:0",
                "--tls-cert",
                s(&cert),
                "--tls-key",
                s(&key),
                "--tls-client-cert-user",
            ],
            "needs tls_client_ca",
        ),
    ] {
        let (code, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn basic_on_a_plain_listener_beyond_loopback_is_warned_about() {
    let dir = scratch("tls-warn");
    let ca = Ca::new(&dir, "ca");
    let (cert, key) = ca.server("server", &["localhost"]);
    // 0.0.0.0 is not loopback; port 0 keeps it from clashing with anything.
    let (proxy, _) = tls_proxy(
        &cert,
        &key,
        &["--listen", "0.0.0.0:0", "--user", "alice:secret"],
    );
    let warning = "Basic is offered on a plain listener that is not loopback";
    assert!(proxy.wait_log(warning));
    // Only that one: the loopback listener every test proxy has is not warned about.
    assert_eq!(proxy.log_text().matches(warning).count(), 1);
}
