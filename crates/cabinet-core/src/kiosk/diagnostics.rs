//! What a technician or `cabinet diag` can see of the running kiosk: the live health
//! ([`Diagnostics`]), the status file beside the journal, and the diagnostics bundle
//! written to a USB stick.

use std::path::PathBuf;

use tokio::sync::mpsc;
use tracing::{info_span, warn};

use crate::audit::AuditNote;
use crate::config::Config;
use crate::control::{
    Diagnostics, JournalDiagnostics, LinkDiagnostics, Refusal, TechAnswer, TechError,
};
use crate::journal_stats::{FileBytes, disk_free};
use crate::witness::Loss;

use super::link::Link;
use super::{Answer, KioskError, Runner, VERSION, now_ms};

/// 2026-01-01T00:00:00Z: a clock before this is certainly wrong (this code did not
/// exist yet). Used for `Diagnostics::clock_plausible`.
const BUILD_EPOCH_FLOOR_SECS: u64 = 1_767_225_600;

/// Where the running kiosk keeps its latest [`Diagnostics`]: `<journal>.status.json`.
pub fn status_path(cfg: &Config) -> PathBuf {
    cfg.journal.beside(".status.json")
}

/// A diagnostics export finished on the blocking pool: who asked, where the bundle went
/// and its files (or why not), and who waits for the answer.
pub(super) type ExportDone = (String, Result<(PathBuf, Vec<String>), String>, Answer);

/// Exports: one at a time, so a hung USB stick holds one thread.
pub(super) struct Exports {
    writing: bool,
    done_tx: mpsc::UnboundedSender<ExportDone>,
    /// Exports come back here from the blocking pool.
    pub(super) done_rx: mpsc::UnboundedReceiver<ExportDone>,
}

impl Exports {
    pub(super) fn new() -> Exports {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Exports {
            writing: false,
            done_tx,
            done_rx,
        }
    }
}

impl<L: Link> Runner<L> {
    /// Starts a diagnostics bundle for `dir`: the live health, the config with its
    /// secrets redacted, a journal extract and the last serial frames are gathered here
    /// (memory and journal reads), and the files, with a copy of the log files, are
    /// written on the blocking pool (crate::export), so a slow or hung USB stick never
    /// holds up the loop. The technician is answered from `export_done`. Nothing in the
    /// bundle is secret.
    pub(super) fn start_export(&mut self, technician: &str, dir: PathBuf, reply: Answer) {
        if self.exports.writing {
            let _ = reply.send(Err(TechError::Busy(Refusal::ExportRunning)));
            return;
        }
        let bundle = match self.export_contents(dir) {
            Ok(b) => b,
            Err(e) => {
                let _ = reply.send(Err(TechError::Failed(format!(
                    "cannot gather the bundle: {e}"
                ))));
                return;
            }
        };
        self.exports.writing = true;
        let tx = self.exports.done_tx.clone();
        let technician = technician.to_owned();
        let span = info_span!("export", technician = %technician);
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            let written = bundle.write();
            if let Err(e) = &written {
                warn!(error = %e, "diagnostics export failed");
            }
            let _ = tx.send((technician, written, reply));
        });
    }

    /// What goes into the bundle, read now so it is one moment's picture.
    fn export_contents(
        &self,
        dir: PathBuf,
    ) -> Result<crate::export::Bundle, Box<dyn std::error::Error>> {
        Ok(crate::export::Bundle {
            dir,
            name: format!("cabinet-{}-{}", self.cfg.machine_code, now_ms()),
            files: vec![
                (
                    "diagnostics.json",
                    serde_json::to_value(self.diagnostics()?)?,
                ),
                ("config.json", serde_json::to_value(&self.cfg)?),
                (
                    "journal.json",
                    serde_json::json!({
                        "inventory": self.journal.inventory()?,
                        "outbox_pending": self.journal.outbox_len()?,
                        "commands": self.journal.recent_commands(500)?,
                        "audit": self.journal.recent_audit(500)?,
                        "rejections": self.journal.recent_rejections(500)?,
                        // What `reported` says: the key set and configuration in force.
                        "documents": self.docs.report(&self.cfg.machine_code, &self.boot_id),
                    }),
                ),
                (
                    "frames.json",
                    serde_json::to_value(self.board.board.recent_frames())?,
                ),
            ],
            logs_dir: self.cfg.logs.dir.clone(),
        })
    }

    /// An export came back from the blocking pool: audit it (as every technician
    /// action) and say where it went.
    pub(super) fn export_done(
        &mut self,
        technician: &str,
        written: Result<(PathBuf, Vec<String>), String>,
    ) -> Result<TechAnswer, TechError> {
        self.exports.writing = false;
        let (path, files) = written.map_err(TechError::Failed)?;
        let note = AuditNote::Text {
            text: path.display().to_string(),
        };
        self.audit(technician, "export", &note)
            .map_err(|e| TechError::Failed(e.to_string()))?;
        Ok(TechAnswer::Exported {
            path: path.display().to_string(),
            files,
        })
    }

    /// Writes the live health beside the journal (`<journal>.status.json`, replaced
    /// atomically) every heartbeat, so `cabinet diag` can show it from another process.
    /// Best effort: a full disk must not stop the kiosk over a status file.
    pub(super) fn write_status(&self) {
        let Ok(diag) = self.diagnostics() else { return };
        let Ok(json) = serde_json::to_vec_pretty(&diag) else {
            return;
        };
        let path = status_path(&self.cfg);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let written = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            warn!(path = %path.display(), error = %e, "cannot write the status file");
        }
    }

    /// The technician screen's broker line: the configured URL, or with failover
    /// endpoints the one in use (or last used) and how many are configured.
    fn broker_diagnostics(&self) -> String {
        let m = &self.cfg.mqtt;
        let n = 1 + m.failover_urls.len();
        if n == 1 {
            return m.url.clone();
        }
        let scheme = if m.url.starts_with("mqtts://") {
            "mqtts"
        } else {
            "mqtt"
        };
        match &self.conn.broker {
            Some(b) => format!("{scheme}://{b} ({n} endpoints configured)"),
            None => format!("{} ({n} endpoints configured)", m.url),
        }
    }

    /// The live health, as the diagnostics screen shows it.
    pub(super) fn diagnostics(&self) -> Result<Diagnostics, KioskError> {
        let now = now_ms();
        let path = &self.cfg.journal.path;
        Ok(Diagnostics {
            version: VERSION.to_owned(),
            machine_code: self.cfg.machine_code.clone(),
            boot_id: self.boot_id.clone(),
            at_ms: now,
            uptime_secs: self.started.elapsed().as_secs(),
            clock_plausible: now / 1000 >= BUILD_EPOCH_FLOOR_SECS,
            clock_confirmed_ms: self.conn.clock_confirmed_ms,
            link: LinkDiagnostics {
                broker: self.broker_diagnostics(),
                subscription: self.topics.cmd.clone(),
                connected: self.conn.connected,
                connected_since_ms: self.conn.connected_since_ms,
                last_message_ms: self.conn.last_message_ms,
                outbox_pending: self.journal.outbox_len()?,
            },
            board: self.board.board.health(),
            board_up: self.engine.board_up(),
            boards: self.board.board.boards(),
            unreachable_slots: self.engine.unreachable_slots().collect(),
            journal: JournalDiagnostics {
                path: path.display().to_string(),
                size_bytes: FileBytes::of(path).total,
                disk_free_bytes: disk_free(path),
                disk_low: self.service.disk_low,
                rejections_dropped: self.journal.rejections_dropped().unwrap_or(0),
                unverified: self.journal_loss.as_ref().map(Loss::describe),
                loss: self.journal_loss.clone(),
            },
            technician: self.desk.technician().map(str::to_owned),
        })
    }
}
