//! Logging set-up: tracing to daily rolling files (tracing-appender, non-blocking, with a
//! retention limit) and to stderr, as text or JSON lines.
//!
//! Every command's span carries `log_id`, `cmd_id` and `order_id` (see `kiosk/mod.rs`), and the
//! board drivers log inside it, so one `grep <log_id>` finds the payload, the serial
//! exchange and the reply. Secrets never reach a log: passwords live in `config::Secret`,
//! whose Debug and Display print `***`, and tokens are never logged.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::LogsConfig;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log directory could not be created.
    #[error("cannot create log directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The rolling appender could not be built.
    #[error("cannot open log files in {path}: {message}")]
    Appender {
        /// The directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// `logs.level` is not a valid filter.
    #[error("logs.level: {0}")]
    Filter(String),
    /// A global subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadySet,
}

/// File name prefix of the daily files: `cabinet.YYYY-MM-DD.log`.
pub const FILE_PREFIX: &str = "cabinet";

/// Lines the background log writer may have queued (see [`init`]).
const LOG_QUEUE_LINES: usize = 8192;

/// Install the global subscriber. Keep the returned guard alive for the life of the
/// process: dropping it flushes and stops the background writer.
pub fn init(cfg: &LogsConfig, stderr: bool) -> Result<WorkerGuard, LogError> {
    let dir = &cfg.dir;
    // tracing-appender prints an error if the directory does not exist yet.
    std::fs::create_dir_all(dir).map_err(|source| LogError::Dir {
        path: dir.display().to_string(),
        source,
    })?;
    let appender = daily_appender(dir, cfg.retention_days)?;
    // tracing-appender's default queue holds 128,000 lines and allocates (and touches)
    // all of it up front: 4 MB, most of an idle kiosk's heap. A kiosk logs a few lines
    // per command; 8,192 queued lines cover any burst it makes, in 256 KB. When the queue
    // is full the line is dropped rather than stalling the engine (lossy, the default).
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(appender);
    let filter = || filter_from_env("CABINET_LOG", &cfg.level);
    type Boxed = Box<dyn Layer<Registry> + Send + Sync>;
    let mut layers: Vec<Boxed> = Vec::new();
    if cfg.json {
        layers.push(
            fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(writer)
                .with_filter(filter()?)
                .boxed(),
        );
    } else {
        layers.push(
            fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter()?)
                .boxed(),
        );
    }
    if stderr {
        // The console gets warnings only; the files get everything at `logs.level`.
        layers.push(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(Targets::new().with_default(tracing::Level::WARN))
                .boxed(),
        );
    }
    let result = tracing_subscriber::registry().with(layers).try_init();
    result.map_err(|_| LogError::AlreadySet)?;
    Ok(guard)
}

/// The filter named by the environment variable `var` when it is set and valid, else by
/// `fallback`. Both take a level or comma-separated `target=level` directives
/// (`info,cabinet_core=debug`): tracing-subscriber's `Targets`. Its `EnvFilter`, which
/// also filters on spans and fields, is not used: it brings a regex engine, ~200 KiB of
/// code that every cabinet would keep resident for a syntax no technician needs.
pub fn filter_from_env(var: &str, fallback: &str) -> Result<Targets, LogError> {
    if let Some(t) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        return Ok(t);
    }
    fallback
        .parse()
        .map_err(|e: tracing_subscriber::filter::ParseError| LogError::Filter(e.to_string()))
}

fn daily_appender(
    dir: &Path,
    retention_days: u32,
) -> Result<tracing_appender::rolling::RollingFileAppender, LogError> {
    Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix("log")
        .max_log_files(usize::try_from(retention_days.max(1)).unwrap_or(usize::MAX))
        .build(dir)
        .map_err(|e| LogError::Appender {
            path: dir.display().to_string(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_appender_writes_dated_files_in_a_fresh_directory() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("nested/logs");
        std::fs::create_dir_all(&logs).unwrap();
        let mut a = daily_appender(&logs, 3).unwrap();
        writeln!(a, "hello").unwrap();
        a.flush().unwrap();
        let names: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(
            names[0].starts_with("cabinet.") && names[0].ends_with(".log"),
            "{names:?}"
        );
    }
}
