//! `impulse-bench`, the binary: argument parsing around the library's relay run
//! ([`impulse_bench::run`]), printing its report as text or JSON; exits 1 when an accepted
//! message was lost.
//!
//! ```text
//! impulse-bench relay --impulsed PATH [--messages N] [--size S] [--sessions C]
//!                     [--timeout 120s] [--keep] [--json] [--arbiters N] [--blocking N]
//!                     [--mx] [--tls] [--starttls] [--chunking]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use impulse_bench::RelayOptions;

#[derive(Parser, Debug)]
#[command(name = "impulse-bench", version, about = "Impulse relay benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// impulse-source -> impulsed -> impulse-sink on loopback.
    Relay {
        /// The impulsed binary to measure.
        #[arg(long)]
        impulsed: PathBuf,
        /// Messages to send.
        #[arg(short = 'n', long, default_value_t = 20_000)]
        messages: usize,
        /// Body bytes per message.
        #[arg(short = 's', long, default_value_t = 1024)]
        size: usize,
        /// Concurrent source connections.
        #[arg(short = 'c', long, default_value_t = 10)]
        sessions: usize,
        /// Messages per source connection before reconnecting.
        #[arg(long, default_value_t = 100)]
        per_session: usize,
        /// Do not pipeline from the source.
        #[arg(long)]
        no_pipelining: bool,
        /// Bound on impulsed's startup, and on waiting for deliveries ("120s", "2m").
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        timeout: Duration,
        /// Keep the temporary directory (config, spool, logs).
        #[arg(long)]
        keep: bool,
        /// Echo impulsed's stderr.
        #[arg(short, long)]
        verbose: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// `pools.arbiters` for impulsed (default: its own, one per core).
        #[arg(long)]
        arbiters: Option<usize>,
        /// `pools.blocking` for impulsed: sync-arbiter threads (default: its own).
        #[arg(long)]
        blocking: Option<usize>,
        /// Route by MX lookup through a loopback DNS server instead of a static route.
        #[arg(long)]
        mx: bool,
        /// The sink offers STARTTLS (impulsed's default `Opportunistic` uses it).
        #[arg(long)]
        tls: bool,
        /// The source sends to impulsed over STARTTLS (a certificate made for the run).
        #[arg(long)]
        starttls: bool,
        /// The sink offers CHUNKING (impulsed delivers with BDAT).
        #[arg(long)]
        chunking: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Relay {
            impulsed,
            messages,
            size,
            sessions,
            per_session,
            no_pipelining,
            timeout,
            keep,
            verbose,
            json,
            arbiters,
            blocking,
            mx,
            tls,
            starttls,
            chunking,
        } => {
            let report = impulse_bench::run(&RelayOptions {
                impulsed,
                messages,
                size,
                sessions,
                per_session,
                pipelining: !no_pipelining,
                timeout,
                keep,
                verbose,
                arbiters,
                blocking,
                mx,
                tls,
                starttls,
                chunking,
            })?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            if !report.complete() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// "120s", "2m", "500ms", "1h", or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("unknown unit {u:?} in {s:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn cli_defaults() {
        let cli = Cli::try_parse_from(["impulse-bench", "relay", "--impulsed", "/x"]).unwrap();
        let Cmd::Relay {
            messages,
            size,
            sessions,
            timeout,
            keep,
            ..
        } = cli.command;
        assert_eq!((messages, size, sessions, keep), (20_000, 1024, 10, false));
        assert_eq!(timeout, Duration::from_secs(120));
        // The library's defaults are the same.
        let lib = RelayOptions::new("/x");
        assert_eq!(
            (lib.messages, lib.size, lib.sessions, lib.keep, lib.timeout),
            (messages, size, sessions, keep, timeout)
        );
    }
}
