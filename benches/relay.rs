//! The splice relay's inner step, on loopback: 1 MiB moved socket → pipe → socket with `splice(2)`
//! (the bytes never enter user space), against the same 1 MiB read into a buffer and written out
//! (the copy relay's way). A feeder thread writes into the source socket, a drain thread reads the
//! destination. `cargo bench --bench relay` prints time per MiB and throughput. Also: one tick of
//! the idle clock that times out idle tunnels.

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate::sys;
use ringgate::tunnel::idle::IdleClock;

const MIB: usize = 1 << 20;

/// A connected loopback pair: (ours, theirs).
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

/// src (fed by a thread) → relay → dst (drained by a thread); returns the relay ends.
fn plumbing() -> (TcpStream, TcpStream) {
    let (mut feed, src) = pair();
    let (dst, mut drain) = pair();
    std::thread::spawn(move || {
        let block = vec![7u8; 256 * 1024];
        while feed.write_all(&block).is_ok() {}
    });
    std::thread::spawn(move || {
        let mut sink = vec![0u8; 256 * 1024];
        while matches!(drain.read(&mut sink), Ok(n) if n > 0) {}
    });
    for s in [&src, &dst] {
        sys::set_nonblocking(s.as_fd()).unwrap();
    }
    (src, dst)
}

fn would_block(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock
}

fn splice_mib(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &(std::os::fd::OwnedFd, std::os::fd::OwnedFd),
) {
    let mut moved = 0;
    while moved < MIB {
        let n = match sys::splice(src.as_fd(), pipe.1.as_fd(), MIB - moved) {
            Ok(n) => n,
            Err(e) if would_block(&e) => continue,
            Err(e) => panic!("splice in: {e}"),
        };
        let mut left = n;
        while left > 0 {
            match sys::splice(pipe.0.as_fd(), dst.as_fd(), left) {
                Ok(m) => left -= m,
                Err(e) if would_block(&e) => {}
                Err(e) => panic!("splice out: {e}"),
            }
        }
        moved += n;
    }
}

fn copy_mib(src: &TcpStream, dst: &TcpStream, buf: &mut [u8]) {
    let mut moved = 0;
    while moved < MIB {
        let want = buf.len().min(MIB - moved);
        let n = match sys::read(src.as_fd(), &mut buf[..want]) {
            Ok(n) => n,
            Err(e) if would_block(&e) => continue,
            Err(e) => panic!("read: {e}"),
        };
        let mut sent = 0;
        while sent < n {
            match sys::send(dst.as_fd(), &buf[sent..n]) {
                Ok(m) => sent += m,
                Err(e) if would_block(&e) => {}
                Err(e) => panic!("send: {e}"),
            }
        }
        moved += n;
    }
}

fn relay(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay_1MiB");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.measurement_time(Duration::from_secs(5));
    let (src, dst) = plumbing();
    let pipe = sys::pipe().unwrap();
    let _ = sys::set_pipe_size(pipe.1.as_fd(), 1 << 20);
    g.bench_function("splice_1MiB_pipe", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                splice_mib(&src, &dst, &pipe);
            }
            t.elapsed()
        })
    });
    let mut buf = vec![0u8; 64 * 1024];
    g.bench_function("copy_64KiB_buffer", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                copy_mib(&src, &dst, &mut buf);
            }
            t.elapsed()
        })
    });
    g.finish();
}

/// One tick of a worker's idle clock over 10,000 idle tunnels, none of them due: the scan every
/// tick pays.
fn idle_clock(c: &mut Criterion) {
    let clock = IdleClock::new(Duration::from_secs(300));
    let activity = Cell::new(Instant::now());
    let mut watches: Vec<_> = (0..10_000)
        .map(|_| Box::pin(clock.watch(&activity, Duration::from_secs(300))))
        .collect();
    let mut cx = Context::from_waker(Waker::noop());
    for w in &mut watches {
        assert!(w.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(clock.len(), 10_000);
    c.bench_function("idle_clock/scan_10000", |b| {
        b.iter(|| clock.fire(black_box(Instant::now())))
    });
}

criterion_group!(benches, relay, idle_clock);
criterion_main!(benches);
