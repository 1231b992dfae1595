//! A client's stream: the TCP socket itself, or TLS over it (a `listen_tls` listener). Requests,
//! answers and bodies go through the owned-buffer I/O traits either way; a tunnel picks its relay
//! by the variant (splice for plain, a user-space copy through rustls for TLS).

use std::io;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

use crate::observe::labels::ListenerKind;
use crate::tls::TlsStream;

/// A client connection's stream, and the kind of listener that accepted it (for the logs).
pub struct ClientStream {
    io: Io,
    kind: ListenerKind,
}

enum Io {
    Plain(TcpStream),
    /// Boxed: rustls' state is kilobytes; plain connections carry one pointer's room for it.
    Tls(Box<TlsStream>),
}

impl ClientStream {
    /// A plain connection from a `listen` or `listen_proxy_protocol` listener.
    pub fn plain(tcp: TcpStream, kind: ListenerKind) -> ClientStream {
        ClientStream {
            io: Io::Plain(tcp),
            kind,
        }
    }

    /// A TLS connection whose handshake is done.
    pub fn tls(tls: TlsStream) -> ClientStream {
        ClientStream {
            io: Io::Tls(Box::new(tls)),
            kind: ListenerKind::Tls,
        }
    }

    /// The socket, for a TLS handshake on a connection accepted as plain.
    ///
    /// # Panics
    /// On a TLS stream (a handshake is done once).
    pub fn into_tcp(self) -> TcpStream {
        match self.io {
            Io::Plain(s) => s,
            Io::Tls(_) => panic!("into_tcp on a TLS stream"),
        }
    }

    pub fn kind(&self) -> ListenerKind {
        self.kind
    }

    /// The socket under the stream.
    pub fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(s) => s,
            Io::Tls(s) => s.tcp(),
        }
    }

    /// The TLS connection, when this is one.
    pub fn as_tls(&self) -> Option<&TlsStream> {
        match &self.io {
            Io::Plain(_) => None,
            Io::Tls(s) => Some(s),
        }
    }
}

// TLS reads and writes are boxed: their state (rustls, readiness waits) would otherwise be part of
// every plain connection's task too (tests/footprint.rs), and a TLS record costs more than the
// allocation.
impl AsyncReadRent for ClientStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.io {
            Io::Plain(s) => s.read(buf).await,
            Io::Tls(s) => Box::pin(s.read(buf)).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.io {
            Io::Plain(s) => s.readv(buf).await,
            Io::Tls(s) => Box::pin(s.readv(buf)).await,
        }
    }
}

impl AsyncWriteRent for ClientStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.io {
            Io::Plain(s) => s.write(buf).await,
            Io::Tls(s) => Box::pin(s.write(buf)).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.io {
            Io::Plain(s) => s.writev(buf).await,
            Io::Tls(s) => Box::pin(s.writev(buf)).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.flush().await,
            Io::Tls(s) => AsyncWriteRent::flush(&mut **s).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.shutdown().await,
            Io::Tls(s) => AsyncWriteRent::shutdown(&mut **s).await,
        }
    }
}
