//! DKIM signing end to end: impulsed signs mail whose From domain has a key (`dkim` in
//! the config); the signature, as the sink received it, is verified by mail-auth
//! against the public key a loopback DNS server publishes at
//! `SELECTOR._domainkey.DOMAIN` — for an Ed25519 and an RSA key. Mail from other
//! domains goes unsigned; a key file that does not load stops the start.

mod common;

use std::time::Duration;

use common::delivery::LOG_WAIT;
use common::relay::relay_with;
use impulse_dns::{DnsServer, Zone};
use impulse_sink::SinkConfig;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use rcgen::{KeyPair, PublicKeyData};

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Submit one message from `from` through SMTP.
fn submit(addr: std::net::SocketAddr, from: &str, subject: &str) {
    use lettre::address::Envelope;
    let data = format!(
        "From: Alice <{from}>\r\nTo: <bob@example.com>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@impulse.test>\r\nDate: Tue, 1 Dec 2026 00:00:00 +0000\r\n\r\nSigned body line one.\r\nLine two.\r\n"
    );
    let envelope = Envelope::new(
        Some(from.parse().unwrap()),
        vec!["bob@example.com".parse().unwrap()],
    )
    .unwrap();
    let mut conn = common::relay::lettre_connect(addr, "client.test", Duration::from_secs(30));
    assert!(conn.send(&envelope, data.as_bytes()).unwrap().is_positive());
    let _ = conn.quit();
}

fn verify(dns: &DnsServer, raw: &[u8]) -> Vec<String> {
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.addr().port();
    let ns = NameServerConfig::new(dns.addr().ip(), true, vec![udp]);
    let mut opts = ResolverOpts::default();
    opts.attempts = 1;
    let auth = MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![ns]), opts)
        .expect("a resolver for the test DNS server");
    let msg = AuthenticatedMessage::parse(raw).expect("mail-auth parses the message");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(auth.verify_dkim(&msg))
        .iter()
        .map(|o| match o.result() {
            DkimResult::Pass => "pass".to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn ed25519_and_rsa_signatures_verify_against_the_published_keys() {
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let rsa = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let zone = Zone::new()
        .txt(
            "s1._domainkey.ed.test",
            &format!("v=DKIM1; k=ed25519; p={}", base64(ed.public_key_raw())),
        )
        .txt(
            "s2._domainkey.rsa.test",
            &format!(
                "v=DKIM1; k=rsa; p={}",
                base64(&rsa.subject_public_key_info())
            ),
        );
    let dns = DnsServer::start(zone).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (ed_pem, rsa_pem) = (keys.path().join("ed.pem"), keys.path().join("rsa.pem"));
    std::fs::write(&ed_pem, ed.serialize_pem()).unwrap();
    std::fs::write(&rsa_pem, rsa.serialize_pem()).unwrap();
    let extra = format!(
        "dkim: {{ \"ed.test\": (selector: \"s1\", key: \"{}\"), \"rsa.test\": (selector: \"s2\", key: \"{}\") }},",
        ed_pem.display(),
        rsa_pem.display()
    );
    let (_tmp, sink, d) = relay_with(SinkConfig::default(), &extra);

    submit(d.smtp, "alice@ed.test", "ed25519");
    submit(d.smtp, "alice@rsa.test", "rsa");
    submit(d.smtp, "alice@unsigned.test", "unsigned");
    assert!(sink.wait_for(3, LOG_WAIT), "{}", d.stderr());
    for m in sink.messages() {
        let text = String::from_utf8_lossy(&m.data).into_owned();
        let results = verify(&dns, &m.data);
        if text.contains("Subject: unsigned") {
            assert!(!text.contains("DKIM-Signature:"), "{text}");
            assert!(results.is_empty(), "{results:?}");
            continue;
        }
        let (alg, d_tag) = if text.contains("Subject: ed25519") {
            ("a=ed25519-sha256", "d=ed.test")
        } else {
            ("a=rsa-sha256", "d=rsa.test")
        };
        assert!(text.contains(alg) && text.contains(d_tag), "{text}");
        assert_eq!(results, vec!["pass"], "{text}");
    }
}

#[test]
fn a_key_that_does_not_load_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("broken.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cfg = common::config(
        dir.path(),
        None,
        &format!(
            "dkim: {{ \"d.test\": (selector: \"s\", key: \"{}\") }},",
            key.display()
        ),
    );
    std::fs::write(dir.path().join("impulse.ron"), cfg).unwrap();
    let out = std::process::Command::new(common::impulsed_bin())
        .arg("--config")
        .arg(dir.path().join("impulse.ron"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dkim key for d.test") && stderr.contains("broken.pem"),
        "{stderr}"
    );
}
