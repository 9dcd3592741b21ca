//! Whether the cabinet can serve, beyond the engine's own view: systemd's READY and
//! STATUS, the journal's free disk (with hysteresis), and the journal's trust (the
//! witness, and a fresh start confirmed from outside).

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::engine::Event;
use crate::hooks::Hooks;
use crate::journal_stats::disk_free;
use crate::systemd::Notifier;
use crate::witness;

use super::link::Link;
use super::{KioskError, Runner, now_ms};

/// The service state the runner reports to systemd and the diagnostics.
pub(super) struct Service {
    /// systemd: READY once subscribed and the board answered, WATCHDOG from the tick.
    pub(super) notify: Notifier,
    pub(super) subscribed: bool,
    board_up: bool,
    /// The journal's file system is short of space (`journal.min_free_mb`, with
    /// hysteresis: see [`disk_is_low`]).
    pub(super) disk_low: bool,
    /// When the free space was last sampled.
    disk_checked: Option<Instant>,
    /// Untrusted payloads answered but not recorded in this low-disk period.
    unrecorded_rejections: u64,
    /// When the witness was last looked at while the journal is not trusted (a fresh
    /// start confirmed with `cabinet journal confirm-fresh-start` shows up there).
    witness_looked: Instant,
}

impl Service {
    pub(super) fn new(notify: Notifier) -> Service {
        Service {
            notify,
            subscribed: false,
            board_up: false,
            disk_low: false,
            disk_checked: None,
            unrecorded_rejections: 0,
            witness_looked: Instant::now(),
        }
    }

    /// While the disk is low, an untrusted payload is answered but not recorded: said
    /// once per low period, then counted (logged when the space is back).
    pub(super) fn unrecorded_rejection(&mut self, reason: crate::reason::Reason, detail: &str) {
        if self.unrecorded_rejections == 0 {
            warn!(
                reason = reason.code(),
                detail,
                "journal disk space low: untrusted payloads are answered but not recorded until space is freed"
            );
        }
        self.unrecorded_rejections += 1;
    }

    /// The watchdog test's hook ([`Hooks::hang_when`]).
    pub(super) fn hang_hook(&self, hooks: &Hooks) {
        if let Some(path) = &hooks.hang_when
            && path.exists()
        {
            warn!("test hook: the runner hangs now");
            self.notify.status("test hook: runner hung");
            loop {
                std::thread::park();
            }
        }
    }
}

/// Whether the journal's disk counts as low, given whether it did at the last sample:
/// below `min` free bytes; once low, until a quarter more than `min` is free again, so
/// a file system hovering at the threshold does not flap in and out of service.
pub(super) fn disk_is_low(was_low: bool, free: u64, min: u64) -> bool {
    if was_low {
        free < min.saturating_add(min / 4)
    } else {
        free < min
    }
}

impl<L: Link> Runner<L> {
    /// The board check's answer, for systemd: READY waits for it, STATUS reports a loss.
    pub(super) fn board_health(&mut self, up: bool) {
        if up != self.service.board_up {
            self.service.board_up = up;
            if up {
                self.maybe_ready();
            } else {
                self.service
                    .notify
                    .status("board not answering: out of service");
            }
        }
    }

    /// A cabinet of several boards: tells the engine which slots' boards do not answer
    /// (refused `board_unreachable`, shown unavailable) and logs each change once.
    pub(super) async fn slots_unreachable(&mut self, slots: Vec<u16>) -> Result<(), KioskError> {
        let before: Vec<u16> = self.engine.unreachable_slots().collect();
        if before == slots {
            return Ok(());
        }
        if slots.is_empty() {
            tracing::info!("every board answers: all slots can sell again");
        } else {
            tracing::warn!(
                ?slots,
                "a board does not answer: its slots are out of service, the others sell on"
            );
        }
        let actions = self.engine.step(Event::SlotsUnreachable {
            slots,
            now_ms: now_ms(),
        });
        self.exec(actions, None).await
    }

    /// Samples the journal's free space (at most once a second) and tells the engine
    /// when it crosses `journal.min_free_mb` ([`disk_is_low`]). While low, new commands
    /// are refused `disk_low` and untrusted payloads are not recorded, so the reserve is
    /// left for the few small writes of a dispense already promised: a full disk used to
    /// end the kiosk mid-dispense ("database or disk is full").
    pub(super) async fn check_disk(&mut self) -> Result<(), KioskError> {
        let second = Duration::from_secs(1);
        let s = &mut self.service;
        if s.disk_checked.is_some_and(|t| t.elapsed() < second) {
            return Ok(());
        }
        s.disk_checked = Some(Instant::now());
        // Unknown (statvfs failed): the last verdict stands.
        let Some(free) = disk_free(&self.cfg.journal.path) else {
            return Ok(());
        };
        let min = self.cfg.journal.min_free_bytes();
        let low = disk_is_low(s.disk_low, free, min);
        if low == s.disk_low {
            return Ok(());
        }
        s.disk_low = low;
        if low {
            warn!(
                free_bytes = free,
                threshold_bytes = min,
                "journal disk space low: new commands are refused disk_low until space is freed"
            );
            s.notify.status(&format!(
                "out of service: journal disk space low ({free} bytes free, journal.min_free_mb is {} MiB)",
                self.cfg.journal.min_free_mb
            ));
        } else {
            info!(
                free_bytes = free,
                threshold_bytes = min,
                unrecorded_rejections = s.unrecorded_rejections,
                "journal disk space back: in service"
            );
            s.unrecorded_rejections = 0;
            s.notify
                .status(&format!("journal disk space back ({free} bytes free)"));
            self.maybe_ready();
        }
        let actions = self.engine.step(Event::Disk {
            low,
            now_ms: now_ms(),
        });
        self.exec(actions, None).await?;
        // The backend hears it now rather than at the next heartbeat.
        self.heartbeat().await
    }

    /// `READY=1` the first time the cabinet is subscribed and its board answers.
    pub(super) fn maybe_ready(&mut self) {
        let s = &mut self.service;
        if !(s.subscribed && s.board_up) {
            return;
        }
        let status = format!(
            "serving: subscribed to {}, board answering",
            self.topics.cmd
        );
        if s.notify.is_ready() {
            // While the disk is low the status says so (check_disk), not "serving".
            if !s.disk_low {
                s.notify.status(&status);
            }
        } else {
            info!("ready: subscribed and the board answers");
            s.notify.ready(&status);
        }
    }

    /// While the journal is not trusted: every two seconds, whether someone confirmed a
    /// fresh start from outside (`cabinet journal confirm-fresh-start` rewrites the
    /// witness and audits it).
    pub(super) async fn look_at_witness(&mut self) -> Result<(), KioskError> {
        if self.journal_loss.is_none()
            || self.service.witness_looked.elapsed() < Duration::from_secs(2)
        {
            return Ok(());
        }
        self.service.witness_looked = Instant::now();
        if witness::names(self.upkeep.witness_path(), &self.journal) {
            info!("a fresh start of the journal was confirmed outside the app");
            self.journal_trusted().await?;
        }
        Ok(())
    }

    /// The journal is trusted again: back in service.
    pub(super) async fn journal_trusted(&mut self) -> Result<(), KioskError> {
        self.journal_loss = None;
        self.service
            .notify
            .status("serving: the journal's fresh start was confirmed");
        let actions = self.engine.step(Event::JournalTrust {
            trusted: true,
            fresh_start_at: witness::fresh_start_at(&self.journal),
            now_ms: now_ms(),
        });
        self.exec(actions, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_is_low_below_the_threshold_and_back_only_a_quarter_above_it() {
        let min: u64 = 64 << 20;
        assert!(!disk_is_low(false, min, min));
        assert!(disk_is_low(false, min - 1, min));
        // Once low, the threshold alone is not enough: no flapping around it.
        assert!(disk_is_low(true, min, min));
        assert!(disk_is_low(true, min + min / 4 - 1, min));
        assert!(!disk_is_low(true, min + min / 4, min));
        assert!(!disk_is_low(true, u64::MAX, u64::MAX), "no overflow");
    }
}
