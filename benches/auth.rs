//! Proxy authentication costs: the credential-cache hit every authenticated request pays, the
//! check a cache miss pays for each stored hash format (what the verifier pool spends), Basic
//! decoding, and the 407 (rendered once; answering is a table lookup and one write, measured into a
//! loopback socket).
//! `cargo bench --bench auth` prints the time per operation.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ringgate::auth::basic;
use ringgate::auth::challenge::{self, Challenges, Offer, Persistence};
use ringgate::creds::Secret;
use ringgate::creds::credential_cache::{CredentialCache, Lookup};
use ringgate::creds::password_hash::PasswordHash;
use ringgate::creds::user_db::{Sources, UserDb};

/// Hashes of "secret" as the tools make them: htpasswd -B (cost 5 is its default; 10 is common),
/// htpasswd -m, openssl passwd -5 / -6 (5,000 rounds), htpasswd -s.
const HASHES: [(&str, &str); 7] = [
    (
        "bcrypt_cost5",
        "$2y$05$HQuolP.zMeiGtqqr3xZtye1hq1U1jKemsbrACOl2Wbhj0mPuctoam",
    ),
    (
        "bcrypt_cost10",
        "$2y$10$f0FaPTFYn9Mq4cb9we78uu0xZFyJikLWUWKoHUS.yGwajwSOhUGlW",
    ),
    (
        "sha512_crypt",
        "$6$6hvucboAT.qaGbya$p5ek8q2.YgLBZqYuqbdzAy9yKDOB9dB6klWJaePD5fQw2SdeLUSFiKDtDIPt9AsZ6RhUupohrHG.sAaF3jIKd.",
    ),
    (
        "sha256_crypt",
        "$5$BizMayVv9hrxwtsc$DfVj5/C3R1pbn55Sb7HI9plubPGPcb/GFoCCfoDoPd5",
    ),
    ("apr1", "$apr1$/mWoQzxk$70ufyUrVZC2FApqCKM0nG/"),
    ("sha1", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="),
    ("plain", "secret"),
];

fn bench(c: &mut Criterion) {
    let sources = Sources {
        inline: vec![("alice".into(), Secret::new(b"secret"))],
        ..Sources::default()
    };
    let db = UserDb::load(&sources, 1).unwrap();
    let token: &[u8] = b"Basic YWxpY2U6c2VjcmV0";
    let mut cache = CredentialCache::new(65536, Duration::from_secs(3600), Duration::from_secs(5));
    let now = Instant::now();
    // A realistic cache: many users' entries, the one looked up among them.
    for i in 0..10_000u32 {
        cache.insert_valid(
            format!("Basic {i:08}").as_bytes(),
            db.get("alice").unwrap().clone(),
            1,
            now,
        );
    }
    cache.insert_valid(token, Arc::clone(db.get("alice").unwrap()), 1, now);
    c.bench_function("cache/hit", |b| {
        b.iter(|| {
            let hit = cache.lookup(black_box(token), &db, now);
            debug_assert!(matches!(hit, Lookup::Valid { .. }));
            hit
        })
    });
    c.bench_function("cache/miss_lookup", |b| {
        b.iter(|| cache.lookup(black_box(b"Basic Ym9iOnNlY3JldA=="), &db, now))
    });
    c.bench_function("basic/decode", |b| {
        b.iter(|| basic::decode(black_box(b"YWxpY2U6c2VjcmV0")))
    });

    let mut g = c.benchmark_group("verify");
    g.sample_size(10);
    for (name, stored) in HASHES {
        let hash = PasswordHash::parse(stored, true).unwrap();
        assert!(hash.verify(b"secret"), "{name}");
        g.bench_function(name, |b| b.iter(|| hash.verify(black_box(b"wrong"))));
    }
    g.finish();

    c.bench_function("challenge/render", |b| {
        b.iter(|| {
            challenge::render_one(&Offer::basic(black_box("ringgate")), Persistence::KeepAlive)
        })
    });
    let challenges = Challenges::render(&Offer::basic("ringgate"));
    c.bench_function("challenge/answer", |b| {
        b.iter(|| challenges.fixed(black_box(Persistence::KeepAlive), black_box(false)))
    });
    // The answer's one write: the prerendered bytes into a loopback TCP socket whose far end a
    // thread drains (what a worker's send costs per 407, without the runtime around it).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    writer.set_nodelay(true).unwrap();
    let (mut reader, _) = listener.accept().unwrap();
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(1..) = reader.read(&mut buf) {}
    });
    let answer = challenges.fixed(Persistence::KeepAlive, false).unwrap();
    c.bench_function("challenge/write_loopback", |b| {
        b.iter(|| writer.write_all(black_box(answer)).unwrap())
    });
    drop(writer);
    drain.join().unwrap();

    digest(c);
}

/// What a Digest request costs on top of the gate: minting the 407's nonce, opening (HMAC check)
/// and advancing (the compare-and-swap of the process-wide count) the nonce of an answer, parsing
/// the parameter list, and recomputing the response from a stored HA1; and the count's CAS when
/// two threads on two cores advance the same worker's book (a client whose connections land on
/// both workers).
fn digest(c: &mut Criterion) {
    use ringgate::auth::digest::{self, Algorithm, Count, NonceState, Nonces};
    let nonces = Nonces::new(2, Duration::from_secs(300));
    let now = Instant::now();
    c.bench_function("digest/nonce_mint", |b| {
        b.iter(|| nonces.mint(0, black_box(now)))
    });
    let nonce = nonces.mint(0, now);
    c.bench_function("digest/nonce_open", |b| {
        b.iter(|| nonces.open(black_box(&nonce), now))
    });
    let NonceState::Live(ticket) = nonces.open(&nonce, now) else {
        panic!("a fresh nonce is live")
    };
    let mut nc = 0u32;
    c.bench_function("digest/nonce_advance", |b| {
        b.iter(|| {
            nc += 1;
            let fresh = nonces.advance(ticket, black_box(nc));
            debug_assert_eq!(fresh, Count::Fresh);
            fresh
        })
    });
    // Two threads advancing counts of nonces of one book (distinct nonces, neighbouring slots,
    // so the cache lines move between the cores as they would between two workers).
    let shared = Arc::new(Nonces::new(2, Duration::from_secs(300)));
    let tickets: Vec<_> = (0..2)
        .map(|_| match shared.open(&shared.mint(0, now), now) {
            NonceState::Live(t) => t,
            NonceState::Stale => panic!("a fresh nonce is live"),
        })
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (shared, stop, ticket) = (Arc::clone(&shared), Arc::clone(&stop), tickets[1]);
        std::thread::spawn(move || {
            let mut nc = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                nc = nc.wrapping_add(1).max(1);
                black_box(shared.advance(ticket, nc));
            }
        })
    };
    let mut nc = 0u32;
    c.bench_function("digest/nonce_advance_two_cores", |b| {
        b.iter(|| {
            nc += 1;
            shared.advance(tickets[0], black_box(nc))
        })
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    other.join().unwrap();

    let list = format!(
        "username=\"alice\", realm=\"ringgate\", nonce=\"{}\", uri=\"example.com:443\", \
         algorithm=SHA-256, response=\"{}\", qop=auth, nc=00000001, \
         cnonce=\"NTc3YTM1ZWU0ZmU3NzVlZQ\", opaque=\"b3BhcXVl\", userhash=false",
        String::from_utf8_lossy(&nonce),
        "0".repeat(64)
    );
    c.bench_function("digest/parse_verify_list", |b| {
        b.iter(|| digest::parse(black_box(list.as_bytes())).and_then(digest::verify))
    });
    let verified = digest::parse(list.as_bytes())
        .and_then(digest::verify)
        .unwrap();
    for (name, algorithm) in [("sha256", Algorithm::SHA256), ("md5", Algorithm::MD5)] {
        let ha1 = digest::ha1(algorithm.hash, "alice", "ringgate", b"secret");
        c.bench_function(&format!("digest/response_{name}"), |b| {
            b.iter(|| digest::expected_response(algorithm, black_box(&ha1), b"CONNECT", &verified))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
