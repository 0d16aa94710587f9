//! DKIM signing (RFC 6376) with mail-auth: one key per sending domain (`dkim` in the
//! config), chosen by the domain of the message's `From:` address.
//!
//! Keys are PEM files — RSA (PKCS#8 or PKCS#1, signed `rsa-sha256`) or Ed25519 (PKCS#8,
//! `ed25519-sha256`) — read and parsed once when the daemon starts; a key that does not
//! load stops the start with a clear error. Signatures are relaxed/relaxed over the
//! usual headers, computed on the pool (never on an event loop) over the message as
//! received — whose line endings the SMTP reader has already made CRLF — and prepended
//! as a `DKIM-Signature:` header before the message is spooled, so a message is signed
//! once however often it is retried.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use impulse_config::DkimCfg;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

/// Headers signed when present (From always).
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The signing keys of every configured domain.
#[derive(Default)]
pub struct DkimKeys {
    by_domain: HashMap<String, Arc<Signer>>,
}

impl std::fmt::Debug for DkimKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_domain.keys()).finish()
    }
}

impl DkimKeys {
    /// Load every key of `cfg`; the error names the domain and the file.
    pub fn load(cfg: &BTreeMap<String, DkimCfg>) -> Result<DkimKeys, String> {
        let mut by_domain = HashMap::new();
        for (domain, d) in cfg {
            let what = format!("dkim key for {domain} ({})", d.key.display());
            let pem = std::fs::read(&d.key).map_err(|e| format!("{what}: {e}"))?;
            let signer = signer(&pem, domain, &d.selector).map_err(|e| format!("{what}: {e}"))?;
            by_domain.insert(domain.to_ascii_lowercase(), Arc::new(signer));
        }
        Ok(DkimKeys { by_domain })
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// The key for `message`'s From domain, if one is configured.
    pub fn for_message(&self, message: &[u8]) -> Option<DkimKey> {
        if self.by_domain.is_empty() {
            return None;
        }
        let domain = from_domain(message)?;
        self.by_domain.get(&domain).cloned().map(DkimKey)
    }
}

/// One domain's key, cheap to hand to a pool job.
#[derive(Clone)]
pub struct DkimKey(Arc<Signer>);

impl DkimKey {
    /// The `DKIM-Signature:` header for `message` (CRLF-terminated), or why not.
    pub fn sign(&self, message: &[u8]) -> Result<String, String> {
        let sig = match &*self.0 {
            Signer::Rsa(s) => s.sign(message),
            Signer::Ed25519(s) => s.sign(message),
        }
        .map_err(|e| e.to_string())?;
        Ok(sig.to_header())
    }
}

fn signer(pem: &[u8], domain: &str, selector: &str) -> Result<Signer, String> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no private key: {e}"))?;
    if let PrivateKeyDer::Pkcs8(p8) = &der {
        if let Ok(key) = Ed25519Key::from_pkcs8_der(p8.secret_pkcs8_der()) {
            return Ok(Signer::Ed25519(configure(key, domain, selector)));
        }
    }
    let rsa = RsaKey::<Sha256>::from_key_der(der)
        .map_err(|e| format!("neither an Ed25519 nor an RSA key: {e}"))?;
    Ok(Signer::Rsa(configure(rsa, domain, selector)))
}

/// The signer for `key`: `domain`, `selector`, the [`SIGNED`] headers, relaxed/relaxed.
fn configure<T: SigningKey>(key: T, domain: &str, selector: &str) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// The lower-cased domain of the first address in the `From:` header.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let mut value: Option<String> = None;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        match &mut value {
            Some(v) if line[0] == b' ' || line[0] == b'\t' => {
                v.push_str(&String::from_utf8_lossy(line));
            }
            Some(_) => break,
            None => {
                if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"from:") {
                    value = Some(String::from_utf8_lossy(&line[5..]).into_owned());
                }
            }
        }
    }
    let value = value?;
    // The address is in angle brackets when there are any, else the bare value.
    let addr = match (value.find('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.trim(),
    };
    let domain = addr.rsplit_once('@')?.1.trim();
    let domain = domain.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_domain_table() {
        for (msg, want) in [
            (
                &b"From: <a@Example.NET>\r\n\r\nbody"[..],
                Some("example.net"),
            ),
            (
                b"Subject: x\r\nFrom: Alice <alice@d.test>\r\n\r\n",
                Some("d.test"),
            ),
            (b"FROM: bare@d.test\r\n\r\n", Some("d.test")),
            (
                b"From: \"Name\"\r\n <folded@f.test>\r\n\r\n",
                Some("f.test"),
            ),
            (b"Subject: no from\r\n\r\nFrom: <late@body.test>", None),
            (b"From: nobody\r\n\r\n", None),
        ] {
            assert_eq!(
                from_domain(msg).as_deref(),
                want,
                "{:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    fn ed25519_pem() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .serialize_pem()
    }

    #[test]
    fn signs_with_an_ed25519_key_for_the_from_domain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, ed25519_pem()).unwrap();
        let mut cfg = BTreeMap::new();
        cfg.insert(
            "d.test".to_string(),
            DkimCfg {
                selector: "s1".into(),
                key: path,
            },
        );
        let keys = DkimKeys::load(&cfg).unwrap();
        let msg = b"From: <a@d.test>\r\nSubject: hi\r\n\r\nbody\r\n";
        let header = keys.for_message(msg).unwrap().sign(msg).unwrap();
        assert!(header.starts_with("DKIM-Signature:"), "{header}");
        assert!(header.contains("a=ed25519-sha256"), "{header}");
        assert!(
            header.contains("d=d.test") && header.contains("s=s1"),
            "{header}"
        );
        assert!(header.contains("c=relaxed/relaxed"), "{header}");
        assert!(header.ends_with("\r\n"));
        assert!(keys.for_message(b"From: <a@other.test>\r\n\r\n").is_none());
    }

    #[test]
    fn a_bad_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, "not a key").unwrap();
        let mut cfg = BTreeMap::new();
        cfg.insert(
            "d.test".to_string(),
            DkimCfg {
                selector: "s1".into(),
                key: path.clone(),
            },
        );
        let e = DkimKeys::load(&cfg).unwrap_err();
        assert!(e.contains("d.test") && e.contains("bad.pem"), "{e}");
        cfg.get_mut("d.test").unwrap().key = dir.path().join("missing.pem");
        assert!(DkimKeys::load(&cfg).unwrap_err().contains("missing.pem"));
    }
}
