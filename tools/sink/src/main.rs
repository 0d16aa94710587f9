//! # Layout
//!
//! `impulse-sink`, the binary: this one file parses the arguments, starts a
//! [`impulse_sink::Sink`] and, with `--jsonl`, appends one JSON object per accepted
//! message (sender, recipients, size, message_id, tls) to FILE. With `--tls` it offers
//! STARTTLS with a self-signed certificate for `localhost`. Prints `listening on ADDR`,
//! then serves until killed.
//!
//! ```text
//! impulse-sink --listen 127.0.0.1:2526 [--no-pipelining] [--tls] [--jsonl FILE]
//! ```

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use impulse_sink::{self_signed_tls, Observer, ReceivedMessage, Sink, SinkConfig};

/// A recording SMTP sink for tests and benchmarks.
#[derive(Parser, Debug)]
#[command(name = "impulse-sink", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:2526")]
    listen: SocketAddr,
    /// Do not advertise PIPELINING.
    #[arg(long)]
    no_pipelining: bool,
    /// Offer STARTTLS, with a self-signed certificate for "localhost".
    #[arg(long)]
    tls: bool,
    /// Do not advertise SMTPUTF8.
    #[arg(long)]
    no_smtputf8: bool,
    /// Advertise DSN (RFC 3461) and take its parameters.
    #[arg(long)]
    dsn: bool,
    /// Advertise CHUNKING (RFC 3030) and take BDAT.
    #[arg(long)]
    chunking: bool,
    /// Append one JSON line per accepted message to this file.
    #[arg(long)]
    jsonl: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = SinkConfig {
        addr: args.listen,
        pipelining: !args.no_pipelining,
        record_bodies: false,
        rules: Vec::new(),
        tls: args.tls.then(|| self_signed_tls(&["localhost"])),
        smtputf8: !args.no_smtputf8,
        dsn: args.dsn,
        chunking: args.chunking,
    };
    let sink = match &args.jsonl {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            let out = Mutex::new(BufWriter::new(file));
            let observer: Observer = Arc::new(move |m: &ReceivedMessage| {
                let line = serde_json::json!({
                    "sender": m.sender,
                    "recipients": m.recipients,
                    "size": m.size,
                    "message_id": m.message_id,
                    "tls": m.tls,
                    "chunked": m.chunked,
                });
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            });
            Sink::start_with_observer(cfg, observer)
        }
        None => Sink::start(cfg),
    }
    .with_context(|| format!("listening on {}", args.listen))?;
    println!("listening on {}", sink.addr());
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}
