//! `latency`: ping-pong through one established tunnel per target, against the same echo directly:
//! a 64-byte message out, the same 64 bytes back, one at a time; microsecond percentiles of the
//! round trip. Targets are measured interleaved round by round; every echoed byte is checked.
//!
//! Bounded: ROUNDS × PINGS round trips per target, each with a read timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::requests::{Target, credentials_header, open_tunnel, percentile};

const MESSAGE: usize = 64;

pub fn latency(
    proxies: &[Target],
    echo: SocketAddr,
    user: Option<&str>,
    pings: usize,
    rounds: usize,
) -> Result<(), String> {
    let credentials = credentials_header(user);
    let mut targets: Vec<Target> = vec![("direct".into(), None)];
    targets.extend(proxies.iter().cloned());
    // One connection per target, kept for all rounds.
    let mut conns = Vec::with_capacity(targets.len());
    for (name, proxy) in &targets {
        let mut s =
            TcpStream::connect(proxy.unwrap_or(echo)).map_err(|e| format!("{name}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        if proxy.is_some() {
            open_tunnel(&mut s, echo, &credentials).map_err(|e| format!("{name}: {e}"))?;
        }
        conns.push(s);
    }
    let mut samples: Vec<Vec<u32>> = vec![Vec::new(); targets.len()];
    let mut errors = vec![0u64; targets.len()];
    let out: Vec<u8> = (0..MESSAGE).map(|i| i as u8).collect();
    let mut back = [0u8; MESSAGE];
    for _ in 0..rounds {
        for (i, s) in conns.iter_mut().enumerate() {
            for _ in 0..pings {
                let t = Instant::now();
                let ok = s.write_all(&out).is_ok()
                    && s.read_exact(&mut back).is_ok()
                    && back[..] == out[..];
                if ok {
                    samples[i].push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    errors[i] += 1;
                }
            }
        }
    }
    println!(
        "latency: {rounds} rounds × {pings} round trips of {MESSAGE} bytes through one connection per target"
    );
    println!(
        "{:<12} {:>8} {:>8} {:>9} {:>8} {:>12} {:>7}",
        "target", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "p50 −direct", "errors"
    );
    let mut json = Vec::new();
    let mut direct_p50 = f64::NAN;
    for (i, (name, _)) in targets.iter().enumerate() {
        let s = &mut samples[i];
        s.sort_unstable();
        let (p50, p99, p999) = (
            percentile(s, 0.5),
            percentile(s, 0.99),
            percentile(s, 0.999),
        );
        let max = s.last().copied().unwrap_or(0);
        if i == 0 {
            direct_p50 = p50;
        }
        println!(
            "{name:<12} {p50:>8.0} {p99:>8.0} {p999:>9.0} {max:>8} {:>12.0} {:>7}",
            p50 - direct_p50,
            errors[i]
        );
        json.push(format!(
            "{{\"target\":\"{name}\",\"p50_us\":{p50},\"p99_us\":{p99},\"p999_us\":{p999},\"max_us\":{max},\"added_p50_us\":{},\"errors\":{}}}",
            p50 - direct_p50,
            errors[i]
        ));
    }
    println!(
        "{{\"scenario\":\"latency\",\"pings\":{pings},\"rounds\":{rounds},\"results\":[{}]}}",
        json.join(",")
    );
    if errors.iter().any(|&e| e > 0) {
        return Err("some round trips failed".into());
    }
    Ok(())
}
