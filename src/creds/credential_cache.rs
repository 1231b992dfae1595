//! A worker's cache of `Proxy-Authorization` values it has already judged, so the costly hash runs
//! once per credential, not once per request. Pure: time is a parameter, nothing here does I/O.
//!
//! The value itself is never kept: an entry holds an HMAC-SHA-256 of it under a key drawn at
//! random when the worker starts, so neither memory nor a core dump holds a password, and a
//! client cannot choose which entries its values land beside. The map is keyed by the MAC's first
//! eight bytes and the whole MAC is then compared in constant time, so neither the map's probing
//! nor the compare tells a client how close its guess came. Each entry remembers the
//! user-database generation it was judged under: after a reload a valid entry survives only if
//! its user still exists with the same hash (a removed user's credentials stop at once), and a
//! failed one is judged again (the user may have been added).
//!
//! Hot path: [`CredentialCache::lookup`] of a valid entry under the current generation allocates
//! nothing and takes no lock (see tests/alloc.rs).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::user_db::{UserDb, UserRecord};
use crate::observe::labels::ChallengeReason;

/// What the cache says about a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Judged right for `user`, whose database entry is `id` (see [`UserRecord::id`]).
    Valid {
        user: Rc<str>,
        id: u64,
    },
    /// Judged wrong, for this reason (a wrong password, a malformed or over-long value).
    Invalid(ChallengeReason),
    Miss,
}

/// What a valid entry vouches for.
struct Holder {
    user: Rc<str>,
    record: Arc<UserRecord>,
}

/// The keyed MAC of a header value: all an entry keeps of it.
type Tag = [u8; 32];

struct Entry<T> {
    tag: Tag,
    generation: u64,
    expires: Instant,
    holder: T,
}

type Map<T> = HashMap<u64, Entry<T>, nohash_hasher::BuildNoHashHasher<u64>>;

/// A bounded map of entries keyed by their tag's first eight bytes.
struct Shelf<T> {
    /// The key already is (part of) a keyed MAC: the map uses it as is rather than hashing it.
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

    /// The live entry for exactly `tag`; an expired one is dropped on the way.
    fn find(&mut self, key: u64, tag: &Tag, now: Instant) -> Option<&mut Entry<T>> {
        let entry = self.entries.get(&key)?;
        if !bool::from(entry.tag.ct_eq(tag)) {
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

/// Verdicts kept apart: wrong guesses live on their own, smaller shelf, so a flood of them can
/// never evict the credentials of users who logged in. Values of any length are cached (an entry
/// is the same size whatever the value's): the gate refuses over-long credentials before they get
/// here (`max_password_bytes`).
pub struct CredentialCache {
    valid: Shelf<Holder>,
    /// Each with the reason it was refused for.
    invalid: Shelf<ChallengeReason>,
    /// Keyed once; each tag starts from a copy of this state.
    mac: Hmac<Sha256>,
    ttl: Duration,
    failure_ttl: Duration,
}

/// A fresh 32-byte key from the kernel's random source.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    // The kernel's getrandom(2) does not fail once the pool is initialised, which it is long
    // before a proxy starts; there is no safe key to fall back on.
    getrandom::fill(&mut key).expect("the kernel's random source is available");
    key
}

impl CredentialCache {
    /// `capacity` valid entries, and a quarter as many failures.
    pub fn new(capacity: usize, ttl: Duration, failure_ttl: Duration) -> CredentialCache {
        CredentialCache {
            valid: Shelf::new(capacity),
            invalid: Shelf::new(capacity / 4),
            mac: Hmac::<Sha256>::new_from_slice(&random_key())
                .expect("HMAC takes a key of any length"),
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

    fn tag(&self, token: &[u8]) -> (u64, Tag) {
        let mut mac = self.mac.clone();
        mac.update(token);
        let tag: Tag = mac.finalize().into_bytes().into();
        let mut key = [0u8; 8];
        key.copy_from_slice(&tag[..8]);
        (u64::from_le_bytes(key), tag)
    }

    /// Looks up a header value as judged before under `db`'s generation (or a compatible one).
    pub fn lookup(&mut self, token: &[u8], db: &UserDb, now: Instant) -> Lookup {
        let (key, tag) = self.tag(token);
        if let Some(entry) = self.valid.find(key, &tag, now) {
            if entry.generation != db.generation {
                let known = &entry.holder.record;
                match db.get(&known.name).filter(|r| r.id == known.id) {
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
            return Lookup::Valid {
                user: entry.holder.user.clone(),
                id: entry.holder.record.id,
            };
        }
        if let Some(entry) = self.invalid.find(key, &tag, now) {
            if entry.generation != db.generation {
                // The user may have been added or changed: judge again.
                self.invalid.entries.remove(&key);
                return Lookup::Miss;
            }
            return Lookup::Invalid(entry.holder);
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
        let (key, tag) = self.tag(token);
        self.invalid.entries.remove(&key);
        let entry = Entry {
            tag,
            generation,
            expires: now + self.ttl,
            holder: Holder {
                user: user.clone(),
                record,
            },
        };
        self.valid.put(key, entry, now);
        user
    }

    /// Remembers `token` as wrong for a short while, so repeating it costs no hash and no wait.
    pub fn insert_invalid(&mut self, token: &[u8], generation: u64, now: Instant) {
        self.insert_refused(token, ChallengeReason::Wrong, generation, now);
    }

    /// Remembers `token` as refused for `reason` (a wrong password, or a value that cannot be
    /// right whatever the database holds: undecodable, too long) for a short while.
    pub fn insert_refused(
        &mut self,
        token: &[u8],
        reason: ChallengeReason,
        generation: u64,
        now: Instant,
    ) {
        if self.failure_ttl.is_zero() {
            return;
        }
        let (key, tag) = self.tag(token);
        self.valid.entries.remove(&key);
        let entry = Entry {
            tag,
            generation,
            expires: now + self.failure_ttl,
            holder: reason,
        };
        self.invalid.put(key, entry, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::Secret;
    use crate::creds::user_db::Sources;

    fn db_sources(users: &[(&str, &str)]) -> Sources {
        Sources {
            inline: users
                .iter()
                .map(|(u, p)| (u.to_string(), Secret::new(p.as_bytes())))
                .collect(),
            ..Sources::default()
        }
    }

    fn db(users: &[(&str, &str)], generation: u64) -> UserDb {
        UserDb::load(&db_sources(users), generation).unwrap()
    }

    fn valid(user: &str, d: &UserDb) -> Lookup {
        Lookup::Valid {
            user: user.into(),
            id: d.get(user).unwrap().id,
        }
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
        assert_eq!(c.lookup(b"Basic x", &d, now), valid("alice", &d));
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
        assert_eq!(
            c.lookup(b"Basic bad", &d, now),
            Lookup::Invalid(ChallengeReason::Wrong)
        );
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
        let after = UserDb::load_after(
            &db_sources(&[("alice", "pw"), ("carol", "new"), ("dave", "pw")]),
            2,
            Some(&before),
        )
        .unwrap();
        assert_eq!(c.lookup(b"alice", &after, now), valid("alice", &before));
        assert_eq!(c.lookup(b"bob", &after, now), Lookup::Miss);
        assert_eq!(c.lookup(b"carol", &after, now), Lookup::Miss);
        assert_eq!(c.lookup(b"dave", &after, now), Lookup::Miss);
    }

    #[test]
    fn a_flood_of_failures_never_evicts_valid_entries_and_long_values_are_kept_too() {
        let d = db(&[("alice", "pw")], 1);
        let mut c = cache();
        let now = Instant::now();
        c.insert_valid(b"good", d.get("alice").unwrap().clone(), 1, now);
        for i in 0..1000u32 {
            c.insert_invalid(&i.to_be_bytes(), 1, now);
        }
        assert_eq!(c.lookup(b"good", &d, now), valid("alice", &d));
        assert!(c.len() <= 4 + 1);
        let long = vec![b'x'; 4000];
        c.insert_invalid(&long, 1, now);
        assert_eq!(
            c.lookup(&long, &d, now),
            Lookup::Invalid(ChallengeReason::Wrong)
        );
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
        assert_eq!(c.lookup(&99u32.to_be_bytes(), &d, now), valid("alice", &d));
    }
}
