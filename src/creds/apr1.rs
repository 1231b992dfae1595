//! Apache's `$apr1$` MD5-crypt (apr_md5.c): md5-crypt with its own magic string.
//!
//! Written here because no well-kept crate offers it: `pwhash` 1.0 has only `$1$`, `htpasswd-verify`
//! depends on the unmaintained `rust-crypto` and panics on bad input, `crypt3` pins `ring` 0.13.
//! The MD5 itself is RustCrypto's `md-5`; the known-answer tests below are hashes made by Apache's
//! `htpasswd -m`.

use md5::{Digest, Md5};

pub const MAGIC: &str = "$apr1$";
/// The encoded digest: 128 bits in crypt's base-64, 22 characters.
pub const DIGEST_LEN: usize = 22;

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 22-character encoded digest of `password` with `salt` (at most 8 bytes are used).
pub fn digest(password: &[u8], salt: &[u8]) -> [u8; DIGEST_LEN] {
    let salt = &salt[..salt.len().min(8)];
    let alt = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(MAGIC)
        .chain_update(salt);
    for chunk in password.chunks(16) {
        ctx.update(&alt[..chunk.len()]);
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    let f = fin.as_slice();
    let mut out = [0u8; DIGEST_LEN];
    let groups: [(u32, usize); 6] = [
        (
            u32::from(f[0]) << 16 | u32::from(f[6]) << 8 | u32::from(f[12]),
            4,
        ),
        (
            u32::from(f[1]) << 16 | u32::from(f[7]) << 8 | u32::from(f[13]),
            4,
        ),
        (
            u32::from(f[2]) << 16 | u32::from(f[8]) << 8 | u32::from(f[14]),
            4,
        ),
        (
            u32::from(f[3]) << 16 | u32::from(f[9]) << 8 | u32::from(f[15]),
            4,
        ),
        (
            u32::from(f[4]) << 16 | u32::from(f[10]) << 8 | u32::from(f[5]),
            4,
        ),
        (u32::from(f[11]), 2),
    ];
    let mut at = 0;
    for (mut v, n) in groups {
        for _ in 0..n {
            out[at] = ITOA64[(v & 0x3f) as usize];
            v >>= 6;
            at += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_apache_htpasswd() {
        for (salt, password, want) in [
            ("lZL6V/ci", "password", "eIMz/iKDkbtys/uU7LEK00"),
            ("VUpV2MD/", "password", "3FqzQEpYirhr/w7ItrKnb."),
            ("RandSalt", "password", "PgCXHRrkpSt4cbyC2C6bm/"),
        ] {
            assert_eq!(
                &digest(password.as_bytes(), salt.as_bytes()),
                want.as_bytes(),
                "{salt}"
            );
        }
    }

    #[test]
    fn empty_and_long_passwords_do_not_panic() {
        let _ = digest(b"", b"");
        let _ = digest(&[b'x'; 1000], b"saltsaltsalt");
    }
}
