//! Test harness shared by the end-to-end scenarios (one scenario per file in `tests/`).
//!
//! [`Daemon`] starts the real `impulsed` binary on port 0 with a config written into a
//! temporary directory, waits for `ready` on stderr and parses the `listening on` line;
//! it runs `impulsectl` against the daemon's control socket and reads its message log.
//! [`poll`] and [`wait_until`] are the one way a test waits for something: a condition
//! polled with a deadline, never a bare sleep. The submodules hold the rest, the first
//! three re-exported here: [`client`] the byte-level SMTP client, [`log`] the message-log
//! record helpers, [`relay`] the sink, source and next-hop helpers of relaying scenarios;
//! and, for one family of scenarios each, [`abuse`] the strict client and checks of the
//! bad-input scenarios, [`ctl`] the busy daemon the `impulsectl` scenarios inspect,
//! [`delivery`] the message sending of the delivery scenarios, [`http`] the HTTP client
//! and metrics parser of the HTTP scenarios, [`tls`] the certificate and TLS client of the
//! inbound TLS and AUTH scenarios. Everything stays on
//! loopback.

#![allow(dead_code, unused_imports)]

pub mod abuse;
pub mod client;
pub mod ctl;
pub mod delivery;
pub mod http;
pub mod log;
pub mod relay;
pub mod tls;

pub use client::{expect, RawClient};
pub use relay::{relay, relay_with, wait_for_rcpt, ClosedPort};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of the `impulsed` binary cargo built for these tests.
pub fn impulsed_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_impulsed"))
}

/// Path of the `impulsectl` binary cargo built for these tests.
pub fn impulsectl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_impulsectl"))
}

/// Run `impulsectl ARGS` in `cwd` with `IMPULSE_SOCKET` unset (so it uses its default
/// socket, `impulse-data/control.sock` relative to `cwd`, unless ARGS name one).
pub fn impulsectl_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(impulsectl_bin())
        .env_remove("IMPULSE_SOCKET")
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run impulsectl")
}

/// A temporary directory whose name starts with `prefix` (easier to trace in /tmp).
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// Nanoseconds since the epoch: a cheap unique-enough suffix for Message-IDs.
pub fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Call `f` every 20 ms until it returns `Some`, and return that; panic with `what` and
/// `detail()` after `timeout`.
#[track_caller]
pub fn poll<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    detail: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                detail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `pred` every 20 ms until it holds; panic with `what` and `detail()` after
/// `timeout`.
#[track_caller]
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut() -> bool,
    detail: impl FnOnce() -> String,
) {
    poll(timeout, what, || pred().then_some(()), detail)
}

/// A config for a test: data under `dir`, one listener on port 0, everything routed to
/// `route` (if given), plus `extra` RON fields (each ending with a comma). Unless `extra`
/// names its own `dns`, DNS goes to a closed loopback port: a test never asks a name
/// server off this machine.
pub fn config(dir: &Path, route: Option<SocketAddr>, extra: &str) -> String {
    let routes = match route {
        Some(addr) => format!("routes: {{ \"*\": \"{addr}\" }},"),
        None => String::new(),
    };
    let dns = if extra.contains("dns:") {
        ""
    } else {
        "dns: (servers: [\"127.0.0.1:9\"]),"
    };
    format!(
        "(\n    data_dir: \"{}\",\n    listeners: [(address: \"127.0.0.1:0\")],\n    {routes}\n    {dns}\n    {extra}\n)\n",
        dir.join("data").display()
    )
}

/// A running `impulsed`.
pub struct Daemon {
    child: Option<Child>,
    /// The SMTP listener's real address.
    pub smtp: SocketAddr,
    /// The HTTP endpoint's address, when the config has `http`.
    pub http: Option<SocketAddr>,
    /// The directory holding `impulse.ron` and `data/`.
    pub dir: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Write `config_text` to `dir/impulse.ron`, start impulsed on it and wait for `ready`.
    pub fn start(dir: &Path, config_text: &str) -> Daemon {
        Daemon::start_with_env(dir, config_text, &[])
    }

    /// [`Daemon::start`] with extra environment variables for the daemon (e.g. the
    /// debug-only fault hook `IMPULSE_FAULT`).
    pub fn start_with_env(dir: &Path, config_text: &str, env: &[(&str, &str)]) -> Daemon {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("impulse.ron");
        std::fs::write(&path, config_text).unwrap();
        let mut child = Command::new(impulsed_bin())
            .envs(env.iter().copied())
            .arg("--config")
            .arg(&path)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start impulsed");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line.clone());
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut smtp = None;
        let mut http = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        smtp.get_or_insert(addr.trim().parse().expect("listen address"));
                    }
                    if let Some(addr) = line.strip_prefix("http listening on ") {
                        http = Some(addr.trim().parse().expect("http address"));
                    }
                    if line == "ready" {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "impulsed did not become ready; stderr:\n{}",
                        lines.lock().unwrap().join("\n")
                    );
                }
            }
        }
        Daemon {
            child: Some(child),
            smtp: smtp.expect("a listening line before ready"),
            http,
            dir: dir.to_path_buf(),
            stderr: lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("data").join("control.sock")
    }

    /// Everything impulsed printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Run `impulsectl --socket <ours> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(impulsectl_bin())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run impulsectl")
    }

    /// `impulsectl --json ARGS`, parsed.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert!(
            out.status.success(),
            "impulsectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("impulsectl --json prints JSON")
    }

    /// Every record in the message log so far.
    pub fn log_records(&self) -> Vec<serde_json::Value> {
        let path = self.dir.join("data").join("logs").join("impulse.log");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait until `pred` holds for the log records (or panic after `timeout`).
    pub fn wait_for_log(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.log_records();
            if pred(&records) {
                return records;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; log:\n{records:#?}\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until `status` shows `n` inbound SMTP sessions.
    pub fn wait_sessions(&self, n: u64, timeout: Duration) {
        wait_until(
            timeout,
            &format!("{n} inbound sessions to be registered (status connections_in)"),
            || self.ctl_json(&["status"])["connections_in"] == n,
            || format!("{:#}", self.ctl_json(&["status"])),
        );
    }

    /// Wait until the spool holds no live message and nothing is in flight (status
    /// `messages_live == 0 && in_flight == 0`): everything accepted so far has been
    /// delivered or bounced, and nothing more will reach a next hop.
    pub fn wait_spool_empty(&self, timeout: Duration) {
        let last = std::cell::RefCell::new(serde_json::Value::Null);
        wait_until(
            timeout,
            "the spool to empty (status messages_live == 0 and in_flight == 0)",
            || {
                let s = self.ctl_json(&["status"]);
                let done = s["messages_live"] == 0 && s["in_flight"] == 0;
                *last.borrow_mut() = s;
                done
            },
            || {
                format!(
                    "last status: {:#}\nstderr:\n{}",
                    last.borrow(),
                    self.stderr()
                )
            },
        );
    }

    /// SIGTERM the daemon (it keeps running until it exits by itself; see
    /// [`Daemon::wait_exit`]).
    pub fn sigterm(&self) {
        let pid = self.pid();
        assert!(pid > 0);
        // SAFETY: signalling the child we started.
        let r = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (at most `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        wait_timeout(&mut c, timeout)
    }

    /// Wait for the process to exit by itself (e.g. after `impulsectl shutdown`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        wait_timeout(&mut c, timeout)
    }
}

/// Wait (at most `timeout`) for `c` to exit; kill it and panic if it does not.
pub fn wait_timeout(c: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("impulsed did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
