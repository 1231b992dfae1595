//! Reading what a peer sends next into the spare capacity of a buffer, with a timeout: the one
//! read loop step shared by request heads, skipped bodies and origin response heads.

use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

/// What one read brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// This many bytes were appended.
    Read(usize),
    /// The peer closed (or the read failed).
    Closed,
    /// Nothing within the wait. The buffer went with the cancelled read and is now empty.
    TimedOut,
}

/// Appends the next bytes `stream` sends to `buf` (between its length and capacity, which must
/// differ), waiting at most `wait`.
pub async fn fill<S: AsyncReadRent>(stream: &mut S, buf: &mut Vec<u8>, wait: Duration) -> Filled {
    let (len, cap) = (buf.len(), buf.capacity());
    let read = stream.read(std::mem::take(buf).slice_mut(len..cap));
    match monoio::time::timeout(wait, read).await {
        Err(_) => Filled::TimedOut,
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            match res {
                Ok(0) | Err(_) => Filled::Closed,
                Ok(n) => Filled::Read(n),
            }
        }
    }
}
