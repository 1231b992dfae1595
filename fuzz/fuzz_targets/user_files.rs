//! User files: htpasswd (every hash kind), htdigest and NT-hash/smbpasswd lines. Read at start and
//! on reload from files an operator edits: a bad line must be an error naming its line, never a
//! panic, and what is accepted must be usable (cheap hashes are verified here; bcrypt and crypt
//! with high costs are only parsed, since their cost comes from the line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::creds::password_hash::PasswordHash;
use ringgate::creds::{htdigest, htpasswd, nthash};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    for plain in [false, true] {
        match htpasswd::parse(text, plain) {
            Ok(users) => {
                for u in &users {
                    assert!(u.number >= 1 && u.number <= lines.max(1));
                    assert!(!u.user.is_empty());
                    if matches!(
                        u.hash,
                        PasswordHash::Apr1 { .. } | PasswordHash::Sha1(_) | PasswordHash::Plain(_)
                    ) {
                        let _ = u.hash.verify(b"pw");
                    }
                }
            }
            Err(e) => assert!(e.line >= 1 && e.line <= lines.max(1), "{e:?}"),
        }
    }
    match htdigest::parse(text, "ringgate") {
        Ok(users) => users.iter().for_each(|u| assert!(!u.user.is_empty())),
        Err(e) => assert!(e.line >= 1 && e.line <= lines.max(1), "{e:?}"),
    }
    match nthash::parse(text) {
        Ok(users) => users.iter().for_each(|u| assert!(!u.user.is_empty())),
        Err(e) => assert!(e.line >= 1 && e.line <= lines.max(1), "{e:?}"),
    }
    let _ = nthash::key(text);
});
