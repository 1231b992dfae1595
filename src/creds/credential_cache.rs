//! A worker's cache of `Proxy-Authorization` values it has already judged, so the costly hash runs
//! once per credential, not once per request. Pure: time is a parameter, nothing here does I/O.
//!
//! Keyed by a keyed hash (SipHash with this process's random keys) of the exact header value; the
//! stored value is then compared in constant time, so neither the map's probing nor the compare
//! tells a client how close its guess came. Each entry remembers the user-database generation it
//! was judged under: after a reload a valid entry survives only if its user still exists with the
//! same hash (a removed user's credentials stop at once), and a failed one is judged again (the
//! user may have been added).
//!
//! Hot path: [`CredentialCache::lookup`] of a valid entry under the current generation allocates
//! nothing and takes no lock (see tests/alloc.rs).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::hash::RandomState;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::user_db::{UserDb, UserRecord};

/// What the cache says about a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Valid(Rc<str>),
    Invalid,
    Miss,
}

enum Judged {
    Valid {
        user: Rc<str>,
        record: Arc<UserRecord>,
    },
    Invalid,
}

struct Entry {
    token: Box<[u8]>,
    judged: Judged,
    generation: u64,
    expires: Instant,
}

pub struct CredentialCache {
    /// The key already is a keyed hash: the map uses it as is rather than hashing it again.
    entries: HashMap<u64, Entry, nohash_hasher::BuildNoHashHasher<u64>>,
    keys: RandomState,
    capacity: usize,
    ttl: Duration,
    failure_ttl: Duration,
}

impl CredentialCache {
    pub fn new(capacity: usize, ttl: Duration, failure_ttl: Duration) -> CredentialCache {
        CredentialCache {
            entries: HashMap::with_capacity_and_hasher(capacity.min(1024), Default::default()),
            keys: RandomState::new(),
            capacity: capacity.max(1),
            ttl,
            failure_ttl,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks up a header value as judged before under `db`'s generation (or a compatible one).
    pub fn lookup(&mut self, token: &[u8], db: &UserDb, now: Instant) -> Lookup {
        let key = self.keys.hash_one(token);
        let Some(entry) = self.entries.get_mut(&key) else {
            return Lookup::Miss;
        };
        if !bool::from(entry.token.as_ref().ct_eq(token)) {
            return Lookup::Miss;
        }
        if entry.expires <= now {
            self.entries.remove(&key);
            return Lookup::Miss;
        }
        if entry.generation != db.generation {
            let still = match &entry.judged {
                Judged::Valid { record, .. } => db
                    .get(&record.name)
                    .filter(|now_known| now_known.hash == record.hash)
                    .cloned(),
                Judged::Invalid => None,
            };
            match (still, &mut entry.judged) {
                (Some(current), Judged::Valid { record, .. }) => {
                    *record = current;
                    entry.generation = db.generation;
                }
                _ => {
                    self.entries.remove(&key);
                    return Lookup::Miss;
                }
            }
        }
        match &entry.judged {
            Judged::Valid { user, .. } => Lookup::Valid(user.clone()),
            Judged::Invalid => Lookup::Invalid,
        }
    }

    /// Remembers `token` as valid for `record`'s user; returns the user name to keep.
    pub fn insert_valid(
        &mut self,
        token: &[u8],
        record: Arc<UserRecord>,
        generation: u64,
        now: Instant,
    ) -> Rc<str> {
        let user: Rc<str> = Rc::from(&*record.name);
        let judged = Judged::Valid {
            user: user.clone(),
            record,
        };
        self.insert(token, judged, generation, now + self.ttl, now);
        user
    }

    /// Remembers `token` as wrong for a short while, so repeating it costs no hash.
    pub fn insert_invalid(&mut self, token: &[u8], generation: u64, now: Instant) {
        if self.failure_ttl.is_zero() {
            return;
        }
        let expires = now + self.failure_ttl;
        self.insert(token, Judged::Invalid, generation, expires, now);
    }

    fn insert(
        &mut self,
        token: &[u8],
        judged: Judged,
        generation: u64,
        expires: Instant,
        now: Instant,
    ) {
        let key = self.keys.hash_one(token);
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.capacity {
                // Still full of live entries: drop an arbitrary one (HashMap order is random).
                if let Some(&victim) = self.entries.keys().next() {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(
            key,
            Entry {
                token: token.into(),
                judged,
                generation,
                expires,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::Secret;
    use crate::creds::user_db::Sources;

    fn db(users: &[(&str, &str)], generation: u64) -> UserDb {
        let sources = Sources {
            inline: users
                .iter()
                .map(|(u, p)| (u.to_string(), Secret::new(p.as_bytes())))
                .collect(),
            ..Sources::default()
        };
        UserDb::load(&sources, generation).unwrap()
    }

    fn cache() -> CredentialCache {
        CredentialCache::new(4, Duration::from_secs(3600), Duration::from_secs(5))
    }

    #[test]
    fn valid_entries_hit_until_the_ttl() {
        let d = db(&[("alice", "pw")], 1);
        let mut c = cache();
        let now = Instant::now();
        assert_eq!(c.lookup(b"Basic x", &d, now), Lookup::Miss);
        c.insert_valid(b"Basic x", d.get("alice").unwrap().clone(), 1, now);
        assert_eq!(c.lookup(b"Basic x", &d, now), Lookup::Valid("alice".into()));
        assert_eq!(c.lookup(b"Basic y", &d, now), Lookup::Miss);
        assert_eq!(
            c.lookup(b"Basic x", &d, now + Duration::from_secs(3600)),
            Lookup::Miss
        );
        assert!(c.is_empty(), "expired entries are dropped when met");
    }

    #[test]
    fn failures_are_remembered_briefly() {
        let d = db(&[("alice", "pw")], 1);
        let mut c = cache();
        let now = Instant::now();
        c.insert_invalid(b"Basic bad", 1, now);
        assert_eq!(c.lookup(b"Basic bad", &d, now), Lookup::Invalid);
        assert_eq!(
            c.lookup(b"Basic bad", &d, now + Duration::from_secs(5)),
            Lookup::Miss
        );
    }

    #[test]
    fn reload_keeps_unchanged_users_and_drops_removed_or_changed_ones() {
        let now = Instant::now();
        let before = db(&[("alice", "pw"), ("bob", "pw"), ("carol", "pw")], 1);
        let mut c = cache();
        for u in ["alice", "bob", "carol"] {
            c.insert_valid(u.as_bytes(), before.get(u).unwrap().clone(), 1, now);
        }
        c.insert_invalid(b"dave", 1, now);
        // bob removed, carol's password changed, dave added.
        let after = db(&[("alice", "pw"), ("carol", "new"), ("dave", "pw")], 2);
        assert_eq!(
            c.lookup(b"alice", &after, now),
            Lookup::Valid("alice".into())
        );
        assert_eq!(c.lookup(b"bob", &after, now), Lookup::Miss);
        assert_eq!(c.lookup(b"carol", &after, now), Lookup::Miss);
        assert_eq!(c.lookup(b"dave", &after, now), Lookup::Miss);
    }

    #[test]
    fn capacity_is_a_bound() {
        let d = db(&[("alice", "pw")], 1);
        let mut c = cache();
        let now = Instant::now();
        for i in 0..100u32 {
            c.insert_valid(&i.to_be_bytes(), d.get("alice").unwrap().clone(), 1, now);
            assert!(c.len() <= 4);
        }
        assert_eq!(
            c.lookup(&99u32.to_be_bytes(), &d, now),
            Lookup::Valid("alice".into())
        );
    }
}
