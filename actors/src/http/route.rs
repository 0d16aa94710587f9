//! Which answer an HTTP request asks for, pure: `/metrics`, `/health`, `/api/inject`, or
//! a control request under `/api/`, built into the same typed [`Request`] `impulsectl`
//! sends.
//!
//! `GET /api/COMMAND?key=value…` and `POST /api/COMMAND` with a JSON object (or a form)
//! name the command and its fields as the control protocol does (`/api/tree?depth=2`,
//! `POST /api/suspend {"domain":"example.com","duration":"1h"}`); a last path segment
//! fills the command's main field (`/api/domain/example.com`, `/api/flush/example.com`).
//! Commands that change something are POST only; those that look are GET or POST.

use impulse_runtime::control::Request;
use serde_json::{Map, Value};

use super::request::HttpRequest;

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Health,
    Api(Request),
    Inject(Injection),
    /// Status, reason, and the `Allow` header for a 405.
    Refuse(u16, String, Option<&'static str>),
}

/// The body of `POST /api/inject`: the envelope and the RFC 5322 content.
///
/// Field names: `sender` (or `envelope_sender`, `from`, `mail_from`), `recipients` (or
/// `to`, `rcpt_to`; each an address or `{"email": …}`, a single address also accepted)
/// and `content` (or `data`, `message`); the envelope may also come nested as
/// `"envelope": {"sender": …, "recipients": […]}`. KumoMTA's names are among these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub sender: String,
    pub recipients: Vec<String>,
    pub content: String,
}

impl Injection {
    /// Read an injection from its JSON body.
    pub fn from_json(body: &[u8]) -> Result<Injection, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(top) = v else {
            return Err("the body must be a JSON object".into());
        };
        let env = match top.get("envelope") {
            Some(Value::Object(e)) => Some(e),
            Some(_) => return Err("envelope must be an object".into()),
            None => None,
        };
        let field = |names: &[&str]| -> Option<&Value> {
            names
                .iter()
                .find_map(|n| top.get(*n).or_else(|| env.and_then(|e| e.get(*n))))
        };
        let sender = match field(&["sender", "envelope_sender", "from", "mail_from"]) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => match o.get("email") {
                Some(Value::String(s)) => s.clone(),
                _ => return Err("sender: expected an address".into()),
            },
            Some(Value::Null) | None => return Err("missing field `sender`".into()),
            Some(_) => return Err("sender: expected an address".into()),
        };
        let one = |v: &Value| -> Result<String, String> {
            match v {
                Value::String(s) => Ok(s.clone()),
                Value::Object(o) => match o.get("email") {
                    Some(Value::String(s)) => Ok(s.clone()),
                    _ => Err("a recipient object needs \"email\"".into()),
                },
                _ => Err("recipients: expected addresses".into()),
            }
        };
        let recipients = match field(&["recipients", "to", "rcpt_to"]) {
            Some(Value::Array(list)) => list.iter().map(one).collect::<Result<Vec<_>, _>>()?,
            Some(v @ (Value::String(_) | Value::Object(_))) => vec![one(v)?],
            None => return Err("missing field `recipients`".into()),
            Some(_) => return Err("recipients: expected a list of addresses".into()),
        };
        let content = match field(&["content", "data", "message"]) {
            Some(Value::String(s)) => s.clone(),
            None => return Err("missing field `content`".into()),
            Some(_) => return Err("content: expected the message as a string".into()),
        };
        Ok(Injection {
            sender,
            recipients,
            content,
        })
    }
}

/// Commands that only look.
const READS: &[&str] = &[
    "status", "tree", "memory", "pools", "queues", "domain", "message", "find",
];

/// Commands that change something.
const WRITES: &[&str] = &["suspend", "resume", "flush", "bounce", "shutdown", "reload"];

/// Query and form keys whose values are numbers or flags (the rest are strings).
const NUMBERS: &[&str] = &["depth", "limit", "duration_secs"];
const FLAGS: &[&str] = &["all", "arbiter", "quiet", "dry_run"];

/// The field a last path segment fills, per command.
fn main_field(command: &str) -> Option<&'static str> {
    match command {
        "domain" => Some("name"),
        "message" => Some("id"),
        "suspend" | "resume" | "flush" | "bounce" => Some("domain"),
        _ => None,
    }
}

fn refuse(status: u16, why: impl Into<String>) -> Route {
    Route::Refuse(status, why.into(), None)
}

/// Route `req`.
pub fn route(req: &HttpRequest) -> Route {
    let get = req.method == "GET";
    let post = req.method == "POST";
    match req.path.as_str() {
        "/metrics" | "/health" if !get => Route::Refuse(405, "use GET".into(), Some("GET")),
        "/metrics" => Route::Metrics,
        "/health" => Route::Health,
        "/api/inject" if !post => Route::Refuse(405, "use POST".into(), Some("POST")),
        "/api/inject" => match Injection::from_json(&req.body) {
            Ok(i) => Route::Inject(i),
            Err(e) => refuse(400, format!("bad injection: {e}")),
        },
        path => match path.strip_prefix("/api/") {
            Some(rest) if !rest.is_empty() => api(req, rest, get, post),
            _ => refuse(404, format!("no such endpoint: {path}")),
        },
    }
}

fn api(req: &HttpRequest, rest: &str, get: bool, post: bool) -> Route {
    let (command, arg) = match rest.split_once('/') {
        Some((c, a)) if !a.is_empty() && !a.contains('/') => (c, Some(a)),
        Some(_) => return refuse(404, format!("no such endpoint: /api/{rest}")),
        None => (rest, None),
    };
    let read = READS.contains(&command);
    if !read && !WRITES.contains(&command) {
        return refuse(404, format!("no such command: {command}"));
    }
    if !(post || get && read) {
        let allow = if read { "GET, POST" } else { "POST" };
        return Route::Refuse(405, format!("{command}: use {allow}"), Some(allow));
    }
    let mut fields = match fields(req) {
        Ok(f) => f,
        Err(e) => return refuse(400, e),
    };
    if let Some(arg) = arg {
        let Some(key) = main_field(command) else {
            return refuse(404, format!("no such endpoint: /api/{rest}"));
        };
        fields.insert(key.into(), Value::String(arg.into()));
    }
    if let Some(Value::String(d)) = fields.remove("duration") {
        match humantime::parse_duration(&d) {
            Ok(d) => {
                fields.insert("duration_secs".into(), Value::from(d.as_secs().max(1)));
            }
            Err(e) => return refuse(400, format!("bad duration {d:?}: {e}")),
        }
    }
    fields.insert("command".into(), Value::String(command.into()));
    match serde_json::from_value::<Request>(Value::Object(fields)) {
        Ok(r) => Route::Api(r),
        Err(e) if e.to_string().contains("unknown variant") => {
            refuse(404, format!("no such command: {command}"))
        }
        Err(e) => refuse(400, format!("bad {command} request: {e}")),
    }
}

/// The request's fields: a JSON object body, a form body, or the query.
fn fields(req: &HttpRequest) -> Result<Map<String, Value>, String> {
    let body = req.body.trim_ascii();
    if body.first() == Some(&b'{') {
        return match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("the body must be a JSON object".into()),
            Err(e) => Err(format!("bad JSON body: {e}")),
        };
    }
    let pairs: Vec<(String, String)> = if body.is_empty() {
        req.query.clone()
    } else {
        form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    let mut m = Map::new();
    for (k, v) in pairs {
        let value = if NUMBERS.contains(&k.as_str()) {
            Value::from(
                v.parse::<u64>()
                    .map_err(|_| format!("{k}: not a number: {v:?}"))?,
            )
        } else if FLAGS.contains(&k.as_str()) {
            match v.as_str() {
                "" | "1" | "true" | "yes" => Value::Bool(true),
                "0" | "false" | "no" => Value::Bool(false),
                _ => return Err(format!("{k}: not a flag: {v:?}")),
            }
        } else {
            Value::String(v)
        };
        m.insert(k, value);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, body: &str) -> HttpRequest {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        HttpRequest {
            method: method.into(),
            path: path.into(),
            query: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            content_type: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn api_requests_table() {
        let table: Vec<(&str, &str, &str, Request)> = vec![
            ("GET", "/api/status", "", Request::Status),
            ("POST", "/api/queues", "", Request::Queues),
            (
                "GET",
                "/api/tree?depth=2&class=message&all",
                "",
                Request::Tree {
                    depth: Some(2),
                    class: Some(impulse_runtime::ActorClass::Message),
                    all: true,
                    arbiter: false,
                },
            ),
            (
                "GET",
                "/api/domain/example.com",
                "",
                Request::Domain {
                    name: "example.com".into(),
                },
            ),
            (
                "POST",
                "/api/suspend",
                r#"{"domain":"example.com","duration":"1h"}"#,
                Request::Suspend {
                    domain: "example.com".into(),
                    binding: None,
                    duration_secs: Some(3600),
                },
            ),
            (
                "POST",
                "/api/suspend/example.com",
                "binding=b1",
                Request::Suspend {
                    domain: "example.com".into(),
                    binding: Some("b1".into()),
                    duration_secs: None,
                },
            ),
            ("POST", "/api/flush", "", Request::Flush { domain: None }),
            (
                "POST",
                "/api/bounce",
                r#"{"sender":"a@b","dry_run":true}"#,
                Request::Bounce {
                    domain: None,
                    message: None,
                    sender: Some("a@b".into()),
                    reason: None,
                    quiet: false,
                    dry_run: true,
                },
            ),
        ];
        for (method, target, body, want) in table {
            assert_eq!(
                route(&req(method, target, body)),
                Route::Api(want),
                "{method} {target}"
            );
        }
    }

    #[test]
    fn refusals_table() {
        let table: Vec<(&str, &str, &str, u16)> = vec![
            ("GET", "/nope", "", 404),
            ("GET", "/api/", "", 404),
            ("GET", "/api/nonsense", "", 404),
            ("POST", "/api/nonsense", "", 404),
            ("GET", "/api/suspend?domain=x", "", 405),
            ("GET", "/api/shutdown", "", 405),
            ("DELETE", "/api/status", "", 405),
            ("POST", "/metrics", "", 405),
            ("GET", "/api/inject", "", 405),
            ("POST", "/api/inject", "{}", 400),
            ("POST", "/api/inject", "not json", 400),
            ("GET", "/api/tree?depth=deep", "", 400),
            ("GET", "/api/tree?all=maybe", "", 400),
            ("POST", "/api/suspend", r#"{"duration":"1h"}"#, 400),
            (
                "POST",
                "/api/suspend",
                r#"{"domain":"x","duration":"soon"}"#,
                400,
            ),
            ("POST", "/api/suspend", "[1]", 400),
            ("GET", "/api/status/extra", "", 404),
            ("GET", "/api/domain/a/b", "", 404),
        ];
        for (method, target, body, status) in table {
            match route(&req(method, target, body)) {
                Route::Refuse(s, why, _) => assert_eq!(s, status, "{method} {target}: {why}"),
                other => panic!("{method} {target}: {other:?}"),
            }
        }
    }

    #[test]
    fn injections_in_both_spellings() {
        let ours = r#"{"sender":"a@x.example","recipients":["b@y.example"],"content":"Subject: t\r\n\r\nhi\r\n"}"#;
        let kumo = r#"{"envelope_sender":"a@x.example","recipients":[{"email":"b@y.example"}],"content":"Subject: t\r\n\r\nhi\r\n"}"#;
        let nested = r#"{"envelope":{"from":"a@x.example","to":"b@y.example"},"data":"Subject: t\r\n\r\nhi\r\n"}"#;
        for body in [ours, kumo, nested] {
            match route(&req("POST", "/api/inject", body)) {
                Route::Inject(i) => {
                    assert_eq!(i.sender, "a@x.example");
                    assert_eq!(i.recipients, ["b@y.example"]);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(route(&req("GET", "/metrics", "")), Route::Metrics);
        assert_eq!(route(&req("GET", "/health", "")), Route::Health);
    }
}
