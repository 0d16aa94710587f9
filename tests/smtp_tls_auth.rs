//! Inbound STARTTLS, implicit TLS and AUTH against the real daemon over real sockets:
//! lettre (rustls) submits with STARTTLS and AUTH PLAIN; a byte-level rustls client
//! checks that plaintext pipelined behind STARTTLS is never executed, that AUTH needs
//! TLS and a right password, that `require_auth` holds MAIL back and that an
//! authenticated client may relay; implicit TLS greets inside TLS. The TLS version and
//! cipher reach the `Received:` header and the Reception record, the user the record.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use argon2::password_hash::PasswordHasher;
use base64::Engine;
use common::delivery::LOG_WAIT;
use common::log::of_type;
use common::tls::{TestCert, TlsClient};
use common::{config, wait_for_rcpt, Daemon};
use impulse_sink::{Sink, SinkConfig};

const PASSWORD: &str = "correct horse";

struct Setup {
    _tmp: tempfile::TempDir,
    sink: Sink,
    d: Daemon,
    cert: TestCert,
    /// STARTTLS listener (AUTH offered, not required), then implicit TLS with
    /// `require_auth`.
    starttls: SocketAddr,
    implicit: SocketAddr,
}

fn start() -> Setup {
    let tmp = common::tempdir("smtp-tls");
    let cert = TestCert::new(tmp.path());
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let hash = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    let (c, k) = (cert.cert.display(), cert.key.display());
    let extra = format!(
        r#"relay: (allow: ["10.0.0.0/8"]),
    auth: (users: {{ "alice": "{hash}" }}),"#
    );
    let text = config(tmp.path(), Some(sink.addr()), &extra).replace(
        r#"listeners: [(address: "127.0.0.1:0")]"#,
        &format!(
            r#"listeners: [(address: "127.0.0.1:0", tls_cert: "{c}", tls_key: "{k}"),
                   (address: "127.0.0.1:0", tls: Implicit, tls_cert: "{c}", tls_key: "{k}", require_auth: true)]"#
        ),
    );
    let d = Daemon::start(tmp.path(), &text);
    let addrs: Vec<SocketAddr> = d
        .stderr()
        .lines()
        .filter_map(|l| l.strip_prefix("listening on "))
        .map(|a| a.parse().unwrap())
        .collect();
    Setup {
        _tmp: tmp,
        sink,
        d,
        cert,
        starttls: addrs[0],
        implicit: addrs[1],
    }
}

fn plain_auth(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// Connect in plaintext, EHLO, STARTTLS, and hand back the encrypted client.
fn starttls(s: &Setup) -> TlsClient {
    let (mut c, tcp) = TlsClient::plain(s.starttls);
    assert_eq!(c.reply().0, 220);
    let (code, ehlo) = c.cmd("EHLO client.test");
    assert_eq!(code, 250);
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered in plaintext: {ehlo}");
    assert_eq!(c.cmd("STARTTLS").0, 220);
    s.cert.wrap(tcp)
}

#[test]
fn lettre_submits_over_starttls_with_auth() {
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{Message, SmtpTransport, Transport};
    let s = start();
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(s.starttls.port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new("alice".into(), PASSWORD.into()))
        .authentication(vec![Mechanism::Plain])
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let email = Message::builder()
        .from("alice@submit.test".parse().unwrap())
        .to("bob@example.com".parse().unwrap())
        .subject("over TLS")
        .body("sent with STARTTLS and AUTH\r\n".to_string())
        .unwrap();
    mailer
        .send(&email)
        .expect("lettre sends over STARTTLS with AUTH");

    let m = wait_for_rcpt(&s.sink, &s.d, "bob@example.com");
    let text = String::from_utf8_lossy(&m.data).to_string();
    assert!(text.contains("with ESMTPSA id"), "{text}");
    assert!(text.contains("(using TLSv1_3 with cipher TLS13_"), "{text}");
    let records = s.d.wait_for_log(LOG_WAIT, "the Reception", |r| {
        !of_type(r, "Reception", Some("bob@example.com")).is_empty()
    });
    let rec = of_type(&records, "Reception", Some("bob@example.com"))[0].clone();
    assert_eq!(rec["user"], "alice", "{rec:#}");
    assert_eq!(rec["tls"]["version"], "TLSv1_3", "{rec:#}");
    assert!(rec["tls"]["cipher"].as_str().unwrap().starts_with("TLS13_"));
}

#[test]
fn plaintext_pipelined_behind_starttls_is_discarded() {
    let s = start();
    let (mut c, tcp) = TlsClient::plain(s.starttls);
    assert_eq!(c.reply().0, 220);
    // CVE-2011-0411: commands injected in the clear right behind STARTTLS.
    c.send(b"EHLO client.test\r\nSTARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@example.com>\r\n");
    assert_eq!(c.reply().0, 250);
    let (code, text) = c.reply();
    assert_eq!((code, text.as_str()), (220, "220 2.0.0 Ready to start TLS"));
    let mut t = s.cert.wrap(tcp);
    // The session started over: the injected MAIL was never read, EHLO is needed again.
    let (code, text) = t.cmd("MAIL FROM:<a@b.test>");
    assert_eq!(
        (code, text.as_str()),
        (503, "503 5.5.1 Send EHLO or HELO first")
    );
    let (code, ehlo) = t.cmd("EHLO client.test");
    assert_eq!(code, 250);
    assert!(
        !ehlo.contains("STARTTLS"),
        "offered again inside TLS: {ehlo}"
    );
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN"), "{ehlo}");
    assert_eq!(t.cmd("STARTTLS").0, 503);
    assert_eq!(t.cmd("QUIT").0, 221);
    std::thread::sleep(Duration::from_millis(300));
    assert!(of_type(&s.d.log_records(), "Reception", None).is_empty());
}

#[test]
fn auth_needs_tls_and_the_right_password_and_lets_the_client_relay() {
    let s = start();
    // In plaintext: 538, and no relaying for a client outside relay.allow.
    let (mut c, _) = TlsClient::plain(s.starttls);
    c.reply();
    c.cmd("EHLO client.test");
    let (code, text) = c.cmd(&format!("AUTH PLAIN {}", plain_auth("alice", PASSWORD)));
    assert_eq!(code, 538, "{text}");
    c.cmd("MAIL FROM:<a@b.test>");
    assert_eq!(c.cmd("RCPT TO:<x@example.com>").0, 550);

    let mut t = starttls(&s);
    t.cmd("EHLO client.test");
    let (code, text) = t.cmd(&format!("AUTH PLAIN {}", plain_auth("alice", "wrong")));
    assert_eq!(
        (code, text.as_str()),
        (535, "535 5.7.8 Authentication credentials invalid")
    );
    let (code, _) = t.cmd(&format!("AUTH PLAIN {}", plain_auth("mallory", PASSWORD)));
    assert_eq!(code, 535, "an unknown user fails like a wrong password");
    // LOGIN, step by step.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(t.cmd("AUTH LOGIN").1, "334 VXNlcm5hbWU6");
    assert_eq!(t.cmd(&b64("alice")).1, "334 UGFzc3dvcmQ6");
    assert_eq!(t.cmd(&b64(PASSWORD)).0, 235);
    assert_eq!(t.cmd("MAIL FROM:<alice@submit.test>").0, 250);
    assert_eq!(
        t.cmd("RCPT TO:<relayed@example.com>").0,
        250,
        "authenticated: may relay"
    );
    assert_eq!(t.cmd("DATA").0, 354);
    t.send(b"Subject: relayed\r\n\r\nbody\r\n.\r\n");
    assert_eq!(t.reply().0, 250);
    wait_for_rcpt(&s.sink, &s.d, "relayed@example.com");
}

#[test]
fn implicit_tls_greets_inside_tls_and_requires_auth() {
    let s = start();
    let tcp = std::net::TcpStream::connect(s.implicit).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut t = s.cert.wrap(tcp);
    let (code, banner) = t.reply();
    assert_eq!(code, 220, "{banner}");
    let (_, ehlo) = t.cmd("EHLO client.test");
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    let (code, text) = t.cmd("MAIL FROM:<a@b.test>");
    assert_eq!(
        (code, text.as_str()),
        (530, "530 5.7.0 Authentication required")
    );
    assert_eq!(
        t.cmd(&format!("AUTH PLAIN {}", plain_auth("alice", PASSWORD)))
            .0,
        235
    );
    assert_eq!(t.cmd("MAIL FROM:<alice@submit.test>").0, 250);
    // A plaintext client on the implicit port gets no greeting and is closed.
    let (mut p, _) = TlsClient::plain(s.implicit);
    p.send(b"EHLO plain.test\r\n");
    assert_eq!(p.reply().0, 0);
}
