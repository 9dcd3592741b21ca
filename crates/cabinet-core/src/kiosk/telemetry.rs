//! Telemetry: what the cabinet tells its backend every `kiosk.heartbeat_secs`, and at
//! once after a technician's action (the audit and the new stock) or a change of the
//! journal's disk. The status file for `cabinet diag` is written at the same beat.

use crate::journal_stats::{FileBytes, disk_free};
use crate::protocol::{self, PROTOCOL_VERSION, SlotLevel, Telemetry};
use crate::witness::Loss;

use super::link::{Link, stopped_is_not_an_error};
use super::{KioskError, Runner, now_ms};

impl<L: Link> Runner<L> {
    /// Sends technician actions to the backend now (in a telemetry message) rather than
    /// at the next heartbeat.
    pub(super) async fn send_audit(&mut self) -> Result<(), KioskError> {
        if self.desk.pending_audit.is_empty() {
            return Ok(());
        }
        self.heartbeat().await
    }

    /// The journal's figures for telemetry.
    fn journal_figures(&self) -> Result<protocol::JournalFigures, KioskError> {
        let (commands, rejections) = self.journal.rows_held()?;
        Ok(protocol::JournalFigures {
            size_bytes: FileBytes::of(&self.cfg.journal.path).total,
            commands,
            rejections,
            rejections_dropped: self.journal.rejections_dropped()?,
            commands_pruned: self.journal.commands_pruned()?,
            unverified: self.journal_loss.as_ref().map(Loss::describe),
        })
    }

    /// The status file, and a telemetry message when connected.
    pub(super) async fn heartbeat(&mut self) -> Result<(), KioskError> {
        self.write_status();
        if !self.conn.connected {
            return Ok(());
        }
        let health = self.board.board.health();
        let t = Telemetry {
            v: PROTOCOL_VERSION,
            machine_code: self.cfg.machine_code.clone(),
            boot_id: self.boot_id.clone(),
            at: now_ms(),
            uptime_secs: self.started.elapsed().as_secs(),
            board: protocol::BoardHealth {
                // What dispense decisions use, not a fresher reading they have not seen.
                ok: self.engine.board_up(),
                status: Some(format!(
                    "{} on {}: rx {} tx {} bad {} timeouts {}",
                    health.protocol,
                    health.port,
                    health.frames_rx,
                    health.frames_tx,
                    health.bad_frames,
                    health.timeouts
                )),
                unreachable_slots: self.engine.unreachable_slots().collect(),
            },
            outbox_pending: self.journal.outbox_len()?,
            disk_free_bytes: disk_free(&self.cfg.journal.path),
            disk_low: self.service.disk_low,
            journal: Some(self.journal_figures()?),
            inventory: self
                .engine
                .inventory()
                .map(|s| SlotLevel {
                    slot: s.slot,
                    count: s.count,
                    capacity: s.capacity,
                    enabled: s.enabled,
                    jammed: s.jammed,
                })
                .collect(),
            audit: std::mem::take(&mut self.desk.pending_audit),
        };
        if let Ok(json) = serde_json::to_string(&t) {
            stopped_is_not_an_error(self.link.publish_telemetry(json).await)?;
        }
        Ok(())
    }
}
