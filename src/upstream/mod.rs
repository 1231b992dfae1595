//! Reaching upstream servers: name resolution off the workers (`dns.rs`, with a per-worker cache)
//! and connecting with a deadline, addresses raced Happy Eyeballs style (`dial.rs`), from the
//! configured source addresses (`source.rs`).

pub mod dial;
pub mod dns;
pub mod source;
