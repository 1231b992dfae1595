//! A worker's own state: everything here is touched by one thread only (`Rc`, `Cell`, `RefCell`),
//! so the hot path takes no lock and no atomic.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::auth::{self, Gate};
use crate::config::{Config, RelayKind};
use crate::forward::pool::Pool;
use crate::http::head::Limits;
use crate::observe::log::{AccessLog, LogShared};
use crate::observe::metrics::{Registry, WorkerMetrics};
use crate::policy::Policy;
use crate::policy::limits::ConnLimits;
use crate::tls::Certs;
use crate::tunnel::idle::IdleClock;
use crate::tunnel::pipe_pool::PipePool;
use crate::upstream::dns::{Resolver, SystemSlots};
use crate::upstream::source::Sources;

/// What all workers share (read-mostly, or written at accept/close only), handed to each shard.
/// The most plaintext one TLS record carries (RFC 8446 §5.1): a read of this much from an upstream
/// becomes one record to the client.
const TLS_RECORD: usize = 16 * 1024;

#[derive(Clone)]
pub struct Shared {
    pub auth: Option<Arc<auth::Shared>>,
    pub policy: Arc<ArcSwap<Policy>>,
    pub conn_limits: Arc<ConnLimits>,
    pub metrics: Arc<Registry>,
    pub log: Option<Arc<LogShared>>,
    /// The system resolver's places (`resolver_queue`), shared by all workers.
    pub resolver_slots: Arc<SystemSlots>,
    /// The TLS listeners' certificate, when there are any.
    pub tls: Option<Arc<Certs>>,
}

pub struct Shard {
    pub id: usize,
    /// This worker's counters (only this worker writes them).
    pub metrics: Arc<WorkerMetrics>,
    /// This worker's side of the access log, when there is one.
    pub log: Option<AccessLog>,
    pub config: Arc<Config>,
    pub limits: Limits,
    pub pipes: PipePool,
    /// The copy relay's one buffer for all of this worker's tunnels (empty when splicing).
    pub copy_buf: RefCell<Vec<u8>>,
    /// The buffer every TLS tunnel of this worker reads its upstream's bytes into (one TLS
    /// record's worth of plaintext); empty without TLS listeners.
    pub tls_buf: RefCell<Vec<u8>>,
    pub tls: Option<Arc<Certs>>,
    /// Idle timeouts of this worker's tunnels.
    pub idle: IdleClock,
    /// Proxy authentication; `None` when no users are configured.
    pub auth: Option<Gate>,
    /// Idle origin connections of forwarded requests.
    pub upstreams: Pool,
    /// The process's policy (swapped on reload) and this worker's own copy of it.
    policy_source: Arc<ArcSwap<Policy>>,
    policy: RefCell<(Arc<Policy>, Rc<Policy>)>,
    /// Name resolution with this worker's cache.
    pub dns: Resolver,
    /// Local addresses upstream connections are made from (`bind_source`).
    pub sources: Sources,
    /// Sources trusted to send a PROXY protocol header.
    pub proxy_protocol_from: Vec<IpNet>,
    /// Open client connections, in all and per address (shared by all workers).
    pub conn_limits: Arc<ConnLimits>,
    active: Cell<usize>,
}

impl Shard {
    pub fn new(id: usize, config: Arc<Config>, shared: &Shared) -> Shard {
        let metrics = Arc::clone(&shared.metrics.workers[id]);
        let policy = Arc::clone(&shared.policy);
        let current = policy.load_full();
        let mine = Rc::new(Policy::clone(&current));
        let copy_buf = match config.relay {
            RelayKind::Copy => vec![0; config.copy_buffer],
            RelayKind::Splice => Vec::new(),
        };
        Shard {
            id,
            limits: Limits {
                max_head_bytes: config.max_head_bytes,
                max_target_bytes: config.max_target_bytes,
                max_headers: config.max_headers,
            },
            pipes: PipePool::new(config.pipe_size, config.pipe_pool, Arc::clone(&metrics)),
            copy_buf: RefCell::new(copy_buf),
            tls_buf: RefCell::new(match shared.tls {
                Some(_) => vec![0; TLS_RECORD],
                None => Vec::new(),
            }),
            tls: shared.tls.clone(),
            idle: IdleClock::new(config.idle_timeout),
            auth: shared
                .auth
                .clone()
                .map(|a| Gate::for_worker(a, Arc::clone(&metrics), id)),
            upstreams: Pool::new(&config),
            policy_source: policy,
            conn_limits: Arc::clone(&shared.conn_limits),
            dns: Resolver::new(
                &config,
                Arc::clone(&metrics),
                Arc::clone(&shared.resolver_slots),
            ),
            sources: Sources::new(&config.bind_source),
            proxy_protocol_from: crate::policy::parse_nets(
                "proxy_protocol_from",
                &config.proxy_protocol_from,
            )
            .unwrap_or_default(),
            policy: RefCell::new((current, mine)),
            config,
            active: Cell::new(0),
            log: shared.log.clone().map(AccessLog::new),
            metrics,
        }
    }

    /// The policy in force. The worker keeps its own copy (no shared reference count touched per
    /// request) and takes a new one when a reload swapped the process's policy.
    pub fn policy(&self) -> Rc<Policy> {
        let current = self.policy_source.load();
        let mut mine = self.policy.borrow_mut();
        if !Arc::ptr_eq(&mine.0, &current) {
            *mine = (Arc::clone(&current), Rc::new(Policy::clone(&current)));
        }
        Rc::clone(&mine.1)
    }

    /// Client connections open on this worker now.
    pub fn active(&self) -> usize {
        self.active.get()
    }

    /// Counts a connection as open until the guard drops.
    pub fn track(self: &Rc<Self>) -> ActiveGuard {
        self.active.set(self.active.get() + 1);
        self.metrics.connections_accepted.inc();
        self.metrics.connections_active.inc();
        ActiveGuard(Rc::clone(self))
    }
}

pub struct ActiveGuard(Rc<Shard>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
        self.0.metrics.connections_active.dec();
    }
}
