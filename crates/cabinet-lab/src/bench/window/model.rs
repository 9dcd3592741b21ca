//! The benchmark's arguments ([`WindowArgs`]) and what one run of one binary records
//! ([`Run`]): what the runs produce and the report reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use super::tree::Mem;

/// Arguments of `cabinet-lab bench window`.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// The kiosk window binary [default: `cabinet-kiosk` next to this `cabinet-lab`].
    #[arg(long)]
    pub(super) app: Option<PathBuf>,
    /// Arguments for the kiosk binary, split at whitespace. With `--demo` and no
    /// `--demo-dir`, each run gets its own demo directory in a temporary directory.
    #[arg(long, default_value = "--demo", allow_hyphen_values = true)]
    pub(super) app_args: String,
    /// Run the kiosk as a cabinet runs it instead of its demo: a site config of its own
    /// (three products, a site name) against a Mosquitto started here and the VMC
    /// simulator on a pty, a fresh journal each run (`--app-args` is not used).
    #[arg(long, conflicts_with = "app_args")]
    pub(super) field: bool,
    /// With `--field`: the products and the site named in Chinese.
    #[arg(long, requires = "field")]
    pub(super) chinese_names: bool,
    /// With `--field`: dispense orders sent through the broker after the first paint, one
    /// after another, each to its `succeeded` reply; the settle window starts when the
    /// screen is idle again. The footprint after serving customers.
    #[arg(long, default_value_t = 0, requires = "field")]
    pub(super) orders: u32,
    /// The empty Tauri 2 window [default: `empty-tauri-window` next to this `cabinet-lab`].
    #[arg(long)]
    pub(super) empty: Option<PathBuf>,
    /// The display both windows run on: `wayland`, a headless Weston with its kiosk shell
    /// (the cabinet's own screen is a Wayland kiosk compositor, cage), or `x11`, an Xvfb
    /// (the figures before 2026-12-06).
    #[arg(long, value_enum, default_value_t = DisplayKind::Wayland)]
    pub(super) display: DisplayKind,
    /// Runs of each binary.
    #[arg(long, default_value_t = 5)]
    pub(super) runs: u32,
    /// Idle seconds after first paint before memory is read (idle CPU is measured over
    /// the second half).
    #[arg(long, default_value_t = 10)]
    pub(super) settle_secs: u64,
    /// Do not set the kiosk's WebKit environment (`kiosk.webkit_env` defaults) for both
    /// windows; the kiosk then sets it itself by re-executing, the empty window runs without.
    #[arg(long)]
    pub(super) bare_env: bool,
    /// Set (or with `KEY=` leave out) one variable of that environment for both windows,
    /// after the defaults: `--env JSC_useJIT=1` measures the JIT the defaults turn off.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub(super) envs: Vec<(String, String)>,
    /// Keep a copy of every process's `/proc/<pid>/smaps` at the reading, as
    /// `DIR/<app|empty>-<run>-<process>-<pid>.smaps`: where the memory goes, mapping by mapping.
    #[arg(long, value_name = "DIR")]
    pub(super) smaps_dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// `--display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum DisplayKind {
    Wayland,
    X11,
}

/// Which binary a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    App,
    Empty,
}

impl Which {
    pub(super) fn label(self) -> &'static str {
        match self {
            Which::App => "app",
            Which::Empty => "empty",
        }
    }
}

/// One run of one binary.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) which: Which,
    /// Spawn → `first-paint-ms` line read by the harness.
    pub(super) paint_harness_ms: f64,
    /// The binary's own figure (since its `main`).
    pub(super) paint_own_ms: u64,
    pub(super) total: Mem,
    /// By process name (`app` for the process the harness started).
    pub(super) by_name: BTreeMap<String, Mem>,
    /// WebKit processes on the machine outside this tree when memory was read. They share
    /// library pages with ours, which lowers our PSS and private figures (not RSS).
    pub(super) others: u32,
}

/// `KEY=VALUE` of `--env`: a non-empty key without `=` or NUL in it.
fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !s.contains('\0') => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!(
            "{s:?}: expected KEY=VALUE (KEY= to leave the variable out)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    #[test]
    fn env_overrides_are_key_value_pairs() {
        assert_eq!(
            parse_env("JSC_useJIT=1"),
            Ok(("JSC_useJIT".into(), "1".into()))
        );
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(
            parse_env("JSC_useJIT="),
            Ok(("JSC_useJIT".into(), String::new()))
        );
        assert!(parse_env("JSC_useJIT").is_err());
        assert!(parse_env("=1").is_err());
    }
}
