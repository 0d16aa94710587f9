//! Outbound STARTTLS end to end: the real daemon delivering to a recording sink that
//! offers (or does not offer) STARTTLS with an rcgen certificate; rustls runs inside
//! impulsed's epoll I/O loop.
//!
//! - `Opportunistic` (the default) uses STARTTLS when offered: the sink records the
//!   message as received over TLS, and the Delivery record carries version and cipher.
//! - `Opportunistic` without STARTTLS delivers in plaintext.
//! - `Required` to a sink without STARTTLS defers (TransientFailure), sends nothing.
//! - `Required` with STARTTLS delivers encrypted; `Disabled` never asks.

mod common;

use common::delivery::{send, LOG_WAIT};
use common::log::{code, has, of_type, text};
use common::{config, Daemon};
use impulse_sink::{self_signed_tls, Sink, SinkConfig};
use serde_json::Value;

fn sink(tls: bool) -> Sink {
    Sink::start(SinkConfig {
        tls: tls.then(|| self_signed_tls(&["localhost"])),
        ..SinkConfig::default()
    })
    .unwrap()
}

fn daemon(dir: &std::path::Path, sink: &Sink, mode: Option<&str>) -> Daemon {
    let domains = match mode {
        Some(m) => format!("domains: {{ \"*\": (tls: {m}, retry_interval: \"1h\") }},"),
        None => String::new(),
    };
    Daemon::start(dir, &config(dir, Some(sink.addr()), &domains))
}

fn delivery<'a>(records: &'a [Value], rcpt: &str) -> &'a Value {
    of_type(records, "Delivery", Some(rcpt))[0]
}

#[test]
fn opportunistic_uses_starttls_when_offered() {
    let sink = sink(true);
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &sink, None);
    send(d.smtp, &["user@example.com"], "over TLS\r\n");
    let records = d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@example.com")
    });
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    let tls = got[0]
        .tls
        .as_deref()
        .expect("the sink received it over TLS");
    assert!(tls.contains("TLS"), "{tls}");
    let rec = delivery(&records, "user@example.com");
    assert_eq!(rec["tls"]["version"], "TLSv1_3", "{rec}");
    assert!(
        rec["tls"]["cipher"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{rec}"
    );
}

#[test]
fn opportunistic_without_starttls_is_plaintext() {
    let sink = sink(false);
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &sink, Some("Opportunistic"));
    send(d.smtp, &["user@example.com"], "in the clear\r\n");
    let records = d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@example.com")
    });
    assert_eq!(sink.messages()[0].tls, None);
    assert!(delivery(&records, "user@example.com").get("tls").is_none());
}

#[test]
fn required_defers_when_starttls_is_missing() {
    let sink = sink(false);
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &sink, Some("Required"));
    send(d.smtp, &["user@example.com"], "never in the clear\r\n");
    let records = d.wait_for_log(LOG_WAIT, "a TransientFailure", |r| {
        has(r, "TransientFailure", "user@example.com")
    });
    let tf = of_type(&records, "TransientFailure", Some("user@example.com"))[0];
    assert_eq!(code(tf) / 100, 4, "{tf}");
    assert!(text(tf).contains("TLS is required"), "{tf}");
    assert_eq!(sink.count(), 0, "nothing was sent without TLS");
}

#[test]
fn required_delivers_encrypted_and_disabled_never_asks() {
    let sink = sink(true);
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &sink, Some("Required"));
    send(d.smtp, &["user@example.com"], "encrypted\r\n");
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@example.com")
    });
    assert!(sink.messages()[0].tls.is_some());

    let plain = tempfile::tempdir().unwrap();
    let d2 = daemon(plain.path(), &sink, Some("Disabled"));
    send(d2.smtp, &["other@example.com"], "plain on purpose\r\n");
    d2.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "other@example.com")
    });
    let m = sink
        .messages()
        .into_iter()
        .find(|m| m.recipients == ["other@example.com"])
        .unwrap();
    assert_eq!(m.tls, None, "Disabled does not use STARTTLS");
}

/// A CA, and a sink certificate for `localhost` and 127.0.0.1 that it signed.
fn ca_signed() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Impulse test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
        .unwrap();
    (ca_cert.pem(), std::sync::Arc::new(config))
}

fn verified_daemon(dir: &std::path::Path, sink: &Sink, ca: &str) -> Daemon {
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    let extra = format!(
        "delivery: (tls_ca: \"{}\"),\n    domains: {{ \"*\": (tls: Verified, retry_interval: \"1h\") }},",
        ca_path.display()
    );
    Daemon::start(dir, &config(dir, Some(sink.addr()), &extra))
}

#[test]
fn verified_checks_the_certificate_against_tls_ca() {
    let (ca, server) = ca_signed();
    let good = Sink::start(SinkConfig {
        tls: Some(server),
        ..SinkConfig::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = verified_daemon(tmp.path(), &good, &ca);
    send(d.smtp, &["user@example.com"], "verified\r\n");
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@example.com")
    });
    assert!(good.messages()[0].tls.is_some());

    // A self-signed certificate the CA did not sign: no delivery, a deferral.
    let (other_ca, _) = ca_signed();
    let bad = sink(true);
    let tmp2 = tempfile::tempdir().unwrap();
    let d2 = verified_daemon(tmp2.path(), &bad, &other_ca);
    send(d2.smtp, &["user@example.com"], "must not go\r\n");
    let records = d2.wait_for_log(LOG_WAIT, "a TransientFailure", |r| {
        has(r, "TransientFailure", "user@example.com")
    });
    let tf = of_type(&records, "TransientFailure", Some("user@example.com"))[0];
    assert!(text(tf).contains("TLS"), "{tf}");
    assert_eq!(bad.count(), 0, "nothing sent over an unverified session");
}

/// A next hop whose STARTTLS is broken: it says 220 and then speaks garbage. The second
/// connection (plaintext) takes the message; returns its address and the number of
/// messages it accepted.
fn broken_tls_hop() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let _ = w.write_all(b"220 broken.test ESMTP\r\n");
                let mut line = String::new();
                let mut in_data = false;
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            count.fetch_add(1, Ordering::SeqCst);
                            let _ = w.write_all(b"250 2.0.0 ok\r\n");
                        }
                        line.clear();
                        continue;
                    }
                    let verb = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = match verb.split(' ').next().unwrap_or("") {
                        "EHLO" => b"250-broken.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                        "STARTTLS" => {
                            let _ =
                                w.write_all(b"220 2.0.0 go ahead\r\nthis is not TLS at all\r\n");
                            return;
                        }
                        "MAIL" | "RCPT" => b"250 ok\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go on\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"500 what\r\n",
                    };
                    let _ = w.write_all(reply);
                    line.clear();
                }
            });
        }
    });
    (addr, accepted)
}

#[test]
fn opportunistic_retries_in_plaintext_after_a_failed_handshake() {
    let (hop, accepted) = broken_tls_hop();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(hop), ""));
    send(d.smtp, &["user@example.com"], "plaintext after all\r\n");
    let records = d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@example.com")
    });
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    let rec = delivery(&records, "user@example.com");
    assert!(rec.get("tls").is_none(), "{rec}");
    assert_eq!(
        rec["attempts"], 1,
        "the plaintext retry is the same attempt: {rec}"
    );
    assert!(
        of_type(&records, "TransientFailure", None).is_empty(),
        "{records:#?}"
    );
}
