//! # Layout
//!
//! impulse-bench — Impulse's relay benchmark: `impulse-source` → `impulsed` →
//! `impulse-sink`, all on loopback, reporting accepted and delivered rates, loss,
//! duplicates and impulsed's peak memory.
//!
//! ```text
//! impulse-bench relay --impulsed PATH [--messages N] [--size S] [--sessions C]
//!                     [--timeout 120s] [--keep] [--json]
//! ```
//!
//! - `config` — the impulsed RON config for a run (listener on port 0, `*` routed to the
//!   sink).
//! - `daemon` — start impulsed, parse its `listening on` / `ready` stderr lines, read its
//!   VmHWM, stop it with SIGTERM.
//! - `relay` — one run end to end.
//! - `report` — the arithmetic (rates, loss, duplicates) and the printed report.
//! - `stand_in` — a trivial synchronous relay posing as impulsed (hidden `stand-in`
//!   subcommand), so the harness can be tested end to end without the real daemon.
//! - this file — argument parsing only.

mod config;
mod daemon;
mod relay;
mod report;
mod stand_in;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
    },
    /// A stand-in relay posing as impulsed, for testing this harness.
    #[command(hide = true)]
    StandIn {
        #[arg(long)]
        config: PathBuf,
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
        } => {
            let report = relay::run(&relay::RelayOptions {
                impulsed,
                messages,
                size,
                sessions,
                per_session,
                pipelining: !no_pipelining,
                timeout,
                keep,
                verbose,
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
        Cmd::StandIn { config } => stand_in::run(&config),
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
        } = cli.command
        else {
            panic!("not relay");
        };
        assert_eq!((messages, size, sessions, keep), (20_000, 1024, 10, false));
        assert_eq!(timeout, Duration::from_secs(120));
    }
}
