//! The user database: an immutable snapshot built from every configured source, swapped whole on
//! reload (`arc-swap`), so workers read it without a lock and a reload never disturbs a reader.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entry ids, process-wide: a record keeps its id across reloads while its hash is unchanged, and
/// gets a new one when the password changes, so a session can be bound to the exact credential.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

use arc_swap::{ArcSwap, Guard};

use super::Secret;
use super::password_hash::PasswordHash;
use super::{htdigest, htpasswd, nthash};
use crate::auth::digest::{self, Hash, Sum};

/// One user as the database knows them.
#[derive(Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub name: Arc<str>,
    pub hash: PasswordHash,
    /// Names this user *with this hash*: kept by a reload that leaves the hash alone, new when it
    /// changes. Sessions remember it, so a changed password ends them.
    pub id: u64,
}

/// One user as Digest knows them: the HA1s of the realm (`H(user:realm:password)`), one per hash
/// the user can answer. A user with only an MD5 HA1 cannot answer a SHA-256 challenge, nor the
/// reverse.
#[derive(Debug, PartialEq, Eq)]
pub struct DigestRecord {
    pub name: Arc<str>,
    pub md5: Option<Sum>,
    pub sha256: Option<Sum>,
    /// Like [`UserRecord::id`]: kept while the HA1s are unchanged.
    pub id: u64,
}

impl DigestRecord {
    pub fn ha1(&self, hash: Hash) -> Option<&Sum> {
        match hash {
            Hash::Md5 => self.md5.as_ref(),
            Hash::Sha256 => self.sha256.as_ref(),
        }
    }
}

/// One user as NTLM knows them: the NT hash (MD4 of the UTF-16LE password). Found by name without
/// regard to case.
#[derive(Debug, PartialEq, Eq)]
pub struct NtlmRecord {
    pub name: Arc<str>,
    pub hash: [u8; 16],
    /// Like [`UserRecord::id`]: kept while the hash is unchanged.
    pub id: u64,
}

/// Where users come from (from the config).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    pub htpasswd: Vec<PathBuf>,
    /// htdigest files: users for Digest, the lines of `realm` only.
    pub htdigest: Vec<PathBuf>,
    /// NT-hash files (`user:NTHASH`, smbpasswd): users for NTLM.
    pub ntlm: Vec<PathBuf>,
    /// `ntlm_backend = "winbind"`: NTLM answers are checked by Samba, not against local hashes.
    pub ntlm_delegated: bool,
    /// The realm Digest HA1s are made for (inline users get theirs computed for it).
    pub realm: String,
    /// `--user NAME:PASSWORD` / `users = [...]`: plain passwords given on the command line or in
    /// the config file.
    pub inline: Vec<(String, Secret)>,
    /// Accept htpasswd lines in no known hash format as plain-text passwords.
    pub allow_plain: bool,
    /// Negotiate is served (a keytab, or `negotiate` in `auth_schemes`): the KDC vouches for
    /// its users, who need no entry here.
    pub negotiate: bool,
}

impl Sources {
    /// Auth is on when any source is configured.
    pub fn is_empty(&self) -> bool {
        self.htpasswd.is_empty()
            && self.inline.is_empty()
            && self.htdigest.is_empty()
            && self.ntlm.is_empty()
            && !self.ntlm_delegated
            && !self.negotiate
    }

    /// A source made for NTLM is configured (an NT-hash file). Inline users can answer NTLM when
    /// it is offered, but, as for Digest, do not turn it on.
    pub fn has_ntlm(&self) -> bool {
        !self.ntlm.is_empty() || self.ntlm_delegated
    }

    /// Some source can hold users for Basic.
    pub fn has_basic(&self) -> bool {
        !self.htpasswd.is_empty() || !self.inline.is_empty()
    }

    /// A source made for Digest is configured (an htdigest file). Inline users can answer Digest
    /// too when it is offered, but do not turn it on: a config that only names users keeps the
    /// Basic-only 407 it always had.
    pub fn has_digest(&self) -> bool {
        !self.htdigest.is_empty()
    }
}

/// Why a database could not be built. Names the file and line; never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read user file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("user file {path}: {error}")]
    Line {
        path: String,
        error: htpasswd::ParseError,
    },
    #[error("htdigest file {path}: {error}")]
    DigestLine {
        path: String,
        error: htdigest::ParseError,
    },
    #[error("NT-hash file {path}: {error}")]
    NtlmLine {
        path: String,
        error: nthash::ParseError,
    },
    #[error("user `{user}` is defined in both {first} and {second}")]
    Duplicate {
        user: String,
        first: String,
        second: String,
    },
}

/// An immutable snapshot. `generation` grows with every successful load, so caches can tell
/// whether what they verified was verified against this snapshot.
#[derive(Debug)]
pub struct UserDb {
    pub generation: u64,
    users: HashMap<Box<str>, (Arc<UserRecord>, Arc<str>)>,
    digest: HashMap<Box<str>, (Arc<DigestRecord>, Arc<str>)>,
    /// NTLM users by lower-case name.
    ntlm: HashMap<Box<str>, (Arc<NtlmRecord>, Arc<str>)>,
    /// Digest users by `H(user:realm)`, for clients that send `userhash=true`.
    userhashes: HashMap<Sum, Arc<DigestRecord>>,
    /// A user with a slow hash, checked in place of an unknown user so that an unknown name costs
    /// as long as a wrong password (no timing hint that the name does not exist).
    decoy: Option<Arc<UserRecord>>,
}

impl UserDb {
    pub fn get(&self, name: &str) -> Option<&Arc<UserRecord>> {
        self.users.get(name).map(|(r, _)| r)
    }

    /// A Digest user by name.
    pub fn digest(&self, name: &str) -> Option<&Arc<DigestRecord>> {
        self.digest.get(name).map(|(r, _)| r)
    }

    /// An NTLM user by name, without regard to case.
    pub fn ntlm(&self, name: &str) -> Option<&Arc<NtlmRecord>> {
        self.ntlm.get(&*nthash::key(name)).map(|(r, _)| r)
    }

    /// A Digest user by `H(user:realm)` (the hash is in the sum).
    pub fn digest_by_userhash(&self, hashed: &Sum) -> Option<&Arc<DigestRecord>> {
        self.userhashes.get(hashed)
    }

    /// Basic, Digest and NTLM users (a user in several counts once per scheme).
    pub fn len(&self) -> usize {
        self.users.len() + self.digest.len() + self.ntlm.len()
    }

    pub fn decoy(&self) -> Option<&Arc<UserRecord>> {
        self.decoy.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.digest.is_empty() && self.ntlm.is_empty()
    }

    /// Builds a snapshot from every source; the first problem fails the whole load.
    pub fn load(sources: &Sources, generation: u64) -> Result<UserDb, LoadError> {
        UserDb::load_after(sources, generation, None)
    }

    /// Like [`UserDb::load`], keeping the entry ids of `previous`'s users whose hash is unchanged.
    pub fn load_after(
        sources: &Sources,
        generation: u64,
        previous: Option<&UserDb>,
    ) -> Result<UserDb, LoadError> {
        let mut users: HashMap<Box<str>, (Arc<UserRecord>, Arc<str>)> = HashMap::new();
        let mut add = |name: &str, hash: PasswordHash, origin: String| {
            if let Some((_, first)) = users.get(name) {
                return Err(LoadError::Duplicate {
                    user: name.to_owned(),
                    first: first.to_string(),
                    second: origin,
                });
            }
            let id = previous
                .and_then(|p| p.get(name))
                .filter(|old| old.hash == hash)
                .map_or_else(|| NEXT_ID.fetch_add(1, Ordering::Relaxed), |old| old.id);
            let record = Arc::new(UserRecord {
                name: name.into(),
                hash,
                id,
            });
            users.insert(name.into(), (record, origin.into()));
            Ok(())
        };
        let mut digest_users: HashMap<Box<str>, (Arc<DigestRecord>, Arc<str>)> = HashMap::new();
        let mut add_digest = |name: &str, md5: Option<Sum>, sha256: Option<Sum>, origin: String| {
            if let Some((_, first)) = digest_users.get(name) {
                return Err(LoadError::Duplicate {
                    user: name.to_owned(),
                    first: first.to_string(),
                    second: origin,
                });
            }
            let id = previous
                .and_then(|p| p.digest(name))
                .filter(|old| old.md5 == md5 && old.sha256 == sha256)
                .map_or_else(|| NEXT_ID.fetch_add(1, Ordering::Relaxed), |old| old.id);
            let record = Arc::new(DigestRecord {
                name: name.into(),
                md5,
                sha256,
                id,
            });
            digest_users.insert(name.into(), (record, origin.into()));
            Ok(())
        };
        let mut ntlm: HashMap<Box<str>, (Arc<NtlmRecord>, Arc<str>)> = HashMap::new();
        let mut add_ntlm = |name: &str, hash: [u8; 16], origin: String| {
            let key = nthash::key(name);
            if let Some((_, first)) = ntlm.get(&*key) {
                return Err(LoadError::Duplicate {
                    user: name.to_owned(),
                    first: first.to_string(),
                    second: origin,
                });
            }
            let id = previous
                .and_then(|p| p.ntlm(name))
                .filter(|old| old.hash == hash)
                .map_or_else(|| NEXT_ID.fetch_add(1, Ordering::Relaxed), |old| old.id);
            let record = Arc::new(NtlmRecord {
                name: name.into(),
                hash,
                id,
            });
            ntlm.insert(key.into(), (record, origin.into()));
            Ok(())
        };
        for path in &sources.ntlm {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| LoadError::Unreadable {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let lines = nthash::parse(&text).map_err(|error| LoadError::NtlmLine {
                path: shown.clone(),
                error,
            })?;
            for line in lines {
                add_ntlm(
                    &line.user,
                    line.hash,
                    format!("{shown} line {}", line.number),
                )?;
            }
        }
        for (name, password) in &sources.inline {
            // A password that is not UTF-8 has no UTF-16 form, so no NT hash: NTLM cannot serve it.
            if let Ok(text) = std::str::from_utf8(password.expose()) {
                add_ntlm(
                    name,
                    crate::auth::ntlm::nt_hash(text),
                    "--user/users".into(),
                )?;
            }
            add(
                name,
                PasswordHash::plain(password.expose()),
                "--user/users".into(),
            )?;
            let realm = &sources.realm;
            add_digest(
                name,
                Some(digest::ha1(Hash::Md5, name, realm, password.expose())),
                Some(digest::ha1(Hash::Sha256, name, realm, password.expose())),
                "--user/users".into(),
            )?;
        }
        for path in &sources.htdigest {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| LoadError::Unreadable {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let lines =
                htdigest::parse(&text, &sources.realm).map_err(|error| LoadError::DigestLine {
                    path: shown.clone(),
                    error,
                })?;
            for line in lines {
                add_digest(
                    &line.user,
                    line.md5,
                    line.sha256,
                    format!("{shown} line {}", line.number),
                )?;
            }
        }
        for path in &sources.htpasswd {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| LoadError::Unreadable {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let lines =
                htpasswd::parse(&text, sources.allow_plain).map_err(|error| LoadError::Line {
                    path: shown.clone(),
                    error,
                })?;
            for line in lines {
                add(
                    &line.user,
                    line.hash,
                    format!("{shown} line {}", line.number),
                )?;
            }
        }
        let decoy = decoy_of(users.values().map(|(r, _)| r));
        let mut userhashes = HashMap::new();
        for (record, _) in digest_users.values() {
            for hash in [Hash::Md5, Hash::Sha256] {
                if record.ha1(hash).is_some() {
                    let key = digest::userhash(hash, &record.name, &sources.realm);
                    userhashes.insert(key, record.clone());
                }
            }
        }
        Ok(UserDb {
            generation,
            users,
            digest: digest_users,
            ntlm,
            userhashes,
            decoy,
        })
    }
}

/// A record with the most common slow hash (format and work factor; on a tie the costliest), so
/// that checking it costs what checking most users costs.
fn decoy_of<'a>(records: impl Iterator<Item = &'a Arc<UserRecord>>) -> Option<Arc<UserRecord>> {
    let mut classes: HashMap<(&'static str, u32), (usize, &Arc<UserRecord>)> = HashMap::new();
    for r in records {
        if let Some(class) = r.hash.cost_class() {
            classes.entry(class).or_insert((0, r)).0 += 1;
        }
    }
    classes
        .into_iter()
        .max_by_key(|((_, cost), (count, _))| (*count, *cost))
        .map(|(_, (_, r))| r.clone())
}

/// The current snapshot and how to rebuild it. Shared by all workers and the reloader.
pub struct Users {
    current: ArcSwap<UserDb>,
    sources: Sources,
    generations: AtomicU64,
}

impl Users {
    /// Loads the first snapshot; an error here stops start-up.
    pub fn open(sources: Sources) -> Result<Users, LoadError> {
        let db = UserDb::load(&sources, 1)?;
        Ok(Users {
            current: ArcSwap::from_pointee(db),
            sources,
            generations: AtomicU64::new(1),
        })
    }

    /// The snapshot now. Lock-free and allocation-free: a worker calls this per request.
    pub fn snapshot(&self) -> Guard<Arc<UserDb>> {
        self.current.load()
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Rebuilds from the sources and swaps the new snapshot in; on error the old one stays.
    /// Returns the new snapshot's user count.
    pub fn reload(&self) -> Result<usize, LoadError> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let db = UserDb::load_after(&self.sources, generation, Some(&self.snapshot()))?;
        let count = db.len();
        self.current.store(Arc::new(db));
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(users: &[(&str, &str)]) -> Sources {
        Sources {
            inline: users
                .iter()
                .map(|(u, p)| (u.to_string(), Secret::new(p.as_bytes())))
                .collect(),
            ..Sources::default()
        }
    }

    #[test]
    fn inline_users_are_plain_passwords() {
        let db = UserDb::load(&inline(&[("alice", "pw")]), 7).unwrap();
        assert_eq!(db.generation, 7);
        assert!(db.get("alice").unwrap().hash.verify(b"pw"));
        assert!(db.get("bob").is_none());
    }

    #[test]
    fn the_decoy_has_the_most_common_slow_hash() {
        let dir = std::env::temp_dir().join(format!("ringgate-decoy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users");
        let b4 = "$2y$04$WFucmkyDv64zi5NAQbnAf.xUpbUQQ/UXvrOwN7oQP4npLBM5hj8Cy";
        let b5 = "$2y$05$WFucmkyDv64zi5NAQbnAf.xUpbUQQ/UXvrOwN7oQP4npLBM5hj8Cy";
        std::fs::write(
            &file,
            format!("a:{b5}\nb:{b4}\nc:{b4}\nd:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"),
        )
        .unwrap();
        let sources = Sources {
            htpasswd: vec![file],
            ..inline(&[("e", "plain")])
        };
        let db = UserDb::load(&sources, 1).unwrap();
        assert_eq!(db.decoy().unwrap().hash.cost_class(), Some(("bcrypt", 4)));
        assert!(
            UserDb::load(&inline(&[("e", "plain")]), 1)
                .unwrap()
                .decoy()
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_user_defined_twice_fails_naming_both_places() {
        let err = UserDb::load(&inline(&[("a", "1"), ("a", "2")]), 1).unwrap_err();
        assert!(
            matches!(err, LoadError::Duplicate { ref user, .. } if user == "a"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_file_is_named() {
        let sources = Sources {
            htpasswd: vec!["/nonexistent/users".into()],
            ..Sources::default()
        };
        let err = UserDb::load(&sources, 1).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read user file /nonexistent/users: "),
            "{err}"
        );
    }

    #[test]
    fn reload_swaps_and_bumps_the_generation_and_a_failure_keeps_the_old() {
        let dir = std::env::temp_dir().join(format!("ringgate-userdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users");
        std::fs::write(&file, "a:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
        let users = Users::open(Sources {
            htpasswd: vec![file.clone()],
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(users.snapshot().generation, 1);
        std::fs::write(&file, "b:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
        assert_eq!(users.reload(), Ok(1));
        let snap = users.snapshot();
        assert!(snap.get("a").is_none() && snap.get("b").is_some());
        assert!(snap.generation > 1);
        let id = snap.get("b").unwrap().id;
        users.reload().unwrap();
        assert_eq!(
            users.snapshot().get("b").unwrap().id,
            id,
            "same hash, same id"
        );
        std::fs::write(&file, "b:{SHA}0JQeaNqPOBUf+Gph/Fn3xc+fyqI=\n").unwrap();
        users.reload().unwrap();
        assert_ne!(
            users.snapshot().get("b").unwrap().id,
            id,
            "a new password, a new id"
        );
        std::fs::write(&file, "broken\n").unwrap();
        assert!(users.reload().is_err());
        assert!(users.snapshot().get("b").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
