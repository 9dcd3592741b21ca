//! `cabinet-kiosk --config FILE` (or `CABINET_CONFIG=FILE`): the kiosk with its window.
//! `cabinet-kiosk --demo [--demo-dir DIR] [--demo-layout vending|wall]`: the zero-setup
//! demo (embedded broker, simulated board or locker wall, demo key, a "simulate scan"
//! button), only in a build with the `demo` feature; the .deb's app says it has no demo.
//! The same core as the headless `cabinet run`; the window only shows what it publishes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use cabinet_core::config::{Config, ConfigError, default_webkit_env};
use cabinet_core::instance::{InstanceError, InstanceLock};
use cabinet_core::screen::CabinetInfo;
use cabinet_core::{kiosk, logs};
use cabinet_kiosk_app::{AppState, run_app};
use tauri::{Manager, RunEvent};
use tokio::sync::watch;

const USAGE: &str = "usage: cabinet-kiosk --config FILE   (or set CABINET_CONFIG=FILE)\n       \
                     cabinet-kiosk --demo [--demo-dir DIR] [--demo-layout vending|wall]";

fn main() -> ExitCode {
    let started = Instant::now();
    match run(started) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cabinet-kiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
enum Mode {
    Site(PathBuf),
    Demo {
        dir: Option<PathBuf>,
        layout: Option<String>,
    },
}

/// `--config PATH` / `--config=PATH` / `CABINET_CONFIG`, or `--demo [--demo-dir DIR]
/// [--demo-layout LAYOUT]`.
/// Unknown arguments are ignored: WebKitWebDriver adds its own when it starts the app.
fn mode() -> Option<Mode> {
    let mut config = None;
    let mut demo = false;
    let mut demo_dir = None;
    let mut layout = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config" {
            config = args.next().map(PathBuf::from);
        } else if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            config = Some(PathBuf::from(path));
        } else if arg == "--demo" {
            demo = true;
        } else if arg == "--demo-dir" {
            demo_dir = args.next().map(PathBuf::from);
        } else if arg == "--demo-layout" {
            layout = args.next().map(|l| l.to_string_lossy().into_owned());
        }
    }
    if demo {
        return Some(Mode::Demo {
            dir: demo_dir,
            layout,
        });
    }
    config
        .or_else(|| std::env::var_os("CABINET_CONFIG").map(PathBuf::from))
        .map(Mode::Site)
}

/// Sets `kiosk.webkit_env` fallbacks that are not already set, by re-executing this
/// program with them (WebKitGTK reads them at start; changing our own environment
/// in-process would need `unsafe`). Returns only when nothing had to be set.
fn apply_webkit_env(wanted: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let missing: Vec<(&String, &String)> = wanted
        .iter()
        .filter(|(name, value)| !value.is_empty() && std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find my own executable")?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let err = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(&exe)
            .args(args)
            .envs(missing.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    Err(err).with_context(|| format!("cannot restart {} with the WebKit settings", exe.display()))
}

fn load(path: &std::path::Path) -> anyhow::Result<Result<Config, ExitCode>> {
    // The checks `cabinet config check` makes, before the lock file and the window.
    match Config::load_for_start(path) {
        Ok(c) => Ok(Ok(c)),
        Err(ConfigError::Invalid(problems)) => {
            eprintln!(
                "{}: {} problem(s); fix them and start again:",
                path.display(),
                problems.len()
            );
            for p in problems {
                eprintln!("  {p}");
            }
            Ok(Err(ExitCode::from(2)))
        }
        Err(e) => Err(e).context("cannot load the config"),
    }
}

fn run(started: Instant) -> anyhow::Result<ExitCode> {
    if std::env::args_os().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(mode) = mode() else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    let (cfg, demo) = match mode {
        Mode::Site(path) => {
            let cfg = match load(&path)? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            apply_webkit_env(&cfg.kiosk.webkit_env)?;
            (cfg, None)
        }
        Mode::Demo { dir, layout } => {
            apply_webkit_env(&default_webkit_env())?;
            let (cfg, demo) = demo::start(dir, layout.as_deref())?;
            (cfg, Some(demo))
        }
    };
    // Single instance: one kiosk per cabinet, checked before any window opens.
    let lock = match InstanceLock::for_config(&cfg) {
        Ok(l) => l,
        Err(e @ InstanceError::AlreadyRunning { .. }) => {
            eprintln!("cabinet-kiosk: {e}");
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e.into()),
    };
    let _logs = logs::init(&cfg.logs, true).context("cannot start logging")?;
    let board = kiosk::open_board(&cfg).context("invalid board settings")?;

    let (screen_tx, screen_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (control, control_rx) = cabinet_core::control::channel();
    let mut state = AppState::new(cfg.machine_code.clone(), screen_rx)
        .with_info(CabinetInfo::from_config(&cfg))
        .started_at(started)
        .with_control(control);
    if let Some(demo) = &demo {
        state = demo.attach(state);
    }
    let app = run_app(tauri::Builder::default(), tauri::generate_context!(), state)
        .context("cannot build the window")?;
    let on_exit = app.handle().clone();
    app.state::<AppState>().set_exit(move || on_exit.exit(0));

    // The window cannot be closed by a customer; SIGTERM/SIGINT (systemd, a technician's
    // shell) end the app cleanly: the core finishes its step and closes the journal.
    let on_signal = app.handle().clone();
    ctrlc::set_handler(move || on_signal.exit(0)).context("cannot install the signal handler")?;

    // How long the core may take to stop once asked: the same budget as `cabinet run`
    // (a dispense in progress finishes and is journaled), within the units' TimeoutStopSec.
    let stop_timeout = cfg.stop_timeout();
    // The core runs on Tauri's async runtime, independent of the page: a dead or
    // reloading webview never stops dispensing or replies.
    let handle = app.handle().clone();
    let core = tauri::async_runtime::spawn(async move {
        let result = kiosk::run(cfg, lock, board, screen_tx, control_rx, stop_rx).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "the kiosk core stopped");
            handle.exit(1);
        }
        result
    });
    if let Some(demo) = &demo {
        demo.connect_backend();
    }

    let code = app.run_return(move |_app, event| {
        if let RunEvent::Exit = event {
            let _ = stop_tx.send(true);
        }
    });
    // Let the core finish its current step (and a dispense in progress) and close the
    // journal cleanly.
    let finished =
        tauri::async_runtime::block_on(async { tokio::time::timeout(stop_timeout, core).await });
    // The demo environment (its broker) outlives the core.
    if let Some(demo) = demo {
        demo.stop();
    }
    match finished {
        Ok(Ok(Ok(()))) if code == 0 => Ok(ExitCode::SUCCESS),
        Ok(Ok(Ok(()))) => Ok(ExitCode::FAILURE),
        Ok(Ok(Err(e))) => Err(e).context("the kiosk stopped with an error"),
        Ok(Err(e)) => Err(anyhow::anyhow!("the kiosk task failed: {e}")),
        Err(_) => Err(anyhow::anyhow!(
            "the kiosk did not stop within {stop_timeout:?}"
        )),
    }
}

/// The zero-setup demo (`--demo`): the embedded broker, the simulated board, and the
/// backend that plays a customer's scan.
#[cfg(feature = "demo")]
mod demo {
    use std::path::PathBuf;
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use cabinet_core::config::Config;
    use cabinet_demo::{Demo, DemoBackend, DemoOptions, Layout};
    use cabinet_kiosk_app::AppState;

    /// A running demo environment.
    pub struct DemoRun {
        demo: Arc<Demo>,
        backend: Arc<OnceLock<DemoBackend>>,
    }

    /// Starts the demo environment (in `dir`, or a temporary directory) as `layout`
    /// (`vending` when `None`); its config.
    pub fn start(dir: Option<PathBuf>, layout: Option<&str>) -> anyhow::Result<(Config, DemoRun)> {
        let layout = match layout {
            Some(l) => l
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--demo-layout: {e}"))?,
            None => Layout::Vending,
        };
        let demo = Demo::start(DemoOptions {
            dir,
            layout,
            ..DemoOptions::default()
        })?;
        eprintln!(
            "cabinet-kiosk: demo cabinet {} · broker mqtt://{} · board {} · logs {}",
            demo.config().machine_code,
            demo.broker(),
            demo.config().board.port.display(),
            demo.config().logs.dir.display()
        );
        let cfg = demo.config().clone();
        Ok((
            cfg,
            DemoRun {
                demo: Arc::new(demo),
                backend: Arc::new(OnceLock::new()),
            },
        ))
    }

    impl DemoRun {
        /// The app's state with the "simulate scan" control.
        pub fn attach(&self, state: AppState) -> AppState {
            state.with_demo(Arc::clone(&self.demo), Arc::clone(&self.backend))
        }

        /// Connects the demo backend on Tauri's runtime (the control works once it has).
        pub fn connect_backend(&self) {
            let demo = Arc::clone(&self.demo);
            let backend = Arc::clone(&self.backend);
            tauri::async_runtime::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), demo.backend()).await {
                    Ok(Ok(b)) => {
                        let _ = backend.set(b);
                    }
                    Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "demo backend"),
                    Err(_) => tracing::error!("demo backend: no connection within 10 s"),
                }
            });
        }

        /// Stops the embedded broker and the simulated board.
        pub fn stop(self) {
            drop(self.demo);
        }
    }
}

/// A build without the `demo` feature (the .deb's): `--demo` says so.
#[cfg(not(feature = "demo"))]
mod demo {
    use std::path::PathBuf;

    use cabinet_core::config::Config;
    use cabinet_kiosk_app::AppState;

    /// Never made: this build has no demo.
    pub enum DemoRun {}

    pub fn start(
        _dir: Option<PathBuf>,
        _layout: Option<&str>,
    ) -> anyhow::Result<(Config, DemoRun)> {
        anyhow::bail!(
            "this build has no demo mode (it is built with the `demo` feature: make demo)"
        )
    }

    impl DemoRun {
        pub fn attach(&self, _state: AppState) -> AppState {
            match *self {}
        }

        pub fn connect_backend(&self) {
            match *self {}
        }

        pub fn stop(self) {
            match self {}
        }
    }
}
