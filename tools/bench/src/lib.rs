//! # Layout
//!
//! impulse-bench — Impulse's relay benchmark: `impulse-source` → `impulsed` →
//! `impulse-sink`, all on loopback, reporting accepted and delivered rates, loss,
//! duplicates and impulsed's peak memory. The library runs one relay benchmark against a
//! given impulsed binary ([`run`]: [`RelayOptions`] in, [`Report`] out); the binary
//! (`main.rs`) is argument parsing around it, and the root package's
//! `tests/bench_relay.rs` runs it against the real daemon.
//!
//! - [`config`] — the impulsed RON config for a run (listener on port 0, `*` routed to
//!   the sink).
//! - [`daemon`] — start impulsed, parse its `listening on` / `ready` stderr lines, read
//!   its VmHWM, stop it with SIGTERM.
//! - [`relay`] — one run end to end.
//! - [`report`] — the arithmetic (rates, loss, duplicates) and the printed report.
//! - `main.rs` — the `impulse-bench` binary.
//!
//! `tools/bench/postfix-relay.sh` runs the same shape of benchmark through Postfix
//! (`smtp-source` → Postfix → sink) for the side-by-side figures in `BENCHMARKS.md`.

pub mod config;
pub mod daemon;
pub mod relay;
pub mod report;

pub use relay::{run, RelayOptions};
pub use report::{Measured, Report, Tally};
