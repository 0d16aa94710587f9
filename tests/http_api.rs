//! The HTTP endpoint, driven with a real HTTP client (ureq) against the real daemon:
//! `/metrics` is scraped and parsed as a Prometheus scraper would, `/health` answers,
//! the control requests under `/api/` do what `impulsectl` does, and `/api/inject`
//! delivers a message (accepted only after the fsync, with its Reception record).

mod common;

use std::time::Duration;

use common::delivery::{send, LOG_WAIT};
use common::http::{get, parse_metrics, post, value};
use common::log::has;
use common::relay::relay_with;
use common::{config, wait_for_rcpt, Daemon};
use impulse_sink::SinkConfig;

const HTTP: &str = r#"http: (address: "127.0.0.1:0"),"#;

#[test]
fn metrics_are_scraped_and_parsed_and_health_answers() {
    let (_tmp, sink, d) = relay_with(SinkConfig::default(), HTTP);
    let addr = d.http.expect("an `http listening on` line before ready");
    assert!(d.stderr().contains(&format!("http listening on {addr}")));
    for i in 0..3 {
        send(d.smtp, &[&format!("m{i}@example.com")], "counted\r\n");
    }
    for i in 0..3 {
        wait_for_rcpt(&sink, &d, &format!("m{i}@example.com"));
    }
    d.wait_spool_empty(LOG_WAIT);

    let m = get(addr, "/metrics");
    assert_eq!(m.status, 200, "{}", m.body);
    assert!(
        m.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        m.content_type
    );
    let (samples, types) = parse_metrics(&m.body);
    assert_eq!(types["impulse_received_total"], "counter");
    assert_eq!(types["impulse_memory_live_bytes"], "gauge");
    assert_eq!(value(&samples, "impulse_received_total", &[]), Some(3.0));
    assert_eq!(value(&samples, "impulse_delivered_total", &[]), Some(3.0));
    assert_eq!(value(&samples, "impulse_spool_healthy", &[]), Some(1.0));
    assert_eq!(value(&samples, "impulse_config_generation", &[]), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "impulse_domain_finished_total",
            &[("domain", "example.com")]
        ),
        Some(3.0)
    );
    let message_bytes = value(
        &samples,
        "impulse_memory_live_bytes",
        &[("class", "message")],
    );
    assert!(message_bytes.is_some(), "{}", m.body);
    assert!(value(&samples, "impulse_process_resident_bytes", &[]).unwrap() > 1e6);
    let threads = value(&samples, "impulse_pool_threads", &[("pool", "blocking")]).unwrap();
    assert!(threads >= 1.0);
    // The same numbers impulsectl reports.
    let status = d.ctl_json(&["status"]);
    assert_eq!(status["received"], 3);
    assert_eq!(status["delivered"], 3);

    let h = get(addr, "/health");
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(post(addr, "/metrics", "{}").status, 405);
}

#[test]
fn the_api_does_what_impulsectl_does() {
    let (_tmp, _sink, d) = relay_with(SinkConfig::default(), HTTP);
    let addr = d.http.unwrap();
    send(d.smtp, &["a@example.com"], "makes a queue\r\n");
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "a@example.com")
    });

    let s = get(addr, "/api/status");
    assert_eq!(s.status, 200, "{}", s.body);
    let s = s.json();
    assert_eq!(s["type"], "status");
    assert_eq!(s["received"], 1);
    let q = get(addr, "/api/queues").json();
    assert!(
        q["domains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["domain"] == "example.com"),
        "{q:#}"
    );
    let t = get(addr, "/api/tree?class=domain&depth=3").json();
    assert!(
        t["actors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["class"] == "domain"),
        "{t:#}"
    );
    let dom = get(addr, "/api/domain/example.com").json();
    assert_eq!(dom["domain"], "example.com", "{dom:#}");

    let r = post(
        addr,
        "/api/suspend",
        r#"{"domain":"example.com","duration":"1h"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["type"], "ok");
    assert_eq!(d.ctl_json(&["domain", "example.com"])["state"], "suspended");
    let r = post(addr, "/api/resume/example.com", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(d.ctl_json(&["domain", "example.com"])["state"], "suspended");

    // Refusals: what impulsectl exits 1 for is a 400 with the reason.
    let r = post(addr, "/api/flush/nowhere.test", "");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("nowhere.test"));
    assert_eq!(get(addr, "/api/suspend?domain=example.com").status, 405);
    assert_eq!(get(addr, "/api/no-such-command").status, 404);
    assert_eq!(get(addr, "/nothing-here").status, 404);
    assert_eq!(post(addr, "/api/suspend", "[1]").status, 400);
}

#[test]
fn inject_delivers_once_stored() {
    let (_tmp, sink, d) = relay_with(SinkConfig::default(), HTTP);
    let addr = d.http.unwrap();
    // Bare LF line ends (as JSON strings usually carry them) become CRLF.
    let body = r#"{"sender":"api@sender.test","recipients":["one@example.com","two@other.test"],
                   "content":"From: api@sender.test\nSubject: injected\n\nhello over HTTP\n"}"#;
    let r = post(addr, "/api/inject", body);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["recipients"], 2);
    let ids: Vec<String> = j["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "one message per recipient domain: {j:#}");

    for rcpt in ["one@example.com", "two@other.test"] {
        let m = wait_for_rcpt(&sink, &d, rcpt);
        let text = String::from_utf8_lossy(&m.data).to_string();
        assert!(text.contains("with HTTP id"), "{text}");
        assert!(
            text.contains("Subject: injected\r\n\r\nhello over HTTP\r\n"),
            "{text}"
        );
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "bare LF left: {text:?}"
        );
        assert_eq!(m.sender, "api@sender.test");
    }
    let records = d.wait_for_log(LOG_WAIT, "Reception records", |r| {
        has(r, "Reception", "one@example.com") && has(r, "Reception", "two@other.test")
    });
    for id in &ids {
        assert!(
            records
                .iter()
                .any(|r| r["type"] == "Reception" && r["id"] == id.as_str()),
            "no Reception for {id}"
        );
    }

    // KumoMTA's spelling of the same request.
    let kumo = r#"{"envelope_sender":"","recipients":[{"email":"three@example.com"}],
                   "content":"Subject: kumo style\r\n\r\nhi\r\n"}"#;
    assert_eq!(post(addr, "/api/inject", kumo).status, 200);
    let m = wait_for_rcpt(&sink, &d, "three@example.com");
    assert_eq!(m.sender, "", "the null sender");

    // Refusals, each with its reason, none of them stored.
    for (body, status) in [
        (r#"{"sender":"a@b","recipients":[],"content":"x"}"#, 400),
        (
            r#"{"sender":"a b@c","recipients":["x@example.com"],"content":"x"}"#,
            400,
        ),
        (
            r#"{"sender":"a@b.test","recipients":["no-at-sign"],"content":"x"}"#,
            400,
        ),
        (
            r#"{"sender":"a@b.test","recipients":["x@example.com"]}"#,
            400,
        ),
        (
            r#"{"sender":"a@b.test","recipients":["x@example.com"],"content":"X-Impulse-Binding: nope\r\n\r\nx"}"#,
            422,
        ),
    ] {
        let r = post(addr, "/api/inject", body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.json()["type"], "error");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.ctl_json(&["status"])["received"], 3);
}

#[test]
fn the_api_answers_only_clients_that_may_relay() {
    let sink = impulse_sink::Sink::start(SinkConfig::default()).unwrap();
    let tmp = common::tempdir("http-relay");
    let extra = format!(r#"{HTTP} relay: (allow: ["10.0.0.0/8"]),"#);
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(sink.addr()), &extra));
    let addr = d.http.unwrap();
    assert_eq!(get(addr, "/api/status").status, 403);
    let inject = r#"{"sender":"a@b.test","recipients":["x@example.com"],"content":"x"}"#;
    assert_eq!(post(addr, "/api/inject", inject).status, 403);
    assert_eq!(get(addr, "/metrics").status, 200);
    assert_eq!(get(addr, "/health").status, 200);
}
