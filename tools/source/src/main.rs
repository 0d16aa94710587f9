//! # Layout
//!
//! `impulse-source`, the binary: this one file parses the arguments, runs
//! [`impulse_source::run`] and prints the summary (messages, sent_ok, rejected, errors,
//! elapsed, msg/s), or one JSON object with `--json`. Exits 1 when nothing was sent
//! and errors occurred.
//!
//! ```text
//! impulse-source --to 127.0.0.1:2525 -n 1000 -s 1024 -c 10
//! impulse-source --to 127.0.0.1:2525 --starttls cert.pem   # over STARTTLS
//! ```

use std::net::SocketAddr;

use clap::Parser;
use impulse_source::{run, SourceConfig};

/// An SMTP load generator.
#[derive(Parser, Debug)]
#[command(name = "impulse-source", version)]
struct Args {
    /// The SMTP server to send to.
    #[arg(long, default_value = "127.0.0.1:2525")]
    to: SocketAddr,
    /// Messages to send.
    #[arg(short = 'n', long, default_value_t = 1000)]
    messages: usize,
    /// Body bytes per message.
    #[arg(short = 's', long, default_value_t = 1024)]
    size: usize,
    /// Concurrent connections.
    #[arg(short = 'c', long, default_value_t = 10)]
    sessions: usize,
    /// Messages per connection before reconnecting (0 = unlimited).
    #[arg(long, default_value_t = 100)]
    per_session: usize,
    /// Recipients per message.
    #[arg(short = 'r', long, default_value_t = 1)]
    recipients: usize,
    /// Never pipeline, even when the server offers it.
    #[arg(long)]
    no_pipelining: bool,
    /// Envelope sender.
    #[arg(long, default_value = "source@impulse.test")]
    from: String,
    /// Recipient domain (recipients are user{n}@DOMAIN).
    #[arg(long, default_value = "example.com")]
    domain: String,
    /// Send over STARTTLS, trusting the PEM certificate(s) in this file (the server's
    /// certificate must be valid for `localhost`).
    #[arg(long, value_name = "PEM")]
    starttls: Option<std::path::PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let starttls = match &a.starttls {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(impulse_source::client_config(&pem).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        None => None,
    };
    let cfg = SourceConfig {
        addr: a.to,
        messages: a.messages,
        size: a.size,
        sessions: a.sessions,
        per_session: a.per_session,
        pipelining: !a.no_pipelining,
        sender: a.from,
        recipient_domain: a.domain,
        recipients_per_message: a.recipients,
        starttls,
    };
    let r = run(cfg);
    if a.json {
        let v = serde_json::json!({
            "messages": r.messages,
            "sent_ok": r.sent_ok,
            "rejected": r.rejected,
            "errors": r.errors,
            "elapsed_s": r.elapsed.as_secs_f64(),
            "msg_per_s": r.accepted_per_sec(),
            "first_error": r.first_error,
            "first_rejection": r.first_rejection,
        });
        println!("{v}");
    } else {
        println!("messages  {}", r.messages);
        println!("sent_ok   {}", r.sent_ok);
        println!("rejected  {}", r.rejected);
        println!("errors    {}", r.errors);
        println!("elapsed   {:.3}s", r.elapsed.as_secs_f64());
        println!("msg/s     {:.0}", r.accepted_per_sec());
        if let Some(e) = &r.first_rejection {
            println!("first rejection: {e}");
        }
        if let Some(e) = &r.first_error {
            println!("first error: {e}");
        }
    }
    if r.errors > 0 && r.sent_ok == 0 {
        std::process::exit(1);
    }
    Ok(())
}
