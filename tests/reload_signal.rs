//! SIGHUP does not kill the daemon (its default action would): impulsed reads its
//! configuration file again and puts it in force as a new generation, or reports every
//! error of a broken file and keeps the running generation — and goes on serving.

mod common;

use std::time::Duration;

use common::{config, wait_until, Daemon};

fn hup(d: &Daemon) {
    let rc = unsafe { libc::kill(d.pid(), libc::SIGHUP) };
    assert_eq!(rc, 0);
}

#[test]
fn sighup_reports_and_the_daemon_keeps_running() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &config(tmp.path(), None, ""));
    hup(&d);
    wait_until(
        Duration::from_secs(20),
        "the reload report",
        || d.stderr().contains("reload (SIGHUP)"),
        || d.stderr(),
    );
    assert!(
        d.stderr()
            .contains("reload (SIGHUP): configuration generation 2 in force"),
        "{}",
        d.stderr()
    );
    assert_eq!(d.ctl_json(&["status"])["config_generation"], 2);

    // A broken file: refused with its position, and the daemon still answers.
    std::fs::write(
        tmp.path().join("impulse.ron"),
        "(listeners: [(adress: \"x\")])",
    )
    .unwrap();
    hup(&d);
    wait_until(
        Duration::from_secs(20),
        "the refusal",
        || d.stderr().contains("refused"),
        || d.stderr(),
    );
    assert!(d.stderr().contains("impulse.ron:1:"), "{}", d.stderr());
    assert_eq!(d.ctl_json(&["status"])["type"], "status");
    assert_eq!(d.ctl_json(&["status"])["config_generation"], 2);
    assert!(
        std::net::TcpStream::connect(d.smtp).is_ok(),
        "still serving SMTP"
    );
}
