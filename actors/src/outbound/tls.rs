//! Outbound TLS settings: the per-domain `tls` mode as the client session's policy, and
//! the rustls client configuration for it.
//!
//! `Opportunistic` and `Required` encrypt without checking the certificate (RFC 7435
//! opportunistic security; Postfix's `may` and `encrypt`): most MX certificates do not
//! name the MX host, and an unauthenticated encrypted session still beats plaintext.
//! The verifier for them therefore accepts any certificate but still checks the
//! handshake signatures, so the session is bound to the key the server presented.
//! `Verified` (Postfix's `verify`) checks the chain against the system roots plus
//! `delivery.tls_ca` and the name against the MX host (rustls-platform-verifier); a
//! certificate that does not verify fails the handshake, and the hop with it.

use std::sync::{Arc, OnceLock};

use impulse_config::TlsMode;
use impulse_smtp::client::TlsPolicy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The client session's STARTTLS policy for a domain's `tls` mode.
pub fn policy(mode: TlsMode) -> TlsPolicy {
    match mode {
        TlsMode::Disabled => TlsPolicy::Disabled,
        TlsMode::Opportunistic => TlsPolicy::Opportunistic,
        TlsMode::Required | TlsMode::Verified => TlsPolicy::Required,
    }
}

/// The client configurations, built once per configuration (at start): `tls_ca` is read
/// then, and a file that does not load stops the start.
pub struct TlsClients {
    encrypt_only: Arc<rustls::ClientConfig>,
    verified: Arc<rustls::ClientConfig>,
}

impl TlsClients {
    pub fn load(tls_ca: Option<&std::path::Path>) -> Result<TlsClients, String> {
        let mut extra = Vec::new();
        if let Some(path) = tls_ca {
            use rustls::pki_types::pem::PemObject;
            let what = format!("delivery.tls_ca {}", path.display());
            let pem = std::fs::read(path).map_err(|e| format!("{what}: {e}"))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                extra.push(cert.map_err(|e| format!("{what}: {e}"))?);
            }
            if extra.is_empty() {
                return Err(format!("{what}: no certificate in the file"));
            }
        }
        let provider = provider();
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                .map_err(|e| format!("cannot load the system's root certificates: {e}"))?;
        let verified = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(TlsClients {
            encrypt_only: encrypt_only(),
            verified: Arc::new(verified),
        })
    }

    /// The configuration for a domain's `tls` mode.
    pub fn for_mode(&self, mode: TlsMode) -> Arc<rustls::ClientConfig> {
        match mode {
            TlsMode::Verified => self.verified.clone(),
            _ => self.encrypt_only.clone(),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The configuration for unauthenticated encryption (built once).
pub fn encrypt_only() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = provider();
            let verifier = Arc::new(AnyCertificate(provider.clone()));
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the aws-lc-rs provider supports the default versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// The name sent in SNI for a hop: its host name, or its address when it has none.
pub fn server_name(host: &str, addr: std::net::IpAddr) -> ServerName<'static> {
    ServerName::try_from(host.trim_end_matches('.').to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(addr.into()))
}

/// Accepts any certificate; checks the handshake signatures with the provider.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_policies() {
        assert_eq!(policy(TlsMode::Disabled), TlsPolicy::Disabled);
        assert_eq!(policy(TlsMode::Opportunistic), TlsPolicy::Opportunistic);
        assert_eq!(policy(TlsMode::Required), TlsPolicy::Required);
    }

    #[test]
    fn sni_is_the_host_name_or_the_address() {
        let ip: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        assert!(matches!(
            server_name("mx1.example.test.", ip),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("127.0.0.2", ip),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("not a name!", ip),
            ServerName::IpAddress(_)
        ));
    }

    #[test]
    fn the_config_builds() {
        let c = encrypt_only();
        assert!(Arc::ptr_eq(&c, &encrypt_only()), "built once");
    }
}
