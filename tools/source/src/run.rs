//! The load run: `sessions` threads share one message counter; each claims the next
//! message number, (re)connects when needed, sends, and tallies the outcome. A connection
//! is closed with QUIT after `per_session` messages and reopened for the next one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::client::{Connection, Outcome};
use crate::message::{make_message, message_id};
use crate::{SourceConfig, SourceReport};

/// What one session thread saw.
#[derive(Default)]
struct Tally {
    sent_ok: usize,
    rejected: usize,
    errors: usize,
    accepted_ids: Vec<String>,
    first_error: Option<String>,
    first_rejection: Option<String>,
}

/// Send `cfg.messages` messages and report.
pub fn run(cfg: &SourceConfig) -> SourceReport {
    let run = new_run_id();
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let sessions = cfg.sessions.clamp(1, cfg.messages.max(1));
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..sessions)
            .map(|_| s.spawn(|| session(cfg, run, &next)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let elapsed = start.elapsed();
    let mut report = SourceReport {
        run,
        messages: cfg.messages,
        sent_ok: 0,
        rejected: 0,
        errors: 0,
        elapsed,
        accepted_ids: Vec::with_capacity(cfg.messages),
        first_error: None,
        first_rejection: None,
    };
    for t in tallies {
        report.sent_ok += t.sent_ok;
        report.rejected += t.rejected;
        report.errors += t.errors;
        report.accepted_ids.extend(t.accepted_ids);
        report.first_error = report.first_error.or(t.first_error);
        report.first_rejection = report.first_rejection.or(t.first_rejection);
    }
    report
}

fn session(cfg: &SourceConfig, run: u64, next: &AtomicUsize) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<Connection> = None;
    let mut on_conn = 0;
    let per_rcpt = cfg.recipients_per_message.max(1);
    let mut rcpts: Vec<String> = Vec::with_capacity(per_rcpt);
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= cfg.messages {
            break;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Connection::open(cfg.addr, cfg.pipelining, cfg.starttls.as_ref()) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    t.errors += 1;
                    t.first_error.get_or_insert_with(|| format!("connect: {e}"));
                    continue;
                }
            },
        };
        rcpts.clear();
        rcpts.extend(
            (0..per_rcpt).map(|i| format!("user{}@{}", n * per_rcpt + i, cfg.recipient_domain)),
        );
        let msg = make_message(n, run, cfg.size, &cfg.sender, &rcpts.join(">, <"));
        match c.send(&cfg.sender, &rcpts, &msg) {
            Ok(Outcome::Accepted) => {
                t.sent_ok += 1;
                t.accepted_ids.push(message_id(run, n));
            }
            Ok(Outcome::Rejected(reply)) => {
                t.rejected += 1;
                t.first_rejection.get_or_insert(reply.text);
            }
            Err(e) => {
                t.errors += 1;
                t.first_error.get_or_insert_with(|| e.to_string());
                conn = None;
                on_conn = 0;
                continue;
            }
        }
        on_conn += 1;
        if cfg.per_session > 0 && on_conn >= cfg.per_session {
            if let Some(c) = conn.take() {
                c.quit();
            }
            on_conn = 0;
        }
    }
    if let Some(c) = conn {
        c.quit();
    }
    t
}

/// A run id that differs between runs, processes and machines' clocks alike.
fn new_run_id() -> u64 {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) as u64;
    // Microseconds keep the id short; pid and a per-process sequence make it unique.
    (nanos / 1000)
        .wrapping_mul(1_000_003)
        .wrapping_add(u64::from(std::process::id()) << 8)
        .wrapping_add(seq)
        % 1_000_000_000_000
}
