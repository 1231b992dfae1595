//! The credential gate's connection state, driven directly (what a connection sees between
//! requests): authenticated once, a connection may omit the header; other credentials switch the
//! user; wrong ones end the session; a user removed at reload loses open sessions' later requests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use base64::Engine as _;
use monoio::{LegacyDriver, RuntimeBuilder};
use ringgate::auth::{self, ConnAuth, Decision, Gate};
use ringgate::http::head::{self, Field, Limits};
use ringgate::observe::metrics::WorkerMetrics;
use support::config;

/// A request head carrying `header` (if any), and its parsed `Proxy-Authorization` field.
fn request(header: Option<(&str, &str)>) -> (Vec<u8>, Field) {
    let line = header.map_or(String::new(), |(u, p)| {
        let t = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Proxy-Authorization: Basic {t}\r\n")
    });
    let buf = format!("CONNECT a:1 HTTP/1.1\r\n{line}\r\n").into_bytes();
    let limits = Limits {
        max_head_bytes: 4096,
        max_target_bytes: 100,
        max_headers: 10,
    };
    let field = head::parse(&buf, &limits)
        .unwrap()
        .unwrap()
        .proxy_authorization;
    (buf, field)
}

const REQUEST: auth::Request<'static> = auth::Request {
    method: ringgate::http::head::Method::Get,
    target: b"http://example.com/",
};

async fn admit(gate: &Gate, conn: &mut ConnAuth, header: Option<(&str, &str)>) -> bool {
    let (buf, field) = request(header);
    let peer = "127.0.0.1".parse().unwrap();
    match gate.admit(conn, field, &buf, REQUEST, peer).await {
        Decision::Allow => true,
        Decision::Deny { .. } | Decision::Continue => false,
        Decision::Busy => panic!("busy"),
    }
}

fn user(conn: &ConnAuth) -> Option<&str> {
    conn.session.as_ref().map(|s| &*s.user)
}

#[test]
fn a_session_lasts_for_the_connection_until_credentials_change_or_the_user_goes() {
    let dir = std::env::temp_dir().join(format!("ringgate-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users");
    let sha = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="; // "secret"
    std::fs::write(&file, format!("alice:{sha}\nbob:{sha}\n")).unwrap();
    let config = config(&format!(
        "htpasswd = [\"{}\"]\nauth_failure_delay_ms = 0",
        file.display()
    ));
    let shared = auth::Shared::start(&config).unwrap().unwrap();
    let gate = Gate::new(shared.clone(), Default::default());
    let mut rt = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = ConnAuth::default();
        assert!(!admit(&gate, &mut s, None).await, "no session, no header");
        assert!(admit(&gate, &mut s, Some(("alice", "secret"))).await);
        assert_eq!(user(&s), Some("alice"));
        assert!(
            admit(&gate, &mut s, None).await,
            "later requests may omit the header"
        );
        assert!(admit(&gate, &mut s, Some(("bob", "secret"))).await);
        assert_eq!(
            user(&s),
            Some("bob"),
            "other credentials re-authenticate as that user"
        );
        assert!(!admit(&gate, &mut s, Some(("bob", "wrong"))).await);
        assert_eq!(user(&s), None, "wrong credentials end the session");
        assert!(!admit(&gate, &mut s, None).await);

        assert!(admit(&gate, &mut s, Some(("alice", "secret"))).await);
        std::fs::write(&file, format!("bob:{sha}\n")).unwrap();
        shared.users.reload().unwrap();
        assert!(
            !admit(&gate, &mut s, None).await,
            "a removed user's session ends"
        );
        assert!(!admit(&gate, &mut s, Some(("alice", "secret"))).await);

        // A session whose user survives a reload carries on.
        assert!(admit(&gate, &mut s, Some(("bob", "secret"))).await);
        std::fs::write(&file, format!("bob:{sha}\ncarol:{sha}\n")).unwrap();
        shared.users.reload().unwrap();
        assert!(admit(&gate, &mut s, None).await);
        assert!(
            admit(&gate, &mut s, Some(("carol", "secret"))).await,
            "added users work at once"
        );
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_user_removed_while_their_password_is_checked_does_not_get_in() {
    let dir = std::env::temp_dir().join(format!("ringgate-gate-race-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users");
    // bcrypt: the check goes to the verifier pool (how long it takes does not matter, see below).
    let out = std::process::Command::new("htpasswd")
        .args(["-nbB", "-C", "12", "slow", "right"])
        .output()
        .expect("htpasswd (apache2-utils)");
    let line = String::from_utf8(out.stdout).unwrap();
    let sha = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
    std::fs::write(&file, format!("{}\nother:{sha}\n", line.trim())).unwrap();
    let config = config(&format!(
        "htpasswd = [\"{}\"]\nauth_failure_delay_ms = 0",
        file.display()
    ));
    let shared = auth::Shared::start(&config).unwrap().unwrap();
    let metrics = std::sync::Arc::new(WorkerMetrics::default());
    let gate = std::rc::Rc::new(Gate::new(shared.clone(), metrics.clone()));
    let mut rt = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    rt.block_on(async {
        let g = gate.clone();
        let checking = monoio::spawn(async move {
            let mut s = ConnAuth::default();
            admit(&g, &mut s, Some(("slow", "right"))).await
        });
        // Once the miss is counted, the check holds the old snapshot and has gone to the pool.
        // The reload below runs before the check's task is polled again, however fast the hash
        // was, so the gate must notice the newer snapshot itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while metrics.credential_cache_misses.get() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the check never started"
            );
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        std::fs::write(&file, format!("other:{sha}\n")).unwrap();
        shared.users.reload().unwrap();
        assert!(
            !checking.await,
            "the check's old snapshot let a removed user in"
        );
        // And the cache did not keep it either.
        let mut s = ConnAuth::default();
        assert!(!admit(&gate, &mut s, Some(("slow", "right"))).await);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
