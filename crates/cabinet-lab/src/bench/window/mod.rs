//! `cabinet-lab bench window`: time to first paint and idle footprint of the kiosk window,
//! beside an empty Tauri 2 window built the same way (`bench/empty-window`), in the same
//! run on the same display.
//!
//! One display for the whole run: by default a headless Weston with its kiosk shell
//! (Wayland, full-screen windows, as the cabinet's own compositor shows the app), or with
//! `--display x11` an Xvfb (`-displayfd`, no fixed display number). Each run starts one
//! binary in its own process group with `CABINET_PRINT_FIRST_PAINT=1`; both binaries print
//! `first-paint-ms <n>` from their `ui_ready` command, which their page invokes two
//! animation frames after it has rendered (the kiosk: its first screen with the core's
//! snapshot). First paint is taken on the harness's clock (spawn → that line on stdout);
//! the binary's own figure (since its `main`) is kept beside it. After `--settle-secs` of
//! idle the harness sums `Rss`, `Pss` and private memory from `/proc/<pid>/smaps_rollup`
//! over the process and all its descendants (the WebKit web and network processes), and
//! the CPU the tree used over the second half of the settle window (idle, past the tail
//! of start-up); then it stops the group (SIGTERM, SIGKILL after 10 s). The two binaries
//! alternate (A B, B A, …) so a slow drift of the machine falls on both. Nothing here
//! asserts on time.
//!
//! With `--field` the kiosk runs on a site config against Mosquitto and the simulator
//! instead of its demo, and with `--orders` serves customers before the settle window
//! ([`field`]).
//!
//! The parts: [`model`] (the arguments, what one run records), [`run`] (the runs in
//! alternation, one run of one binary up to its first paint and through the settle
//! window), [`field`] (the cabinet's broker, board and backend), [`tree`] (the process
//! tree a window makes: its memory, its CPU, its stop), [`host`] (the display and the
//! machine the runs are on) and [`report`] (the figures over the runs, text or JSON).

mod field;
mod host;
mod model;
mod report;
mod run;
mod tree;

pub use model::WindowArgs;
pub use run::bench_window;
