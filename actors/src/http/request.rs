//! HTTP/1.1 request framing, pure: the head is parsed with `httparse`, the body is
//! framed by `Content-Length` (RFC 9112 §6). Chunked bodies are refused with `411`, so a
//! client always says how long its body is; `Expect: 100-continue` is honoured. The
//! endpoint answers one request per connection (`Connection: close`).

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 48;

/// One complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The path without the query, percent-decoded.
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What [`frame`] made of the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    /// More bytes are needed; `expect_continue` once the head asked for `100 Continue`.
    Incomplete {
        expect_continue: bool,
    },
    Complete(HttpRequest),
    /// The request cannot be served: answer with this status and reason, then close.
    Refuse(u16, &'static str),
}

/// Frame the request at the start of `buf`, with bodies up to `max_body` bytes.
pub fn frame(buf: &[u8], max_body: usize) -> Framing {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Framing::Refuse(431, "request head too large")
        }
        Ok(httparse::Status::Partial) => {
            return Framing::Incomplete {
                expect_continue: false,
            }
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Framing::Refuse(431, "too many header fields")
        }
        Err(_) => return Framing::Refuse(400, "malformed request"),
    };
    if head_len > MAX_HEAD {
        return Framing::Refuse(431, "request head too large");
    }
    let (mut length, mut expect, mut content_type) = (None, false, None);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            // Two different lengths would let a proxy and us disagree on the body.
            match (value.parse::<usize>(), length) {
                (Ok(n), None) => length = Some(n),
                (Ok(n), Some(m)) if n == m => {}
                _ => return Framing::Refuse(400, "bad Content-Length"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Framing::Refuse(411, "send the body with a Content-Length");
        } else if h.name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Framing::Refuse(417, "only 100-continue is understood");
            }
            expect = true;
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_ascii_lowercase());
        }
    }
    let length = length.unwrap_or(0);
    if length > max_body {
        return Framing::Refuse(413, "request body too large");
    }
    if buf.len() < head_len + length {
        return Framing::Incomplete {
            expect_continue: expect,
        };
    }
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(path) = percent_decode(path) else {
        return Framing::Refuse(400, "bad percent-encoding in the path");
    };
    Framing::Complete(HttpRequest {
        method: req.method.unwrap_or("").to_string(),
        path,
        query: form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        content_type,
        body: buf[head_len..head_len + length].to_vec(),
    })
}

/// `%XX` sequences decoded; none for a broken escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The reason phrase of the statuses the endpoint uses.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A whole response, closing the connection: status line, headers, body.
pub fn response(status: u16, content_type: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> HttpRequest {
        match frame(buf, 1024) {
            Framing::Complete(r) => r,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn get_with_query() {
        let r =
            complete(b"GET /api/tree?depth=2&class=message&x=a%20b+c HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/tree");
        assert_eq!(
            r.query,
            vec![
                ("depth".into(), "2".into()),
                ("class".into(), "message".into()),
                ("x".into(), "a b c".into())
            ]
        );
        assert!(r.body.is_empty());
    }

    #[test]
    fn path_is_decoded() {
        let r = complete(b"GET /api/domain/ex%61mple.com HTTP/1.1\r\n\r\n");
        assert_eq!(r.path, "/api/domain/example.com");
        assert_eq!(
            frame(b"GET /a%zz HTTP/1.1\r\n\r\n", 10),
            Framing::Refuse(400, "bad percent-encoding in the path")
        );
    }

    #[test]
    fn body_by_content_length_at_every_split() {
        let whole = b"POST /api/inject HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bc\"}\n";
        for cut in 0..whole.len() {
            assert_eq!(
                frame(&whole[..cut], 1024),
                Framing::Incomplete {
                    expect_continue: false
                },
                "cut at {cut}"
            );
        }
        let r = complete(whole);
        assert_eq!(r.body, b"{\"a\":\"bc\"}\n");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn refusals_table() {
        let table: &[(&[u8], u16)] = &[
            (b"GARBAGE\r\n\r\n", 400),
            (b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                411,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                400,
            ),
            (b"POST / HTTP/1.1\r\nExpect: something\r\n\r\n", 417),
        ];
        for (input, status) in table {
            match frame(input, 1024) {
                Framing::Refuse(s, _) => assert_eq!(s, *status, "{input:?}"),
                other => panic!("{other:?} for {input:?}"),
            }
        }
        let huge = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD + 10]].concat();
        assert!(matches!(frame(&huge, 10), Framing::Refuse(431, _)));
    }

    #[test]
    fn expect_continue_is_reported_until_the_body_is_in() {
        let head =
            b"POST /api/inject HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            frame(head, 1024),
            Framing::Incomplete {
                expect_continue: true
            }
        );
        let mut whole = head.to_vec();
        whole.extend_from_slice(b"abc");
        assert_eq!(complete(&whole).body, b"abc");
    }

    #[test]
    fn responses_carry_length_and_close() {
        let r = response(404, "text/plain", &[("Allow", "GET")], b"no");
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains("Allow: GET\r\n"));
        assert!(text.ends_with("\r\n\r\nno"));
    }
}
