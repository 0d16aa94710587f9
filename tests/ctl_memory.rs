//! `impulsectl memory` against a running `impulsed` while mail flows: the counting
//! allocator is installed, the per-class live bytes add up to the total at a quiescent
//! moment, every class with live actors has live bytes and allocations (and a peak at
//! least as high), and the human table has one row per class — or one, for
//! `memory CLASS` — and a total line. The daemon and its traffic are
//! [`common::ctl::Scenario`]'s.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::ctl::Scenario;
use serde_json::Value;

#[test]
fn memory_is_counted_per_class_and_adds_up() {
    let s = Scenario::start();

    // The per-class counters and the total are read one after the other while other
    // threads may allocate; they agree at a quiescent moment, which an idle daemon
    // reaches quickly.
    let mut last = Value::Null;
    let mut agreed = false;
    for _ in 0..100 {
        let m = s.daemon.ctl_json(&["memory"]);
        assert_eq!(m["type"], "memory", "{m}");
        let sum: i64 = m["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["live_bytes"].as_i64().unwrap())
            .sum();
        let total = m["total_live_bytes"].as_i64().unwrap();
        last = m;
        if sum == total {
            agreed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        agreed,
        "sum of the classes never matched total_live_bytes; last report:\n{last:#}"
    );
    let m = &last;
    assert_eq!(m["installed"], true, "the counting allocator is installed");
    assert!(m["total_live_bytes"].as_i64().unwrap() > 0);
    let classes: BTreeMap<&str, &Value> = m["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["class"].as_str().unwrap(), c))
        .collect();
    assert_eq!(classes.len(), 15, "one entry per class: {m:#}");
    assert!(
        classes.contains_key("resolver") && classes.contains_key("http"),
        "{m:#}"
    );
    for class in ["message", "domain", "inbound", "outbound", "io", "spool"] {
        let c = classes
            .get(class)
            .unwrap_or_else(|| panic!("no {class} in {m:#}"));
        assert!(
            c["live_bytes"].as_i64().unwrap() > 0,
            "{class} has live actors but no live bytes: {c}"
        );
        assert!(c["live_allocs"].as_i64().unwrap() > 0, "{c}");
        assert!(c["total_allocs"].as_u64().unwrap() > 0, "{c}");
        assert!(
            c["peak_bytes"].as_i64().unwrap() >= c["live_bytes"].as_i64().unwrap(),
            "the peak is at least what is live now: {c}"
        );
    }

    // The human table: a header, one row per class, and the total line.
    let text = s.ctl_ok(&["memory"]);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header[0], "CLASS", "{text}");
    assert!(text.lines().next().unwrap().contains("LIVE"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("total") && !l.starts_with("process"))
        .collect();
    assert_eq!(rows.len(), classes.len(), "one row per class: {text}");
    for class in classes.keys() {
        assert!(
            rows.iter()
                .any(|r| r.split_whitespace().next() == Some(class)),
            "no row for {class}:\n{text}"
        );
    }
    let total = text.lines().find(|l| l.starts_with("total live ")).unwrap();
    let rss = text.lines().last().unwrap();
    assert!(rss.starts_with("process resident set "), "{text}");
    assert!(total.contains("sum of classes"), "{text}");
    assert!(!total.contains("not installed"), "{text}");

    // memory CLASS keeps one row.
    let one = s.ctl_ok(&["memory", "message"]);
    let rows: Vec<&str> = one
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("total") && !l.starts_with("process"))
        .collect();
    assert_eq!(rows.len(), 1, "{one}");
    assert!(rows[0].starts_with("message "), "{one}");
}
