//! Test harness shared by the end-to-end scenarios (one scenario per file in `tests/`).
//!
//! [`Daemon`] starts the real `impulsed` binary on port 0 with a config written into a
//! temporary directory, waits for `ready` on stderr and parses the `listening on` line;
//! it runs `impulsectl` against the daemon's control socket and reads its message log.
//! [`RawClient`] speaks SMTP byte by byte for protocol-abuse scenarios. Everything stays
//! on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
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

/// A config for a test: data under `dir`, one listener on port 0, everything routed to
/// `route` (if given), plus `extra` RON fields (each ending with a comma).
pub fn config(dir: &Path, route: Option<SocketAddr>, extra: &str) -> String {
    let routes = match route {
        Some(addr) => format!("routes: {{ \"*\": \"{addr}\" }},"),
        None => String::new(),
    };
    format!(
        "(\n    data_dir: \"{}\",\n    listeners: [(address: \"127.0.0.1:0\")],\n    {routes}\n    {extra}\n)\n",
        dir.join("data").display()
    )
}

/// A running `impulsed`.
pub struct Daemon {
    child: Option<Child>,
    /// The SMTP listener's real address.
    pub smtp: SocketAddr,
    /// The directory holding `impulse.ron` and `data/`.
    pub dir: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Write `config_text` to `dir/impulse.ron`, start impulsed on it and wait for `ready`.
    pub fn start(dir: &Path, config_text: &str) -> Daemon {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("impulse.ron");
        std::fs::write(&path, config_text).unwrap();
        let mut child = Command::new(impulsed_bin())
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
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        smtp.get_or_insert(addr.trim().parse().expect("listen address"));
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

fn wait_timeout(c: &mut Child, timeout: Duration) -> ExitStatus {
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

/// A byte-level SMTP client for protocol scenarios.
pub struct RawClient {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawClient {
    /// Connect and read the greeting (asserting 220).
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = RawClient { stream, reader };
        let (code, text) = c.reply();
        assert_eq!(code, 220, "greeting: {text}");
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Read one (possibly multi-line) reply: its code and its lines joined by "\n".
    /// Code 0 means the server closed the connection.
    pub fn reply(&mut self) -> (u16, String) {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return (0, text.join("\n")),
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let last = line.as_bytes().get(3) != Some(&b'-');
            text.push(line);
            if last {
                return (code, text.join("\n"));
            }
        }
    }

    /// Send a command line (CRLF added) and read its reply.
    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Whether the server has closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}
