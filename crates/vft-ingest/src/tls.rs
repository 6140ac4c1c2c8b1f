//! TLS for both MQTT sides, on rustls with the ring provider (chosen explicitly, so no
//! process-wide default provider is needed): the embedded listener's server configuration
//! (a PEM certificate chain and key) and the external-broker client's (a PEM CA file, or the
//! system's roots).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::IngestError;

pub use rustls::{ClientConfig, ServerConfig};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: impl Into<String>) -> IngestError {
    IngestError::Tls(what.into())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, IngestError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            tls_err(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(tls_err(format!("no PEM certificate in {}", path.display())));
    }
    Ok(certs)
}

/// The embedded listener's TLS: `cert` holds the server certificate first, then any
/// intermediates; `key` its private key (PKCS#8, PKCS#1 or SEC1 PEM). TLS 1.2 and 1.3.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, IngestError> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        tls_err(format!(
            "cannot read a private key from {}: {e}",
            key.display()
        ))
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(format!("the certificate and key do not fit together: {e}")))?;
    Ok(Arc::new(config))
}

/// The external-broker connection's TLS: the broker's certificate must chain to a CA in
/// `ca_file` (PEM), or to the system's roots when none is given, and name the broker's host.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, IngestError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| {
                    tls_err(format!(
                        "unusable CA certificate in {}: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // One unusable system certificate should not make the others unusable.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(tls_err(
                    "no system CA certificates found; set mqtt.ca_file to the broker's CA",
                ));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
