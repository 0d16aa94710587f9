//! What a listener's sessions run with, built from its config entry: the greeting name,
//! the TLS server configuration (certificate and key loaded from `tls_cert`/`tls_key`,
//! TLS 1.2 and 1.3), whether TLS is implicit, and whether AUTH is required. Built at
//! start and again by each reload (on the pool: the files are read), so certificates
//! reload with the configuration generation; a file that does not load stops the start
//! or refuses the reload.

use std::sync::Arc;

use impulse_config::{Config, ListenerCfg, ListenerTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One listener's session settings.
#[derive(Clone)]
pub struct ListenerSettings {
    pub hostname: String,
    /// The TLS server configuration, when the listener has a certificate.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS from the first byte (RFC 8314) rather than STARTTLS.
    pub implicit: bool,
    pub require_auth: bool,
}

impl std::fmt::Debug for ListenerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSettings")
            .field("hostname", &self.hostname)
            .field("tls", &self.tls.is_some())
            .field("implicit", &self.implicit)
            .field("require_auth", &self.require_auth)
            .finish()
    }
}

impl ListenerSettings {
    /// The settings of `l` under `cfg`, reading its certificate and key.
    pub fn load(cfg: &Config, l: &ListenerCfg) -> Result<ListenerSettings, String> {
        let tls = match (&l.tls_cert, &l.tls_key) {
            (Some(cert), Some(key)) => {
                Some(server_config(cert, key).map_err(|e| format!("listener {}: {e}", l.address))?)
            }
            _ => None,
        };
        Ok(ListenerSettings {
            hostname: cfg.greeting_name(l).to_string(),
            implicit: tls.is_some() && l.tls == ListenerTls::Implicit,
            tls,
            require_auth: l.require_auth,
        })
    }

    /// Every listener's settings, in config order.
    pub fn load_all(cfg: &Config) -> Result<Vec<ListenerSettings>, String> {
        cfg.listeners.iter().map(|l| Self::load(cfg, l)).collect()
    }
}

/// A rustls server configuration for the PEM certificate chain at `cert` and the PEM
/// private key (PKCS#8, PKCS#1 or SEC1) at `key`.
pub fn server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let what = |p: &std::path::Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls_cert {}: {e}", what(cert)))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert {}: {e}", what(cert)))?;
    if chain.is_empty() {
        return Err(format!(
            "tls_cert {}: no certificate in the file",
            what(cert)
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", what(key)))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls_cert and tls_key do not make a certificate: {e}"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_certificate_and_refuses_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["mx.test".to_string()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        assert!(server_config(&cert, &key).is_ok());
        let e = server_config(&key, &key).err().unwrap();
        assert!(e.contains("no certificate"), "{e}");
        let e = server_config(&cert, &cert).err().unwrap();
        assert!(e.contains("tls_key"), "{e}");
        let missing = dir.path().join("nope.pem");
        assert!(server_config(&missing, &key)
            .err()
            .unwrap()
            .contains("nope.pem"));
    }
}
