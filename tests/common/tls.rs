//! TLS for the inbound scenarios: an rcgen certificate for `localhost` written next to
//! the daemon's config, and a real rustls client that trusts it, to speak SMTP over
//! STARTTLS or implicit TLS byte by byte.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for `localhost`: PEM files in `dir`, and its DER.
pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    der: CertificateDer<'static>,
}

impl TestCert {
    pub fn new(dir: &Path) -> TestCert {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        TestCert {
            cert,
            key,
            der: c.cert.der().clone(),
        }
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// Turn `tcp` into TLS as the client (handshake done on the first I/O).
    pub fn wrap(&self, tcp: TcpStream) -> TlsClient {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(self.client_config(), name).unwrap();
        let stream = rustls::StreamOwned::new(conn, tcp);
        TlsClient {
            reader: BufReader::new(Box::new(stream)),
        }
    }
}

/// Anything SMTP can be spoken over.
pub trait Wire: Read + Write + Send {}
impl<T: Read + Write + Send> Wire for T {}

/// An SMTP client over plaintext or TLS.
pub struct TlsClient {
    reader: BufReader<Box<dyn Wire>>,
}

impl TlsClient {
    pub fn plain(addr: SocketAddr) -> (TlsClient, TcpStream) {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let kept = tcp.try_clone().unwrap();
        (
            TlsClient {
                reader: BufReader::new(Box::new(tcp)),
            },
            kept,
        )
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let w = self.reader.get_mut();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    /// One reply: code and lines joined by "\n" (code 0: closed).
    pub fn reply(&mut self) -> (u16, String) {
        super::client::read_reply(&mut self.reader)
    }

    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}
