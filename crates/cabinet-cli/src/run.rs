//! `cabinet run --config FILE`: the headless kiosk. Same core as the window app, no UI:
//! it subscribes, verifies, dispenses and replies until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use cabinet_board::Board;
use cabinet_core::config::{Config, ConfigError};
use cabinet_core::instance::InstanceLock;
use cabinet_core::{kiosk, logs};
use clap::Args;
use tokio::sync::watch;

/// Arguments of `cabinet run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Site config file (see deploy/config.example.toml and docs/CONFIG.md).
    #[arg(long)]
    config: PathBuf,
    /// Do not copy warnings to stderr (log files only).
    #[arg(long)]
    quiet: bool,
}

/// Run the headless kiosk.
pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    // Every check that can be made before start, before the lock file is created.
    let cfg = match Config::load_for_start(&a.config) {
        Ok(c) => c,
        Err(ConfigError::Invalid(problems)) => {
            eprintln!(
                "{}: {} problem(s); fix them and start again:",
                a.config.display(),
                problems.len()
            );
            for p in problems {
                eprintln!("  {p}");
            }
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e).context("cannot load the config"),
    };
    let lock = InstanceLock::for_config(&cfg)?;
    let _logs = logs::init(&cfg.logs, !a.quiet).context("cannot start logging")?;
    let board = open_board(&cfg)?;
    let rt = kiosk_runtime()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(true);
    })
    .context("cannot install the signal handler")?;
    let (screen_tx, _screen_rx) = watch::channel(None);
    // No screen, so no technician: the control channel's sending end is dropped.
    let (_, control_rx) = cabinet_core::control::channel();
    rt.block_on(kiosk::run(cfg, lock, board, screen_tx, control_rx, stop_rx))
        .context("the kiosk stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

/// The board as the kiosk opens it: lenient, so a missing adapter means "out of service".
pub fn open_board(cfg: &Config) -> anyhow::Result<Arc<dyn Board>> {
    let board = cabinet_board::open_lenient(&kiosk::board_settings(cfg))
        .context("invalid board settings")?;
    Ok(Arc::from(board))
}

/// The runtime the kiosk runs on (two workers: the target boards are small).
pub fn kiosk_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kiosk")
        .build()
        .context("cannot start the async runtime")
}
