//! `GET /metrics`: the daemon's counters and gauges in the Prometheus text format, built
//! with the `prometheus` crate from the same answers `impulsectl status`, `queues`,
//! `memory` and `pools` print. Pure: a snapshot in, text out.
//!
//! Per-domain series are limited to the [`MAX_DOMAINS`] queues holding the most messages,
//! so a queue with many thousands of destinations does not swamp the scraper.

use impulse_runtime::alloc::MemoryReport;
use impulse_runtime::control::{ArbiterStats, QueueRow, StatusReport};
use impulse_runtime::pool::PoolStats;
use prometheus::{
    Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Per-domain series are exported for at most this many queues.
pub const MAX_DOMAINS: usize = 200;

/// What one scrape reports.
pub struct Snapshot {
    pub status: StatusReport,
    pub queues: Vec<QueueRow>,
    pub memory: MemoryReport,
    pub pools: Vec<PoolStats>,
    pub arbiters: Vec<ArbiterStats>,
}

fn counter(r: &Registry, name: &str, help: &str, v: u64) -> prometheus::Result<()> {
    let c = IntCounter::new(name, help)?;
    c.inc_by(v);
    r.register(Box::new(c))
}

fn gauge(r: &Registry, name: &str, help: &str, v: i64) -> prometheus::Result<()> {
    let g = IntGauge::new(name, help)?;
    g.set(v);
    r.register(Box::new(g))
}

fn gauges(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn build(s: &Snapshot) -> prometheus::Result<Registry> {
    let r = Registry::new_custom(Some("impulse".into()), None)?;
    let st = &s.status;
    for (name, help, v) in [
        (
            "received_total",
            "Messages accepted (one per recipient domain)",
            st.received,
        ),
        ("delivered_total", "Recipients delivered", st.delivered),
        (
            "deferred_total",
            "Delivery attempts that ended in a retry",
            st.deferred,
        ),
        ("bounced_total", "Recipients failed for good", st.bounced),
        (
            "expired_total",
            "Messages that expired in the queue",
            st.expired,
        ),
        (
            "panics_total",
            "Handler panics caught and contained",
            st.panics,
        ),
    ] {
        counter(&r, name, help, v)?;
    }
    for (name, help, v) in [
        (
            "uptime_seconds",
            "Seconds since the daemon started",
            st.uptime_secs as i64,
        ),
        (
            "config_generation",
            "The configuration generation in force",
            st.config_generation as i64,
        ),
        (
            "connections_in",
            "Inbound SMTP connections open",
            st.connections_in as i64,
        ),
        (
            "connections_out",
            "Outbound SMTP connections open",
            st.connections_out as i64,
        ),
        (
            "queued_active",
            "Messages due for delivery",
            st.queued_active as i64,
        ),
        (
            "queued_delayed",
            "Messages waiting for a retry",
            st.queued_delayed as i64,
        ),
        (
            "in_flight",
            "Messages being delivered now",
            st.in_flight as i64,
        ),
        (
            "messages_live",
            "Messages in the spool",
            st.messages_live as i64,
        ),
        (
            "messages_working",
            "Message actors alive",
            st.messages_working as i64,
        ),
        ("domains", "Domain containers", st.domains as i64),
        (
            "spool_healthy",
            "1 while the spool takes writes",
            st.spool_healthy as i64,
        ),
        (
            "spool_quarantined",
            "Damaged spool records quarantined at the last start",
            st.spool_quarantined as i64,
        ),
    ] {
        gauge(&r, name, help, v)?;
    }

    let mut rows: Vec<&QueueRow> = s.queues.iter().collect();
    rows.sort_by_key(|q| std::cmp::Reverse(q.active + q.delayed + q.in_flight));
    rows.truncate(MAX_DOMAINS);
    let labels = ["domain", "binding"];
    let active = gauges(&r, "domain_active", "Messages due, per queue", &labels)?;
    let delayed = gauges(
        &r,
        "domain_delayed",
        "Messages waiting for a retry, per queue",
        &labels,
    )?;
    let flight = gauges(
        &r,
        "domain_in_flight",
        "Messages being delivered, per queue",
        &labels,
    )?;
    let conns = gauges(
        &r,
        "domain_connections",
        "Open connections, per queue",
        &labels,
    )?;
    let finished = IntCounterVec::new(
        Opts::new(
            "domain_finished_total",
            "Messages that reached a final outcome, per queue",
        ),
        &labels,
    )?;
    r.register(Box::new(finished.clone()))?;
    for q in rows {
        let l = [q.domain.as_str(), q.binding.as_deref().unwrap_or("")];
        active.with_label_values(&l).set(q.active as i64);
        delayed.with_label_values(&l).set(q.delayed as i64);
        flight.with_label_values(&l).set(q.in_flight as i64);
        conns.with_label_values(&l).set(q.connections as i64);
        finished.with_label_values(&l).inc_by(q.finished);
    }

    let live = gauges(
        &r,
        "memory_live_bytes",
        "Live heap bytes, per actor class",
        &["class"],
    )?;
    let allocs = gauges(
        &r,
        "memory_live_allocations",
        "Live heap blocks, per actor class",
        &["class"],
    )?;
    let peak = gauges(
        &r,
        "memory_peak_bytes",
        "Highest live heap bytes seen, per actor class",
        &["class"],
    )?;
    for c in &s.memory.classes {
        let l = [c.class.name()];
        live.with_label_values(&l).set(c.live_bytes);
        allocs.with_label_values(&l).set(c.live_allocs);
        peak.with_label_values(&l).set(c.peak_bytes);
    }
    gauge(
        &r,
        "memory_total_live_bytes",
        "Live heap bytes, all classes",
        s.memory.total_live_bytes,
    )?;
    if let Some(rss) = s.memory.rss_bytes {
        gauge(
            &r,
            "process_resident_bytes",
            "Resident set size of the process",
            rss as i64,
        )?;
    }

    let threads = gauges(&r, "pool_threads", "Threads, per blocking pool", &["pool"])?;
    let busy = gauges(
        &r,
        "pool_busy",
        "Jobs running, per blocking pool",
        &["pool"],
    )?;
    let queued = gauges(
        &r,
        "pool_queued",
        "Jobs waiting, per blocking pool",
        &["pool"],
    )?;
    let done = IntCounterVec::new(
        Opts::new("pool_completed_total", "Jobs completed, per blocking pool"),
        &["pool"],
    )?;
    r.register(Box::new(done.clone()))?;
    for p in &s.pools {
        let l = [p.name.as_str()];
        threads.with_label_values(&l).set(p.threads as i64);
        busy.with_label_values(&l).set(p.busy as i64);
        queued.with_label_values(&l).set(p.queued as i64);
        done.with_label_values(&l).inc_by(p.completed);
    }

    let actors = gauges(&r, "arbiter_actors", "Actors, per arbiter", &["arbiter"])?;
    let busy = GaugeVec::new(
        Opts::new(
            "arbiter_busy_ratio",
            "Share of the last second an arbiter thread spent running",
        ),
        &["arbiter"],
    )?;
    r.register(Box::new(busy.clone()))?;
    let turns = IntCounterVec::new(
        Opts::new("arbiter_turns_total", "Event-loop turns, per arbiter"),
        &["arbiter"],
    )?;
    r.register(Box::new(turns.clone()))?;
    let lag = gauges(
        &r,
        "arbiter_lag_microseconds",
        "How late the arbiter's probe last woke",
        &["arbiter"],
    )?;
    for a in &s.arbiters {
        let i = a.index.to_string();
        let l = [i.as_str()];
        actors.with_label_values(&l).set(a.actors as i64);
        busy.with_label_values(&l).set(a.busy_pct / 100.0);
        turns.with_label_values(&l).inc_by(a.turns);
        lag.with_label_values(&l).set(a.lag_us as i64);
    }
    Ok(r)
}

/// The exposition text of `s`.
pub fn render(s: &Snapshot) -> Result<Vec<u8>, String> {
    let r = build(s).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(8 * 1024);
    prometheus::TextEncoder::new()
        .encode(&r.gather(), &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_labels() {
        let s = Snapshot {
            status: StatusReport {
                received: 7,
                delivered: 5,
                spool_healthy: true,
                config_generation: 2,
                ..Default::default()
            },
            queues: vec![QueueRow {
                domain: "example.com".into(),
                active: 3,
                binding: Some("b1".into()),
                ..Default::default()
            }],
            memory: impulse_runtime::alloc::snapshot(),
            pools: vec![PoolStats {
                name: "blocking".into(),
                threads: 4,
                busy: 1,
                queued: 0,
                completed: 9,
                panicked: 0,
                mean_job_micros: 3.5,
            }],
            arbiters: vec![ArbiterStats {
                index: 1,
                actors: 12,
                turns: 40,
                busy_pct: 25.0,
                ..Default::default()
            }],
        };
        let text = String::from_utf8(render(&s).unwrap()).unwrap();
        for line in [
            "# TYPE impulse_received_total counter",
            "impulse_received_total 7",
            "impulse_delivered_total 5",
            "impulse_spool_healthy 1",
            "impulse_config_generation 2",
            "impulse_domain_active{binding=\"b1\",domain=\"example.com\"} 3",
            "impulse_pool_completed_total{pool=\"blocking\"} 9",
            "impulse_arbiter_actors{arbiter=\"1\"} 12",
            "impulse_arbiter_busy_ratio{arbiter=\"1\"} 0.25",
            "impulse_arbiter_turns_total{arbiter=\"1\"} 40",
            "# TYPE impulse_memory_live_bytes gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(text.contains("impulse_memory_live_bytes{class=\"message\"}"));
    }
}
