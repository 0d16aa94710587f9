//! # Layout
//!
//! `impulsed`, the supervisor binary: a thin `main` that parses the command line, loads
//! the configuration (file or embedded default), boots the actor system
//! (`impulse_actors::boot`) inside an actix `System`, prints `listening on ADDR` per
//! listener and `ready` on stderr, and runs until a graceful stop. Installs the counting
//! allocator so `impulsectl memory` can attribute memory to actor classes.
//!
//! Exit codes: 0 clean stop, 1 bad config or start failure (one-line reason on stderr).
//! SIGHUP reads the configuration file again and reports (see `impulse_actors::root`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use impulse_config::{Config, DEFAULT_CONFIG};
use impulse_runtime::alloc::CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Impulse mail transfer agent: the supervisor.
#[derive(Parser, Debug)]
#[command(name = "impulsed", version, about)]
struct Args {
    /// Configuration file (RON). Without it, the embedded default is used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate FILE, print every error as FILE:LINE:COL: message, exit 1 on error.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "print_default_config"])]
    check_config: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return ExitCode::SUCCESS;
    }
    if let Some(path) = args.check_config {
        return match Config::load(&path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        };
    }
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        },
        None => Config::embedded_default(),
    };
    let system = actix::System::with_tokio_rt(impulse_actors::arbiters::system_runtime);
    let path = args.config.clone();
    let booted = match system.block_on(async { impulse_actors::boot_from(config, path) }) {
        Ok(b) => b,
        Err(reason) => {
            eprintln!("impulsed: {reason}");
            // The actors the failed boot created were never polled. Dropping the runner
            // would poll each once outside the runtime (actix runs `started` on drop),
            // and the timers they set there panic without a reactor. Nothing is running
            // yet, so leave them to the process exit.
            std::mem::forget(system);
            return ExitCode::from(1);
        }
    };
    for addr in &booted.listening {
        eprintln!("listening on {addr}");
    }
    if let Some(addr) = booted.http {
        eprintln!("http listening on {addr}");
    }
    eprintln!("ready");
    let code = system.run_with_code();
    let _ = std::fs::remove_file(&booted.control_socket);
    match code {
        Ok(0) => ExitCode::SUCCESS,
        Ok(c) => ExitCode::from(c.clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("impulsed: {e}");
            ExitCode::from(1)
        }
    }
}
