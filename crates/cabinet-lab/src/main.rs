//! `cabinet-lab`: the lab. The fleet simulator (`fleet`: many real kiosk runners against
//! a real Mosquitto or RabbitMQ cluster, reconciled), and the benchmarks that print the
//! figures in docs/BENCHMARKS.md (`bench`). Built and run from the repository, never
//! shipped: the .deb carries `cabinet` and the window app only.

mod bench;
mod fleet;
mod loopback;
mod mosquitto;
mod node_kills;
mod orders;
mod procfs;
mod rabbitmq;
mod stats;
mod xorshift;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// Cabinet Kiosk's lab: fleet simulator and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "cabinet-lab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmarks that print figures (see docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Run N headless kiosks in this process against a Mosquitto it starts, send them
    /// signed commands (some hostile) and reconcile every outcome and motor action.
    /// Exit 0 when the books balance, 1 when they do not.
    Fleet(fleet::FleetArgs),
}

/// A program built beside this one (`cabinet`, the window app): the lab measures the
/// shipped binaries of the same build.
pub fn beside_me(name: &str) -> anyhow::Result<PathBuf> {
    let here = std::env::current_exe().context("cannot find this program's path")?;
    let path = here.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} does not exist: build it first (cargo build --release -p cabinet-cli)",
            path.display()
        );
    }
    Ok(path)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The fleet's hostile commands are refused by design: a warning each.
    let level = match cli.command {
        Command::Fleet(_) => "error",
        Command::Bench(_) => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Bench(a) => bench::run(a),
        Command::Fleet(a) => fleet::fleet(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
