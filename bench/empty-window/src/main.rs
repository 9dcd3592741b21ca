//! An empty Tauri 2 window: the reference `cabinet-lab bench window` compares the kiosk with.
//! Same window settings, CSP and build as `src-tauri`; the page is empty except for a
//! script that calls `ui_ready` two animation frames after load. With
//! `CABINET_PRINT_FIRST_PAINT` set, `ui_ready` prints `first-paint-ms <n>` (milliseconds
//! since `main` started) on stdout, exactly as the kiosk does.

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

/// When `main` started, and the first paint once reported.
#[derive(Debug)]
struct Started {
    at: Instant,
    painted: OnceLock<u128>,
}

/// The page is on screen (called once, two animation frames after load).
#[tauri::command]
fn ui_ready(state: tauri::State<'_, Started>) {
    let ms = state.at.elapsed().as_millis();
    if state.painted.set(ms).is_ok() && std::env::var_os("CABINET_PRINT_FIRST_PAINT").is_some() {
        println!("first-paint-ms {ms}");
    }
}

fn main() -> ExitCode {
    let started = Started {
        at: Instant::now(),
        painted: OnceLock::new(),
    };
    let result = tauri::Builder::default()
        .manage(started)
        .invoke_handler(tauri::generate_handler![ui_ready])
        .run(tauri::generate_context!());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("empty-tauri-window: {e}");
            ExitCode::FAILURE
        }
    }
}
