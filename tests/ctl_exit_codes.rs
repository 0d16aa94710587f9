//! `impulsectl`'s exit codes, `--json` and the `IMPULSE_SOCKET` variable against an idle
//! `impulsed`: 2 with a one-line reason when the control socket is unreachable (missing,
//! not a socket, or the daemon gone after `shutdown`), 1 with a one-line reason for an
//! unknown class, 0 with parseable JSON naming its response type for every command
//! (`--json` before or after the command); `IMPULSE_SOCKET` stands in for `--socket`,
//! which wins over it, and without either the default is `impulse-data/control.sock`
//! relative to the working directory.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{config, impulsectl_bin, impulsectl_in, Daemon};
use serde_json::Value;

fn ctl_raw(
    socket: &std::path::Path,
    env_socket: Option<&std::path::Path>,
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(impulsectl_bin());
    cmd.env_remove("IMPULSE_SOCKET");
    if let Some(e) = env_socket {
        cmd.env("IMPULSE_SOCKET", e);
    }
    if !socket.as_os_str().is_empty() {
        cmd.arg("--socket").arg(socket);
    }
    cmd.args(args).output().expect("run impulsectl")
}

fn one_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line of reason on stderr, got:\n{err}"
    );
    assert!(!err.trim().is_empty());
    err
}

#[test]
fn exit_codes_json_and_socket_variable() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &config(dir.path(), None, ""));
    let socket = daemon.socket();
    let none = std::path::Path::new("");

    // Unreachable: a socket that does not exist.
    let missing = dir.path().join("no-such-dir").join("control.sock");
    for args in [
        &["status"][..],
        &["--json", "tree"],
        &["memory"],
        &["pools"],
        &["queues"],
    ] {
        let out = ctl_raw(&missing, None, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = one_line(&out);
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    // Unreachable: a path that is not a socket.
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, "not a socket").unwrap();
    let out = ctl_raw(&plain, None, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    one_line(&out);

    // Usage errors: 64 (EX_USAGE), never 2 (which means unreachable); help is 0.
    for args in [
        &["no-such-command"][..],
        &["tree", "--no-such-flag"],
        &["tree", "--depth", "many"],
        &[],
    ] {
        let out = ctl_raw(&socket, None, args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
    }
    let out = ctl_raw(&socket, None, &["--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Unknown class: refused with exit 1 and a one-line reason.
    for args in [
        &["tree", "--class", "no-such-class"][..],
        &["--json", "tree", "--class", "no-such-class"],
        &["memory", "no-such-class"],
    ] {
        let out = ctl_raw(&socket, None, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = one_line(&out);
        assert!(err.contains("no-such-class"), "{err}");
    }

    // Every command's --json output parses and says which response it is.
    for (cmd, ty) in [
        ("status", "status"),
        ("tree", "tree"),
        ("memory", "memory"),
        ("pools", "pools"),
        ("queues", "queues"),
    ] {
        let out = ctl_raw(&socket, None, &["--json", cmd]);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{cmd} --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(v["type"], ty, "{v}");
        // --json is global: after the command as well.
        let after = ctl_raw(&socket, None, &[cmd, "--json"]);
        assert_eq!(after.status.code(), Some(0), "{cmd} --json: {after:?}");
        let v: Value = serde_json::from_slice(&after.stdout).expect("JSON after the command");
        assert_eq!(v["type"], ty, "{v}");
    }

    // IMPULSE_SOCKET instead of --socket.
    let out = ctl_raw(none, Some(&socket), &["--json", "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "status");
    let out = ctl_raw(none, Some(&socket), &["tree"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("root:impulsed #"));
    // --socket wins over the variable.
    let out = ctl_raw(&socket, Some(&missing), &["--json", "pools"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The variable pointing nowhere: unreachable.
    let out = ctl_raw(none, Some(&missing), &["status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(one_line(&out).contains(&missing.display().to_string()));
    // Neither: the default, impulse-data/control.sock relative to the working directory.
    let out = impulsectl_in(dir.path(), &["--json", "status"]);
    assert_eq!(out.status.code(), Some(2), "no impulse-data here: {out:?}");
    assert!(one_line(&out).contains("impulse-data/control.sock"));

    // After the daemon is gone the socket is unreachable.
    let mut daemon = daemon;
    let out = ctl_raw(&socket, None, &["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = daemon.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    let out = ctl_raw(&socket, None, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    one_line(&out);
}
