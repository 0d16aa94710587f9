//! Per-domain rate limits end to end, seen at a recording sink.
//!
//! - `throttle: "10/s"`: 30 messages queued at once reach the sink no faster than
//!   10 per second (plus the burst of one), and all of them arrive.
//! - `connection_throttle: "4/s"` with one message per connection: new connections are
//!   spaced out the same way.
//!
//! Both check lower bounds on elapsed time (a limit that is not applied fails them), not
//! speed: the upper bounds are generous waits.

mod common;

use std::time::Duration;

use common::relay::relay;
use impulse_source::SourceConfig;

fn load(addr: std::net::SocketAddr, n: usize) {
    let report = impulse_source::run(SourceConfig {
        addr,
        messages: n,
        size: 256,
        sessions: 4,
        per_session: 0,
        ..Default::default()
    });
    assert_eq!(report.sent_ok, n, "{:?}", report.first_error);
}

#[test]
fn throttle_spaces_messages_at_the_rate() {
    let (_tmp, sink, d) = relay(r#"domains: { "*": (throttle: "10/s", max_connections: 4) },"#);
    load(d.smtp, 30);
    assert!(
        sink.wait_for(30, Duration::from_secs(60)),
        "every message arrives: {}\n{}",
        sink.count(),
        d.stderr()
    );
    let mut at: Vec<_> = sink.messages().iter().map(|m| m.received_at).collect();
    at.sort();
    let spread = at[29].duration_since(at[0]);
    // 30 messages at 10/s with a burst of 1: the 30th no sooner than 2.9 s after the
    // first; a little slack for clock granularity.
    assert!(
        spread >= Duration::from_millis(2800),
        "30 messages in {spread:?} under a 10/s throttle"
    );
    // And no second of the run saw more than 10 + the burst.
    for (i, t) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
            .count();
        assert!(
            within <= 11,
            "{within} messages within one second from #{i}"
        );
    }
}

#[test]
fn connection_throttle_spaces_new_connections() {
    let (_tmp, sink, d) = relay(
        r#"domains: { "*": (connection_throttle: "4/s", max_connections: 8, max_messages_per_connection: 1) },"#,
    );
    load(d.smtp, 9);
    assert!(sink.wait_for(9, Duration::from_secs(60)), "{}", d.stderr());
    let mut at: Vec<_> = sink.messages().iter().map(|m| m.received_at).collect();
    at.sort();
    assert!(sink.connections_total() >= 9, "one message per connection");
    let spread = at[8].duration_since(at[0]);
    // 9 connections at 4/s, burst 1: the 9th opens no sooner than 2 s after the first.
    assert!(
        spread >= Duration::from_millis(1900),
        "9 connections in {spread:?} under a 4/s connection throttle"
    );
}
