//! `impulsectl pools`, `queues` and `status` against a running `impulsed` while mail
//! flows: the blocking pool has its configured threads and has done work, each domain
//! container's row shows what is delayed, active, in flight and finished, and the status
//! counters (received, delivered, deferred, live messages, domains, connections in and
//! out) match the traffic sent — in JSON and in the human tables. The daemon and its
//! traffic are [`common::ctl::Scenario`]'s.

mod common;

use std::collections::BTreeMap;

use common::ctl::{actors, by_class, Scenario, BLOCKING_THREADS, FAST, HELD, SLOW, WAIT};
use common::wait_until;
use serde_json::Value;

#[test]
fn pools_queues_and_status_match_the_traffic() {
    let s = Scenario::start();

    // pools: the blocking pool with the configured threads, and it has done work.
    let p = s.daemon.ctl_json(&["pools"]);
    assert_eq!(p["type"], "pools", "{p}");
    let pools = p["pools"].as_array().unwrap();
    let blocking = pools
        .iter()
        .find(|x| x["name"] == "blocking")
        .unwrap_or_else(|| panic!("no blocking pool: {p:#}"));
    assert_eq!(
        blocking["threads"].as_u64(),
        Some(BLOCKING_THREADS),
        "{p:#}"
    );
    assert!(blocking["completed"].as_u64().unwrap() > 0, "{p:#}");
    assert!(
        blocking["busy"].as_u64().unwrap() <= BLOCKING_THREADS,
        "{p:#}"
    );
    let text = s.ctl_ok(&["pools"]);
    assert!(text.lines().next().unwrap().starts_with("POOL"), "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("blocking "))
        .unwrap_or_else(|| panic!("no blocking row:\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], BLOCKING_THREADS.to_string(), "{text}");

    // queues: one row per domain container.
    let q = s.daemon.ctl_json(&["queues"]);
    assert_eq!(q["type"], "queues", "{q}");
    let rows: BTreeMap<&str, &Value> = q["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["domain"].as_str().unwrap(), r))
        .collect();
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        vec!["fast.test", "held.test", "slow.test"],
        "{q:#}"
    );
    assert_eq!(q["domains"].as_array().unwrap().len(), 3, "{q:#}");
    let slow = rows["slow.test"];
    assert_eq!(slow["delayed"].as_u64(), Some(SLOW as u64), "{slow}");
    assert_eq!(slow["active"].as_u64(), Some(0), "{slow}");
    assert_eq!(slow["in_flight"].as_u64(), Some(0), "{slow}");
    assert!(slow["next_retry_secs"].as_u64().is_some(), "{slow}");
    let fast = rows["fast.test"];
    assert_eq!(fast["delayed"].as_u64(), Some(0), "{fast}");
    assert_eq!(fast["active"].as_u64(), Some(0), "{fast}");
    assert_eq!(fast["finished"].as_u64(), Some(FAST as u64), "{fast}");
    let held = rows["held.test"];
    assert_eq!(held["delayed"].as_u64(), Some(0), "{held}");
    assert_eq!(
        held["active"].as_u64().unwrap() + held["in_flight"].as_u64().unwrap(),
        HELD as u64,
        "{held}"
    );
    assert_eq!(held["connections"].as_u64(), Some(1), "{held}");

    let text = s.ctl_ok(&["queues"]);
    assert!(text.lines().next().unwrap().starts_with("DOMAIN"), "{text}");
    let body: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(body.len(), 3, "{text}");
    let slow_row = body
        .iter()
        .find(|r| r[0] == "slow.test")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(slow_row[1], "0", "active: {text}");
    assert_eq!(slow_row[2], SLOW.to_string(), "delayed: {text}");

    // status: the counters match what was sent and delivered.
    let st = s.daemon.ctl_json(&["status"]);
    assert_eq!(st["type"], "status", "{st}");
    let total = (FAST + SLOW + HELD) as u64;
    assert_eq!(st["received"].as_u64(), Some(total), "{st:#}");
    assert_eq!(
        st["delivered"].as_u64(),
        Some(s.sink.count() as u64),
        "{st:#}"
    );
    assert_eq!(st["delivered"].as_u64(), Some(FAST as u64), "{st:#}");
    assert_eq!(st["deferred"].as_u64(), Some(SLOW as u64), "{st:#}");
    assert_eq!(st["bounced"].as_u64(), Some(0), "{st:#}");
    assert_eq!(st["expired"].as_u64(), Some(0), "{st:#}");
    assert_eq!(st["queued_delayed"].as_u64(), Some(SLOW as u64), "{st:#}");
    assert_eq!(
        st["messages_live"].as_u64(),
        Some((SLOW + HELD) as u64),
        "{st:#}"
    );
    assert_eq!(st["domains"].as_u64(), Some(3), "{st:#}");
    // Connections in and out are those open now: the two idle sessions (the one that
    // sent the mail has quit), and at least the connection waiting for held.test.
    assert_eq!(
        st["connections_in"].as_u64(),
        Some(s.client_addrs.len() as u64),
        "{st:#}"
    );
    assert!(st["connections_out"].as_u64().unwrap() >= 1, "{st:#}");
    assert!(!st["version"].as_str().unwrap().is_empty(), "{st:#}");

    let text = s.ctl_ok(&["status"]);
    let field = |name: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} line:\n{text}"));
        line[name.len()..].trim().to_string()
    };
    assert_eq!(field("received"), total.to_string(), "{text}");
    assert_eq!(field("delivered"), FAST.to_string(), "{text}");
    assert_eq!(field("deferred"), SLOW.to_string(), "{text}");

    // Once the connections to the sink have lingered idle and quit, only the one waiting
    // for held.test's greeting is open.
    let outbound = || by_class(&actors(&s.daemon), "outbound").len();
    wait_until(
        WAIT,
        "the idle connections to the sink to quit",
        || outbound() == 1 && s.sink.connections_open() == 0,
        || {
            format!(
                "{} outbound actors, {} sink connections still open",
                outbound(),
                s.sink.connections_open()
            )
        },
    );
    let st = s.daemon.ctl_json(&["status"]);
    assert_eq!(st["connections_out"].as_u64(), Some(1), "{st:#}");
    assert_eq!(
        st["connections_in"].as_u64(),
        Some(s.client_addrs.len() as u64),
        "{st:#}"
    );
}
