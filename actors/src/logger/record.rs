//! The per-message log record: one JSON object per line in `logs/impulse.log`.
//!
//! Field names are the contract of INTERFACE.md ("Logs"): `type`, `id`, `timestamp`,
//! `sender`, `recipient`, `domain`, `size`, `attempts`, `response` and `peer`.

use serde::Serialize;

/// What happened to a message (or a recipient of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RecordType {
    Reception,
    Delivery,
    TransientFailure,
    Bounce,
    Expiration,
    AdminBounce,
    Rejection,
}

/// An SMTP response as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedResponse {
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: String,
}

impl LoggedResponse {
    pub fn new(code: u16, enhanced: Option<String>, text: impl Into<String>) -> Self {
        LoggedResponse {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// As one line: `451 4.3.0 text`.
    pub fn line(&self) -> String {
        match &self.enhanced {
            Some(e) => format!("{} {e} {}", self.code, self.text),
            None => format!("{} {}", self.code, self.text),
        }
    }

    /// The response from a parsed SMTP reply.
    pub fn from_reply(r: &impulse_smtp::reply::Reply) -> Self {
        LoggedResponse {
            code: r.code,
            enhanced: r.enhanced.map(|e| e.to_string()),
            text: r.text.clone(),
        }
    }
}

/// One line of the message log.
#[derive(Debug, Clone, Serialize)]
pub struct LogRecord {
    #[serde(rename = "type")]
    pub kind: RecordType,
    pub id: String,
    /// RFC 3339 UTC time the record was made.
    pub timestamp: String,
    pub sender: String,
    pub recipient: String,
    pub domain: String,
    pub size: u64,
    pub attempts: u32,
    pub response: LoggedResponse,
    /// The other side: the client for receptions, the next hop for deliveries.
    pub peer: String,
    /// TLS version and cipher, when the session with `peer` was encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<impulse_runtime::io::TlsInfo>,
    /// The user the client authenticated as (Reception records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Now, as the records print it.
pub fn timestamp_now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl LogRecord {
    /// The record as one JSON line (with the trailing newline).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|e| {
            format!("{{\"type\":\"Error\",\"error\":\"cannot encode record: {e}\"}}").into_bytes()
        });
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_has_the_interface_fields() {
        let r = LogRecord {
            kind: RecordType::Delivery,
            id: "00000000000000AB".into(),
            timestamp: timestamp_now(),
            sender: "a@b".into(),
            recipient: "c@d".into(),
            domain: "d".into(),
            size: 10,
            attempts: 1,
            response: LoggedResponse::new(250, Some("2.0.0".into()), "ok"),
            peer: "127.0.0.1:25".into(),
            tls: None,
            user: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&r.to_line()).unwrap();
        for key in [
            "type",
            "id",
            "timestamp",
            "sender",
            "recipient",
            "domain",
            "size",
            "attempts",
            "response",
            "peer",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["type"], "Delivery");
        assert_eq!(v["response"]["enhanced"], "2.0.0");
    }
}
