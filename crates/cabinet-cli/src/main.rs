//! `cabinet`: the command-line face of Cabinet Kiosk.
//!
//! Board tools for technicians and tests (`sim-board`, `board`), provisioning (`config
//! check`, `keygen`) and benchmarks (`bench`).
//! Every error says what to do about it.

mod admin;
mod bench;
mod board_cmd;

use clap::{Parser, Subcommand};

/// Cabinet Kiosk command-line tools.
#[derive(Debug, Parser)]
#[command(name = "cabinet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a board on a new pseudo-terminal; prints its path first, then serves until
    /// stopped. Type `help` on stdin for live fault injection.
    SimBoard(board_cmd::SimArgs),
    /// Drive a real or simulated board and print the outcome as JSON.
    Board(board_cmd::BoardArgs),
    /// Benchmarks that print figures (see docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Check a site config file.
    Config(admin::ConfigArgs),
    /// Generate an Ed25519 key pair for signing commands.
    Keygen(admin::KeygenArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::SimBoard(a) => board_cmd::sim_board(a),
        Command::Board(a) => board_cmd::board(a),
        Command::Bench(a) => bench::run(a),
        Command::Config(a) => admin::config(a),
        Command::Keygen(a) => admin::keygen(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
