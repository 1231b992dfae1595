//! Request-head parsing and CONNECT-target validation: the per-request CPU cost before any I/O.
//! `cargo bench --bench parse` prints ns per head.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate::http::head::{self, Limits};
use ringgate::http::target::parse_authority;
use std::hint::black_box;

const LIMITS: Limits = Limits {
    max_head_bytes: 16384,
    max_target_bytes: 8192,
    max_headers: 100,
};

fn bench(c: &mut Criterion) {
    let curl: &[u8] = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n";
    let browser: &[u8] = b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\nProxy-Authorization: Basic dXNlcjpwYXNzd29yZA==\r\n\r\n";
    // An 8 KiB head: a forwarded GET carrying 60 cookie-sized headers, near the common limits.
    let mut large =
        b"GET http://www.example.org/path?q=1 HTTP/1.1\r\nHost: www.example.org\r\n".to_vec();
    for i in 0..60 {
        large.extend_from_slice(format!("X-Header-{i:02}: {}\r\n", "v".repeat(118)).as_bytes());
    }
    large.extend_from_slice(b"\r\n");
    assert!((8000..8400).contains(&large.len()), "{}", large.len());
    let mut g = c.benchmark_group("head");
    for (name, input) in [
        ("curl_connect", curl),
        ("browser_connect", browser),
        ("get_8KiB", &large[..]),
    ] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| b.iter(|| head::parse(black_box(input), &LIMITS)));
    }
    g.finish();
    // What `forward` spends parsing a forwarded head a second time (httparse, for the header list
    // it re-states for the origin), beside the first parse of the same head above.
    let small: &[u8] = b"GET http://127.0.0.1:8080/small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nProxy-Authorization: Basic dXNlcjpwYXNzd29yZA==\r\nProxy-Connection: Keep-Alive\r\n\r\n";
    let mut g = c.benchmark_group("forward_second_parse");
    for (name, input) in [("get_small", small), ("get_8KiB", &large[..])] {
        g.bench_function(format!("first_{name}"), |b| {
            b.iter(|| head::parse(black_box(input), &LIMITS))
        });
        g.bench_function(format!("httparse_{name}"), |b| {
            b.iter(|| {
                let mut headers = [httparse::EMPTY_HEADER; 100];
                let mut req = httparse::Request::new(&mut headers);
                black_box(req.parse(black_box(input)).is_ok())
            })
        });
    }
    g.finish();
    c.bench_function("authority/name", |b| {
        b.iter(|| parse_authority(black_box(b"www.example.org:443")))
    });
    c.bench_function("authority/ipv6", |b| {
        b.iter(|| parse_authority(black_box(b"[2001:db8::1]:8443")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
