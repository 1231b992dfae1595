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

/// What a valid entry vouches for.
struct Holder {
    user: Rc<str>,
    record: Arc<UserRecord>,
}

struct Entry<T> {
    token: Box<[u8]>,
    generation: u64,
    expires: Instant,
    holder: T,
}

type Map<T> = HashMap<u64, Entry<T>, nohash_hasher::BuildNoHashHasher<u64>>;

/// A bounded map of entries keyed by the token's keyed hash.
struct Shelf<T> {
    /// The key already is a keyed hash: the map uses it as is rather than hashing it again.
    entries: Map<T>,
    capacity: usize,
}

impl<T> Shelf<T> {
    fn new(capacity: usize) -> Shelf<T> {
        Shelf {
            entries: HashMap::with_capacity_and_hasher(capacity.min(1024), Default::default()),
            capacity: capacity.max(1),
        }
    }

    /// The live entry for exactly `token`; an expired one is dropped on the way.
    fn find(&mut self, key: u64, token: &[u8], now: Instant) -> Option<&mut Entry<T>> {
        let entry = self.entries.get(&key)?;
        if !bool::from(entry.token.as_ref().ct_eq(token)) {
            return None;
        }
        if entry.expires <= now {
            self.entries.remove(&key);
            return None;
        }
        self.entries.get_mut(&key)
    }

    fn put(&mut self, key: u64, entry: Entry<T>, now: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.capacity {
                // Still full of live entries: drop an arbitrary one (HashMap order is random).
                if let Some(&victim) = self.entries.keys().next() {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(key, entry);
    }
}

/// Header values longer than this are judged every time, never stored: Basic credentials are far
/// shorter, and storing 16 KiB values would let a client fill memory with wrong guesses.
pub const MAX_CACHED_TOKEN: usize = 1024;

/// Verdicts kept apart: wrong guesses live on their own, smaller shelf, so a flood of them can
/// never evict the credentials of users who logged in.
pub struct CredentialCache {
    valid: Shelf<Holder>,
    invalid: Shelf<()>,
    keys: RandomState,
    ttl: Duration,
    failure_ttl: Duration,
}

impl CredentialCache {
    /// `capacity` valid entries, and a quarter as many failures.
    pub fn new(capacity: usize, ttl: Duration, failure_ttl: Duration) -> CredentialCache {
        CredentialCache {
            valid: Shelf::new(capacity),
            invalid: Shelf::new(capacity / 4),
            keys: RandomState::new(),
            ttl,
            failure_ttl,
        }
    }

    pub fn len(&self) -> usize {
        self.valid.entries.len() + self.invalid.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks up a header value as judged before under `db`'s generation (or a compatible one).
    pub fn lookup(&mut self, token: &[u8], db: &UserDb, now: Instant) -> Lookup {
        let key = self.keys.hash_one(token);
        if let Some(entry) = self.valid.find(key, token, now) {
            if entry.generation != db.generation {
                let known = &entry.holder.record;
                match db.get(&known.name).filter(|r| r.hash == known.hash) {
                    Some(current) => {
                        entry.holder.record = current.clone();
                        entry.generation = db.generation;
                    }
                    None => {
                        // Removed, or the password changed: judge again.
                        self.valid.entries.remove(&key);
                        return Lookup::Miss;
                    }
                }
            }
            return Lookup::Valid(entry.holder.user.clone());
        }
        if let Some(entry) = self.invalid.find(key, token, now) {
            if entry.generation != db.generation {
                // The user may have been added or changed: judge again.
                self.invalid.entries.remove(&key);
                return Lookup::Miss;
            }
            return Lookup::Invalid;
        }
        Lookup::Miss
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
        if token.len() <= MAX_CACHED_TOKEN {
            let key = self.keys.hash_one(token);
            self.invalid.entries.remove(&key);
            let entry = Entry {
                token: token.into(),
                generation,
                expires: now + self.ttl,
                holder: Holder {
                    user: user.clone(),
                    record,
                },
            };
            self.valid.put(key, entry, now);
        }
        user
    }

    /// Remembers `token` as wrong for a short while, so repeating it costs no hash.
    pub fn insert_invalid(&mut self, token: &[u8], generation: u64, now: Instant) {
        if self.failure_ttl.is_zero() || token.len() > MAX_CACHED_TOKEN {
            return;
        }
        let key = self.keys.hash_one(token);
        self.valid.entries.remove(&key);
        let entry = Entry {
            token: token.into(),
            generation,
            expires: now + self.failure_ttl,
            holder: (),
        };
        self.invalid.put(key, entry, now);
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
    fn a_flood_of_failures_never_evicts_valid_entries_and_long_tokens_are_not_kept() {
        let d = db(&[("alice", "pw")], 1);
        let mut c = cache();
        let now = Instant::now();
        c.insert_valid(b"good", d.get("alice").unwrap().clone(), 1, now);
        for i in 0..1000u32 {
            c.insert_invalid(&i.to_be_bytes(), 1, now);
        }
        assert_eq!(c.lookup(b"good", &d, now), Lookup::Valid("alice".into()));
        assert!(c.len() <= 4 + 1);
        let long = vec![b'x'; MAX_CACHED_TOKEN + 1];
        c.insert_invalid(&long, 1, now);
        assert_eq!(c.lookup(&long, &d, now), Lookup::Miss);
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
