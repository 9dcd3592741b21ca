//! `cabinet run --config FILE`: the headless kiosk. Same core as the window app, no UI:
//! it subscribes, verifies, dispenses and replies until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cabinet_core::config::{Config, ConfigError, STOP_GRACE_SECS};
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
    let board = kiosk::open_board(&cfg).context("invalid board settings")?;
    let rt = kiosk::runtime().context("cannot start the async runtime")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(true);
    })
    .context("cannot install the signal handler")?;
    let (screen_tx, _screen_rx) = watch::channel(None);
    // No screen, so no technician: the control channel's sending end is dropped.
    let (_, control_rx) = cabinet_core::control::channel();
    let stop_timeout = cfg.stop_timeout();
    let stopped = stop_rx.clone();
    let core = rt.spawn(kiosk::run(cfg, lock, board, screen_tx, control_rx, stop_rx));
    let result = rt.block_on(wait_for_core(core, stopped, stop_timeout));
    // Threads of the blocking pool (a board call, an export to a hung USB stick) must
    // not keep the process after the core stopped.
    rt.shutdown_timeout(Duration::from_secs(STOP_GRACE_SECS));
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Waits for the kiosk core: as long as it runs, then, once `stopped` says stop, at most
/// `stop_timeout` (`Config::stop_timeout`, the budget the window app uses too: a
/// dispense in progress finishes and is journaled, within the units' TimeoutStopSec).
async fn wait_for_core(
    mut core: tokio::task::JoinHandle<Result<(), kiosk::KioskError>>,
    mut stopped: watch::Receiver<bool>,
    stop_timeout: Duration,
) -> anyhow::Result<()> {
    let finished = tokio::select! {
        r = &mut core => Some(r),
        _ = stopped.wait_for(|stop| *stop) => None,
    };
    let joined = match finished {
        Some(r) => r,
        None => tokio::time::timeout(stop_timeout, core)
            .await
            .map_err(|_| anyhow::anyhow!("the kiosk did not stop within {stop_timeout:?}"))?,
    };
    joined
        .context("the kiosk task failed")?
        .context("the kiosk stopped with an error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_core_that_stops_when_asked_ends_the_wait_with_its_result() {
        let (stop, stopped) = watch::channel(false);
        let mut rx = stopped.clone();
        let core = tokio::spawn(async move {
            let _ = rx.wait_for(|s| *s).await;
            Ok(())
        });
        stop.send(true).unwrap();
        wait_for_core(core, stopped, Duration::from_secs(60))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_core_that_does_not_stop_within_the_budget_is_an_error_naming_it() {
        let (stop, stopped) = watch::channel(false);
        let core = tokio::spawn(std::future::pending());
        stop.send(true).unwrap();
        let e = wait_for_core(core, stopped, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did not stop within 50ms"), "{e}");
    }
}
