//! The relay benchmark harness (`impulse-bench`, used as a library) run end to end
//! against the real `impulsed` cargo built for these tests: impulse-source → impulsed →
//! impulse-sink on loopback. Small numbers, no speed assertions: it checks that the
//! harness measures a real run correctly and that nothing accepted is lost.

use std::path::PathBuf;
use std::time::Duration;

use impulse_bench::daemon::Daemon;
use impulse_bench::RelayOptions;

fn impulsed() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_impulsed"))
}

#[test]
fn relay_benchmark_against_impulsed_loses_nothing() {
    let opts = RelayOptions {
        messages: 300,
        size: 512,
        sessions: 4,
        timeout: Duration::from_secs(60),
        ..RelayOptions::new(impulsed())
    };
    let report = impulse_bench::run(&opts).expect("relay run");
    let text = format!("{report}\n{}", report.to_json());
    assert_eq!(report.m.messages, 300, "{text}");
    assert_eq!(report.m.accepted, 300, "{text}");
    assert_eq!(report.m.rejected + report.m.errors, 0, "{text}");
    assert_eq!(report.t.lost, 0, "{text}");
    assert_eq!(report.t.delivered, 300, "{text}");
    assert_eq!(report.t.unexpected, 0, "{text}");
    assert!(report.complete(), "{text}");
    // The measurements the benchmark reports are present.
    assert!(report.m.delivery_elapsed.is_some(), "{text}");
    assert!(
        report.cpu_us_per_message().is_some_and(|us| us > 0.0),
        "{text}"
    );
    assert!(report.accepted_per_sec() > 0.0, "{text}");
    assert!(report.delivered_per_sec() > 0.0, "{text}");
    assert!(report.m.peak_rss_kib.is_some_and(|k| k > 0), "{text}");
    assert!(text.contains("lost         0"), "{text}");
}

#[test]
fn relay_benchmark_over_starttls_loses_nothing() {
    let opts = RelayOptions {
        messages: 100,
        size: 512,
        sessions: 2,
        starttls: true,
        timeout: Duration::from_secs(60),
        ..RelayOptions::new(impulsed())
    };
    let report = impulse_bench::run(&opts).expect("relay run");
    let text = format!("{report}\n{}", report.to_json());
    assert_eq!(report.m.accepted, 100, "{text}");
    assert_eq!(report.m.rejected + report.m.errors, 0, "{text}");
    assert_eq!(report.t.lost, 0, "{text}");
    assert!(report.complete(), "{text}");
}

#[test]
fn harness_reports_impulsed_refusing_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.ron");
    std::fs::write(&cfg, "(\n    no_such_key: 1,\n)\n").unwrap();
    let err = Daemon::start(
        &impulsed(),
        &cfg,
        dir.path(),
        Duration::from_secs(30),
        false,
    )
    .err()
    .expect("impulsed must refuse the config")
    .to_string();
    assert!(err.contains("exited before ready"), "{err}");
    // impulsed's own FILE:LINE:COL reason is passed on.
    assert!(err.contains(&format!("{}:2:5", cfg.display())), "{err}");
}

#[test]
fn relay_benchmark_through_mx_lookup_and_tls_loses_nothing() {
    let opts = RelayOptions {
        messages: 200,
        size: 512,
        sessions: 4,
        timeout: Duration::from_secs(60),
        mx: true,
        tls: true,
        ..RelayOptions::new(impulsed())
    };
    let report = impulse_bench::run(&opts).expect("relay run");
    let text = format!("{report}\n{}", report.to_json());
    assert_eq!(report.t.delivered, 200, "{text}");
    assert_eq!(
        report.t.lost + report.t.duplicated + report.t.unexpected,
        0,
        "{text}"
    );
    assert!(report.complete(), "{text}");
}
