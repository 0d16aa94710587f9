//! `impulsectl reload`: the configuration file put in force as a new generation while
//! mail flows. A raised `max_connections` lets the next hop see more concurrent
//! connections for new work; listeners and the HTTP endpoint are added and removed; the
//! blocking pool changes size; a broken file is refused with its FILE:LINE:COL and the
//! running generation keeps delivering.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::delivery::{send, LOG_WAIT};
use common::log::{has, of_type};
use common::{config, wait_until, Daemon, RawClient};
use impulse_sink::{Sink, SinkConfig};
use impulse_source::SourceConfig;

/// Rewrite the daemon's config file and ask for a reload.
fn reload(d: &Daemon, text: &str) -> std::process::Output {
    std::fs::write(d.dir.join("impulse.ron"), text).unwrap();
    d.ctl(&["reload"])
}

/// Queue `n` messages for example.com while it is suspended, then let them go at once.
fn burst(d: &Daemon, sink: &Sink, n: usize) {
    assert!(d.ctl(&["suspend", "example.com"]).status.success());
    let before = sink.count();
    let report = impulse_source::run(SourceConfig {
        addr: d.smtp,
        messages: n,
        size: 512,
        sessions: 4,
        per_session: n.div_ceil(4),
        recipient_domain: "example.com".into(),
        ..Default::default()
    });
    assert_eq!(report.sent_ok, n, "{report:?}");
    assert!(d.ctl(&["resume", "example.com"]).status.success());
    assert!(
        sink.wait_for(before + n, Duration::from_secs(120)),
        "sink has {} of {}",
        sink.count(),
        before + n
    );
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_raised_max_connections_opens_more_connections_for_new_work() {
    let tmp = common::tempdir("reload-conns");
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let with = |n: usize| {
        config(
            tmp.path(),
            Some(sink.addr()),
            &format!(r#"domains: {{ "*": (max_connections: {n}) }},"#),
        )
    };
    let d = Daemon::start(tmp.path(), &with(1));
    burst(&d, &sink, 100);
    assert_eq!(sink.max_concurrent_connections(), 1);
    assert_eq!(d.ctl_json(&["domain", "example.com"])["max_connections"], 1);

    let out = reload(&d, &with(4));
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("configuration generation 2 in force"),
        "{said}"
    );
    assert_eq!(d.ctl_json(&["status"])["config_generation"], 2);
    assert_eq!(d.ctl_json(&["domain", "example.com"])["max_connections"], 4);

    burst(&d, &sink, 200);
    let seen = sink.max_concurrent_connections();
    assert!(
        (2..=4).contains(&seen),
        "{seen} concurrent connections after raising max_connections to 4"
    );
    d.wait_for_log(LOG_WAIT, "300 deliveries", |r| {
        of_type(r, "Delivery", None).len() >= 300
    });
}

#[test]
fn a_broken_file_is_refused_with_its_position_and_mail_keeps_flowing() {
    let tmp = common::tempdir("reload-broken");
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let good = config(tmp.path(), Some(sink.addr()), "");
    let d = Daemon::start(tmp.path(), &good);

    let broken = good.replace("listeners:", "listeners: [(adress: \"x\")], listenerz:");
    let out = reload(&d, &broken);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("impulse.ron:"), "no FILE:LINE:COL in {why}");
    assert!(why.contains("reload refused"), "{why}");
    assert_eq!(d.ctl_json(&["status"])["config_generation"], 1);

    // A file that parses but names a DKIM key that does not exist: refused too.
    let bad_key = config(
        tmp.path(),
        Some(sink.addr()),
        r#"dkim: { "example.net": (selector: "s1", key: "/nonexistent/key.pem") },"#,
    );
    let out = reload(&d, &bad_key);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/key.pem"));

    send(
        d.smtp,
        &["still@example.com"],
        "the old generation delivers\r\n",
    );
    d.wait_for_log(LOG_WAIT, "the Delivery", |r| {
        has(r, "Delivery", "still@example.com")
    });
    assert_eq!(d.ctl_json(&["status"])["config_generation"], 1);
}

#[test]
fn listeners_http_and_pools_change_online() {
    let tmp = common::tempdir("reload-listeners");
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(sink.addr()), ""));
    let (extra, http) = (free_port(), free_port());

    let grown = config(tmp.path(), Some(sink.addr()), &format!("http: (address: \"{http}\"), pools: (blocking: 3),"))
        .replace(
            "listeners: [(address: \"127.0.0.1:0\")]",
            &format!("listeners: [(address: \"127.0.0.1:0\"), (address: \"{extra}\", hostname: \"second.test\")]"),
        );
    let out = reload(&d, &grown);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("listening on {extra}")), "{said}");
    assert!(
        said.contains(&format!("http listening on {http}")),
        "{said}"
    );

    // The new listener speaks SMTP with its own name, and its mail is delivered.
    let mut c = RawClient::connect(extra);
    let (code, ehlo) = c.cmd("EHLO client.test");
    assert_eq!(code, 250);
    assert!(ehlo.starts_with("250-second.test"), "{ehlo}");
    drop(c);
    send(
        extra,
        &["via-new@example.com"],
        "through the new listener\r\n",
    );
    d.wait_for_log(LOG_WAIT, "its Delivery", |r| {
        has(r, "Delivery", "via-new@example.com")
    });
    assert_eq!(common::http::get(http, "/health").status, 200);
    let pools = d.ctl_json(&["pools"]);
    assert_eq!(pools["pools"][0]["threads"], 3, "{pools:#}");

    // And back: the listener and the endpoint close; the first listener stays.
    let out = reload(&d, &config(tmp.path(), Some(sink.addr()), ""));
    assert!(out.status.success(), "{out:?}");
    wait_until(
        Duration::from_secs(10),
        "the removed listener to close",
        || TcpStream::connect(extra).is_err() && TcpStream::connect(http).is_err(),
        || d.stderr(),
    );
    send(
        d.smtp,
        &["via-old@example.com"],
        "the first listener stays\r\n",
    );
    d.wait_for_log(LOG_WAIT, "its Delivery", |r| {
        has(r, "Delivery", "via-old@example.com")
    });
    assert_eq!(d.ctl_json(&["status"])["config_generation"], 3);
    assert_eq!(d.ctl_json(&["pools"])["pools"][0]["threads"], 4);
}

#[test]
fn a_listener_that_cannot_bind_refuses_the_reload() {
    let tmp = common::tempdir("reload-bind");
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), Some(sink.addr()), ""));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let text = config(tmp.path(), Some(sink.addr()), "").replace(
        "listeners: [(address: \"127.0.0.1:0\")]",
        &format!("listeners: [(address: \"127.0.0.1:0\"), (address: \"{busy}\")]"),
    );
    let out = reload(&d, &text);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("cannot listen on {busy}")),
        "{out:?}"
    );
    assert_eq!(d.ctl_json(&["status"])["config_generation"], 1);
}
