//! The control socket answers only its own user (or root): its mode is 0600, and even with
//! the mode opened up a connection from another user is refused by its credentials
//! (SO_PEERCRED). Needs root and `setpriv` to act as another user; elsewhere it is skipped
//! with a printed reason.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{config, Daemon};

#[test]
fn another_user_is_refused_even_through_an_open_mode() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let tmp = common::tempdir("peer-user");
    let d = Daemon::start(tmp.path(), &config(tmp.path(), None, ""));
    let socket = d.socket();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the control socket is private");
    // Open every door but the credentials check.
    for p in [
        tmp.path().to_path_buf(),
        tmp.path().join("data"),
        socket.clone(),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let bin = common::impulsectl_bin();
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("--socket")
        .arg(&socket)
        .arg("status")
        .output()
        .unwrap();
    if String::from_utf8_lossy(&as_nobody.stderr).contains("Permission denied")
        && !String::from_utf8_lossy(&as_nobody.stderr).contains("impulsectl")
    {
        eprintln!("skipped: nobody cannot run {}", bin.display());
        return;
    }
    assert_eq!(as_nobody.status.code(), Some(2), "{as_nobody:?}");
    let err = String::from_utf8_lossy(&as_nobody.stderr);
    assert!(
        !err.contains("Permission denied (os error 13)"),
        "the mode stopped it, not the check: {err}"
    );
    // Its own user is still answered.
    assert_eq!(d.ctl_json(&["status"])["type"], "status");
}
