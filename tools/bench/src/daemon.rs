//! The impulsed process under test: start it with stderr piped, wait for its
//! `listening on ADDR` and `ready` lines, read its peak RSS, stop it with SIGTERM.
//!
//! A reader thread drains stderr for the whole life of the process (a full pipe would
//! stall the daemon); it forwards lines until `ready`, then keeps only a short tail for
//! error reports (echoing every line when asked).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// Lines of stderr kept for error reports.
const TAIL: usize = 20;

/// A startup line impulsed prints on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// `listening on ADDR`.
    Listening(SocketAddr),
    /// `ready`.
    Ready,
}

/// Recognise a startup line (tolerating a log prefix before it).
pub fn parse_line(line: &str) -> Option<Startup> {
    let line = line.trim();
    if let Some(i) = line.find("listening on ") {
        let rest = &line[i + "listening on ".len()..];
        let token = rest.split_whitespace().next()?;
        let token = token.trim_end_matches([',', ';', '.', ')']);
        return token.parse().ok().map(Startup::Listening);
    }
    if line == "ready" || line.ends_with(" ready") || line.ends_with(":ready") {
        return Some(Startup::Ready);
    }
    None
}

/// `VmHWM` (peak resident set size) in KiB from the text of `/proc/PID/status`.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some("mB") => Some(value * 1024),
        _ => None,
    }
}

/// User plus system CPU time, in clock ticks, from the text of `/proc/PID/stat`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after
    // its closing one. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A started impulsed.
pub struct Daemon {
    child: Child,
    /// The first address it listens on.
    pub addr: SocketAddr,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Daemon {
    /// Start `binary --config config` in `dir` and wait (up to `timeout`) for its
    /// `listening on` and `ready` lines.
    pub fn start(
        binary: &Path,
        config: &Path,
        dir: &Path,
        timeout: Duration,
        echo: bool,
    ) -> anyhow::Result<Daemon> {
        // A relative path would be looked up from `dir` once the child has changed into it.
        let binary = &if binary.components().count() > 1 {
            std::fs::canonicalize(binary)
                .with_context(|| format!("finding {}", binary.display()))?
        } else {
            binary.to_path_buf()
        };
        let mut child =
            spawn(binary, config, dir).with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("impulsed stderr")?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL)));
        let (tx, rx) = mpsc::channel();
        {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || drain(stderr, tx, tail, echo));
        }
        let mut daemon = Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tail,
        };
        let deadline = Instant::now() + timeout;
        let mut addr = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Startup::Listening(a)) => {
                    addr.get_or_insert(a);
                }
                Ok(Startup::Ready) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = daemon.stop(Duration::from_secs(5));
                    bail!("impulsed not ready after {timeout:?}{}", daemon.tail_text());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // The reader hung up at EOF, after storing every line.
                    let status = daemon.child.wait()?;
                    bail!(
                        "impulsed exited before ready ({status}){}",
                        daemon.tail_text()
                    );
                }
            }
        }
        daemon.addr =
            addr.ok_or_else(|| anyhow!("impulsed said ready without a `listening on` line"))?;
        Ok(daemon)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size in KiB so far (`VmHWM`), if readable.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        parse_vm_hwm(&status)
    }

    /// CPU time (user + system) the process has used so far, if readable.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as u64 } else { 100 };
        parse_cpu_ticks(&stat).map(|t| Duration::from_micros(t * 1_000_000 / hz))
    }

    /// The last stderr lines, formatted for an error message (empty when none).
    pub fn tail_text(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!("; its last stderr lines:\n  {}", lines.join("\n  "))
    }

    /// SIGTERM, then wait up to `grace`; SIGKILL if it is still running.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let pid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        bail!("impulsed ignored SIGTERM for {grace:?} and was killed ({status})")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawn, retrying briefly on ETXTBSY (a freshly written executable whose descriptor a
/// concurrently forked process still holds).
fn spawn(binary: &Path, config: &Path, dir: &Path) -> std::io::Result<Child> {
    let mut attempt = 0;
    loop {
        let result = Command::new(binary)
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        match result {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

fn drain(
    stderr: impl std::io::Read,
    tx: mpsc::Sender<Startup>,
    tail: Arc<Mutex<VecDeque<String>>>,
    echo: bool,
) {
    let mut tx = Some(tx);
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end();
        if echo {
            eprintln!("impulsed: {line}");
        }
        {
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        }
        if let Some(sender) = &tx {
            if let Some(event) = parse_line(line) {
                let ready = event == Startup::Ready;
                let _ = sender.send(event);
                if ready {
                    tx = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_proc_stat() {
        let stat = "4242 (impulsed (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 37 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(187));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn startup_lines() {
        let a: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(
            parse_line("listening on 127.0.0.1:40123"),
            Some(Startup::Listening(a))
        );
        assert_eq!(
            parse_line("  listening on 127.0.0.1:40123\n"),
            Some(Startup::Listening(a))
        );
        assert_eq!(
            parse_line("2025-11-26T10:00:00Z INFO listening on [::1]:25"),
            Some(Startup::Listening("[::1]:25".parse().unwrap()))
        );
        assert_eq!(parse_line("ready"), Some(Startup::Ready));
        assert_eq!(parse_line("INFO ready"), Some(Startup::Ready));
        assert_eq!(parse_line("listening on nowhere"), None);
        assert_eq!(parse_line("already started"), None);
        assert_eq!(parse_line("spool recovered 0 messages"), None);
    }

    #[test]
    fn vm_hwm() {
        let status =
            "Name:\timpulsed\nVmPeak:\t  300000 kB\nVmHWM:\t   45312 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(45312));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        // Our own process has one.
        let me = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_vm_hwm(&me).unwrap() > 0);
    }
}
