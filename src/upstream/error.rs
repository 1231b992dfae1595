//! Why reaching an upstream failed: one error for resolution (`dns.rs`) and connecting
//! (`dial.rs`), so neither imports the other for it, and the counting of a failure by kind.

use std::io;

use crate::observe::labels::DialErrorKind;
use crate::observe::metrics::WorkerMetrics;
use crate::policy::Denial;

/// Why a dial failed; all are the upstream's (or the network's) fault.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve host: {0}")]
    Resolve(io::Error),
    #[error("host resolved to no addresses")]
    NoAddress,
    #[error("connection refused")]
    Refused,
    #[error("network or host unreachable")]
    Unreachable,
    #[error("timed out")]
    Timeout,
    #[error("name resolution timed out")]
    ResolveTimeout,
    /// Too many lookups in flight: this client's on this worker, or the system resolver's queue.
    #[error("too many name lookups in flight")]
    ResolverBusy,
    #[error("denied: {}", .0.reason())]
    Denied(Denial),
    #[error("connect failed: {0}")]
    Other(io::Error),
}

impl DialError {
    /// Its metrics label.
    pub fn kind(&self) -> DialErrorKind {
        match self {
            DialError::Resolve(_) => DialErrorKind::Resolve,
            DialError::NoAddress => DialErrorKind::NoAddress,
            DialError::Refused => DialErrorKind::Refused,
            DialError::Unreachable => DialErrorKind::Unreachable,
            DialError::Timeout => DialErrorKind::Timeout,
            DialError::ResolveTimeout => DialErrorKind::ResolveTimeout,
            DialError::Other(_) => DialErrorKind::Other,
            DialError::Denied(_) => DialErrorKind::Denied,
            DialError::ResolverBusy => DialErrorKind::ResolverBusy,
        }
    }

    /// Classifies a failed `connect(2)`.
    pub(super) fn from_connect(e: io::Error) -> DialError {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => DialError::Refused,
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL | libc::ENETDOWN) => {
                DialError::Unreachable
            }
            Some(libc::ETIMEDOUT) => DialError::Timeout,
            _ => DialError::Other(e),
        }
    }
}

/// Counts a failed dial by kind, and a policy denial by layer.
pub fn count_dial_error(metrics: &WorkerMetrics, e: &DialError) {
    metrics.dial_error(e.kind());
    if let DialError::Denied(d) = e {
        metrics.denial(d.kind());
    }
}
