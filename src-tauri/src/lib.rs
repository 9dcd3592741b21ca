//! The customer's touchscreen: a thin Tauri 2 shell over `cabinet-core`.
//!
//! No business logic lives here. The core publishes one [`Snapshot`] at a time on a
//! watch channel; this crate forwards each to the page as the `"screen"` event and keeps
//! the latest for [`get_snapshot`]. The three commands are adapters over core functions.
//! [`run_app`] takes the builder and context so tests can pass
//! `tauri::test::mock_builder()` and run headless.

use cabinet_core::screen::Snapshot;
use cabinet_core::{Lang, Reason, qr};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime, State};
use tokio::sync::watch;

/// The event that carries each new [`Snapshot`] to the page.
pub const SCREEN_EVENT: &str = "screen";

/// What the commands share: this cabinet's code and the core's latest snapshot.
#[derive(Debug)]
pub struct AppState {
    machine_code: String,
    screen: watch::Receiver<Option<Snapshot>>,
}

impl AppState {
    /// `screen` is the receiving end of the channel given to `cabinet_core::kiosk::run`.
    pub fn new(machine_code: impl Into<String>, screen: watch::Receiver<Option<Snapshot>>) -> Self {
        AppState {
            machine_code: machine_code.into(),
            screen,
        }
    }
}

/// The one error type the page sees, serialized as `{code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiError {
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// Human-readable detail (English; for logs and support, not for customers).
    pub message: String,
}

impl UiError {
    fn new(code: &'static str, message: impl ToString) -> Self {
        UiError {
            code,
            message: message.to_string(),
        }
    }
}

/// The latest snapshot, or `null` before the core published its first one.
#[tauri::command]
fn get_snapshot(state: State<'_, AppState>) -> Option<Snapshot> {
    state.screen.borrow().clone()
}

/// The customer sentence for a reason code (`"jammed"`) in `lang` (`"zh-CN"` / `"en"`).
#[tauri::command]
fn customer_text(reason: String, lang: String) -> Result<String, UiError> {
    let reason: Reason = reason
        .parse()
        .map_err(|e| UiError::new("unknown_reason", e))?;
    Ok(reason.customer_text(Lang::from_tag(&lang)).to_owned())
}

/// The idle screen's QR code for `nonce`, as an SVG document.
#[tauri::command]
fn qr_svg(nonce: String, state: State<'_, AppState>) -> Result<String, UiError> {
    qr::svg(&qr::payload(&state.machine_code, &nonce)).map_err(|e| UiError::new("qr_failed", e))
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
        .invoke_handler(tauri::generate_handler![
            get_snapshot,
            customer_text,
            qr_svg
        ])
        .build(context)
}

/// Emits every new snapshot to all webviews as [`SCREEN_EVENT`], until the core drops
/// its sender. Runs on Tauri's async runtime.
pub fn forward_screens<R: Runtime>(
    app: AppHandle<R>,
    mut screen: watch::Receiver<Option<Snapshot>>,
) {
    tauri::async_runtime::spawn(async move {
        while screen.changed().await.is_ok() {
            let snapshot = screen.borrow_and_update().clone();
            if let Some(snapshot) = snapshot
                && let Err(e) = app.emit(SCREEN_EVENT, &snapshot)
            {
                tracing::warn!(error = %e, "cannot send the screen to the page");
            }
        }
    });
}
