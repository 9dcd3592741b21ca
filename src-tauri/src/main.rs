//! `cabinet-kiosk --config FILE` (or `CABINET_CONFIG=FILE`): the kiosk with its window.
//! The same core as the headless `cabinet run`; the window only shows what it publishes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cabinet_board::Board;
use cabinet_core::config::{Config, ConfigError};
use cabinet_core::{kiosk, logs};
use cabinet_kiosk_app::{AppState, forward_screens, run_app};
use tauri::RunEvent;
use tokio::sync::watch;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cabinet-kiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--config PATH`, `--config=PATH`, or the `CABINET_CONFIG` environment variable.
fn config_path() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("CABINET_CONFIG").map(PathBuf::from)
}

fn run() -> anyhow::Result<ExitCode> {
    let Some(path) = config_path() else {
        eprintln!("usage: cabinet-kiosk --config FILE   (or set CABINET_CONFIG=FILE)");
        return Ok(ExitCode::from(2));
    };
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(ConfigError::Invalid(problems)) => {
            eprintln!(
                "{}: {} problem(s); fix them and start again:",
                path.display(),
                problems.len()
            );
            for p in problems {
                eprintln!("  {p}");
            }
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e).context("cannot load the config"),
    };
    let _logs = logs::init(&cfg.logs, true).context("cannot start logging")?;
    let board: Arc<dyn Board> = Arc::from(
        cabinet_board::open_lenient(&kiosk::board_settings(&cfg))
            .context("invalid board settings")?,
    );

    let (screen_tx, screen_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState::new(cfg.machine_code.clone(), screen_rx.clone());
    let app = run_app(tauri::Builder::default(), tauri::generate_context!(), state)
        .context("cannot build the window")?;
    forward_screens(app.handle().clone(), screen_rx);

    // The core runs on Tauri's async runtime, independent of the page: a dead or
    // reloading webview never stops dispensing or replies.
    let handle = app.handle().clone();
    let core = tauri::async_runtime::spawn(async move {
        let result = kiosk::run(cfg, board, screen_tx, stop_rx).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "the kiosk core stopped");
            handle.exit(1);
        }
        result
    });

    let code = app.run_return(move |_app, event| {
        if let RunEvent::Exit = event {
            let _ = stop_tx.send(true);
        }
    });
    // Let the core finish its current step and close the journal cleanly.
    let finished = tauri::async_runtime::block_on(async {
        tokio::time::timeout(Duration::from_secs(10), core).await
    });
    match finished {
        Ok(Ok(Ok(()))) if code == 0 => Ok(ExitCode::SUCCESS),
        Ok(Ok(Ok(()))) => Ok(ExitCode::FAILURE),
        Ok(Ok(Err(e))) => Err(e).context("the kiosk stopped with an error"),
        Ok(Err(e)) => Err(anyhow::anyhow!("the kiosk task failed: {e}")),
        Err(_) => Err(anyhow::anyhow!("the kiosk did not stop within 10 s")),
    }
}
