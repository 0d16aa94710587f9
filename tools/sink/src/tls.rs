//! STARTTLS on the receiving side: the connection's byte stream (plain TCP, or rustls
//! over the same socket after STARTTLS), the blocking server handshake, and a
//! self-signed server configuration for tests and benchmarks.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// What a session reads commands from and writes replies to.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

/// Perform the server side of the TLS handshake on `stream`'s socket (blocking) and
/// return the TLS stream with a description of what was negotiated (see [`describe`]).
/// The caller hands over a plain stream with nothing buffered in front of it: whatever
/// the client sent before the handshake is gone and never read as a command.
pub(crate) fn accept(stream: Stream, config: Arc<ServerConfig>) -> io::Result<(Stream, String)> {
    let Stream::Plain(mut tcp) = stream else {
        return Err(io::Error::other("TLS is already active"));
    };
    let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    let negotiated = describe(&conn);
    Ok((
        Stream::Tls(Box::new(StreamOwned::new(conn, tcp))),
        negotiated,
    ))
}

/// The protocol version and cipher suite, e.g. `"TLSv1_3 TLS13_AES_256_GCM_SHA384"`.
fn describe(conn: &ServerConnection) -> String {
    let version = conn
        .protocol_version()
        .map_or_else(|| "TLS".to_string(), |v| format!("{v:?}"));
    match conn.negotiated_cipher_suite() {
        Some(suite) => format!("{version} {:?}", suite.suite()),
        None => version,
    }
}

/// A server configuration (aws-lc-rs provider, TLS 1.2 and 1.3) with a freshly generated
/// self-signed certificate for `names` (DNS names or IP addresses), for
/// [`crate::SinkConfig::tls`]. Clients must skip certificate verification.
///
/// # Panics
///
/// When rcgen cannot build the certificate, e.g. for a name that is neither a DNS name
/// nor an IP address.
pub fn self_signed_tls(names: &[&str]) -> Arc<ServerConfig> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let generated =
        rcgen::generate_simple_self_signed(names).expect("generating a self-signed certificate");
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![generated.cert.der().clone()],
            PrivateKeyDer::Pkcs8(key),
        )
        .expect("the generated key matches its certificate");
    Arc::new(config)
}

impl Stream {
    /// End the session cleanly: over TLS, send close_notify (best effort).
    pub(crate) fn finish(&mut self) {
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_config_offers_tls13_and_tls12() {
        let config = self_signed_tls(&["localhost", "127.0.0.1"]);
        let versions: Vec<_> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.version().version)
            .collect();
        assert!(versions.contains(&rustls::ProtocolVersion::TLSv1_3));
        assert!(versions.contains(&rustls::ProtocolVersion::TLSv1_2));
        assert!(ServerConnection::new(config).is_ok());
    }
}
