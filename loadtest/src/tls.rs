//! TLS to a proxy (`--tls NAME`, `--proxy-cacert FILE`): a rustls client over the blocking socket,
//! the handshake done before the first request, so a tunnel through a TLS listener costs its
//! handshake like a real client's.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A connection to a proxy: plain, or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// TLS to the proxies named with `--tls`: the roots to verify them by and the name to ask for.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl Tls {
    /// The client side for proxies whose certificates `ca` (PEM) issued, asked for as `name`.
    pub fn new(ca: &Path, name: &str) -> Result<Tls, String> {
        let mut roots = RootCertStore::empty();
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
        {
            roots
                .add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            config: Arc::new(config),
            server_name: ServerName::try_from(name.to_owned())
                .map_err(|e| format!("--tls-name {name}: {e}"))?,
        })
    }

    /// Runs the handshake on `tcp`.
    pub fn wrap(&self, tcp: TcpStream) -> Result<Stream, String> {
        let conn = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| format!("TLS: {e}"))?;
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(Stream::Tls(Box::new(s)))
    }
}

/// `tcp`, wrapped in TLS when `tls` is given.
pub fn maybe_wrap(tcp: TcpStream, tls: Option<&Tls>) -> Result<Stream, String> {
    match tls {
        Some(t) => t.wrap(tcp),
        None => Ok(Stream::Plain(tcp)),
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}
