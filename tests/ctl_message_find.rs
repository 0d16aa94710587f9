//! `impulsectl message ID`, `impulsectl find` and `queues --sort/--limit` against a
//! running daemon whose next hop delivers some recipients and defers others: a message
//! shows each recipient's state, its attempts, the last response and the next attempt;
//! find returns exactly the queued messages that match; output into a closed pipe ends
//! quietly.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::delivery::LOG_WAIT;
use common::log::has;
use common::relay::relay_with;
use common::{Daemon, RawClient};
use impulse_sink::{Rule, SinkConfig, Stage};
use serde_json::Value;

/// Send one message from `from` to `rcpts` over SMTP; the id the 250 names.
fn submit(d: &Daemon, from: &str, rcpts: &[&str]) -> String {
    let mut c = RawClient::connect(d.smtp);
    c.ok("EHLO find.test", 250);
    c.open_data(from, rcpts);
    let text = c.end_data(b"Subject: find me\r\n\r\nbody\r\n");
    let _ = c.cmd("QUIT");
    text.rsplit(' ').next().unwrap().trim().to_string()
}

fn deferring_sink() -> SinkConfig {
    SinkConfig {
        rules: vec![Rule::always(
            "later",
            Stage::Rcpt,
            "451 4.3.0 come back later",
        )],
        ..Default::default()
    }
}

const SLOW_RETRY: &str = r#"domains: { "*": (retry_interval: "1h", max_retry_interval: "1h") },"#;

#[test]
fn message_shows_each_recipient_and_the_last_response() {
    let (_tmp, _sink, d) = relay_with(deferring_sink(), SLOW_RETRY);
    let id = submit(
        &d,
        "alice@from.test",
        &["now@example.com", "later@example.com"],
    );
    d.wait_for_log(LOG_WAIT, "one delivery, one deferral", |r| {
        has(r, "Delivery", "now@example.com") && has(r, "TransientFailure", "later@example.com")
    });
    let m = d.ctl_json(&["message", &id]);
    assert_eq!(m["type"], "message", "{m:#}");
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["sender"], "alice@from.test");
    assert_eq!(m["domain"], "example.com");
    assert_eq!(m["state"], "delayed");
    assert_eq!(m["attempts"], 1);
    let secs = m["next_attempt_secs"].as_u64().unwrap();
    assert!((3000..=3600 * 11 / 10).contains(&secs), "{m:#}");
    assert!(m["next_attempt"].as_str().unwrap().ends_with('Z'));
    let rcpts = m["recipients"].as_array().unwrap();
    let by = |a: &str| rcpts.iter().find(|r| r["address"] == a).unwrap().clone();
    assert_eq!(by("now@example.com")["state"], "delivered");
    let later = by("later@example.com");
    assert_eq!(later["state"], "pending");
    assert_eq!(later["attempts"], 1);
    assert_eq!(later["last_response"], "451 4.3.0 come back later");

    let text = String::from_utf8(d.ctl(&["message", &id]).stdout).unwrap();
    assert!(text.contains("451 4.3.0 come back later"), "{text}");

    // The next hop's recent history, in `domain`.
    let dom = d.ctl_json(&["domain", "example.com"]);
    let hop = &dom["next_hops"][0];
    assert!(hop["connects"].as_u64().unwrap() >= 1, "{dom:#}");
    assert!(hop["last_connect_ms"].as_u64().is_some(), "{dom:#}");
    assert!(hop["transactions"].as_u64().unwrap() >= 1, "{dom:#}");
    assert!(hop["last_transaction_ms"].as_u64().is_some(), "{dom:#}");
    assert_eq!(
        hop["failed_last_minute"], 0,
        "one of two recipients was taken: {dom:#}"
    );
    assert!(
        hop["last_error"]
            .as_str()
            .unwrap()
            .contains("come back later"),
        "{dom:#}"
    );
    assert!(
        text.contains("later@example.com") && text.contains("pending"),
        "{text}"
    );

    // The same over HTTP is not configured here; unknown and malformed ids are refused.
    let out = d.ctl(&["message", "0000000000000001"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no queued message"));
    assert_eq!(d.ctl(&["message", "not-an-id"]).status.code(), Some(1));
}

#[test]
fn the_id_list_of_a_message_to_several_domains_shows_the_whole_message() {
    let (_tmp, _sink, d) = relay_with(deferring_sink(), SLOW_RETRY);
    let ids = submit(&d, "alice@from.test", &["later@one.test", "later@two.test"]);
    assert_eq!(ids.split(',').count(), 2, "one part per domain: {ids}");
    d.wait_for_log(LOG_WAIT, "both deferred", |r| {
        has(r, "TransientFailure", "later@one.test") && has(r, "TransientFailure", "later@two.test")
    });
    // What the 250 named, as it named it.
    let m = d.ctl_json(&["message", &ids]);
    assert_eq!(m["type"], "message", "{m:#}");
    assert_eq!(m["id"], ids.as_str());
    assert_eq!(m["domain"], "one.test,two.test");
    assert_eq!(
        (m["state"].as_str(), m["attempts"].as_u64()),
        (Some("delayed"), Some(1))
    );
    let rcpts: Vec<&str> = m["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(rcpts, ["later@one.test", "later@two.test"]);
    // Each part on its own too.
    let first = ids.split(',').next().unwrap();
    assert_eq!(d.ctl_json(&["message", first])["domain"], "one.test");
    assert_eq!(
        d.ctl(&["message", &format!("{first},")]).status.code(),
        Some(1)
    );
    // And the operator bounces the whole message by the same list.
    let out = d.ctl(&["bounce", "--message", &ids, "--quiet"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bounced 2 messages"), "{out:?}");
    d.wait_for_log(LOG_WAIT, "both bounced", |r| {
        has(r, "AdminBounce", "later@one.test") && has(r, "AdminBounce", "later@two.test")
    });
}

#[test]
fn find_returns_the_matching_messages() {
    let (_tmp, _sink, d) = relay_with(deferring_sink(), SLOW_RETRY);
    let a1 = submit(&d, "alice@a.test", &["later1@example.com"]);
    let a2 = submit(&d, "alice@a.test", &["later2@other.test"]);
    let b1 = submit(&d, "bob@b.test", &["later3@example.com"]);
    let b2 = submit(
        &d,
        "bob@b.test",
        &["later4@example.com", "later5@example.com"],
    );
    d.wait_for_log(LOG_WAIT, "every deferral", |r| {
        (1..=5).all(|i| {
            has(
                r,
                "TransientFailure",
                &format!(
                    "later{i}@{}",
                    if i == 2 { "other.test" } else { "example.com" }
                ),
            )
        })
    });
    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<String>>()
    };
    let all = d.ctl_json(&["find"]);
    assert_eq!(ids(&all), sorted(vec![&a1, &a2, &b1, &b2]), "{all:#}");
    assert_eq!(all["more"], false);
    assert!(all["scanned"].as_u64().unwrap() >= 4);

    let f = d.ctl_json(&["find", "--sender", "alice@a.test"]);
    assert_eq!(ids(&f), sorted(vec![&a1, &a2]));
    let f = d.ctl_json(&["find", "--sender", "b.test"]);
    assert_eq!(ids(&f), sorted(vec![&b1, &b2]));
    let f = d.ctl_json(&["find", "--recipient", "later5@example.com"]);
    assert_eq!(ids(&f), vec![b2.clone()]);
    assert_eq!(f["messages"][0]["recipients"].as_array().unwrap().len(), 2);
    let f = d.ctl_json(&["find", "--domain", "other.test"]);
    assert_eq!(ids(&f), vec![a2.clone()]);
    let f = d.ctl_json(&[
        "find",
        "--sender",
        "alice@a.test",
        "--domain",
        "example.com",
        "--state",
        "delayed",
    ]);
    assert_eq!(ids(&f), vec![a1.clone()]);
    assert_eq!(
        d.ctl_json(&["find", "--state", "active"])["messages"],
        serde_json::json!([])
    );
    let f = d.ctl_json(&["find", "--limit", "2"]);
    assert_eq!(f["messages"].as_array().unwrap().len(), 2);
    assert_eq!(f["more"], true);
    assert_eq!(
        d.ctl(&["find", "--state", "sleeping"]).status.code(),
        Some(1)
    );
    let text = String::from_utf8(d.ctl(&["find", "--sender", "bob@b.test"]).stdout).unwrap();
    assert!(text.contains(&b1) && text.contains("2 messages"), "{text}");

    // queues --sort/--limit, in the table and in --json.
    let q = d.ctl_json(&["queues", "--sort", "delayed", "--limit", "1"]);
    let rows = q["domains"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["domain"], "example.com", "{q:#}");
    // What happened there in the last minute, and the last error.
    assert_eq!(rows[0]["deferred_last_minute"], 3, "{q:#}");
    assert_eq!(rows[0]["last_error"], "451 4.3.0 come back later", "{q:#}");
    let text = String::from_utf8(d.ctl(&["queues"]).stdout).unwrap();
    assert!(
        text.contains("LAST ERROR") && text.contains("come back later"),
        "{text}"
    );

    // The other views' extras: minute rates, arbiters and mean job time, the RSS.
    let s = d.ctl_json(&["status"]);
    assert!(s["received_per_sec_1m"].as_f64().is_some(), "{s:#}");
    let p = d.ctl_json(&["pools"]);
    assert!(!p["arbiters"].as_array().unwrap().is_empty(), "{p:#}");
    assert!(p["arbiters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["actors"].as_u64().unwrap() > 0));
    // Every arbiter's event loop has woken (its lag probe alone wakes it every 100 ms)
    // and measured its turns; busy is a share of one second.
    for a in p["arbiters"].as_array().unwrap() {
        assert!(a["turns"].as_u64().unwrap() > 0, "{p:#}");
        assert!(a["mean_turn_us"].as_f64().unwrap() > 0.0, "{p:#}");
        let busy = a["busy_pct"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&busy), "{p:#}");
    }
    let text = String::from_utf8(d.ctl(&["pools"]).stdout).unwrap();
    assert!(
        text.contains("MEAN TURN µs") && text.contains("BUSY"),
        "{text}"
    );
    assert!(
        p["pools"][0]["mean_job_micros"].as_f64().unwrap() > 0.0,
        "{p:#}"
    );
    let m = d.ctl_json(&["memory"]);
    assert!(m["rss_bytes"].as_u64().unwrap() > 1_000_000, "{m:#}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let (_tmp, _sink, d) = relay_with(SinkConfig::default(), "");
    for args in [
        vec!["--json", "tree", "--all"],
        vec!["tree"],
        vec!["--json", "status"],
    ] {
        let mut child = Command::new(common::impulsectl_bin())
            .arg("--socket")
            .arg(d.socket())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away before anything is written
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?}: {status:?} {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn every_command_answers_parseable_json() {
    let (_tmp, _sink, mut d) = relay_with(deferring_sink(), SLOW_RETRY);
    let id = submit(&d, "alice@from.test", &["later@example.com"]);
    d.wait_for_log(LOG_WAIT, "the deferral", |r| {
        has(r, "TransientFailure", "later@example.com")
    });
    let table: Vec<(Vec<&str>, &str)> = vec![
        (vec!["status"], "status"),
        (vec!["tree", "--depth", "2"], "tree"),
        (vec!["memory"], "memory"),
        (vec!["pools"], "pools"),
        (vec!["queues", "--sort", "active"], "queues"),
        (vec!["domain", "example.com"], "domain"),
        (vec!["message", &id], "message"),
        (vec!["find", "--domain", "example.com"], "found"),
        (vec!["suspend", "example.com", "--duration", "1h"], "ok"),
        (vec!["resume", "example.com"], "ok"),
        (vec!["flush", "example.com"], "ok"),
        (
            vec!["bounce", "--sender", "nobody@x.test", "--dry-run"],
            "ok",
        ),
        (vec!["reload"], "ok"),
        (vec!["shutdown"], "ok"),
    ];
    for (args, ty) in table {
        let v = d.ctl_json(&args);
        assert_eq!(v["type"], ty, "{args:?}: {v:#}");
    }
    d.wait_exit(std::time::Duration::from_secs(30));
}
