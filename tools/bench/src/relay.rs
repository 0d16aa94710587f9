//! One relay run: sink up, impulsed configured and started against it, the source run
//! against impulsed, then wait for the sink to hold every accepted message (or time
//! out), measure, and stop impulsed with SIGTERM.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use impulse_sink::{Sink, SinkConfig};
use impulse_source::SourceConfig;

use crate::config;
use crate::daemon::Daemon;
use crate::report::{tally, Measured, Report};

/// What a relay run is asked to do.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub impulsed: PathBuf,
    pub messages: usize,
    pub size: usize,
    pub sessions: usize,
    pub per_session: usize,
    pub pipelining: bool,
    /// Bound on startup and, separately, on waiting for deliveries.
    pub timeout: Duration,
    /// Keep the temporary directory (config, spool, logs).
    pub keep: bool,
    /// Echo impulsed's stderr.
    pub verbose: bool,
    /// `pools.arbiters` for impulsed (None: its default, one per core).
    pub arbiters: Option<usize>,
    /// `pools.blocking` for impulsed (default: its own).
    pub blocking: Option<usize>,
    /// Deliver by MX lookup (a loopback DNS server names the sink) instead of a route.
    pub mx: bool,
    /// The sink offers STARTTLS.
    pub tls: bool,
    /// The source sends to impulsed over STARTTLS (impulsed's listener gets a
    /// certificate made for the run, which the source trusts).
    pub starttls: bool,
    /// The sink offers CHUNKING (impulsed then delivers with BDAT).
    pub chunking: bool,
}

impl RelayOptions {
    /// The `impulse-bench relay` defaults (20 000 messages of 1 KiB over 10 sessions,
    /// 100 per session, pipelined, 120 s timeout) against `impulsed`.
    pub fn new(impulsed: impl Into<PathBuf>) -> RelayOptions {
        RelayOptions {
            impulsed: impulsed.into(),
            messages: 20_000,
            size: 1024,
            sessions: 10,
            per_session: 100,
            pipelining: true,
            timeout: Duration::from_secs(120),
            keep: false,
            verbose: false,
            arbiters: None,
            blocking: None,
            mx: false,
            tls: false,
            starttls: false,
            chunking: false,
        }
    }
}

/// How long impulsed may take to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(30);

/// Run the relay benchmark once: sink, impulsed, source, wait for delivery, stop.
/// Errors only when the run cannot be set up (sink bind, temp dir, impulsed start);
/// loss and refusals are in the report.
pub fn run(opts: &RelayOptions) -> anyhow::Result<Report> {
    let sink = Sink::start(SinkConfig {
        record_bodies: false,
        tls: opts
            .tls
            .then(|| impulse_sink::self_signed_tls(&["mx.example.com"])),
        chunking: opts.chunking,
        ..SinkConfig::default()
    })
    .context("starting the sink")?;
    let tmp = tempfile::Builder::new()
        .prefix("impulse-bench-")
        .tempdir()
        .context("creating the temporary directory")?;
    // With `mx`, example.com's MX is the sink's address, served by a DNS server on
    // loopback; impulsed delivers to MX hosts on the sink's port.
    let dns = if opts.mx {
        let ip = match sink.addr().ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => anyhow::bail!("--mx needs an IPv4 sink"),
        };
        let zone = impulse_dns::Zone::new()
            .mx("example.com", 10, "mx.example.com")
            .a("mx.example.com", ip);
        Some(impulse_dns::DnsServer::start(zone).context("starting the DNS server")?)
    } else {
        None
    };
    let route = match &dns {
        Some(d) => config::Route::Mx {
            dns: d.addr(),
            port: sink.addr().port(),
        },
        None => config::Route::Static(sink.addr()),
    };
    let starttls = if opts.starttls {
        let made =
            rcgen::generate_simple_self_signed(vec![impulse_source::client::TLS_NAME.into()])
                .context("making a certificate")?;
        let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).context("writing cert.pem")?;
        std::fs::write(&key, made.signing_key.serialize_pem()).context("writing key.pem")?;
        let client = impulse_source::client_config(made.cert.pem().as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Some((cert, key, client))
    } else {
        None
    };
    let listener_tls = starttls
        .as_ref()
        .map(|(c, k, _)| (c.as_path(), k.as_path()));
    let cfg_path = config::write(
        tmp.path(),
        route,
        config::Pools {
            arbiters: opts.arbiters,
            blocking: opts.blocking,
        },
        listener_tls,
    )
    .context("writing the impulsed config")?;
    let mut daemon = Daemon::start(
        &opts.impulsed,
        &cfg_path,
        tmp.path(),
        opts.timeout,
        opts.verbose,
    )?;
    eprintln!(
        "impulsed pid {} listening on {}, sink on {}, dir {}",
        daemon.pid(),
        daemon.addr,
        sink.addr(),
        tmp.path().display()
    );

    let start = Instant::now();
    let cpu_start = daemon.cpu_time();
    let source = impulse_source::run(SourceConfig {
        addr: daemon.addr,
        messages: opts.messages,
        size: opts.size,
        sessions: opts.sessions,
        per_session: opts.per_session,
        pipelining: opts.pipelining,
        sender: "bench@impulse.test".to_string(),
        recipient_domain: "example.com".to_string(),
        recipients_per_message: 1,
        starttls: starttls.map(|(_, _, client)| client),
    });
    if let Some(e) = &source.first_error {
        eprintln!("source: first error: {e}");
    }
    if let Some(r) = &source.first_rejection {
        eprintln!("source: first rejection: {r}");
    }

    // Wait for the count first (cheap), then check ids; keep polling while some are
    // missing (duplicates can make the count arrive early).
    let deadline = Instant::now() + opts.timeout;
    sink.wait_for(source.sent_ok, opts.timeout);
    let mut t = tally(&source.accepted_ids, &sink.message_ids());
    while t.lost > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        t = tally(&source.accepted_ids, &sink.message_ids());
    }

    let peak_rss_kib = daemon.peak_rss_kib();
    let cpu = daemon
        .cpu_time()
        .zip(cpu_start)
        .map(|(end, start)| end.saturating_sub(start));
    match daemon.stop(GRACE) {
        Ok(status) if !status.success() => eprintln!("impulsed exited with {status}"),
        Ok(_) => {}
        Err(e) => eprintln!("stopping impulsed: {e}"),
    }
    if opts.keep {
        eprintln!("kept {}", tmp.keep().display());
    }
    let delivery_elapsed = sink
        .last_message_at()
        .map(|at| at.saturating_duration_since(start));
    sink.stop();
    Ok(Report {
        m: Measured {
            messages: opts.messages,
            size: opts.size,
            sessions: opts.sessions,
            accepted: source.sent_ok,
            rejected: source.rejected,
            errors: source.errors,
            source_elapsed: source.elapsed,
            delivery_elapsed,
            peak_rss_kib,
            cpu,
        },
        t,
    })
}
