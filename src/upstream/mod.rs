//! Reaching upstream servers: name resolution off the workers, connecting with a deadline.

pub mod dial;
