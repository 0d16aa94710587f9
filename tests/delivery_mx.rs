//! Delivery by MX lookup, end to end: the real daemon asks a real DNS server on loopback
//! (hickory-server, `impulse-dns`) and delivers to recording sinks on 127.0.0.x, all on
//! one port (`delivery.port`).
//!
//! - MX preference order; the preferred exchanger refusing connections → the next one,
//!   in the same attempt (no TransientFailure, attempts 1).
//! - no MX records → the domain's own address (implicit MX).
//! - null MX → Bounce `5.1.10` without a connection; NXDOMAIN → Bounce `5.1.2`.
//! - SERVFAIL → TransientFailure `4.4.3`, then delivered once DNS answers (attempts 2).
//! - answers are cached: many messages, one MX query.
//! - a static route's host name is resolved too.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::delivery::{send, LOG_WAIT};
use common::log::{code, enhanced, has, of_type, text};
use common::{config, Daemon};
use impulse_dns::{DnsServer, Zone};
use impulse_sink::{Sink, SinkConfig};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A sink on `127.0.0.LAST:port` (port 0: any).
fn sink_at(last: u8, port: u16) -> Sink {
    Sink::start(SinkConfig {
        addr: SocketAddr::from((ip(last), port)),
        ..SinkConfig::default()
    })
    .expect("a sink on 127.0.0.x")
}

/// The daemon, told to ask `dns` and to deliver to MX hosts on `port`.
fn daemon(dir: &std::path::Path, dns: &DnsServer, port: u16, extra: &str) -> Daemon {
    let extra = format!(
        "dns: (servers: [\"{}\"]),\n    delivery: (port: {port}),\n    \
         domains: {{ \"*\": (retry_interval: \"1s\", max_retry_interval: \"1s\") }},\n    {extra}",
        dns.addr()
    );
    Daemon::start(dir, &config(dir, None, &extra))
}

#[test]
fn mx_preference_then_fallback_within_one_attempt() {
    // mx1 (preferred) has nothing listening; mx2 takes the mail. `pref` has two MXs that
    // both work: only the preferred one may see mail.
    let good = sink_at(3, 0);
    let port = good.addr().port();
    let other = sink_at(4, port);
    let zone = Zone::new()
        .mx("fallback.test", 10, "mx1.fallback.test")
        .mx("fallback.test", 20, "mx2.fallback.test")
        .a("mx1.fallback.test", ip(2))
        .a("mx2.fallback.test", ip(3))
        .mx("pref.test", 20, "b.pref.test")
        .mx("pref.test", 10, "a.pref.test")
        .a("a.pref.test", ip(3))
        .a("b.pref.test", ip(4));
    let dns = DnsServer::start(zone).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &dns, port, "");

    send(d.smtp, &["user@fallback.test"], "fallback\r\n");
    for i in 0..5 {
        send(d.smtp, &[&format!("u{i}@pref.test")], "preferred\r\n");
    }
    let records = d.wait_for_log(LOG_WAIT, "six deliveries", |r| {
        of_type(r, "Delivery", None).len() == 6
    });
    assert!(
        of_type(&records, "TransientFailure", None).is_empty(),
        "a refused MX followed by a working one is not a deferral: {records:#?}"
    );
    let delivery = &of_type(&records, "Delivery", Some("user@fallback.test"))[0];
    assert_eq!(delivery["attempts"], 1, "{delivery}");
    assert_eq!(delivery["peer"], format!("127.0.0.3:{port}"), "{delivery}");
    assert_eq!(
        good.count(),
        6,
        "mx2 of fallback.test and a.pref.test are this sink"
    );
    assert_eq!(
        other.count(),
        0,
        "the less preferred MX of pref.test saw nothing"
    );
    assert_eq!(
        dns.queries("pref.test", "MX"),
        1,
        "five messages, one MX query: answers are cached"
    );
}

#[test]
fn no_mx_means_the_domain_itself() {
    let sink = sink_at(5, 0);
    let port = sink.addr().port();
    let dns = DnsServer::start(Zone::new().a("implicit.test", ip(5))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &dns, port, "");

    send(d.smtp, &["user@implicit.test"], "implicit MX\r\n");
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@implicit.test")
    });
    assert!(sink.wait_for(1, Duration::from_secs(10)));
    assert_eq!(sink.messages()[0].recipients, vec!["user@implicit.test"]);
}

#[test]
fn null_mx_and_nxdomain_bounce_without_a_connection() {
    let sink = sink_at(6, 0);
    let port = sink.addr().port();
    let zone = Zone::new()
        .null_mx("nomail.test")
        .a("nomail.test", ip(6))
        .a("exists.test", ip(6));
    let dns = DnsServer::start(zone).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &dns, port, "");

    send(d.smtp, &["user@nomail.test"], "null MX\r\n");
    send(d.smtp, &["user@gone.test"], "no such domain\r\n");
    let records = d.wait_for_log(LOG_WAIT, "two Bounce records", |r| {
        has(r, "Bounce", "user@nomail.test") && has(r, "Bounce", "user@gone.test")
    });
    let null = of_type(&records, "Bounce", Some("user@nomail.test"))[0];
    assert_eq!((code(null), enhanced(null)), (556, "5.1.10"), "{null}");
    let nx = of_type(&records, "Bounce", Some("user@gone.test"))[0];
    assert_eq!((code(nx), enhanced(nx)), (550, "5.1.2"), "{nx}");
    assert!(text(nx).contains("gone.test"), "{nx}");
    assert!(of_type(&records, "TransientFailure", None).is_empty());
    d.wait_spool_empty(LOG_WAIT);
    assert_eq!(
        sink.connections_total(),
        0,
        "no connection for a domain with no mail"
    );
}

#[test]
fn servfail_defers_then_delivers() {
    let sink = sink_at(7, 0);
    let port = sink.addr().port();
    let zone = Zone::new()
        .mx("flaky.test", 10, "mx.flaky.test")
        .a("mx.flaky.test", ip(7))
        .servfail("flaky.test", usize::MAX);
    let dns = DnsServer::start(zone).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &dns, port, "");

    send(d.smtp, &["user@flaky.test"], "after a SERVFAIL\r\n");
    let records = d.wait_for_log(LOG_WAIT, "a TransientFailure", |r| {
        has(r, "TransientFailure", "user@flaky.test")
    });
    let tf = of_type(&records, "TransientFailure", Some("user@flaky.test"))[0];
    assert_eq!((code(tf), enhanced(tf)), (451, "4.4.3"), "{tf}");
    assert_eq!(sink.count(), 0);

    dns.zone(|z| z.servfail("flaky.test", 0));
    let records = d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@flaky.test")
    });
    let delivery = of_type(&records, "Delivery", Some("user@flaky.test"))[0];
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    assert_eq!(sink.count(), 1);
}

#[test]
fn a_route_host_name_is_resolved() {
    let sink = sink_at(8, 0);
    let port = sink.addr().port();
    let dns = DnsServer::start(Zone::new().a("smarthost.test", ip(8))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let routes = format!("routes: {{ \"routed.test\": \"smarthost.test:{port}\" }},");
    // The route wins over DNS: routed.test itself has no records at all.
    let d = daemon(tmp.path(), &dns, 9, &routes);

    send(d.smtp, &["user@routed.test"], "through the smarthost\r\n");
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@routed.test")
    });
    assert_eq!(sink.count(), 1);
    assert_eq!(
        dns.queries("routed.test", "MX"),
        0,
        "a route bypasses MX lookup"
    );
}

#[test]
fn domains_with_the_same_mx_share_connections_and_limits() {
    // Two domains, one provider: with max_connections 1 the site never has two
    // connections open, and the second domain's mail rides the first one's connection.
    let sink = sink_at(9, 0);
    let port = sink.addr().port();
    let zone = Zone::new()
        .mx("one.test", 10, "mx.provider.test")
        .mx("two.test", 10, "mx.provider.test")
        .a("mx.provider.test", ip(9));
    let dns = DnsServer::start(zone).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!(
        "dns: (servers: [\"{}\"]),\n    delivery: (port: {port}),\n    \
         domains: {{ \"*\": (max_connections: 1) }},",
        dns.addr()
    );
    let d = Daemon::start(tmp.path(), &config(tmp.path(), None, &extra));
    for i in 0..4 {
        send(d.smtp, &[&format!("a{i}@one.test")], "one\r\n");
    }
    assert!(sink.wait_for(4, Duration::from_secs(30)), "{}", d.stderr());
    for i in 0..4 {
        send(d.smtp, &[&format!("b{i}@two.test")], "two\r\n");
    }
    assert!(sink.wait_for(8, Duration::from_secs(30)), "{}", d.stderr());
    assert_eq!(
        sink.max_concurrent_connections(),
        1,
        "the site's connections count across its domains"
    );
    assert_eq!(
        sink.connections_total(),
        1,
        "two.test's mail took one.test's idle connection"
    );
    // Still one queue row per domain.
    let q = d.ctl_json(&["queues"]);
    let names: Vec<&str> = q["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["domain"].as_str())
        .collect();
    assert!(
        names.contains(&"one.test") && names.contains(&"two.test"),
        "{q:#}"
    );
}

#[test]
fn impulsectl_domain_shows_limits_hops_and_backoff() {
    let good = sink_at(12, 0);
    let port = good.addr().port();
    let zone = Zone::new()
        .mx("shown.test", 10, "mx1.shown.test")
        .mx("shown.test", 20, "mx2.shown.test")
        .a("mx1.shown.test", ip(13))
        .a("mx2.shown.test", ip(12));
    let dns = DnsServer::start(zone).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &dns, port, "");
    send(d.smtp, &["user@shown.test"], "shown\r\n");
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "user@shown.test")
    });
    let v = d.ctl_json(&["domain", "shown.test"]);
    assert_eq!(v["type"], "domain", "{v:#}");
    assert_eq!(v["domain"], "shown.test");
    assert_eq!(v["max_connections"], 32, "{v:#}");
    assert_eq!(v["delay_warning"], "4h", "{v:#}");
    assert_eq!(v["next_hops_from"], "mx", "{v:#}");
    let hops: Vec<(String, u64)> = v["next_hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_string(),
                h["preference"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hops,
        vec![
            ("mx1.shown.test".to_string(), 10),
            ("mx2.shown.test".to_string(), 20)
        ],
        "{v:#}"
    );
    assert!(v["state"].is_string());
    let text = d.ctl(&["domain", "shown.test"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("mx2.shown.test") && text.contains("127.0.0.12"),
        "{text}"
    );
    let missing = d.ctl(&["domain", "nowhere.test"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
}
