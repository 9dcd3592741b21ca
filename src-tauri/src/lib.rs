//! The customer's touchscreen: a thin Tauri 2 shell over `cabinet-core`.
//!
//! No business logic lives here. The core publishes one [`Snapshot`] at a time on a
//! watch channel; the page reads the latest with [`get_snapshot`] and waits for the next
//! with [`next_snapshot`]. The commands (the screen's, the technician's and, with
//! the `demo` feature, the demo's) are adapters over core functions.
//! [`run_app`] takes the builder and context so tests can pass
//! `tauri::test::mock_builder()` and run headless.

#[cfg(feature = "demo")]
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Instant;

use cabinet_core::control::{
    ControlHandle, Diagnostics, Refusal, TechAction, TechAnswer, TechError, TechStatus,
};
use cabinet_core::screen::{CabinetInfo, Snapshot};
use cabinet_core::technician::Attempt;
use cabinet_core::{names_font, qr};
#[cfg(feature = "demo")]
use cabinet_demo::{Demo, DemoBackend, DemoFault, DemoFaults};
use serde::Serialize;
use tauri::{AppHandle, Manager, Runtime, State};
use tokio::sync::watch;

/// The longest [`next_snapshot`] waits before it answers with the snapshot the page has
/// (the page then asks again): no request stays open for ever.
const NEXT_SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(50);

/// What the commands share: this cabinet's code and the core's latest snapshot.
#[derive(Debug)]
pub struct AppState {
    machine_code: String,
    /// The config's words for customers (board kind, service contact, QR link).
    info: CabinetInfo,
    screen: watch::Receiver<Option<Snapshot>>,
    started: Instant,
    painted: OnceLock<u128>,
    /// Demo mode only: the demo environment, and the backend that plays a customer's
    /// scan (set once it has connected).
    #[cfg(feature = "demo")]
    demo: Option<(Arc<Demo>, Arc<OnceLock<DemoBackend>>)>,
    /// The technician's requests to the core (absent when no core runs, as in tests).
    control: Option<ControlHandle>,
    /// Ends the app (set by `main` once the app exists; a technician action).
    exit: OnceLock<ExitFn>,
}

/// How the app ends itself.
struct ExitFn(Box<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for ExitFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExitFn")
    }
}

impl AppState {
    /// `screen` is the receiving end of the channel given to `cabinet_core::kiosk::run`.
    pub fn new(machine_code: impl Into<String>, screen: watch::Receiver<Option<Snapshot>>) -> Self {
        AppState {
            machine_code: machine_code.into(),
            info: CabinetInfo::plain(),
            screen,
            started: Instant::now(),
            painted: OnceLock::new(),
            #[cfg(feature = "demo")]
            demo: None,
            control: None,
            exit: OnceLock::new(),
        }
    }

    /// What the technician's "exit" does (main: end the Tauri app).
    pub fn set_exit(&self, exit: impl Fn() + Send + Sync + 'static) {
        let _ = self.exit.set(ExitFn(Box::new(exit)));
    }

    /// What the screens say about this cabinet (`CabinetInfo::from_config`).
    pub fn with_info(mut self, info: CabinetInfo) -> Self {
        self.info = info;
        self
    }

    /// The core's control channel (technician login and maintenance).
    pub fn with_control(mut self, control: ControlHandle) -> Self {
        self.control = Some(control);
        self
    }

    /// Demo mode: enables the "simulate scan" control. `backend` is filled in once the
    /// demo backend has connected to the embedded broker.
    #[cfg(feature = "demo")]
    pub fn with_demo(mut self, demo: Arc<Demo>, backend: Arc<OnceLock<DemoBackend>>) -> Self {
        self.demo = Some((demo, backend));
        self
    }

    /// Counts the time to first paint from now (call at process start).
    pub fn started_at(mut self, started: Instant) -> Self {
        self.started = started;
        self
    }
}

/// The one error type the page sees, serialized as `{code, message}`, and `refusal`
/// when a technician's action was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiError {
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// Human-readable detail (English; for logs and support, not for customers).
    pub message: String,
    /// Why a technician's action was refused (`{why, ...}`), which the panel words in
    /// its language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
}

impl UiError {
    fn new(code: &'static str, message: impl ToString) -> Self {
        UiError {
            code,
            message: message.to_string(),
            refusal: None,
        }
    }
}

impl From<TechError> for UiError {
    fn from(e: TechError) -> Self {
        UiError {
            code: e.code(),
            message: e.to_string(),
            refusal: e.refusal().cloned(),
        }
    }
}

/// The latest snapshot, or `null` before the core published its first one.
#[tauri::command]
fn get_snapshot(state: State<'_, AppState>) -> Option<Snapshot> {
    state.screen.borrow().clone()
}

/// The first snapshot whose `version` is not `after`: at once when the core has published
/// another since, else when it does (`after` absent: the first one at all). After
/// [`NEXT_SNAPSHOT_WAIT`] without one, the latest as it is (`null` before the first).
///
/// The page pulls its snapshots this way, one request at a time, rather than receive
/// them as Tauri events: listening for an event and every delivery run a script in the
/// page from this process (Tauri's `eval`), and WebKit hands each such script's result
/// back as a JavaScript value, so the first one starts a JavaScriptCore VM in this
/// process: its heap, ~1.4 MB, stays resident (its code pages are shared with the web
/// process and cost little; docs/BENCHMARKS.md, "Window: first paint and footprint"). A
/// command's answer comes back over the IPC protocol's HTTP response instead.
#[tauri::command]
async fn next_snapshot(
    after: Option<u64>,
    state: State<'_, AppState>,
) -> Result<Option<Snapshot>, UiError> {
    let mut screen = state.screen.clone();
    let newer = |s: &Option<Snapshot>| s.as_ref().is_some_and(|s| Some(s.version) != after);
    let waited = match tokio::time::timeout(NEXT_SNAPSHOT_WAIT, screen.wait_for(newer)).await {
        Ok(Ok(snapshot)) => Some(snapshot.clone()),
        // The core has stopped (the app is ending): nothing newer will come.
        Ok(Err(_)) => return Err(UiError::new("core_stopped", "the core has stopped")),
        Err(_) => None,
    };
    Ok(waited.unwrap_or_else(|| screen.borrow().clone()))
}

/// The idle screen's QR code for `nonce`, as an SVG document.
#[tauri::command]
fn qr_svg(nonce: String, state: State<'_, AppState>) -> Result<String, UiError> {
    let data = qr::payload(&current_info(&state).qr_url, &state.machine_code, &nonce);
    qr::svg(&data).map_err(|e| UiError::new("qr_failed", e))
}

/// A font for `text`'s characters that the page's own font cannot have (the config's
/// names: `cabinet_core::names_font`), as raw bytes; empty when `text` needs none. The
/// page adds it before it draws the names, so the system's CJK file is never opened for
/// them. Without the tool or the font it fails, and the system's fonts draw the names.
#[tauri::command]
async fn names_font(text: String) -> Result<tauri::ipc::Response, UiError> {
    let cut = tauri::async_runtime::spawn_blocking(move || names_font::cut(&text))
        .await
        .map_err(|e| UiError::new("names_font_failed", e))?;
    match cut {
        Ok(font) => Ok(tauri::ipc::Response::new(font.unwrap_or_default())),
        Err(e) => {
            tracing::warn!(error = %e, "no font cut for the config's names: the system's fonts draw them");
            Err(UiError::new("names_font_failed", e))
        }
    }
}

/// What the screens say about this cabinet, with the help page's QR code (an SVG
/// document, absent without `support.help_url`).
#[tauri::command]
fn cabinet_info(state: State<'_, AppState>) -> Result<CabinetInfoView, UiError> {
    let info = current_info(&state);
    let help_qr = if info.help_url.is_empty() {
        None
    } else {
        Some(qr::svg(&info.help_url).map_err(|e| UiError::new("qr_failed", e))?)
    };
    Ok(CabinetInfoView { info, help_qr })
}

/// The screens' words for the cabinet: the site file's, or, once an operator's
/// configuration is in force (the snapshot's `config_version`), the core's under it.
fn current_info(state: &AppState) -> CabinetInfo {
    match state.screen.borrow().as_ref() {
        Some(snap) if snap.config_version > 0 => (*snap.info).clone(),
        _ => state.info.clone(),
    }
}

/// [`cabinet_info`]'s answer.
#[derive(Debug, Clone, Serialize)]
struct CabinetInfoView {
    #[serde(flatten)]
    info: CabinetInfo,
    help_qr: Option<String>,
}

/// The page is on screen (called once, two animation frames after its first render).
/// Logs the time since start; with `CABINET_PRINT_FIRST_PAINT` set it also prints
/// `first-paint-ms <n>` on stdout, which the footprint benchmark reads.
#[tauri::command]
fn ui_ready(state: State<'_, AppState>) {
    let ms = state.started.elapsed().as_millis();
    if state.painted.set(ms).is_ok() {
        tracing::info!(first_paint_ms = ms, "the customer screen is up");
        if std::env::var_os("CABINET_PRINT_FIRST_PAINT").is_some() {
            println!("first-paint-ms {ms}");
        }
    }
}

/// Whether this is the demo (the page then shows the "simulate scan" control).
#[tauri::command]
fn demo_available(state: State<'_, AppState>) -> bool {
    is_demo(&state)
}

#[cfg(feature = "demo")]
fn is_demo(state: &AppState) -> bool {
    state.demo.is_some()
}

/// A build without the `demo` feature (the .deb's) is never the demo.
#[cfg(not(feature = "demo"))]
fn is_demo(_: &AppState) -> bool {
    false
}

/// Demo only: how many times the simulated board has run a motor, or the wall's boards
/// have opened a door (the viewer watches it go up by one per dispense).
#[cfg(feature = "demo")]
#[tauri::command]
fn demo_motor_count(state: State<'_, AppState>) -> Result<u64, UiError> {
    Ok(demo_of(&state)?.actions())
}

/// Demo only: plays a customer scanning the QR code now on screen. Returns the support
/// code of the command the demo backend sent (what the screen shows if it fails).
#[cfg(feature = "demo")]
#[tauri::command]
async fn demo_scan(state: State<'_, AppState>) -> Result<String, UiError> {
    demo_play(&state, cabinet_core::protocol::CommandKind::Dispense).await
}

/// Demo only, the wall: plays a customer putting a rental back into an empty door (a
/// signed `return`). Returns the support code, as `demo_scan`.
#[cfg(feature = "demo")]
#[tauri::command]
async fn demo_return(state: State<'_, AppState>) -> Result<String, UiError> {
    demo_play(&state, cabinet_core::protocol::CommandKind::Return).await
}

#[cfg(feature = "demo")]
async fn demo_play(
    state: &AppState,
    kind: cabinet_core::protocol::CommandKind,
) -> Result<String, UiError> {
    let Some((_, backend)) = &state.demo else {
        return Err(UiError::new(
            "not_demo",
            "this cabinet is not running the demo",
        ));
    };
    let Some(backend) = backend.get() else {
        return Err(UiError::new(
            "demo_not_ready",
            "the demo backend is still connecting",
        ));
    };
    let Some(snapshot) = state.screen.borrow().clone() else {
        return Err(UiError::new(
            "no_screen",
            "the kiosk has not drawn a screen yet",
        ));
    };
    let played = match kind {
        cabinet_core::protocol::CommandKind::Return => backend.give_back(&snapshot).await,
        // The demo's two buttons: a sale or a return.
        _ => backend.scan(&snapshot).await,
    };
    let scan = played.map_err(|e| UiError::new("scan_failed", format!("{e:#}")))?;
    Ok(cabinet_core::support::code(&scan.cmd_id))
}

/// Demo only: the demo's technician (the demo screen shows the PIN) and what the viewer
/// has broken.
#[cfg(feature = "demo")]
#[derive(Debug, Clone, Serialize)]
struct DemoInfo {
    technician: &'static str,
    pin: &'static str,
    faults: DemoFaults,
    /// `vending` or `wall`: which faults the panel offers and how it counts.
    layout: cabinet_demo::Layout,
}

#[cfg(feature = "demo")]
fn demo_of(state: &AppState) -> Result<&Demo, UiError> {
    state
        .demo
        .as_ref()
        .map(|(demo, _)| demo.as_ref())
        .ok_or_else(|| UiError::new("not_demo", "this cabinet is not running the demo"))
}

#[cfg(feature = "demo")]
fn demo_info_of(demo: &Demo) -> DemoInfo {
    DemoInfo {
        technician: cabinet_demo::TECHNICIAN,
        pin: cabinet_demo::TECHNICIAN_PIN,
        faults: demo.faults(),
        layout: demo.layout(),
    }
}

/// Demo only: the technician and the faults on.
#[cfg(feature = "demo")]
#[tauri::command]
fn demo_info(state: State<'_, AppState>) -> Result<DemoInfo, UiError> {
    Ok(demo_info_of(demo_of(&state)?))
}

/// Demo only: jam the motors, unplug the board or drop the broker (`on`), or mend it.
#[cfg(feature = "demo")]
#[tauri::command]
fn demo_set_fault(
    fault: DemoFault,
    on: bool,
    state: State<'_, AppState>,
) -> Result<DemoInfo, UiError> {
    let demo = demo_of(&state)?;
    demo.set_fault(fault, on);
    Ok(demo_info_of(demo))
}

fn control(state: &AppState) -> Result<&ControlHandle, UiError> {
    state
        .control
        .as_ref()
        .ok_or_else(|| UiError::new("no_core", "the kiosk core is not running"))
}

fn gone(e: cabinet_core::control::KioskGone) -> UiError {
    UiError::new("no_core", e)
}

/// Who may log in, who is in, and whether entry is locked.
#[tauri::command]
async fn tech_status(state: State<'_, AppState>) -> Result<TechStatus, UiError> {
    control(&state)?.status().await.map_err(gone)
}

/// A technician's PIN attempt. Wrong PINs count towards the lockout.
#[tauri::command]
async fn tech_login(
    technician: String,
    pin: String,
    state: State<'_, AppState>,
) -> Result<Attempt, UiError> {
    control(&state)?
        .login(&technician, &pin)
        .await
        .map_err(gone)
}

/// The technician leaves; the cabinet returns to service.
#[tauri::command]
async fn tech_logout(state: State<'_, AppState>) -> Result<(), UiError> {
    control(&state)?.logout().await.map_err(gone)
}

/// The technician touched the screen (postpones the automatic logout).
#[tauri::command]
async fn tech_activity(state: State<'_, AppState>) -> Result<(), UiError> {
    control(&state)?.activity().await.map_err(gone)
}

/// The cabinet's live health, for the logged-in technician.
#[tauri::command]
async fn tech_diag(state: State<'_, AppState>) -> Result<Diagnostics, UiError> {
    control(&state)?
        .diagnostics()
        .await
        .map_err(gone)?
        .map_err(UiError::from)
}

/// A technician's action: slot test, clear jam, enable/disable, restock, command search,
/// frames, audit, export, exit. Audited by the core; refused unless logged in.
#[tauri::command]
async fn tech_do(action: TechAction, state: State<'_, AppState>) -> Result<TechAnswer, UiError> {
    let exit = matches!(action, TechAction::Exit);
    let answer = control(&state)?
        .tech(action)
        .await
        .map_err(gone)?
        .map_err(UiError::from)?;
    if exit && let Some(ExitFn(exit)) = state.exit.get() {
        exit();
    }
    Ok(answer)
}

/// Builds the app: state, commands, nothing else. The caller runs it (or, in tests,
/// creates a webview and invokes commands through the mock runtime).
pub fn run_app<R: Runtime>(
    builder: tauri::Builder<R>,
    context: tauri::Context<R>,
    state: AppState,
) -> tauri::Result<tauri::App<R>> {
    builder
        .manage(state)
        .setup(|app| Ok(open_window(app.handle())?))
        // Alt+F4 or a window manager's close button: the customer cannot close the
        // kiosk. Exiting is for technicians (signal from systemd or a shell).
        .on_window_event(|_window, event| {
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
            }
        })
        .invoke_handler(tauri::generate_handler![
            get_snapshot,
            next_snapshot,
            qr_svg,
            cabinet_info,
            names_font,
            ui_ready,
            demo_available,
            #[cfg(feature = "demo")]
            demo_motor_count,
            #[cfg(feature = "demo")]
            demo_scan,
            #[cfg(feature = "demo")]
            demo_return,
            #[cfg(feature = "demo")]
            demo_info,
            #[cfg(feature = "demo")]
            demo_set_fault,
            tech_status,
            tech_login,
            tech_logout,
            tech_activity,
            tech_diag,
            tech_do
        ])
        .build(context)
}

/// Opens the kiosk's window (`main` in tauri.conf.json, which Tauri does not create by
/// itself) over the whole primary screen, whatever its size. `fullscreen` is a request
/// to a window manager; a cabinet usually runs none, and without one the window keeps
/// the size it is created with, so it is created at the screen's size: 1080×1920 fixed
/// was cut off on an 800×480 panel and short of a 1920×1080 one. (Resizing it after it
/// is created does not take on GTK without a window manager.) The page lays itself out
/// for the size it gets.
fn open_window<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let Some(config) = app.config().app.windows.iter().find(|w| w.label == "main") else {
        return Ok(());
    };
    if app.get_webview_window(&config.label).is_some() {
        return Ok(());
    }
    let mut window = tauri::WebviewWindowBuilder::from_config(app, config)?;
    match app.primary_monitor() {
        Ok(Some(monitor)) => {
            let scale = monitor.scale_factor();
            let size = monitor.size().to_logical::<f64>(scale);
            let at = monitor.position().to_logical::<f64>(scale);
            tracing::info!(
                width = size.width,
                height = size.height,
                "the window covers the screen"
            );
            window = window
                .inner_size(size.width, size.height)
                .position(at.x, at.y);
        }
        Ok(None) => tracing::warn!("no screen found: the window keeps its configured size"),
        Err(e) => tracing::warn!(error = %e, "cannot read the screen's size"),
    }
    let window = window.build()?;
    #[cfg(target_os = "linux")]
    keep_on_screen(&window);
    #[cfg(not(target_os = "linux"))]
    let _ = window;
    Ok(())
}

/// Keeps the kiosk's window on the screen under a desktop window manager. Tauri's
/// `minimizable: false` does nothing on Linux, and a window manager's menu (Alt+Space)
/// minimised the kiosk to a black screen that a customer could not undo. So the window
/// asks the window manager (Motif hints, which Openbox, Metacity, Mutter, xfwm and KWin
/// read) to offer nothing on it: no minimise, maximise, move, resize or close; and a
/// window manager that minimises it anyway (a script, a task bar) sees it come straight
/// back. Without a window manager neither matters, and both are harmless.
#[cfg(target_os = "linux")]
fn keep_on_screen<R: Runtime>(window: &tauri::WebviewWindow<R>) {
    use gtk::gdk;
    use gtk::prelude::*;
    let gtk_window = match window.gtk_window() {
        Ok(w) => w,
        // The test runtime has no GTK window.
        Err(e) => return tracing::debug!(error = %e, "no GTK window to keep on screen"),
    };
    let offer_nothing = |w: &gtk::ApplicationWindow| {
        if let Some(gdk_window) = w.window() {
            gdk_window.set_functions(gdk::WMFunction::empty());
        }
    };
    // Realized already when Tauri hands it over; on realize too, should that change.
    offer_nothing(&gtk_window);
    gtk_window.connect_realize(offer_nothing);
    gtk_window.connect_window_state_event(|w, event| {
        if event
            .new_window_state()
            .contains(gdk::WindowState::ICONIFIED)
        {
            tracing::warn!("the window was minimised: brought back");
            w.deiconify();
            w.present();
        }
        gtk::glib::Propagation::Proceed
    });
}
