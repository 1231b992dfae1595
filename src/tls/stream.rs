//! A TLS server connection over one of monoio's TCP sockets, driven by readiness: wait until the
//! socket is readable or writable, then move TLS records with non-blocking `read`/`send` through
//! rustls' `read_tls`/`write_tls`.
//!
//! Why not monoio's owned-buffer reads under rustls (as `monoio-rustls` does): a read cut by a
//! timeout takes its buffer with it, and the TLS state that buffer was feeding is then broken
//! (`monoio-rustls` 0.4 panics on the next read). Here no I/O is in flight between two awaits, only
//! a readiness wait, so dropping any future of this type at any await loses nothing: the bytes
//! already read sit in rustls, the bytes to send sit in rustls until the next flush.
//!
//! Every method takes `&self` (the state is in a `RefCell`, never borrowed across an await), so
//! the two directions of a tunnel can share one connection.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::observe::labels::TlsFailure;
use crate::sys;

/// One client's TLS connection: the socket and rustls' state.
pub struct TlsStream {
    tcp: TcpStream,
    tls: RefCell<ServerConnection>,
}

/// `read_tls`/`write_tls` on the non-blocking socket.
struct Fd<'a>(BorrowedFd<'a>);

impl io::Read for Fd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(self.0, buf)
    }
}

impl io::Write for Fd<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a TLS connection could not go on: the socket, or the peer's TLS.
enum Pull {
    WouldBlock,
    Io(io::Error),
    Tls(rustls::Error),
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl TlsStream {
    /// Runs the server side of the handshake on `tcp` (switched to non-blocking mode). The caller
    /// bounds it with `tls_handshake_timeout_secs`: dropping this future at any point is safe.
    pub async fn accept(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
    ) -> Result<TlsStream, TlsFailure> {
        sys::set_nonblocking(sys::fd_of(&tcp)).map_err(|_| TlsFailure::Io)?;
        let conn = ServerConnection::new(config).map_err(|e| classify(&e))?;
        let stream = TlsStream {
            tcp,
            tls: RefCell::new(conn),
        };
        while stream.tls.borrow().is_handshaking() {
            stream.flush().await.map_err(|_| TlsFailure::Closed)?;
            if !stream.tls.borrow().is_handshaking() {
                break;
            }
            match stream.pull() {
                Ok(0) => {
                    // EOF: rustls has it too; whatever the peer sent last was not a handshake.
                    return Err(TlsFailure::Closed);
                }
                Ok(_) => {}
                Err(Pull::WouldBlock) => {
                    stream
                        .tcp
                        .readable(false)
                        .await
                        .map_err(|_| TlsFailure::Io)?;
                }
                Err(Pull::Io(_)) => return Err(TlsFailure::Io),
                Err(Pull::Tls(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return Err(classify(&e));
                }
            }
        }
        // The server's last flight (TLS 1.3: its Finished and the session tickets).
        stream.flush().await.map_err(|_| TlsFailure::Closed)?;
        Ok(stream)
    }

    /// The socket under the TLS connection (for readiness waits, options and addresses).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The verified client certificate chain, leaf first, when the listener asked for one.
    pub fn peer_certificate(&self) -> Option<rustls::pki_types::CertificateDer<'static>> {
        self.tls
            .borrow()
            .peer_certificates()
            .and_then(|chain| chain.first())
            .cloned()
    }

    /// Reads what the socket has now into rustls and decrypts it, without waiting. `Ok(0)` is the
    /// socket's EOF. An alert rustls queued for a broken peer is sent on a best-effort basis.
    fn pull(&self) -> Result<usize, Pull> {
        let mut tls = self.tls.borrow_mut();
        let n = loop {
            match tls.read_tls(&mut Fd(sys::fd_of(&self.tcp))) {
                Ok(n) => break n,
                Err(e) if would_block(&e) => return Err(Pull::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Pull::Io(e)),
            }
        };
        if let Err(e) = tls.process_new_packets() {
            drop(tls);
            let _ = self.flush_now();
            return Err(Pull::Tls(e));
        }
        Ok(n)
    }

    /// Sends what rustls has ready without waiting: `true` when nothing is left.
    fn flush_now(&self) -> io::Result<bool> {
        let mut tls = self.tls.borrow_mut();
        while tls.wants_write() {
            match tls.write_tls(&mut Fd(sys::fd_of(&self.tcp))) {
                Ok(_) => {}
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Sends everything rustls has ready, waiting for the socket as needed.
    pub async fn flush(&self) -> io::Result<()> {
        while !self.flush_now()? {
            self.tcp.writable(false).await?;
        }
        Ok(())
    }

    /// Waits until decrypted bytes (or the end of the client's stream) can be read.
    async fn fill(&self) -> io::Result<()> {
        loop {
            match self.pull() {
                Ok(_) => {
                    // Anything the read made rustls answer (a key update, an alert) goes out.
                    return self.flush().await;
                }
                Err(Pull::WouldBlock) => self.tcp.readable(false).await?,
                Err(Pull::Io(e)) => return Err(e),
                Err(Pull::Tls(e)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    /// Hands the decrypted bytes available now to `take`, which returns how many it used; waits
    /// for some first. `Ok(0)` (with `take` not called) is the end of the client's stream, with or
    /// without `close_notify` (most clients just close).
    pub async fn read_with(&self, mut take: impl FnMut(&[u8]) -> usize) -> io::Result<usize> {
        loop {
            {
                let mut tls = self.tls.borrow_mut();
                let mut reader = tls.reader();
                let used = match reader.fill_buf() {
                    Ok([]) => return Ok(0),
                    Ok(chunk) => take(chunk),
                    Err(e) if would_block(&e) => usize::MAX,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                };
                if used != usize::MAX {
                    reader.consume(used);
                    return Ok(used);
                }
            }
            self.fill().await?;
        }
    }

    /// Whether decrypted bytes are waiting in rustls (a read would not need the socket).
    pub fn has_plaintext(&self) -> bool {
        let mut tls = self.tls.borrow_mut();
        matches!(tls.reader().fill_buf(), Ok(chunk) if !chunk.is_empty())
    }

    /// Encrypts as much of `data` as rustls takes (its buffer is bounded) and sends it all before
    /// returning how much that was.
    pub async fn write_from(&self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.tls.borrow_mut().writer().write(data)?;
            self.flush().await?;
            if n > 0 {
                return Ok(n);
            }
        }
    }

    /// Hands `data` to rustls to encrypt into its send buffer without sending or waiting; how
    /// much it took (its buffer is bounded). The caller flushes.
    pub fn encrypt(&self, data: &[u8]) -> io::Result<usize> {
        self.tls.borrow_mut().writer().write(data)
    }

    /// Ends our direction: `close_notify`, then the socket's write side. The client may go on
    /// sending (a TLS 1.3 half-close).
    pub async fn close_write(&self) -> io::Result<()> {
        self.tls.borrow_mut().send_close_notify();
        self.flush().await?;
        sys::shutdown_write(sys::fd_of(&self.tcp))
    }
}

/// The counted reason of a failed handshake.
fn classify(e: &rustls::Error) -> TlsFailure {
    use rustls::Error as E;
    match e {
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => TlsFailure::NotTls,
        E::InappropriateHandshakeMessage { .. } | E::PeerMisbehaved(_) | E::DecryptError => {
            TlsFailure::Protocol
        }
        E::PeerIncompatible(_) | E::NoApplicationProtocol => TlsFailure::Incompatible,
        E::NoCertificatesPresented | E::InvalidCertificate(_) => TlsFailure::ClientCertificate,
        E::AlertReceived(_) => TlsFailure::AlertReceived,
        _ => TlsFailure::Other,
    }
}

impl AsyncReadRent for TlsStream {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let res = self
            .read_with(|chunk| sys::copy_into(&mut buf, chunk))
            .await;
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let res = self
            .read_with(|chunk| sys::copy_into_iovecs(&mut buf, chunk))
            .await;
        (res, buf)
    }
}

impl AsyncWriteRent for TlsStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = self.write_from(sys::io_buf_bytes(&buf)).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = self.write_from(sys::first_iovec(&buf)).await;
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        TlsStream::flush(self).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.close_write().await
    }
}
