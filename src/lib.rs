//! ringgate: an HTTP forward proxy and egress gateway for Linux. Thread-per-core monoio workers,
//! zero-copy head parsing, splice CONNECT tunnels. See ARCHITECTURE.md for the map.
#![deny(unsafe_code)]

// The modules in the order a request meets them.
// cli: the flags (from the key table), check-host, man page and completions.
pub mod cli;
// config: the key table, the raw TOML layer, validation into `Config`, --print-config.
pub mod config;
// server: start-up, listeners, reload, the workers, each worker's shard, sd_notify.
pub mod server;
// conn: one client connection: PROXY header, read head, gate, decide, keep-alive loop, rejects.
pub mod conn;
// http: pure parsing and rendering of heads, targets, chunked bodies, prerendered replies.
pub mod http;
// auth: the per-worker gate and scheme dispatch (Basic), prerendered challenges.
pub mod auth;
// creds: user sources, the snapshot, credential cache, throttle, verifier pool.
pub mod creds;
// policy: client access, destination denials, rules; connection limits.
pub mod policy;
// tunnel: the CONNECT relay (splice and copy), pipe pool, idle clock.
pub mod tunnel;
// forward: plain forwarding of http:// requests: request, response, body, origin pool.
pub mod forward;
// upstream: resolving and dialling: DNS, resolv.conf, Happy Eyeballs, source addresses.
pub mod upstream;
// tls: TLS to the proxy (listen_tls): rustls over monoio's sockets, certificates and reload.
pub mod tls;
// observe: metrics and their labels, the access log, the admin endpoint.
pub mod observe;
// sys: the only unsafe: syscalls with SAFETY notes.
pub mod sys;
