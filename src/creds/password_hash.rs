//! Stored password hashes as Apache's `htpasswd` and squid's `basic_ncsa_auth` read them, and the
//! check of a candidate password against one. Pure functions: no I/O, no clock.
//!
//! Every comparison of derived bytes is constant-time (`subtle`). Formats whose check costs
//! milliseconds ([`PasswordHash::is_costly`]) are verified on the verifier pool, never on a worker.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha_crypt::PasswordVerifier as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use super::apr1;

/// One user's stored hash, parsed and checked for shape when the user database is loaded.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$2y$`, `$2b$`, `$2a$` (bcrypt).
    Bcrypt(Box<str>),
    /// `$5$` (SHA-256-crypt) or `$6$` (SHA-512-crypt).
    ShaCrypt(Box<str>),
    /// `$apr1$` (Apache's MD5-crypt variant).
    Apr1 { salt: Box<str>, digest: Box<str> },
    /// `{SHA}` + base64 of an unsalted SHA-1 (htpasswd -s).
    Sha1([u8; 20]),
    /// A password given as is (`--user`, or an htpasswd file when `htpasswd_plaintext` allows
    /// it), kept only as its SHA-256: the compare is over fixed-length digests, so it reveals
    /// nothing about the password's length, and the password itself is not kept here.
    Plain([u8; 32]),
}

/// Why a stored hash was refused at load. Never contains the hash itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error(
        "unknown hash format (bcrypt, $5$, $6$, $apr1$ and {{SHA}} are supported; plain text only with htpasswd_plaintext = true)"
    )]
    Unknown,
    #[error("malformed {0} hash")]
    Malformed(&'static str),
}

impl PasswordHash {
    /// Parses the hash field of an htpasswd line. `allow_plain`: a field in no known format is
    /// taken as a plain-text password instead of being refused.
    pub fn parse(field: &str, allow_plain: bool) -> Result<PasswordHash, HashError> {
        if ["$2y$", "$2b$", "$2a$"]
            .iter()
            .any(|p| field.starts_with(p))
        {
            return match field.parse::<bcrypt::HashParts>() {
                Ok(_) => Ok(PasswordHash::Bcrypt(field.into())),
                Err(_) => Err(HashError::Malformed("bcrypt")),
            };
        }
        if field.starts_with("$5$") || field.starts_with("$6$") {
            return match sha_crypt::PasswordHashRef::new(field) {
                Ok(h) if h.fields().count() >= 2 => Ok(PasswordHash::ShaCrypt(field.into())),
                _ => Err(HashError::Malformed("SHA-crypt")),
            };
        }
        if let Some(rest) = field.strip_prefix(apr1::MAGIC) {
            return match rest.split_once('$') {
                Some((salt, digest))
                    if salt.len() <= 8
                        && digest.len() == apr1::DIGEST_LEN
                        && !salt.contains('$') =>
                {
                    Ok(PasswordHash::Apr1 {
                        salt: salt.into(),
                        digest: digest.into(),
                    })
                }
                _ => Err(HashError::Malformed("$apr1$")),
            };
        }
        if let Some(b64) = field.strip_prefix("{SHA}") {
            let mut digest = [0u8; 20];
            return match STANDARD.decode_slice(b64, &mut digest) {
                Ok(20) => Ok(PasswordHash::Sha1(digest)),
                _ => Err(HashError::Malformed("{SHA}")),
            };
        }
        if allow_plain {
            Ok(PasswordHash::plain(field.as_bytes()))
        } else {
            Err(HashError::Unknown)
        }
    }

    /// A plain-text password, as its digest.
    pub fn plain(password: &[u8]) -> PasswordHash {
        PasswordHash::Plain(sha2::Sha256::digest(password).into())
    }

    /// Formats and work factors, for choosing a decoy like most users' hashes; `None` for the
    /// fast formats.
    pub fn cost_class(&self) -> Option<(&'static str, u32)> {
        match self {
            // `$2y$NN$…`: the cost is the two digits.
            PasswordHash::Bcrypt(h) => Some(("bcrypt", h.get(4..6)?.parse().ok()?)),
            PasswordHash::ShaCrypt(h) => {
                let rounds = h
                    .split('$')
                    .nth(2)
                    .and_then(|p| p.strip_prefix("rounds="))
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(5000);
                Some((
                    if h.starts_with("$5$") {
                        "sha256-crypt"
                    } else {
                        "sha512-crypt"
                    },
                    rounds,
                ))
            }
            PasswordHash::Apr1 { .. } => Some(("apr1", 1000)),
            PasswordHash::Sha1(_) | PasswordHash::Plain(_) => None,
        }
    }

    /// Whether checking costs enough (milliseconds) that it must run off the worker threads.
    pub fn is_costly(&self) -> bool {
        matches!(
            self,
            PasswordHash::Bcrypt(_) | PasswordHash::ShaCrypt(_) | PasswordHash::Apr1 { .. }
        )
    }

    /// Whether `password` matches. Derived bytes are compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            PasswordHash::ShaCrypt(h) => sha_crypt::ShaCrypt::default()
                .verify_password(password, &**h)
                .is_ok(),
            PasswordHash::Apr1 { salt, digest } => {
                let got = apr1::digest(password, salt.as_bytes());
                got.as_slice().ct_eq(digest.as_bytes()).into()
            }
            PasswordHash::Sha1(want) => {
                let got = <sha1::Sha1 as sha1::Digest>::digest(password);
                got.as_slice().ct_eq(want).into()
            }
            PasswordHash::Plain(want) => {
                let got = sha2::Sha256::digest(password);
                got.as_slice().ct_eq(want).into()
            }
        }
    }

    /// The format's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PasswordHash::Bcrypt(_) => "bcrypt",
            PasswordHash::ShaCrypt(_) => "sha-crypt",
            PasswordHash::Apr1 { .. } => "apr1",
            PasswordHash::Sha1(_) => "sha1",
            PasswordHash::Plain(_) => "plain",
        }
    }
}

/// Never prints the hash: a hash is an offline-crackable secret.
impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash({}, ***)", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Produced by `htpasswd -nbB -C 4 u secret`, `openssl passwd -5/-6 -salt saltsalt secret`,
    // `htpasswd -nbm` (known vectors), `htpasswd -nbs u secret`.
    const BCRYPT: &str = "$2y$04$WFucmkyDv64zi5NAQbnAf.xUpbUQQ/UXvrOwN7oQP4npLBM5hj8Cy";
    const SHA256: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
    const SHA512: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const APR1: &str = "$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00";
    const SHA1: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";

    /// One row per stored hash: the field, the right password, and whether it runs off-worker.
    #[test]
    fn each_format_accepts_its_password_and_nothing_else() {
        let rows: [(&str, &[u8], bool); 5] = [
            (BCRYPT, b"secret", true),
            (SHA256, b"secret", true),
            (SHA512, b"secret", true),
            (APR1, b"password", true),
            (SHA1, b"secret", false),
        ];
        for (field, right, costly) in rows {
            let h = PasswordHash::parse(field, false).unwrap();
            assert!(h.verify(right), "{field}");
            assert!(!h.verify(b"Secret"), "{field}");
            assert!(!h.verify(b""), "{field}");
            assert_eq!(h.is_costly(), costly, "{field}");
        }
    }

    #[test]
    fn plain_text_only_when_allowed() {
        assert_eq!(
            PasswordHash::parse("hunter2", false),
            Err(HashError::Unknown)
        );
        let h = PasswordHash::parse("hunter2", true).unwrap();
        assert!(h.verify(b"hunter2"));
        assert!(!h.verify(b"hunter"));
        assert!(!h.is_costly());
    }

    #[test]
    fn malformed_hashes_are_refused_naming_the_format() {
        for (field, want) in [
            ("$2y$04$short", HashError::Malformed("bcrypt")),
            ("$5$", HashError::Malformed("SHA-crypt")),
            ("$apr1$salt", HashError::Malformed("$apr1$")),
            (
                "$apr1$toolongsalt$eIMz/iKDkbtys/uU7LEK00",
                HashError::Malformed("$apr1$"),
            ),
            ("{SHA}notbase64!", HashError::Malformed("{SHA}")),
            ("{SHA}AAAA", HashError::Malformed("{SHA}")),
        ] {
            assert_eq!(PasswordHash::parse(field, true), Err(want), "{field}");
        }
    }

    #[test]
    fn cost_classes_read_the_work_factor() {
        let class = |h: &str| PasswordHash::parse(h, true).unwrap().cost_class();
        assert_eq!(class(BCRYPT), Some(("bcrypt", 4)));
        assert_eq!(class(SHA512), Some(("sha512-crypt", 5000)));
        assert_eq!(
            class("$5$rounds=10000$saltsalt$3xv8vORhmZCUBZE9rUa4tqGk2K5Mw/xQcqgVomprW6D"),
            Some(("sha256-crypt", 10000))
        );
        assert_eq!(class(SHA1), None);
        assert_eq!(class("plain"), None);
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let h = PasswordHash::parse(SHA1, false).unwrap();
        assert_eq!(format!("{h:?}"), "PasswordHash(sha1, ***)");
    }
}
