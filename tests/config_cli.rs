//! `impulsed`'s configuration front door: `--print-default-config`, `--check-config` with
//! `FILE:LINE:COL: message` diagnostics, and the exit codes and one-line reasons of a
//! daemon that cannot start (bad or missing file, listener address taken). Also that a
//! file with only `routes`, or just `()`, runs.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{impulsectl_in, impulsed_bin, wait_timeout, Daemon, RawClient};
use impulse_sink::{Sink, SinkConfig};

fn impulsed(args: &[&str], cwd: &Path) -> Output {
    Command::new(impulsed_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run impulsed")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `--check-config FILE`: exit code and stderr lines.
fn check(path: &Path) -> (Option<i32>, Vec<String>) {
    let out = impulsed(
        &["--check-config", path.to_str().unwrap()],
        path.parent().unwrap(),
    );
    let lines = text(&out.stderr).lines().map(str::to_string).collect();
    (out.status.code(), lines)
}

/// Write `config` to `dir/name` and `--check-config` it, asserting that it is refused
/// (exit 1); returns the file and the diagnostics.
#[track_caller]
fn check_refused(dir: &Path, name: &str, config: &str) -> (PathBuf, Vec<String>) {
    let path = write(dir, name, config);
    let (code, lines) = check(&path);
    assert_eq!(code, Some(1), "{lines:?}");
    (path, lines)
}

/// Write `config` to `dir/name` and `--check-config` it, asserting that it passes.
#[track_caller]
fn check_accepted(dir: &Path, name: &str, config: &str) {
    let path = write(dir, name, config);
    let (code, lines) = check(&path);
    assert_eq!(code, Some(0), "{lines:?}");
}

/// A diagnostic `FILE:LINE:COL: message` split into its parts (`None` if it has no
/// position).
fn position(line: &str, file: &Path) -> Option<(usize, usize, String)> {
    let rest = line.strip_prefix(&format!("{}:", file.display()))?;
    let mut parts = rest.splitn(3, ':');
    let l = parts.next()?.parse().ok()?;
    let c = parts.next()?.parse().ok()?;
    let msg = parts.next()?.strip_prefix(' ')?.to_string();
    Some((l, c, msg))
}

/// 1-based (line, column) of the first occurrence of `needle` in `text`.
fn find(text: &str, needle: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        if let Some(byte) = line.find(needle) {
            return (i + 1, line[..byte].chars().count() + 1);
        }
    }
    panic!("{needle:?} not in the config");
}

/// Assert `FILE:LINE:COL: message` at the value `needle` (its first character or the one
/// after, i.e. the opening quote or what it quotes), with `words` in the message.
fn assert_at(lines: &[String], file: &Path, config: &str, needle: &str, words: &[&str]) {
    let (want_line, want_col) = find(config, needle);
    let hit = lines.iter().find_map(|l| {
        position(l, file)
            .filter(|(line, col, _)| *line == want_line && (want_col..=want_col + 1).contains(col))
    });
    let Some((_, _, msg)) = hit else {
        panic!(
            "no diagnostic at {}:{want_line}:{want_col} ({needle}) in:\n{}",
            file.display(),
            lines.join("\n")
        );
    };
    for w in words {
        assert!(msg.contains(w), "{w:?} not in {msg:?}");
    }
}

#[test]
fn default_config_prints_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = impulsed(&["--print-default-config"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let default = text(&out.stdout);
    assert!(default.trim_start().contains('('), "{default}");
    for documented in [
        "data_dir",
        "\"impulse-data\"",
        "127.0.0.1:2525",
        "127.0.0.0/8",
        "pools",
    ] {
        assert!(
            default.contains(documented),
            "{documented} not in:\n{default}"
        );
    }
    let path = write(dir.path(), "default.ron", &default);
    let out = impulsed(&["--check-config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    // Printing twice gives the same text.
    let again = impulsed(&["--print-default-config"], dir.path());
    assert_eq!(text(&again.stdout), default);
}

#[test]
fn unknown_key_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = "(\n    routes: { \"*\": \"127.0.0.1:2526\" },\n    domains: {\n        \"example.com\": (max_conections: 5),\n    },\n)\n";
    let (path, lines) = check_refused(dir.path(), "typo.ron", config);
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(position(l, &path).is_some(), "not FILE:LINE:COL: {l:?}");
    }
    let (line, col) = find(config, "max_conections");
    let (l, c, msg) = position(&lines[0], &path).unwrap();
    assert_eq!((l, c), (line, col), "{}", lines[0]);
    assert!(msg.contains("max_conections"), "{msg}");
    assert!(
        msg.contains("max_connections"),
        "suggests the real key: {msg}"
    );

    // A misspelt top-level key too.
    let config = "(\n    listeners: [(address: \"127.0.0.1:0\")],\n    rutes: {},\n)\n";
    let (path, lines) = check_refused(dir.path(), "top.ron", config);
    let (line, col) = find(config, "rutes");
    let (l, c, msg) = position(&lines[0], &path).unwrap();
    assert_eq!((l, c), (line, col), "{lines:?}");
    assert!(msg.contains("rutes"), "{msg}");
}

#[test]
fn bad_values_are_positioned() {
    let dir = tempfile::tempdir().unwrap();

    // (file, config, the bad value, what the message must name)
    let cases = [
        (
            "duration.ron",
            "(\n    domains: {\n        \"*\": (retry_interval: \"5 parsecs\"),\n    },\n)\n",
            "\"5 parsecs\"",
            "5 parsecs",
        ),
        (
            "cidr.ron",
            "(\n    relay: (allow: [\"127.0.0.0/8\", \"10.0.0.0/33\"]),\n)\n",
            "\"10.0.0.0/33\"",
            "10.0.0.0/33",
        ),
        (
            "cidr2.ron",
            "(\n    relay: (allow: [\"not-an-address\"]),\n)\n",
            "\"not-an-address\"",
            "not-an-address",
        ),
    ];
    for (name, config, needle, word) in cases {
        let (path, lines) = check_refused(dir.path(), name, config);
        assert_at(&lines, &path, config, needle, &[word]);
    }

    // A route that is not host:port: reported at the route's line (its key or its value).
    let config = "(\n    routes: {\n        \"example.com\": \"mx.example.com\",\n    },\n)\n";
    let (path, lines) = check_refused(dir.path(), "route.ron", config);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (l, c, msg) = position(&lines[0], &path).expect("positioned");
    let (key_line, key_col) = find(config, "\"example.com\"");
    let (_, value_col) = find(config, "\"mx.example.com\"");
    assert_eq!(l, key_line, "{lines:?}");
    assert!(
        (key_col..=value_col + 1).contains(&c),
        "column {c} is not on the route: {lines:?}"
    );
    assert!(
        msg.contains("example.com") && msg.contains("host:port"),
        "{msg}"
    );

    // The same file given to --config: the daemon refuses to start, with the same reason.
    let out = impulsed(&["--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains(&lines[0]), "{err}");
    assert!(!err.lines().any(|l| l == "ready"), "{err}");
}

#[test]
fn every_semantic_error_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = "\
(
    listeners: [(address: \"127.0.0.1:0\")],
    routes: {
        \"a.example\": \"nohost\",
        \"b.example\": \"mx.b.example:99999\",
    },
    pools: (blocking: 0),
    domains: {
        \"*\": (max_connections: 0),
        \"c.example\": (retry_interval: \"5h\", max_retry_interval: \"1h\"),
    },
    smtp: (max_line_length: 80),
)
";
    let (path, lines) = check_refused(dir.path(), "many.ron", config);
    let expected = [
        ("\"a.example\"", "a.example"),
        ("\"b.example\"", "b.example"),
        ("blocking", "blocking"),
        ("max_connections", "max_connections"),
        ("\"c.example\"", "retry_interval"),
        ("max_line_length", "max_line_length"),
    ];
    assert_eq!(
        lines.len(),
        expected.len(),
        "one line per problem:\n{}",
        lines.join("\n")
    );
    let mut previous = (0, 0);
    for l in &lines {
        let (line, col, _) = position(l, &path).unwrap_or_else(|| panic!("not positioned: {l}"));
        assert!((line, col) > previous, "file order:\n{}", lines.join("\n"));
        previous = (line, col);
    }
    for (needle, word) in expected {
        let (want_line, _) = find(config, needle);
        assert!(
            lines.iter().any(|l| position(l, &path)
                .is_some_and(|(line, _, msg)| line == want_line && msg.contains(word))),
            "no diagnostic naming {word} on line {want_line}:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn missing_config_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = impulsed(&["--config", "missing.ron"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("missing.ron"), "{err}");
    let out = impulsed(&["--check-config", "missing.ron"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("missing.ron"), "{err}");
}

#[test]
fn taken_listener_address_fails_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = format!(
        "(\n    data_dir: \"{}\",\n    listeners: [(address: \"{addr}\")],\n)\n",
        dir.path().join("data").display()
    );
    let path = write(dir.path(), "taken.ron", &config);
    let mut child = Command::new(impulsed_bin())
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line:\n{err}");
    assert!(err.contains(&addr.to_string()), "names {addr}: {err}");
    assert!(!err.lines().any(|l| l == "ready"), "{err}");
    drop(taken);
}

/// The default listener is 127.0.0.1:2525: the tests that rely on it take turns, and wait
/// (bounded, briefly) until nothing else holds the port.
static DEFAULT_PORT: Mutex<()> = Mutex::new(());
const DEFAULT_ADDR: &str = "127.0.0.1:2525";

/// Start impulsed on `config` (which listens on the default address). When something
/// else holds 127.0.0.1:2525 (a local MTA, or impulsed started by the README), the
/// default-address assertion is skipped with a printed reason and the daemon runs on the
/// same config with its listener moved to port 0: the rest of the scenario still runs.
/// Returns the daemon and whether it is on the default address.
fn start_on_default_port(dir: &Path, config: &str) -> (Daemon, bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if TcpListener::bind(DEFAULT_ADDR).is_err() {
            if Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            eprintln!(
                "note: {DEFAULT_ADDR} is held by another process; skipping the \
                 default-address assertion and listening on port 0 instead"
            );
            let moved = with_listener_on_port_0(config);
            return (Daemon::start(dir, &moved), false);
        }
        let started =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Daemon::start(dir, config)));
        match started {
            Ok(d) => return (d, true),
            // Taken between the check and the daemon's bind: try again.
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .unwrap_or_default();
                if !why.contains(&format!("cannot listen on {DEFAULT_ADDR}")) {
                    std::panic::resume_unwind(e);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// `config` (a RON struct) with an explicit listener on 127.0.0.1:0 added.
fn with_listener_on_port_0(config: &str) -> String {
    let body = config.trim().trim_start_matches('(').trim_end_matches(')');
    format!("(\n    listeners: [(address: \"127.0.0.1:0\")],\n{body}\n)\n")
}

fn send_one(addr: SocketAddr, rcpt: &str) {
    let mut c = RawClient::connect(addr);
    c.ok("EHLO cfg.test", 250);
    c.open_data("a@cfg.test", &[rcpt]);
    c.end_data(b"Subject: only routes\r\n\r\nhi\r\n");
    c.ok("QUIT", 221);
}

#[test]
fn config_with_only_routes_relays() {
    let _turn = DEFAULT_PORT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkConfig::default()).unwrap();
    let config = format!("(\n    routes: {{ \"*\": \"{}\" }},\n)\n", sink.addr());
    check_accepted(dir.path(), "routes.ron", &config);

    let (mut daemon, on_default) = start_on_default_port(dir.path(), &config);
    if on_default {
        assert_eq!(daemon.smtp.to_string(), DEFAULT_ADDR);
    }
    send_one(daemon.smtp, "someone@example.com");
    assert!(
        sink.wait_for(1, Duration::from_secs(60)),
        "not relayed; stderr:\n{}",
        daemon.stderr()
    );
    assert_eq!(
        sink.messages()[0].recipients,
        vec!["someone@example.com".to_string()]
    );
    // The default data directory, relative to the working directory, holds the socket
    // impulsectl uses by default.
    assert!(dir
        .path()
        .join("impulse-data")
        .join("control.sock")
        .exists());
    let out = impulsectl_in(dir.path(), &["--json", "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["received"], 1, "{st}");

    let out = impulsectl_in(dir.path(), &["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(daemon.wait_exit(Duration::from_secs(60)).success());
}

#[test]
fn empty_config_runs_on_the_defaults() {
    let _turn = DEFAULT_PORT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    check_accepted(dir.path(), "empty.ron", "()\n");

    let (mut daemon, on_default) = start_on_default_port(dir.path(), "()\n");
    if on_default {
        assert_eq!(daemon.smtp.to_string(), DEFAULT_ADDR);
    }
    let mut c = RawClient::connect(daemon.smtp);
    c.ok("EHLO cfg.test", 250);
    c.ok("QUIT", 221);
    let out = impulsectl_in(dir.path(), &["--json", "pools"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        p["pools"][0]["threads"], 4,
        "the default pools.blocking: {p}"
    );

    let out = impulsectl_in(dir.path(), &["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(daemon.wait_exit(Duration::from_secs(60)).success());
}
