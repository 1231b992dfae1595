//! Reaching upstream servers: name resolution that never blocks a worker (`dns.rs`, with a
//! per-worker cache; `resolv_conf.rs` reads resolv.conf and expands search lists)
//! and connecting with a deadline, addresses raced Happy Eyeballs style (`dial.rs`), from the
//! configured source addresses (`source.rs`). Both report failures as `error.rs`'s `DialError`.

pub mod dial;
pub mod dns;
pub mod error;
pub mod resolv_conf;
pub mod source;
