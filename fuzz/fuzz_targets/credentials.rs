//! `Proxy-Authorization` values: the scheme split and Basic decoding (RFC 7617). Whatever the
//! bytes, a decoded user has no control character and both parts respect the bound; and a
//! credential written from fuzzer-chosen parts decodes to exactly those parts.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use ringgate::auth::Credentials;
use ringgate::auth::basic::{self, Refused};

fuzz_target!(|data: &[u8]| {
    let creds = Credentials::parse(data);
    if let Credentials::Basic(token) = creds {
        match basic::decode_within(token, 64) {
            Ok((user, password)) => {
                assert!(!user.chars().any(char::is_control));
                assert!(user.len() <= 2 * 64);
                let _ = password;
            }
            Err(Refused::Malformed | Refused::TooLong) => {}
        }
    }
    let _ = basic::decode(data);

    // Round trip: `user:password` in UTF-8, as curl and requests send them.
    let text = String::from_utf8_lossy(data);
    let (user, password) = text.split_once(':').unwrap_or((&text, ""));
    if user.contains(':') || user.chars().any(char::is_control) {
        return;
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let value = format!("bAsIc  {token}");
    let Credentials::Basic(t) = Credentials::parse(value.as_bytes()) else {
        panic!("not read as Basic: {value}")
    };
    let (u, p) = basic::decode(t).expect("a well-formed Basic credential decodes");
    assert_eq!(u, user);
    assert_eq!(p, ringgate::creds::Secret::new(password.as_bytes()));
});
