//! Digest credentials (RFC 7616): the `#auth-param` list parser and RFC 7616's rules over it, the
//! nonce check, and a round trip: a credential written from fuzzer-chosen names, with every
//! character quoting needs escaped, is read back exactly and its `response` is the one computed
//! here independently (SHA-256 over the RFC's own formula).
//!
//! The input is the raw list; split at NUL bytes it is also the parts of the round trip.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringgate::auth::digest::{self, Algorithm, Hash, NonceState, Nonces, Username};
use sha2::{Digest, Sha256};

fn nonces() -> &'static (Nonces, Instant) {
    static N: OnceLock<(Nonces, Instant)> = OnceLock::new();
    N.get_or_init(|| (Nonces::new(2, Duration::from_secs(300)), Instant::now()))
}

fn hex256(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Text a quoted-string can carry: no control characters, bounded.
fn text(part: &[u8]) -> String {
    String::from_utf8_lossy(part)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let (nonces, start) = nonces();
    if let Ok(v) = digest::parse(data).and_then(digest::verify) {
        assert!(v.uri.len() <= digest::MAX_VALUE && v.nonce.len() <= digest::MAX_VALUE);
        let _ = nonces.open(v.nonce, Instant::now());
        let stored = digest::ha1(v.algorithm.hash, "u", "r", b"p");
        let r = digest::expected_response(v.algorithm, &stored, b"GET", &v);
        let _ = r.ct_eq(&v.response);
    }
    // A nonce that is not one minted here is stale.
    if data.len() == digest::NONCE_LEN {
        assert_eq!(nonces.open(data, *start), NonceState::Stale);
    }

    // The round trip.
    let mut parts = data.split(|&b| b == 0);
    let (Some(user), Some(uri), Some(cnonce), Some(realm)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let (user, uri, cnonce, realm) = (text(user), text(uri), text(cnonce), text(realm));
    if cnonce.is_empty() {
        return;
    }
    let nonce = nonces.mint(1, Instant::now());
    let nonce = std::str::from_utf8(&nonce).expect("nonces are base64url");
    let nc = "0000002a";
    let ha1 = hex256(&[user.as_bytes(), realm.as_bytes(), b"pw"]);
    let ha2 = hex256(&[b"CONNECT", uri.as_bytes()]);
    let response = hex256(&[
        ha1.as_bytes(),
        nonce.as_bytes(),
        nc.as_bytes(),
        cnonce.as_bytes(),
        b"auth",
        ha2.as_bytes(),
    ]);
    let list = format!(
        "username={}, realm={}, nonce=\"{nonce}\", uri={}, algorithm=SHA-256, \
         response=\"{response}\", qop=auth, nc={nc}, cnonce={}",
        quote(&user),
        quote(&realm),
        quote(&uri),
        quote(&cnonce)
    );
    let p = digest::parse(list.as_bytes()).unwrap_or_else(|e| panic!("{e:?}: {list}"));
    let v = digest::verify(p).unwrap_or_else(|e| panic!("{e:?}: {list}"));
    assert_eq!(v.username, Username::Name(user.as_str().into()));
    assert_eq!(&*v.realm, realm.as_bytes());
    assert_eq!(&*v.uri, uri.as_bytes());
    assert_eq!(&*v.cnonce, cnonce.as_bytes());
    assert_eq!(v.nc, 0x2a);
    assert_eq!(v.algorithm, Algorithm::SHA256);
    let stored = digest::ha1(Hash::Sha256, &user, &realm, b"pw");
    let expected = digest::expected_response(v.algorithm, &stored, b"CONNECT", &v);
    assert!(expected.ct_eq(&v.response), "{list}");
    let NonceState::Live(ticket) = nonces.open(v.nonce, Instant::now()) else {
        panic!("a fresh nonce is stale")
    };
    assert_eq!(nonces.advance(ticket, v.nc), digest::Count::Fresh);
    assert_eq!(nonces.advance(ticket, v.nc), digest::Count::Replayed);
});
