//! HTTP/1.1 on the wire, without I/O: request-head parsing and limits, request-targets (CONNECT and
//! absolute-form), origin response heads and their framing, the chunked coding's strict scanner,
//! the head rewritten for an origin, and the proxy's own prerendered responses.

pub mod chunked;
pub mod head;
pub mod response;
pub mod response_head;
pub mod rewrite;
pub mod target;
