//! # Layout
//!
//! `impulsectl`, the operator's console: sends one control message to a running
//! `impulsed` over its Unix control socket and prints the answer.
//!
//! - `main.rs` — argument parsing (clap) and exit codes: 0 success, 1 refused or failed
//!   command, 2 daemon unreachable.
//! - [`client`] — the socket exchange: one JSON request line, one JSON response line.
//! - [`render`] — human-readable tables and the actor tree; `--json` bypasses it.

mod client;
mod render;
mod top;

mod hash_password;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use impulse_runtime::control::{Request, Response};
use impulse_runtime::ActorClass;

/// Control a running Impulse MTA.
#[derive(Parser, Debug)]
#[command(name = "impulsectl", version, about)]
struct Args {
    /// Control socket of the daemon.
    #[arg(
        long,
        env = "IMPULSE_SOCKET",
        default_value = "impulse-data/control.sock"
    )]
    socket: PathBuf,
    /// Print the daemon's typed response as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Version, uptime, connections, message counters, queue totals, rates.
    Status,
    /// The live actor tree.
    Tree {
        /// Show only this many levels below the root.
        #[arg(long)]
        depth: Option<usize>,
        /// Show only actors of this class (and their ancestors).
        #[arg(long)]
        class: Option<String>,
        /// Do not collapse large groups of siblings.
        #[arg(long)]
        all: bool,
        /// Show the arbiter (event-loop thread) each actor runs on.
        #[arg(long)]
        arbiter: bool,
    },
    /// Live bytes, allocations and peak per actor class.
    Memory {
        /// Only this class.
        class: Option<String>,
    },
    /// Each sync pool: threads, busy, queued, completed.
    Pools,
    /// One row per domain container.
    Queues {
        /// Order of the rows.
        #[arg(long, value_enum, default_value = "name")]
        sort: QueueSort,
        /// Only the first N rows.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One queued message: sender, each recipient's state, attempts, last response.
    Message {
        /// The id the 250 reply to DATA named ("queued as ID").
        id: String,
    },
    /// Search the queues (off the delivery path: each domain scans between its work).
    Find {
        /// Envelope sender: an address, or a domain (`example.com`, `@example.com`); `<>`
        /// for the null sender.
        #[arg(long)]
        sender: Option<String>,
        /// A pending recipient: an address or a domain.
        #[arg(long)]
        recipient: Option<String>,
        /// Only this destination domain's queues.
        #[arg(long)]
        domain: Option<String>,
        /// active, delayed or in_flight.
        #[arg(long)]
        state: Option<String>,
        /// At most N messages (default 100).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Stop the daemon gracefully.
    Shutdown,
    /// Read the configuration file again and put it in force as a new generation.
    Reload,
    /// One destination domain: limits, next hops, connections, next retry.
    Domain {
        /// The destination domain.
        name: String,
    },
    /// Stop deliveries to a domain (mail is still accepted); survives a restart.
    Suspend {
        domain: String,
        /// Only this binding's queue of the domain.
        #[arg(long)]
        binding: Option<String>,
        /// End by itself after this long ("30m", "2h").
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Restart deliveries to a suspended domain.
    Resume { domain: String },
    /// Fail queued messages for good, with a report to each sender unless --quiet.
    Bounce {
        /// The destination domain whose queued messages to fail.
        domain: Option<String>,
        /// Only this message (its queue id).
        #[arg(long)]
        message: Option<String>,
        /// Only messages from this envelope sender.
        #[arg(long)]
        sender: Option<String>,
        /// The text in the records and the reports.
        #[arg(long)]
        reason: Option<String>,
        /// No report to the senders.
        #[arg(long)]
        quiet: bool,
        /// Only list what would be bounced.
        #[arg(long)]
        dry_run: bool,
    },
    /// Make delayed messages due now (every queue, or one domain's).
    Flush {
        /// Only this destination domain.
        domain: Option<String>,
    },
    /// Read a password on stdin, print its argon2id PHC hash for `auth.users` (no daemon).
    HashPassword,
    /// A live view refreshed every second: rates, queues, pools, memory; keys to sort,
    /// suspend, resume and flush.
    Top,
}

/// How `queues` orders its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum QueueSort {
    Active,
    Delayed,
    Name,
}

/// Sort and cut the rows of a `queues` answer as the flags say.
fn shape_queues(response: &mut Response, sort: QueueSort, limit: Option<usize>) {
    let Response::Queues { domains } = response else {
        return;
    };
    match sort {
        QueueSort::Name => domains.sort_by(|a, b| a.domain.cmp(&b.domain)),
        QueueSort::Active => {
            domains.sort_by(|a, b| b.active.cmp(&a.active).then(a.domain.cmp(&b.domain)))
        }
        QueueSort::Delayed => {
            domains.sort_by(|a, b| b.delayed.cmp(&a.delayed).then(a.domain.cmp(&b.domain)))
        }
    }
    if let Some(n) = limit {
        domains.truncate(n);
    }
}

/// Write `text` to stdout; a reader that went away (`impulsectl tree | head`) ends the
/// output quietly.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

fn parse_class(name: &Option<String>) -> Result<Option<ActorClass>, String> {
    match name {
        None => Ok(None),
        Some(n) => ActorClass::parse(n).map(Some).ok_or_else(|| {
            let names: Vec<&str> = ActorClass::ALL.iter().map(|c| c.name()).collect();
            format!("unknown class {n:?}; classes: {}", names.join(", "))
        }),
    }
}

fn main() -> ExitCode {
    // Usage errors exit 64 (sysexits' EX_USAGE), not clap's 2: 2 means the daemon could
    // not be reached.
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let usage = !matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            );
            let _ = e.print();
            return if usage {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if matches!(args.command, Command::HashPassword) {
        return hash_password::run();
    }
    if matches!(args.command, Command::Top) {
        if args.json {
            eprintln!("impulsectl: top is a live screen; it has no --json");
            return ExitCode::from(64);
        }
        return top::run(&args.socket);
    }
    let (request, class) = match &args.command {
        Command::Status => (Request::Status, Ok(None)),
        Command::Tree {
            class,
            depth,
            all,
            arbiter,
        } => match parse_class(class) {
            Ok(c) => (
                Request::Tree {
                    depth: *depth,
                    class: c,
                    all: *all,
                    arbiter: *arbiter,
                },
                Ok(c),
            ),
            Err(e) => (Request::Status, Err(e)),
        },
        Command::Memory { class } => (Request::Memory, parse_class(class)),
        Command::Pools => (Request::Pools, Ok(None)),
        Command::Queues { .. } => (Request::Queues, Ok(None)),
        Command::Message { id } => (Request::Message { id: id.clone() }, Ok(None)),
        Command::Find {
            sender,
            recipient,
            domain,
            state,
            limit,
        } => (
            Request::Find {
                sender: sender.clone(),
                recipient: recipient.clone(),
                domain: domain.clone(),
                state: state.clone(),
                limit: *limit,
            },
            Ok(None),
        ),
        Command::Shutdown => (Request::Shutdown, Ok(None)),
        Command::Reload => (Request::Reload, Ok(None)),
        Command::Suspend {
            domain,
            binding,
            duration,
        } => (
            Request::Suspend {
                domain: domain.clone(),
                binding: binding.clone(),
                duration_secs: duration.map(|d| d.as_secs().max(1)),
            },
            Ok(None),
        ),
        Command::Resume { domain } => (
            Request::Resume {
                domain: domain.clone(),
            },
            Ok(None),
        ),
        Command::Bounce {
            domain,
            message,
            sender,
            reason,
            quiet,
            dry_run,
        } => (
            Request::Bounce {
                domain: domain.clone(),
                message: message.clone(),
                sender: sender.clone(),
                reason: reason.clone(),
                quiet: *quiet,
                dry_run: *dry_run,
            },
            Ok(None),
        ),
        Command::Domain { name } => (Request::Domain { name: name.clone() }, Ok(None)),
        Command::Flush { domain } => (
            Request::Flush {
                domain: domain.clone(),
            },
            Ok(None),
        ),
        Command::HashPassword | Command::Top => unreachable!("answered above"),
    };
    let class = match class {
        Ok(c) => c,
        Err(e) => {
            eprintln!("impulsectl: {e}");
            return ExitCode::from(1);
        }
    };
    let mut response = match client::exchange(&args.socket, &request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "impulsectl: cannot reach impulsed at {}: {e}",
                args.socket.display()
            );
            return ExitCode::from(2);
        }
    };
    if let Command::Queues { sort, limit } = &args.command {
        shape_queues(&mut response, *sort, *limit);
    }
    if args.json {
        match serde_json::to_string_pretty(&response) {
            Ok(s) => out(&format!("{s}\n")),
            Err(e) => {
                eprintln!("impulsectl: {e}");
                return ExitCode::from(1);
            }
        }
    } else if !matches!(response, Response::Error { .. }) {
        let text = match (&args.command, &response) {
            (_, Response::Tree { text, total, .. }) => format!("{text}{total} actors\n"),
            (_, Response::Memory(report)) => render::memory(report, class),
            (_, other) => render::response(other),
        };
        out(&text);
    }
    match response {
        Response::Error { message } => {
            // The reason goes to stderr (a refused reload lists every error, one per
            // line); stdout stays for answers.
            eprintln!("impulsectl: {message}");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}
