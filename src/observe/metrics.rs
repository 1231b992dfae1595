//! Counters, gauges and histograms, rendered in the Prometheus text format at scrape time.
//!
//! Each worker writes only its own [`WorkerMetrics`] (its own cache lines: no sharing, no locked
//! instruction; a relaxed load and store per event), and the admin thread sums all workers when
//! scraped. Histograms have fixed buckets, so an observation allocates nothing.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::http::head::Method;
use crate::observe::labels::{
    ChallengeReason, DenialKind, DialErrorKind, LimitKind, Scheme, TlsFailure,
};

/// A number only its worker writes.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        // One writer: a plain load and store, no read-modify-write on the bus.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn inc(&self) {
        self.add(1);
    }

    /// For gauges (counts that go down too).
    pub fn dec(&self) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(1),
            Ordering::Relaxed,
        );
    }

    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in microseconds (`+Inf` is implied).
const BUCKETS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    2_500_000, 10_000_000,
];

#[derive(Default)]
pub struct Histogram {
    buckets: [Counter; BUCKETS_US.len()],
    count: Counter,
    sum_us: Counter,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].inc();
        }
        self.count.inc();
        self.sum_us.add(us);
    }
}

/// Status codes counted per method (100–599; 0 for a request that got no response).
const STATUSES: usize = 600;

/// One worker's numbers; only that worker writes them. Aligned so that two workers' metrics never
/// share a cache line.
#[repr(align(128))]
pub struct WorkerMetrics {
    pub connections_accepted: Counter,
    pub connections_active: Counter,
    /// Per method, per status code (100–599; 0 for a request that got no response).
    requests: Box<[Counter]>,
    challenges: [Counter; ChallengeReason::ALL.len()],
    /// Per scheme (and a last row for values naming no offered scheme): successes, failures.
    auth_checks: [[Counter; 2]; Scheme::ALL.len() + 1],
    pub credential_cache_hits: Counter,
    pub credential_cache_misses: Counter,
    pub tunnels_active: Counter,
    pub tunnels_total: Counter,
    pub bytes_up: Counter,
    pub bytes_down: Counter,
    dial_errors: [Counter; DialErrorKind::ALL.len()],
    pub dns_cache_hits: Counter,
    pub dns_lookups: Counter,
    denials: [Counter; DenialKind::ALL.len()],
    limits: [Counter; LimitKind::ALL.len()],
    pub pipes_pooled: Counter,
    /// TLS handshakes with clients completed, and failed by reason.
    pub tls_handshakes: Counter,
    tls_failures: [Counter; TlsFailure::ALL.len()],
    pub tunnel_setup: Histogram,
    pub request_duration: Histogram,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics {
            connections_accepted: Counter::default(),
            connections_active: Counter::default(),
            requests: (0..Method::ALL.len() * STATUSES)
                .map(|_| Counter::default())
                .collect(),
            challenges: Default::default(),
            auth_checks: Default::default(),
            credential_cache_hits: Counter::default(),
            credential_cache_misses: Counter::default(),
            tunnels_active: Counter::default(),
            tunnels_total: Counter::default(),
            bytes_up: Counter::default(),
            bytes_down: Counter::default(),
            dial_errors: Default::default(),
            dns_cache_hits: Counter::default(),
            dns_lookups: Counter::default(),
            denials: Default::default(),
            limits: Default::default(),
            pipes_pooled: Counter::default(),
            tls_handshakes: Counter::default(),
            tls_failures: Default::default(),
            tunnel_setup: Histogram::default(),
            request_duration: Histogram::default(),
        }
    }
}

impl WorkerMetrics {
    /// Counts a request answered with `status`.
    pub fn request(&self, method: Method, status: u16) {
        let status = if (100..600).contains(&status) {
            usize::from(status)
        } else {
            0
        };
        self.requests[method as usize * STATUSES + status].inc();
    }

    /// Counts one credential check of `scheme` (`None`: a value naming no offered scheme).
    pub fn auth_check(&self, scheme: Option<Scheme>, ok: bool) {
        let row = scheme.map_or(Scheme::ALL.len(), |s| s as usize);
        self.auth_checks[row][usize::from(!ok)].inc();
    }

    /// Counts a 407. Hot path: an array index, no string compared.
    pub fn challenge(&self, reason: ChallengeReason) {
        self.challenges[reason as usize].inc();
    }

    pub fn tls_failure(&self, reason: TlsFailure) {
        self.tls_failures[reason as usize].inc();
    }

    pub fn dial_error(&self, kind: DialErrorKind) {
        self.dial_errors[kind as usize].inc();
    }

    pub fn denial(&self, kind: DenialKind) {
        self.denials[kind as usize].inc();
    }

    pub fn limit(&self, kind: LimitKind) {
        self.limits[kind as usize].inc();
    }
}

/// Process-wide: every worker's metrics, and what no single worker owns.
pub struct Registry {
    pub workers: Vec<Arc<WorkerMetrics>>,
    pub log_lines_dropped: AtomicU64,
    pub log_lines_written: AtomicU64,
    pub driver: &'static str,
    /// All workers listen (set once at start).
    pub ready: AtomicBool,
    /// SIGTERM/SIGINT received: listeners closed, draining.
    pub draining: AtomicBool,
}

impl Registry {
    pub fn new(workers: usize, driver: &'static str) -> Registry {
        Registry {
            workers: (0..workers)
                .map(|_| Arc::new(WorkerMetrics::default()))
                .collect(),
            log_lines_dropped: AtomicU64::new(0),
            log_lines_written: AtomicU64::new(0),
            driver,
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    fn sum(&self, f: impl Fn(&WorkerMetrics) -> u64) -> u64 {
        self.workers.iter().map(|w| f(w)).sum()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let mut w = Writer { out: &mut out };
        self.render_connections(&mut w);
        self.render_tls(&mut w);
        self.render_auth(&mut w);
        self.render_tunnels(&mut w);
        self.render_upstream(&mut w);
        self.render_refusals(&mut w);
        self.render_process(&mut w);
        self.render_latencies(&mut w);
        out
    }

    /// Client connections and the requests they carried.
    fn render_connections(&self, w: &mut Writer<'_>) {
        w.family(
            "connections_accepted_total",
            "counter",
            "Client connections accepted.",
        );
        w.value(
            "connections_accepted_total",
            "",
            self.sum(|m| m.connections_accepted.get()),
        );
        w.family(
            "connections_active",
            "gauge",
            "Client connections open now.",
        );
        w.value(
            "connections_active",
            "",
            self.sum(|m| m.connections_active.get()),
        );

        w.family(
            "requests_total",
            "counter",
            "Requests answered, by method and status (0: no response).",
        );
        for method in Method::ALL {
            let mi = method as usize;
            for status in 0..STATUSES {
                let n = self.sum(|m| m.requests[mi * STATUSES + status].get());
                if n > 0 {
                    w.value(
                        "requests_total",
                        &format!("method=\"{}\",status=\"{status}\"", method.name()),
                        n,
                    );
                }
            }
        }
    }

    /// TLS listeners: handshakes done and failed.
    fn render_tls(&self, w: &mut Writer<'_>) {
        w.family(
            "tls_handshakes_total",
            "counter",
            "TLS handshakes with clients completed.",
        );
        w.value(
            "tls_handshakes_total",
            "",
            self.sum(|m| m.tls_handshakes.get()),
        );
        w.family(
            "tls_handshake_failures_total",
            "counter",
            "TLS handshakes with clients that failed, by reason.",
        );
        for reason in TlsFailure::ALL {
            w.value(
                "tls_handshake_failures_total",
                &format!("reason=\"{}\"", reason.name()),
                self.sum(|m| m.tls_failures[reason as usize].get()),
            );
        }
    }

    /// Authentication: 407s, credential checks, the credential cache.
    fn render_auth(&self, w: &mut Writer<'_>) {
        w.family(
            "auth_challenges_total",
            "counter",
            "407 answers, by reason.",
        );
        for reason in ChallengeReason::ALL {
            w.value(
                "auth_challenges_total",
                &format!("reason=\"{}\"", reason.name()),
                self.sum(|m| m.challenges[reason as usize].get()),
            );
        }
        w.family(
            "auth_checks_total",
            "counter",
            "Credential checks, by scheme and result.",
        );
        for (row, scheme) in Scheme::ALL
            .iter()
            .map(|s| s.name())
            .chain(["other"])
            .enumerate()
        {
            for (col, result) in ["success", "failure"].into_iter().enumerate() {
                w.value(
                    "auth_checks_total",
                    &format!("scheme=\"{scheme}\",result=\"{result}\""),
                    self.sum(|m| m.auth_checks[row][col].get()),
                );
            }
        }
        w.family(
            "credential_cache_total",
            "counter",
            "Credential cache lookups, by result.",
        );
        w.value(
            "credential_cache_total",
            "result=\"hit\"",
            self.sum(|m| m.credential_cache_hits.get()),
        );
        w.value(
            "credential_cache_total",
            "result=\"miss\"",
            self.sum(|m| m.credential_cache_misses.get()),
        );
    }

    /// CONNECT tunnels and the bytes they relayed.
    fn render_tunnels(&self, w: &mut Writer<'_>) {
        w.family("tunnels_active", "gauge", "CONNECT tunnels open now.");
        w.value("tunnels_active", "", self.sum(|m| m.tunnels_active.get()));
        w.family("tunnels_total", "counter", "CONNECT tunnels opened.");
        w.value("tunnels_total", "", self.sum(|m| m.tunnels_total.get()));
        w.family(
            "tunnel_bytes_total",
            "counter",
            "Bytes relayed through tunnels, by direction.",
        );
        w.value(
            "tunnel_bytes_total",
            "direction=\"up\"",
            self.sum(|m| m.bytes_up.get()),
        );
        w.value(
            "tunnel_bytes_total",
            "direction=\"down\"",
            self.sum(|m| m.bytes_down.get()),
        );
    }

    /// Dialling and name resolution.
    fn render_upstream(&self, w: &mut Writer<'_>) {
        w.family(
            "upstream_connect_errors_total",
            "counter",
            "Failed dials, by kind.",
        );
        for kind in DialErrorKind::ALL {
            w.value(
                "upstream_connect_errors_total",
                &format!("kind=\"{}\"", kind.name()),
                self.sum(|m| m.dial_errors[kind as usize].get()),
            );
        }
        w.family(
            "dns_resolutions_total",
            "counter",
            "Name resolutions, by source.",
        );
        w.value(
            "dns_resolutions_total",
            "source=\"cache\"",
            self.sum(|m| m.dns_cache_hits.get()),
        );
        w.value(
            "dns_resolutions_total",
            "source=\"lookup\"",
            self.sum(|m| m.dns_lookups.get()),
        );
    }

    /// What the egress policy and the limits refused.
    fn render_refusals(&self, w: &mut Writer<'_>) {
        w.family(
            "policy_denials_total",
            "counter",
            "Requests denied by the egress policy, by layer.",
        );
        for kind in DenialKind::ALL {
            w.value(
                "policy_denials_total",
                &format!("kind=\"{}\"", kind.name()),
                self.sum(|m| m.denials[kind as usize].get()),
            );
        }
        w.family(
            "limit_refusals_total",
            "counter",
            "Connections or tunnels refused by a limit.",
        );
        for limit in LimitKind::ALL {
            w.value(
                "limit_refusals_total",
                &format!("limit=\"{}\"", limit.name()),
                self.sum(|m| m.limits[limit as usize].get()),
            );
        }
    }

    /// The process: access log lines, pooled pipes, workers, io driver.
    fn render_process(&self, w: &mut Writer<'_>) {
        w.family("log_lines_total", "counter", "Access log lines, by fate.");
        w.value(
            "log_lines_total",
            "fate=\"written\"",
            self.log_lines_written.load(Ordering::Relaxed),
        );
        w.value(
            "log_lines_total",
            "fate=\"dropped\"",
            self.log_lines_dropped.load(Ordering::Relaxed),
        );
        w.family(
            "pipes_pooled",
            "gauge",
            "Relay pipes kept in the workers' pools.",
        );
        w.value("pipes_pooled", "", self.sum(|m| m.pipes_pooled.get()));
        w.family("workers", "gauge", "Worker threads.");
        w.value("workers", "", self.workers.len() as u64);
        w.family(
            "io_driver_info",
            "gauge",
            "The io driver the workers run on.",
        );
        w.value("io_driver_info", &format!("driver=\"{}\"", self.driver), 1);
    }

    /// The latency histograms.
    fn render_latencies(&self, w: &mut Writer<'_>) {
        w.histogram(
            "tunnel_setup_seconds",
            "From a CONNECT's head to its 200.",
            &self.workers,
            |m| &m.tunnel_setup,
        );
        w.histogram(
            "request_duration_seconds",
            "Forwarded requests, from the head to the end of the response.",
            &self.workers,
            |m| &m.request_duration,
        );
    }
}

struct Writer<'a> {
    out: &'a mut String,
}

impl Writer<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.out,
            "# HELP ringgate_{name} {help}\n# TYPE ringgate_{name} {kind}"
        );
    }

    fn value(&mut self, name: &str, labels: &str, v: u64) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "ringgate_{name} {v}");
        } else {
            let _ = writeln!(self.out, "ringgate_{name}{{{labels}}} {v}");
        }
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        workers: &[Arc<WorkerMetrics>],
        pick: impl Fn(&WorkerMetrics) -> &Histogram,
    ) {
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += workers
                .iter()
                .map(|w| pick(w).buckets[i].get())
                .sum::<u64>();
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                self.out,
                "ringgate_{name}_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count: u64 = workers.iter().map(|w| pick(w).count.get()).sum();
        let sum_us: u64 = workers.iter().map(|w| pick(w).sum_us.get()).sum();
        let _ = writeln!(self.out, "ringgate_{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(self.out, "ringgate_{name}_sum {}", sum_us as f64 / 1e6);
        let _ = writeln!(self.out, "ringgate_{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_workers_and_renders_the_text_format() {
        let r = Registry::new(2, "io_uring");
        r.workers[0].connections_accepted.add(3);
        r.workers[1].connections_accepted.add(4);
        r.workers[0].request(Method::Get, 200);
        r.workers[1].request(Method::Get, 200);
        r.workers[1].request(Method::Connect, 407);
        r.workers[0].challenge(ChallengeReason::NoCredentials);
        r.workers[0].challenge(ChallengeReason::Other);
        r.workers[1]
            .tunnel_setup
            .observe(Duration::from_micros(300));
        r.workers[1].tunnel_setup.observe(Duration::from_secs(60));
        let text = r.render();
        for line in [
            "ringgate_connections_accepted_total 7",
            "ringgate_requests_total{method=\"GET\",status=\"200\"} 2",
            "ringgate_requests_total{method=\"CONNECT\",status=\"407\"} 1",
            "ringgate_auth_challenges_total{reason=\"no credentials\"} 1",
            "ringgate_auth_challenges_total{reason=\"other\"} 1",
            "ringgate_tunnel_setup_seconds_bucket{le=\"0.00025\"} 0",
            "ringgate_tunnel_setup_seconds_bucket{le=\"0.0005\"} 1",
            "ringgate_tunnel_setup_seconds_bucket{le=\"10\"} 1",
            "ringgate_tunnel_setup_seconds_bucket{le=\"+Inf\"} 2",
            "ringgate_tunnel_setup_seconds_count 2",
            "ringgate_io_driver_info{driver=\"io_uring\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every family is announced once, before its samples.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, helps);
    }
}
