//! ringgate: an HTTP forward proxy and egress gateway for Linux. Thread-per-core monoio workers,
//! zero-copy head parsing, splice CONNECT tunnels. See ARCHITECTURE.md for the map.
#![deny(unsafe_code)]

pub mod acl;
pub mod admin;
pub mod auth;
pub mod check_host;
pub mod cli;
pub mod config;
pub mod conn;
pub mod creds;
pub mod fill;
pub mod forward;
pub mod http;
pub mod labels;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod proxy_protocol;
pub mod sd_notify;
pub mod server;
pub mod shard;
pub mod sys;
pub mod tunnel;
pub mod upstream;
pub mod worker;
