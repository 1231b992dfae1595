//! `ringgate passwd`: the lines it writes log in through the real proxy (Basic with curl, Digest
//! with curl and Python), a running proxy picks up an update on its own, the password is asked
//! twice on a terminal, permissions and other lines are kept, and bad input is refused.
// Test clients are not worker code: they may block and lock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// Runs `ringgate passwd ARGS` with `password` on standard input (`--password-stdin`).
fn passwd(args: &[&str], password: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .arg("passwd")
        .arg("--password-stdin")
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A usage error can end the command before it reads its input: a broken pipe is fine here,
    // the exit status says what happened.
    let written = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes());
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `ringgate passwd ARGS` on a pseudo-terminal, typing each of `answers` at a prompt.
fn passwd_on_a_terminal(args: &[&str], answers: &[&str]) -> (i32, String) {
    on_a_terminal(
        &[&[env!("CARGO_BIN_EXE_ringgate"), "passwd"][..], args].concat(),
        answers,
    )
}

fn basic_get(proxy: &Proxy, origin: std::net::SocketAddr, user: &str) -> (String, String) {
    curl_text(&[
        "--proxy-user",
        user,
        "-x",
        &format!("http://{}", proxy.addr),
        "-w",
        "%{http_code}",
        &format!("http://{origin}/"),
    ])
}

#[test]
fn htpasswd_lines_log_in_and_a_running_proxy_takes_an_update() {
    let dir = scratch("passwd-basic");
    let file = dir.join("users");
    let _ = std::fs::remove_file(&file);
    let f = file.to_str().unwrap();
    assert_eq!(passwd(&[f, "alice", "--cost", "4"], "first pw").0, Some(0));
    assert_eq!(passwd(&[f, "bob", "--cost", "4"], "bobs pw").0, Some(0));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("alice:$2b$04$"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    // A new file holds passwords: only its owner reads it.
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let proxy = Proxy::start(&["--htpasswd", f, "--users-watch", "1"]);
    let origin = http_origin("basic ok\n");
    assert_eq!(
        basic_get(&proxy, origin, "alice:first pw").0,
        "basic ok\n200"
    );
    assert_eq!(basic_get(&proxy, origin, "bob:bobs pw").0, "basic ok\n200");

    // An update while the proxy runs: the watcher rereads the renamed-in file.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, err) = passwd(&[f, "alice", "--cost", "4"], "second pw");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("updated alice"), "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("bob:"), "{text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the file's permissions are kept");
    assert!(
        wait_until(Duration::from_secs(20), || basic_get(
            &proxy,
            origin,
            "alice:second pw"
        )
        .0 == "basic ok\n200"),
        "{}",
        proxy.log_text()
    );
    assert!(
        basic_get(&proxy, origin, "alice:first pw")
            .0
            .ends_with("407")
    );
    assert_eq!(basic_get(&proxy, origin, "bob:bobs pw").0, "basic ok\n200");
    // No temporary file is left beside it.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("users")]);
}

#[test]
fn digest_lines_answer_sha256_with_curl_and_md5_with_python() {
    let dir = scratch("passwd-digest");
    let file = dir.join("digest");
    let f = file.to_str().unwrap();
    // Another realm's line and a comment stay as they are.
    std::fs::write(
        &file,
        "# kept\nalice:other realm:0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let (code, err) = passwd(&[f, "alice", "--digest", "--realm", "ringgate"], "d1gest");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = passwd(&[f, "alice", "--digest", "--realm", "ringgate"], "d2gest");
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "# kept");
    assert!(lines[1].starts_with("alice:other realm:"));
    // MD5(alice:ringgate:d2gest), as Apache's htdigest would write it.
    let md5 = Command::new("sh")
        .args(["-c", "printf %s 'alice:ringgate:d2gest' | md5sum"])
        .output()
        .unwrap();
    let md5 = String::from_utf8_lossy(&md5.stdout);
    assert_eq!(lines[2], format!("alice:ringgate:{}", &md5[..32]), "{text}");
    assert_eq!(lines[3].len(), "alice:ringgate:".len() + 64, "{text}");

    let proxy = Proxy::start(&["--htdigest", f, "--users-watch", "1"]);
    let origin = http_origin("digest ok\n");
    // curl answers the first challenge: SHA-256.
    let digest_get = |password: &str| {
        curl_text(&[
            "--proxy-digest",
            "--proxy-user",
            &format!("alice:{password}"),
            "-x",
            &format!("http://{}", proxy.addr),
            &format!("http://{origin}/"),
        ])
    };
    let (out, err) = digest_get("d2gest");
    assert_eq!(out, "digest ok\n", "{err}");
    // htdigest files are watched too: an update reaches the running proxy.
    let (code, err) = passwd(&[f, "alice", "--digest", "--realm", "ringgate"], "d3gest");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        wait_until(Duration::from_secs(20), || digest_get("d3gest").0
            == "digest ok\n"),
        "{}",
        proxy.log_text()
    );
    assert_ne!(digest_get("d2gest").0, "digest ok\n");
    let (code, err) = passwd(&[f, "alice", "--digest", "--realm", "ringgate"], "d2gest");
    assert_eq!(code, Some(0), "{err}");
    // urllib reads only the first field and knows only MD5: offer MD5 first.
    let md5_first = Proxy::start(&["--htdigest", f, "--digest-algorithms", "MD5,SHA-256"]);
    let script = "import sys, urllib.request\n\
                  proxy = sys.argv[1]\n\
                  auth = urllib.request.ProxyDigestAuthHandler()\n\
                  auth.add_password('ringgate', sys.argv[2], 'alice', 'd2gest')\n\
                  opener = urllib.request.build_opener(urllib.request.ProxyHandler({'http': proxy}), auth)\n\
                  print(opener.open(sys.argv[2], timeout=30).read().decode(), end='')\n";
    let out = python(
        script,
        &[
            &format!("http://{}", md5_first.addr),
            &format!("http://{origin}/"),
        ],
    );
    assert_eq!(out, "digest ok\n");
}

#[test]
fn on_a_terminal_the_password_is_asked_twice() {
    let dir = scratch("passwd-tty");
    let file = dir.join("users");
    let _ = std::fs::remove_file(&file);
    let f = file.to_str().unwrap();
    let (code, out) = passwd_on_a_terminal(&[f, "carol", "--cost", "4"], &["one", "two"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("do not match"), "{out}");
    assert!(!file.exists(), "nothing written on a mismatch");
    let (code, out) = passwd_on_a_terminal(&[f, "carol", "--cost", "4"], &["c4rol", "c4rol"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("c4rol"), "the password is not echoed: {out}");
    let proxy = Proxy::start(&["--htpasswd", f]);
    let origin = http_origin("tty ok\n");
    assert_eq!(basic_get(&proxy, origin, "carol:c4rol").0, "tty ok\n200");
}

#[test]
fn bad_input_is_refused_with_exit_2_and_the_file_untouched() {
    let dir = scratch("passwd-bad");
    let file = dir.join("users");
    std::fs::write(
        &file,
        "keep:$2b$04$abcdefghijklmnopqrstuu0123456789012345678901234567890\n",
    )
    .unwrap();
    let before = std::fs::read(&file).unwrap();
    let f = file.to_str().unwrap();
    let long = "x".repeat(73);
    let rows: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![f, "a:b"], "pw", "`:`"),
        (vec![f, "a\tb"], "pw", "control"),
        (vec![f, ""], "pw", "empty"),
        (vec![f, "dave"], "", "empty"),
        (vec![f, "dave"], &long, "72"),
        (vec![f, "dave", "--digest"], "pw", "--realm"),
        (
            vec![f, "dave", "--digest", "--realm", "r\u{1}"],
            "pw",
            "control",
        ),
        (vec![f, "dave", "--cost", "3"], "pw", "--cost"),
    ];
    for (args, password, says) in rows {
        let (code, err) = passwd(&args, password);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "{args:?}");
    }
    // Not a terminal and no --password-stdin: says what to do.
    let out = Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args(["passwd", f, "dave"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--password-stdin"), "{err}");
    // A folder that cannot be written: exit 1, naming the file.
    let (code, err) = passwd(&["/proc/ringgate-users", "dave"], "pw");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("/proc/ringgate-users"), "{err}");
    assert!(Path::new(f).exists());
}
