//! Who may use the proxy: user database sources (htpasswd files, `--user`), the immutable snapshot
//! workers read lock-free, its reload, the verifier pool for slow hashes, and the per-worker cache
//! of verified credentials.

mod apr1;
pub mod credential_cache;
pub mod htdigest;
pub mod htpasswd;
pub mod nthash;
pub mod password_hash;
pub mod reload;
pub mod throttle;
pub mod user_db;
pub mod verifier;
pub mod winbind;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Secret bytes (a password): compared in constant time, zeroed on drop, never printed.
#[derive(Clone, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    pub fn new(bytes: &[u8]) -> Secret {
        Secret(bytes.into())
    }

    /// Constant-time equality with `other` (the length is not secret).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.ct_eq(other).into()
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.ct_eq(&other.0)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
