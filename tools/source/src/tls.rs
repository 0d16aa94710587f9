//! The rustls client configuration for STARTTLS: aws-lc-rs, TLS 1.2 and 1.3, trusting
//! only the certificates given (a benchmark's self-signed one, or a private CA).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A client configuration whose roots are the PEM certificates in `pem`.
pub fn client_config(pem: &[u8]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("reading a certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("adding a root certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no certificate in the PEM input".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
