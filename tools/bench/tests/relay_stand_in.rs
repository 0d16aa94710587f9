//! The whole harness — sink, config, daemon start, source, delivery wait, report, SIGTERM
//! — run against the built-in stand-in relay instead of impulsed.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn relay_run_against_the_stand_in_reports_no_loss() {
    let bench = env!("CARGO_BIN_EXE_impulse-bench");
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("impulsed");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nexec '{bench}' stand-in \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(bench)
        .args(["relay", "--impulsed"])
        .arg(&fake)
        .args([
            "--messages",
            "600",
            "--size",
            "900",
            "--sessions",
            "3",
            "--timeout",
            "30s",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["messages"], 600);
    assert_eq!(report["accepted"], 600, "{report} {stderr}");
    assert_eq!(report["delivered"], 600);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert_eq!(report["unexpected"], 0);
    assert!(report["accepted_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["delivered_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["peak_rss_kib"].as_u64().unwrap() > 0);
}
