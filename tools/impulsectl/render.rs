//! Human-readable output of control responses: aligned tables, the actor tree, sizes.

use std::fmt::Write;

use impulse_runtime::alloc::MemoryReport;
use impulse_runtime::control::Response;
use impulse_runtime::ActorClass;

/// Bytes with a binary unit.
pub fn bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v.abs() >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

pub fn memory(report: &MemoryReport, only: Option<ActorClass>) -> String {
    let rows: Vec<Vec<String>> = report
        .classes
        .iter()
        .filter(|c| only.is_none_or(|o| o == c.class))
        .map(|c| {
            vec![
                c.class.to_string(),
                bytes(c.live_bytes),
                c.live_allocs.to_string(),
                c.total_allocs.to_string(),
                bytes(c.peak_bytes),
            ]
        })
        .collect();
    let mut out = table(
        &["CLASS", "LIVE", "LIVE ALLOCS", "TOTAL ALLOCS", "PEAK"],
        &rows,
    );
    let sum: i64 = report.classes.iter().map(|c| c.live_bytes).sum();
    let _ = writeln!(
        out,
        "total live {} ({} bytes) in {} allocations; sum of classes {} bytes{}",
        bytes(report.total_live_bytes),
        report.total_live_bytes,
        report.total_live_allocs,
        sum,
        if report.installed {
            ""
        } else {
            " (counting allocator not installed)"
        }
    );
    if let Some(rss) = report.rss_bytes {
        let _ = writeln!(out, "process resident set {}", bytes(rss as i64));
    }
    out
}

pub fn response(resp: &Response) -> String {
    match resp {
        Response::Status(s) => {
            let mut out = String::new();
            let rows = [
                ("version", s.version.clone()),
                ("uptime", format!("{}s", s.uptime_secs)),
                ("config generation", s.config_generation.to_string()),
                (
                    "connections in/out",
                    format!("{} / {}", s.connections_in, s.connections_out),
                ),
                ("received", s.received.to_string()),
                ("delivered", s.delivered.to_string()),
                ("deferred", s.deferred.to_string()),
                ("bounced", s.bounced.to_string()),
                ("expired", s.expired.to_string()),
                ("messages live", s.messages_live.to_string()),
                (
                    "queued active/delayed/in flight",
                    format!(
                        "{} / {} / {}",
                        s.queued_active, s.queued_delayed, s.in_flight
                    ),
                ),
                ("domains", s.domains.to_string()),
                ("handler panics (contained)", s.panics.to_string()),
                (
                    "spool",
                    if s.spool_healthy {
                        "healthy".to_string()
                    } else {
                        format!("UNHEALTHY: {}", s.spool_error)
                    },
                ),
                ("spool records quarantined", s.spool_quarantined.to_string()),
                ("message actors working", s.messages_working.to_string()),
                (
                    "rate received/delivered, last second",
                    format!("{:.1}/s / {:.1}/s", s.received_per_sec, s.delivered_per_sec),
                ),
                (
                    "rate received/delivered, last minute",
                    format!(
                        "{:.1}/s / {:.1}/s",
                        s.received_per_sec_1m, s.delivered_per_sec_1m
                    ),
                ),
            ];
            for (k, v) in rows {
                let _ = writeln!(out, "{k:<32} {v}");
            }
            out
        }
        Response::Queues { domains } => {
            let rows: Vec<Vec<String>> = domains
                .iter()
                .map(|d| {
                    vec![
                        // A binding's queue shows as BINDING/DOMAIN.
                        match &d.binding {
                            Some(b) => format!("{b}/{}", d.domain),
                            None => d.domain.clone(),
                        },
                        d.active.to_string(),
                        d.delayed.to_string(),
                        d.in_flight.to_string(),
                        format!("{}/{}", d.connections, d.max_connections),
                        d.state.clone(),
                        d.next_retry_secs
                            .map(|s| format!("{s}s"))
                            .unwrap_or_else(|| "-".into()),
                        format!("{}/{}", d.finished_last_minute, d.deferred_last_minute),
                        d.last_error.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            table(
                &[
                    "DOMAIN",
                    "ACTIVE",
                    "DELAYED",
                    "IN FLIGHT",
                    "CONNS",
                    "STATE",
                    "NEXT RETRY",
                    "DONE/DEFER 1M",
                    "LAST ERROR",
                ],
                &rows,
            )
        }
        Response::Pools { pools, arbiters } => {
            let rows: Vec<Vec<String>> = pools
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        p.threads.to_string(),
                        p.busy.to_string(),
                        p.queued.to_string(),
                        p.completed.to_string(),
                        p.panicked.to_string(),
                        format!("{:.0}", p.mean_job_micros),
                    ]
                })
                .collect();
            let mut out = table(
                &[
                    "POOL",
                    "THREADS",
                    "BUSY",
                    "QUEUED",
                    "COMPLETED",
                    "PANICKED",
                    "MEAN JOB µs",
                ],
                &rows,
            );
            if !arbiters.is_empty() {
                let rows: Vec<Vec<String>> = arbiters
                    .iter()
                    .map(|a| {
                        vec![
                            a.index.to_string(),
                            a.actors.to_string(),
                            format!("{:.0}%", a.busy_pct),
                            a.queued.to_string(),
                            a.turns.to_string(),
                            format!("{:.0}", a.mean_turn_us),
                            format!("{:.1} ms", a.lag_us as f64 / 1000.0),
                            format!("{:.1} ms", a.worst_lag_us as f64 / 1000.0),
                            if a.placing { "yes" } else { "no (draining)" }.to_string(),
                        ]
                    })
                    .collect();
                out.push('\n');
                out.push_str(&table(
                    &[
                        "ARBITER",
                        "ACTORS",
                        "BUSY",
                        "QUEUED",
                        "TURNS",
                        "MEAN TURN µs",
                        "LAG",
                        "WORST LAG",
                        "NEW ACTORS",
                    ],
                    &rows,
                ));
            }
            out
        }
        Response::Ok { message } => format!("{message}\n"),
        Response::Error { message } => format!("error: {message}\n"),
        Response::Tree { text, total, .. } => format!("{text}{total} actors\n"),
        Response::Memory(m) => memory(m, None),
        Response::Domain(d) => domain(d),
        Response::Message(m) => message(m),
        Response::Found {
            messages,
            scanned,
            more,
        } => found(messages, *scanned, *more),
    }
}

/// `impulsectl domain NAME` as text: the fields, then the hops and connections.
fn domain(d: &impulse_runtime::control::DomainDetail) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let rows = [
        ("domain", d.domain.clone()),
        ("binding", opt(&d.binding)),
        ("state", d.state.clone()),
        (
            "active/delayed/in flight",
            format!("{} / {} / {}", d.active, d.delayed, d.in_flight),
        ),
        (
            "connections",
            format!(
                "{} of {} (site: {})",
                d.connections, d.max_connections, d.site_connections
            ),
        ),
        (
            "max messages per connection",
            d.max_messages_per_connection.to_string(),
        ),
        ("throttle", opt(&d.throttle)),
        ("connection throttle", opt(&d.connection_throttle)),
        ("tls", d.tls.clone()),
        (
            "retry",
            format!(
                "{} doubling to {}, expires after {}",
                d.retry_interval, d.max_retry_interval, d.message_expiration
            ),
        ),
        ("delay report after", d.delay_warning.clone()),
        (
            "next retry",
            d.next_retry_secs.map_or("-".into(), |s| format!("{s}s")),
        ),
        ("backing off", opt(&d.backoff_reason)),
        ("site", opt(&d.site)),
        ("next hops from", d.next_hops_from.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<28} {v}");
    }
    for h in &d.next_hops {
        let ms = |v: Option<u32>| v.map_or("-".into(), |v| format!("{v} ms"));
        let _ = writeln!(
            out,
            "  hop  {:<5} {:<40} {:<22} connects {} (last {}), refused {}/min, transactions {} (last {}), failed {}/min{}",
            h.preference,
            h.name,
            h.address,
            h.connects,
            ms(h.last_connect_ms),
            h.refused_last_minute,
            h.transactions,
            ms(h.last_transaction_ms),
            h.failed_last_minute,
            h.last_error
                .as_ref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    for c in &d.connection_states {
        let _ = writeln!(out, "  conn #{:<6} {:<24} {}", c.id, c.peer, c.state);
    }
    if !d.other_queues.is_empty() {
        let _ = writeln!(
            out,
            "other queues of the domain: {}",
            d.other_queues.join(", ")
        );
    }
    out
}

fn message(m: &impulse_runtime::control::MessageDetail) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let next = match (&m.next_attempt, m.next_attempt_secs) {
        (Some(t), Some(s)) => format!("{t} (in {s}s)"),
        _ => "-".into(),
    };
    let sender = if m.sender.is_empty() { "<>" } else { &m.sender };
    for (k, v) in [
        ("id", m.id.clone()),
        ("domain", m.domain.clone()),
        ("binding", opt(&m.binding)),
        ("sender", sender.to_string()),
        ("size", bytes(m.size as i64)),
        ("received", m.received_at.clone()),
        ("state", m.state.clone()),
        ("attempts", m.attempts.to_string()),
        ("next attempt", next),
        ("last response", opt(&m.last_response)),
        (
            "dsn",
            match (&m.ret, &m.envid) {
                (None, None) => "-".into(),
                (r, e) => format!("RET={} ENVID={}", opt(r), opt(e)),
            },
        ),
    ] {
        let _ = writeln!(out, "{k:<14} {v}");
    }
    let rows: Vec<Vec<String>> = m
        .recipients
        .iter()
        .map(|r| {
            vec![
                r.address.clone(),
                r.state.clone(),
                r.attempts.to_string(),
                opt(&r.notify),
                opt(&r.orcpt),
            ]
        })
        .collect();
    out.push_str(&table(
        &["RECIPIENT", "STATE", "ATTEMPTS", "NOTIFY", "ORCPT"],
        &rows,
    ));
    out
}

fn found(messages: &[impulse_runtime::control::MessageRow], scanned: u64, more: bool) -> String {
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            let queue = match &m.binding {
                Some(b) => format!("{b}/{}", m.domain),
                None => m.domain.clone(),
            };
            vec![
                m.id.clone(),
                queue,
                if m.sender.is_empty() {
                    "<>".into()
                } else {
                    m.sender.clone()
                },
                m.recipients.join(","),
                m.state.clone(),
                m.attempts.to_string(),
                m.next_attempt_secs.map_or("-".into(), |s| format!("{s}s")),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID", "QUEUE", "SENDER", "PENDING", "STATE", "ATTEMPTS", "NEXT",
        ],
        &rows,
    );
    let _ = writeln!(
        out,
        "{} messages{} ({scanned} looked at)",
        messages.len(),
        if more {
            ", more match: raise --limit"
        } else {
            ""
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_tables() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
    }
}
