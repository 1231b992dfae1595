//! Proves the allocation invariants of the hot paths with a counting global allocator: the proxy's
//! own connection code (`conn::serve`, the function every worker runs per client) is driven on a
//! monoio runtime on a thread of this test, and only that thread's allocations are counted (the
//! latest such thread's: a worker of an earlier measurement no longer counts).
//!
//! - A warmed connection answering 10,000 requests without credentials with 407s allocates nothing.
//! - 10,000 cache hits of the credential gate allocate nothing.
//! - An authenticated CONNECT (a cache hit) allocates exactly as much as the same CONNECT with
//!   authentication off: the gate adds nothing on the way to the dial.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use ringgate::auth::{self, Decision, Gate};
use ringgate::config::Config;
use ringgate::conn::ClientStream;
use ringgate::http::head;
use ringgate::observe::labels::ListenerKind::Plain;
use ringgate::observe::metrics::WorkerMetrics;
use ringgate::server::shard::Shard;
use support::{echo_server, loopback_config};

/// Counts allocations made on threads that opted in; everything else goes straight to `System`.
struct Counting;

thread_local! {
    /// The epoch this thread was counted in (0: never).
    static COUNTED: Cell<u64> = const { Cell::new(0) };
}
/// The epoch being counted: the last thread to opt in is the only one counted, so a worker of an
/// earlier measurement (whose connections may still be closing) adds nothing to a later one.
static EPOCH: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed by counted threads, in all and by size class (the index is
/// the size rounded up to a power of two, as its exponent).
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BY_CLASS: [AtomicI64; 32] = [const { AtomicI64::new(0) }; 32];

/// The counter is process-wide: tests that read it take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn count_this_thread() {
    let epoch = EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
    COUNTED.with(|c| c.set(epoch));
}

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}

fn counted() -> bool {
    // `try_with`: during thread teardown the flag may be gone; such allocations are not ours.
    COUNTED
        .try_with(Cell::get)
        .is_ok_and(|e| e != 0 && e == EPOCH.load(Ordering::Relaxed))
}

fn note() {
    if counted() {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Records `size` bytes taken (`sign` 1) or given back (-1) by a counted thread.
fn live(size: usize, sign: i64) {
    if counted() {
        let size = size.max(1);
        LIVE_BYTES.fetch_add(sign * size as i64, Ordering::SeqCst);
        let class = size.next_power_of_two().trailing_zeros() as usize;
        LIVE_BY_CLASS[class.min(31)].fetch_add(sign, Ordering::SeqCst);
    }
}

fn live_bytes() -> (i64, [i64; 32]) {
    let classes = std::array::from_fn(|i| LIVE_BY_CLASS[i].load(Ordering::SeqCst));
    (LIVE_BYTES.load(Ordering::SeqCst), classes)
}

// SAFETY: every method forwards the caller's layout and pointer unchanged to `System`, which
// upholds the `GlobalAlloc` contract; counting touches only an atomic and a const thread-local
// without a destructor, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        live(layout.size(), 1);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        live(layout.size(), 1);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        live(layout.size(), -1);
        live(new_size, 1);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live(layout.size(), -1);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

#[derive(Clone, Copy, Debug)]
enum Driver {
    Uring,
    Epoll,
}

/// Runs `fut` on a fresh monoio runtime of `driver` on this thread.
fn block_on<F: Future>(driver: Driver, fut: F) -> F::Output {
    let pool = Box::new(monoio::blocking::DefaultThreadPool::new(2));
    match driver {
        Driver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .enable_timer()
            .attach_thread_pool(pool)
            .build()
            .unwrap()
            .block_on(fut),
        Driver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .attach_thread_pool(pool)
            .build()
            .unwrap()
            .block_on(fut),
    }
}

/// Starts a thread that serves clients with ringgate's own `conn::serve`, counting its
/// allocations. Returns the address to connect to.
fn serve_counted(driver: Driver, config: Arc<Config>) -> (SocketAddr, Arc<WorkerMetrics>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(ringgate::observe::metrics::Registry::new(1, "test"));
    let worker = Arc::clone(&metrics.workers[0]);
    std::thread::spawn(move || {
        let auth = auth::Shared::start(&config).unwrap();
        let policy = config.policy.build(auth.is_some(), &[addr]).unwrap();
        let policy = Arc::new(arc_swap::ArcSwap::from_pointee(policy));
        let limits = Arc::new(ringgate::policy::limits::ConnLimits::new(1000, 0, 0, 0, 0));
        let shared = ringgate::server::shard::Shared {
            auth,
            policy,
            conn_limits: limits,
            metrics,
            log: None,
            resolver_slots: ringgate::upstream::dns::SystemSlots::new(1),
            tls: None,
        };
        let shard = Rc::new(Shard::new(0, config, &shared));
        block_on(driver, async move {
            let listener = monoio::net::TcpListener::from_std(listener).unwrap();
            count_this_thread();
            while let Ok((stream, peer)) = listener.accept().await {
                monoio::spawn(ringgate::conn::serve(
                    ClientStream::plain(stream, Plain),
                    peer,
                    shard.clone(),
                ));
            }
        });
    });
    (addr, worker)
}

/// Waits until the counted worker has exactly `open` client connections and its heap has stopped
/// changing (two reads 20 ms apart agree), so what is counted next is only what comes next: a
/// connection's task frees its memory a moment after the client sees it closed.
fn settle(worker: &WorkerMetrics, open: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (allocations(), live_bytes().0);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = (allocations(), live_bytes().0);
        if worker.connections_active.get() == open && now == last {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not settle: {} connections open, {open} expected",
            worker.connections_active.get()
        );
        last = now;
    }
}

fn read_exactly(s: &mut TcpStream, buf: &mut [u8]) {
    s.read_exact(buf).unwrap();
}

#[test]
fn a_warmed_connection_answers_10000_challenges_without_allocating() {
    // Without credentials, with a stale password and with a malformed value (both known after
    // their first check).
    challenges_allocate_nothing(
        "",
        &[
            &b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"[..],
            b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\
              Proxy-Authorization: Basic YWxpY2U6d3Jvbmc=\r\n\r\n",
            b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\
              Proxy-Authorization: Basic bm9jb2xvbg==\r\n\r\n",
        ],
    );
}

/// The Digest 407 carries a fresh nonce each time, copied between prerendered pieces into the
/// connection's own buffer: still nothing allocated.
#[test]
fn a_warmed_connection_answers_10000_digest_challenges_without_allocating() {
    challenges_allocate_nothing(
        "auth_schemes = [\"digest\", \"basic\"]\n",
        &[
            &b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"[..],
            b"GET http://127.0.0.1:9/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\
              Proxy-Authorization: Basic YWxpY2U6d3Jvbmc=\r\n\r\n",
        ],
    );
}

fn challenges_allocate_nothing(extra: &str, requests: &[&[u8]]) {
    let _turn = take_turn();
    for driver in [Driver::Uring, Driver::Epoll] {
        // One connection for all of them: the bound on 407s per connection is lifted.
        let (proxy, _) = serve_counted(
            driver,
            loopback_config(&format!(
                "users = [\"alice:pw\"]\nmax_challenges_per_connection = 1000000\n\
                 failed_credential_ttl_secs = 3600\n{extra}"
            )),
        );
        for &request in requests {
            let mut s = TcpStream::connect(proxy).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            // The first answer tells us the length of every later one (a nonce has a fixed
            // length).
            s.write_all(request).unwrap();
            let mut first = Vec::new();
            let mut byte = [0u8; 1];
            while !first.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).unwrap();
                first.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&first).into_owned();
            let body_len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap();
            let mut body = vec![0u8; body_len];
            s.read_exact(&mut body).unwrap();
            first.extend_from_slice(&body);
            let first = &first[..];
            assert!(
                first.starts_with(b"HTTP/1.1 407 "),
                "{}",
                String::from_utf8_lossy(first)
            );
            let fresh = head.contains("nonce=\"");
            assert_eq!(fresh, !extra.is_empty(), "{head}");
            let mut answer = vec![0u8; first.len()];
            for _ in 0..100 {
                s.write_all(request).unwrap();
                read_exactly(&mut s, &mut answer);
            }
            let before = allocations();
            for _ in 0..10_000 {
                s.write_all(request).unwrap();
                read_exactly(&mut s, &mut answer);
                if fresh {
                    assert!(answer.starts_with(b"HTTP/1.1 407 ") && answer.ends_with(&body));
                    assert_ne!(answer, first, "a new nonce each time");
                } else {
                    assert_eq!(answer, first);
                }
            }
            let after = allocations();
            assert_eq!(
                after - before,
                0,
                "{driver:?}: allocations while answering 10,000 407s to {}",
                String::from_utf8_lossy(request)
            );
        }
    }
}

#[test]
fn ten_thousand_credential_cache_hits_allocate_nothing() {
    let _turn = take_turn();
    let config = loopback_config("users = [\"alice:pw\"]");
    let shared = auth::Shared::start(&config).unwrap().unwrap();
    let gate = Gate::new(shared, Default::default());
    let buf = format!(
        "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: {}\r\n\r\n",
        basic("alice", "pw")
    );
    let limits = head::Limits {
        max_head_bytes: 4096,
        max_target_bytes: 100,
        max_headers: 10,
    };
    let parsed = head::parse(buf.as_bytes(), &limits).unwrap().unwrap();
    let request = auth::Request {
        method: parsed.method,
        target: parsed.target.get(buf.as_bytes()),
    };
    let peer = "127.0.0.1".parse().unwrap();
    block_on(Driver::Epoll, async {
        let mut session = auth::ConnAuth::default();
        let field = parsed.proxy_authorization;
        // The miss: decode, check, cache.
        let d = gate
            .admit(&mut session, field, buf.as_bytes(), request, peer)
            .await;
        assert_eq!(d, Decision::Allow);
        count_this_thread();
        let before = allocations();
        for _ in 0..10_000 {
            let mut fresh = auth::ConnAuth::default();
            let d = gate
                .admit(&mut fresh, field, buf.as_bytes(), request, peer)
                .await;
            assert_eq!(d, Decision::Allow);
            assert_eq!(fresh.session.map(|s| s.user).as_deref(), Some("alice"));
        }
        assert_eq!(
            allocations() - before,
            0,
            "allocations in 10,000 cache hits"
        );
    });
}

/// Allocations per CONNECT, from accept to the end of a one-message tunnel.
fn allocations_per_connect(driver: Driver, config: Arc<Config>, header: &str, n: u64) -> f64 {
    let (proxy, worker) = serve_counted(driver, config);
    let echo = echo_server();
    let request = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{header}\r\n");
    let once = || drop(tunnel_through(proxy, &request));
    for _ in 0..200 {
        once();
    }
    // Let the last tunnel's task finish before counting.
    settle(&worker, 0);
    let before = allocations();
    for _ in 0..n {
        once();
    }
    settle(&worker, 0);
    (allocations() - before) as f64 / n as f64
}

#[test]
fn an_authenticated_connect_allocates_no_more_than_an_open_one() {
    let _turn = take_turn();
    for driver in [Driver::Uring, Driver::Epoll] {
        let n = 2_000;
        let open = allocations_per_connect(driver, loopback_config(""), "", n);
        let header = format!("Proxy-Authorization: {}\r\n", basic("alice", "pw"));
        let authed = allocations_per_connect(
            driver,
            loopback_config("users = [\"alice:pw\"]"),
            &header,
            n,
        );
        eprintln!(
            "{driver:?}: allocations per CONNECT (accept → tunnel → close): auth off {open:.3}, \
             auth on (cache hit) {authed:.3}"
        );
        // Equal up to scheduling noise (a slab growing once in 2,000 connections).
        assert!(
            authed <= open + 0.01,
            "{driver:?}: authentication added {:.3} allocations per CONNECT",
            authed - open
        );
    }
}

/// Opens `n` authenticated tunnels to `echo` through `proxy`, each proven with a ping, and keeps
/// them open.
fn open_tunnels(proxy: SocketAddr, echo: SocketAddr, n: usize, into: &mut Vec<TcpStream>) {
    let header = format!("Proxy-Authorization: {}\r\n", basic("alice", "pw"));
    let request = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{header}\r\n");
    for _ in 0..n {
        into.push(tunnel_through(proxy, &request));
    }
}

/// Sends the CONNECT `request` to `proxy`, checks the 200 and a ping through the tunnel.
fn tunnel_through(proxy: SocketAddr, request: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 39];
    read_exactly(&mut s, &mut head);
    assert_eq!(&head, b"HTTP/1.1 200 Connection established\r\n\r\n");
    ping(&mut s);
    s
}

fn ping(s: &mut TcpStream) {
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    read_exactly(s, &mut back);
    assert_eq!(&back, b"ping");
}

/// The heap an idle authenticated tunnel keeps in its worker (bytes asked of the allocator, so
/// without the allocator's own rounding): its task and whatever the runtime keeps for it.
/// `scripts/idle.sh` measures the whole process's RSS per tunnel; this is the part our code
/// decides, counted exactly, so a change that grows it shows here first.
#[test]
fn an_idle_tunnel_keeps_little_heap() {
    let _turn = take_turn();
    for driver in [Driver::Uring, Driver::Epoll] {
        let (proxy, worker) = serve_counted(driver, loopback_config("users = [\"alice:pw\"]"));
        let echo = echo_server();
        let mut tunnels = Vec::new();
        // Warm: the runtime's and the worker's tables grow to hold the first ones.
        open_tunnels(proxy, echo, 100, &mut tunnels);
        settle(&worker, 100);
        let (before, classes_before) = live_bytes();
        let n = 256;
        open_tunnels(proxy, echo, n, &mut tunnels);
        settle(&worker, 100 + n as u64);
        let (after, classes_after) = live_bytes();
        let per_tunnel = (after - before) as f64 / n as f64;
        let by_class: Vec<String> = (0..32)
            .filter(|&c| classes_after[c] != classes_before[c])
            .map(|c| {
                let per = (classes_after[c] - classes_before[c]) as f64 / n as f64;
                format!("≤{} B: {per:.2}", 1u64 << c)
            })
            .collect();
        eprintln!(
            "{driver:?}: heap per idle tunnel {per_tunnel:.0} bytes; allocations per tunnel by \
             size: {}",
            by_class.join(", ")
        );
        for s in &mut tunnels {
            ping(s);
        }
        // Closed, and their tasks gone, before the next driver's window opens.
        drop(tunnels);
        settle(&worker, 0);
        assert!(
            per_tunnel <= 3_072.0,
            "{driver:?}: an idle tunnel keeps {per_tunnel:.0} bytes of heap"
        );
    }
}

/// A keep-alive origin: reads each request's head and its `Content-Length` body, answers `ok`.
fn upload_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if r.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err()
                        || w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends one 256 KiB upload on `s` through the proxy and reads the answer.
fn upload(s: &mut TcpStream, origin: SocketAddr) {
    let body = vec![b'u'; 256 * 1024];
    let head = format!(
        "POST http://{origin}/up HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let want = b"HTTP/1.1 200 OK\r\n";
    let mut got = vec![0u8; want.len()];
    read_exactly(s, &mut got);
    assert_eq!(got, want);
    // The rest of the head and the 2-byte body.
    let mut tail = Vec::new();
    let mut byte = [0u8; 1];
    while !tail.ends_with(b"\r\n\r\nok") {
        read_exactly(s, &mut byte);
        tail.push(byte[0]);
    }
}

/// A kept-alive client connection that carried a request body does not keep the body relay's
/// 64 KiB buffer while it waits for its next request (issue 13): the heap the worker keeps for
/// it is a head-sized buffer and its task.
#[test]
fn an_idle_kept_alive_connection_gives_back_its_body_buffer() {
    let _turn = take_turn();
    for driver in [Driver::Uring, Driver::Epoll] {
        let (proxy, worker) = serve_counted(driver, loopback_config(""));
        let origin = upload_origin();
        // Warm: the pool's tables and the runtime's grow for the first ones.
        let mut clients = Vec::new();
        for _ in 0..4 {
            let mut s = TcpStream::connect(proxy).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            upload(&mut s, origin);
            clients.push(s);
        }
        settle(&worker, 4);
        let (before, _) = live_bytes();
        let n = 32;
        for _ in 0..n {
            let mut s = TcpStream::connect(proxy).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            upload(&mut s, origin);
            clients.push(s);
        }
        // The answer reaches the client a moment before its task is back to waiting: poll.
        let limit = 8 * 1024;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let per_connection = loop {
            let per = (live_bytes().0 - before) as f64 / f64::from(n);
            if per <= f64::from(limit) || std::time::Instant::now() > deadline {
                break per;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        eprintln!(
            "{driver:?}: heap per idle kept-alive connection after an upload: {per_connection:.0} bytes"
        );
        drop(clients);
        settle(&worker, 0);
        assert!(
            per_connection <= f64::from(limit),
            "{driver:?}: an idle connection keeps {per_connection:.0} bytes after a body"
        );
    }
}
