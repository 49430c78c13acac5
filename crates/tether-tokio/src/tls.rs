//! TLS: loading a certificate chain and key from PEM files into a rustls server configuration.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A rustls configuration serving `cert` (PEM chain, leaf first) with `key` (PEM private key), for
/// HTTP/1.1 (the ALPN protocol WebSocket over TLS uses).
pub fn load_server_config(cert: &Path, key: &Path) -> std::io::Result<Arc<rustls::ServerConfig>> {
    let invalid = |what: &str, path: &Path, error: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what} {}: {error}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid("cannot read certificates from", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("bad certificate in", cert, &e))?;
    if certs.is_empty() {
        return Err(invalid("no certificate in", cert, &"empty"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("cannot read private key from", key, &e))?;
    server_config(certs, key).map_err(|e| invalid("unusable certificate or key", cert, &e))
}

/// A rustls configuration from DER certificate chain and key (tests build these with rcgen).
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
