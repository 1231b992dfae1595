//! TLS to the proxy (`listen_tls`): the server configuration built from `tls_cert`, `tls_key` and
//! `tls_client_ca`, swapped whole on reload, and the adapter that runs rustls over monoio's
//! sockets ([`stream`]). TLS 1.2 and 1.3 only, ALPN `http/1.1`, rustls' `ring` provider.

pub mod identity;
pub mod stream;

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsConfig;
pub use stream::TlsStream;

/// The server configuration in force; a reload replaces it whole (open connections keep the one
/// they started with).
pub struct Certs {
    current: ArcSwap<ServerConfig>,
}

impl Certs {
    /// Loads the certificate, key and client CA; an error names the file and what is wrong.
    pub fn start(config: &TlsConfig) -> Result<Certs, String> {
        Ok(Certs {
            current: ArcSwap::new(server_config(config)?),
        })
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Loads the files again; a broken set is refused with a warning and the running one stays.
    pub fn reload(&self, config: &TlsConfig) {
        match server_config(config) {
            Ok(new) => {
                self.current.store(new);
                tracing::info!("TLS certificate reloaded");
            }
            Err(e) => tracing::warn!("TLS reload failed, the running certificate stays: {e}"),
        }
    }
}

/// The rustls server configuration for `config`.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let (Some(cert), Some(key)) = (&config.cert, &config.key) else {
        return Err("tls_cert and tls_key: listen_tls needs both".into());
    };
    let chain = certificates(cert, "tls_cert")?;
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("tls_key {}: no private key read: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &config.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path, "tls_client_ca")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls_client_ca {}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("tls_client_ca {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "tls_cert {} and tls_key {}: {e}",
            cert.display(),
            key_path.display()
        )
    })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// Every certificate of a PEM file, at least one.
fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{key} {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key} {}: no certificate in it", path.display()));
    }
    Ok(certs)
}
