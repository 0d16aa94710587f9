//! STARTTLS driven by a rustls client over real loopback sockets: advertisement, the
//! upgrade, the state reset after it, and what is recorded about TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use impulse_sink::{self_signed_tls, Sink, SinkConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// Test-only verifier: accepts any certificate, but still checks the handshake signatures
/// (so the server really holds the certificate's key).
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

fn client_config(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

trait Io: Read + Write {}
impl<T: Read + Write> Io for T {}

/// An SMTP client whose connection can be switched to TLS.
struct Client {
    tcp: TcpStream,
    io: BufReader<Box<dyn Io>>,
}

impl Client {
    fn connect(sink: &Sink) -> Client {
        let tcp = TcpStream::connect(sink.addr()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Client {
            io: BufReader::new(Box::new(tcp.try_clone().unwrap())),
            tcp,
        };
        assert!(c.reply().starts_with("220 "));
        c
    }

    /// Handshake over the same socket; anything still buffered is dropped.
    fn start_tls(&mut self, config: Arc<ClientConfig>) {
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = ClientConnection::new(config, name).unwrap();
        let mut tcp = self.tcp.try_clone().unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        self.io = BufReader::new(Box::new(StreamOwned::new(conn, tcp)));
    }

    fn send(&mut self, s: &str) {
        let w = self.io.get_mut();
        w.write_all(s.as_bytes()).unwrap();
        w.flush().unwrap();
    }

    /// One whole (possibly multi-line) reply, lines joined with '\n', CRLFs removed.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(
                self.io.read_line(&mut line).unwrap() > 0,
                "connection closed"
            );
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            all.push_str(line.trim_end());
            if line.as_bytes().get(3) == Some(&b'-') {
                all.push('\n');
            } else {
                return all;
            }
        }
    }

    fn cmd(&mut self, s: &str) -> String {
        self.send(&format!("{s}\r\n"));
        self.reply()
    }

    fn transaction(&mut self, from: &str, to: &str) {
        assert!(self.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250 "));
        assert!(self.cmd(&format!("RCPT TO:<{to}>")).starts_with("250 "));
        assert!(self.cmd("DATA").starts_with("354 "));
        assert!(self.cmd("Subject: t\r\n\r\nhello\r\n.").starts_with("250 "));
    }
}

fn tls_sink() -> Sink {
    Sink::start(SinkConfig {
        tls: Some(self_signed_tls(&["localhost"])),
        ..SinkConfig::default()
    })
    .unwrap()
}

fn advertises_starttls(ehlo: &str) -> bool {
    ehlo.lines().any(|l| &l[4..] == "STARTTLS")
}

#[test]
fn starttls_upgrades_resets_state_and_ignores_pipelined_plaintext() {
    let s = tls_sink();
    let mut c = Client::connect(&s);
    let ehlo = c.cmd("EHLO client.test");
    assert!(advertises_starttls(&ehlo), "{ehlo}");
    // A plaintext command injected behind STARTTLS in the same write must be discarded.
    c.send("STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS");
    c.start_tls(client_config(rustls::DEFAULT_VERSIONS));

    // Fresh state after the handshake: EHLO first, no STARTTLS on offer any more.
    assert!(c.cmd("MAIL FROM:<early@x>").starts_with("503 "));
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.starts_with("250-") && ehlo.contains("PIPELINING"),
        "{ehlo}"
    );
    assert!(!advertises_starttls(&ehlo), "{ehlo}");
    assert!(c.cmd("STARTTLS").starts_with("5"));
    c.transaction("good@src.test", "rcpt@dst.test");
    assert!(c.cmd("QUIT").starts_with("221 "));
    // The sink ends TLS with close_notify: a clean EOF, not a truncation error.
    let mut rest = Vec::new();
    c.io.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    assert!(s.wait_for(1, Duration::from_secs(5)));
    let m = s.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].sender, "good@src.test");
    assert_eq!(m[0].recipients, ["rcpt@dst.test"]);
    assert_eq!(m[0].data, b"Subject: t\r\n\r\nhello\r\n");
    let tls = m[0].tls.as_deref().unwrap();
    assert!(tls.starts_with("TLSv1_3 TLS13_"), "{tls}");
}

#[test]
fn tls12_is_negotiated_and_recorded() {
    let s = tls_sink();
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    assert!(c.cmd("STARTTLS").starts_with("220 "));
    c.start_tls(client_config(&[&rustls::version::TLS12]));
    c.cmd("EHLO client.test");
    c.transaction("a@b", "c@d");
    let m = s.messages();
    let tls = m[0].tls.as_deref().unwrap();
    assert!(tls.starts_with("TLSv1_2 TLS_ECDHE_"), "{tls}");
}

#[test]
fn pipelined_batch_and_large_body_over_tls() {
    let s = tls_sink();
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    c.cmd("STARTTLS");
    c.start_tls(client_config(rustls::DEFAULT_VERSIONS));
    c.cmd("EHLO client.test");
    c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n");
    let codes: Vec<String> = (0..4).map(|_| c.reply()[..3].to_string()).collect();
    assert_eq!(codes, ["250", "250", "250", "354"]);
    let line = "x".repeat(998);
    let body: String = (0..1000).map(|_| format!("{line}\r\n")).collect();
    c.send(&format!("{body}.\r\nNOOP\r\n"));
    assert!(c.reply().starts_with("250 2.0.0"));
    assert!(c.reply().starts_with("250 "));
    let m = &s.messages()[0];
    assert_eq!(m.data, body.as_bytes());
    assert_eq!(m.recipients, ["c@d", "e@f"]);
    assert!(m.tls.is_some());
}

#[test]
fn starttls_refused_with_parameters_or_inside_a_transaction() {
    let s = tls_sink();
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    assert!(c.cmd("STARTTLS now").starts_with("501 "));
    assert!(c.cmd("MAIL FROM:<a@b>").starts_with("250 "));
    assert!(c.cmd("STARTTLS").starts_with("503 "));
    // Still plaintext and still in the transaction.
    assert!(c.cmd("RCPT TO:<c@d>").starts_with("250 "));
    assert!(c.cmd("RSET").starts_with("250 "));
    assert!(c.cmd("STARTTLS").starts_with("220 "));
}

#[test]
fn failed_handshake_closes_the_connection() {
    let s = tls_sink();
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    assert!(c.cmd("STARTTLS").starts_with("220 "));
    c.send("EHLO not-tls.test\r\n");
    // The sink may send a TLS alert before closing; it never answers in SMTP.
    let mut rest = Vec::new();
    let _ = c.io.read_to_end(&mut rest);
    assert!(!rest.starts_with(b"250"), "{rest:?}");
    assert!(wait_until(|| s.connections_open() == 0));
    assert_eq!(s.count(), 0);
}

#[test]
fn without_tls_starttls_is_not_offered_and_mail_is_recorded_plain() {
    let s = Sink::start(SinkConfig::default()).unwrap();
    let mut c = Client::connect(&s);
    let ehlo = c.cmd("EHLO client.test");
    assert!(!advertises_starttls(&ehlo), "{ehlo}");
    assert_eq!(c.cmd("STARTTLS"), "502 5.5.1 STARTTLS not offered");
    c.transaction("a@b", "c@d");
    assert_eq!(s.messages()[0].tls, None);
}

#[test]
fn plaintext_mail_on_a_tls_sink_records_no_tls() {
    let s = tls_sink();
    let mut c = Client::connect(&s);
    c.cmd("EHLO client.test");
    c.transaction("a@b", "c@d");
    assert_eq!(s.messages()[0].tls, None);
}

fn wait_until(cond: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}
