//! What the proxy tells its operator: counters and their typed labels, the access log, and the
//! admin endpoint that serves the counters. Nothing here decides anything about a request.

pub mod admin;
pub mod labels;
pub mod log;
pub mod metrics;
