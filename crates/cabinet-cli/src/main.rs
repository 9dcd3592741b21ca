//! `cabinet`: the command-line face of Cabinet Kiosk.
//!
//! The headless kiosk (`run`), board tools for technicians and tests (`sim-board`,
//! `board`), provisioning (`config check`, `keygen`, `pin-hash`), diagnostics (`diag`),
//! the journal's operator tools (`journal`) and the backend's side of the MQTT contract
//! for backend developers (`send`, `watch`; docs/PROTOCOL.md) and the operator (`keys`). The fleet simulator and
//! the benchmarks are not here: they are the lab (`cabinet-lab`, not shipped).
//! Every error says what to do about it.

mod admin;
mod backend_cmd;
mod board_cmd;
mod config_push;
mod journal_cmd;
mod keys_cmd;
mod push;
mod run;

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
    /// The headless kiosk: subscribe, verify, dispense, reply, until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// Simulate a board on a new pseudo-terminal; prints its path first, then serves until
    /// stopped. Type `help` on stdin for live fault injection.
    SimBoard(board_cmd::SimArgs),
    /// Drive a real or simulated board and print the outcome as JSON.
    Board(board_cmd::BoardArgs),
    /// Check a site config file (`check`); push the operator's remote configuration to
    /// cabinets and read what they run (`push`, `status`).
    Config(admin::ConfigArgs),
    /// Generate an Ed25519 key pair for signing commands.
    Keygen(admin::KeygenArgs),
    /// Hash a technician's PIN (read from stdin) into a `[technicians]` config line.
    PinHash(admin::PinHashArgs),
    /// Print the cabinet's diagnostics as JSON (for a cabinet without a working screen).
    Diag(admin::DiagArgs),
    /// The journal's operator tools: stats, check, prune, export, compact,
    /// confirm-fresh-start (JSON on stdout; docs/OPERATIONS.md, "The journal").
    Journal(journal_cmd::JournalArgs),
    /// Sign a dispense command, publish it to a cabinet and wait for its outcome.
    /// Exit 0 succeeded, 1 failed/rejected/outcome_unknown, 2 nothing sent, 3 no outcome
    /// in time (retry with the same --cmd-id).
    Send(backend_cmd::SendArgs),
    /// Print cabinets' replies, presence and telemetry as JSON lines until Ctrl-C.
    Watch(backend_cmd::WatchArgs),
    /// The operator's key rotation over the cabinets' own channel: `rotate` (sign a key
    /// set, publish it retained, wait for each cabinet's report), `status`. Exit 0 in
    /// force everywhere, 1 refused, 2 nothing sent, 3 not reported in time.
    Keys(keys_cmd::KeysArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `run` logs to files as configured; every other command logs warnings to stderr.
    if !matches!(cli.command, Command::Run(_)) {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = cabinet_core::logs::filter_from_env("RUST_LOG", "warn")
            .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::WARN));
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .with(filter)
            .init();
    }
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::SimBoard(a) => board_cmd::sim_board(a),
        Command::Board(a) => board_cmd::board(a),
        Command::Config(a) => admin::config(a),
        Command::Keygen(a) => admin::keygen(a),
        Command::PinHash(a) => admin::pin_hash(a),
        Command::Diag(a) => admin::diag(a),
        Command::Journal(a) => journal_cmd::journal(a),
        Command::Send(a) => backend_cmd::send(a),
        Command::Watch(a) => backend_cmd::watch(a),
        Command::Keys(a) => keys_cmd::keys(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
