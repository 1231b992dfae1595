//! HTTP/1.1 on the wire, without I/O: request-head parsing and limits, CONNECT targets, and the
//! proxy's own prerendered responses.

pub mod head;
pub mod response;
pub mod target;
