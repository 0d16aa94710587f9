//! The HTTP side of the scenarios: a real HTTP client (ureq) that reports every status
//! instead of failing on 4xx/5xx, and a strict parser of the Prometheus text exposition
//! format (version 0.0.4) that refuses any line a scraper would refuse.

use std::collections::HashMap;
use std::net::SocketAddr;

/// One answer: status, content type, body.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into()
}

fn answer(res: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut res = res.expect("HTTP request");
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = res.body_mut().read_to_string().expect("HTTP body");
    Answer {
        status,
        content_type,
        body,
    }
}

/// `GET http://ADDR/PATH`.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    answer(agent().get(format!("http://{addr}{path}")).call())
}

/// `POST http://ADDR/PATH` with a JSON body.
pub fn post(addr: SocketAddr, path: &str, json: &str) -> Answer {
    answer(
        agent()
            .post(format!("http://{addr}{path}"))
            .header("Content-Type", "application/json")
            .send(json),
    )
}

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// Parse the exposition text strictly: every `# TYPE` names a known type before its
/// samples, every sample line is `name{label="value",…} value`, label values are quoted
/// with `\\`, `\"` and `\n` escapes only. Returns the samples and each family's type.
pub fn parse_metrics(text: &str) -> (Vec<Sample>, HashMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(_), _) => {}
                (Some("TYPE"), Some(name), Some(t)) => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "{}",
                        at()
                    );
                    types.insert(name.to_string(), t.to_string());
                }
                _ => panic!("bad comment, {}", at()),
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value, {}", at()));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name, {}",
            at()
        );
        let mut rest = &line[name_end..];
        let mut labels = HashMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let close;
            loop {
                let (start, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("open labels, {}", at()));
                if c == '}' {
                    close = start;
                    break;
                }
                let mut key = String::from(c);
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                assert_eq!(
                    chars.next().map(|x| x.1),
                    Some('"'),
                    "unquoted label, {}",
                    at()
                );
                let mut value = String::new();
                loop {
                    match chars.next().map(|x| x.1) {
                        Some('\\') => match chars.next().map(|x| x.1) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => panic!("bad escape, {}", at()),
                        },
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => panic!("open label value, {}", at()),
                    }
                }
                labels.insert(key, value);
                if chars.peek().map(|x| x.1) == Some(',') {
                    chars.next();
                }
            }
            rest = &inner[close + 1..];
        }
        let value = rest
            .trim_start_matches(' ')
            .split(' ')
            .next()
            .unwrap_or("")
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value, {}", at()));
        let family = name.trim_end_matches("_total");
        assert!(
            types.contains_key(name) || types.contains_key(family),
            "sample before its TYPE, {}",
            at()
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    (samples, types)
}

/// The value of the one sample named `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}
