//! The technician desk: login with lockout, the maintenance session, and what a
//! technician may do from the screen (slot tests, restock, jams, enabling slots, reading
//! commands, frames and the audit). Every action is audited in the journal and sent to
//! the backend in the next telemetry message.
//!
//! Stock changes go through the engine like a customer's: a slot test's outcome is an
//! [`Event::SlotTested`] (the engine judges it and returns the stock changes the runner
//! journals); an edit is written to the journal and handed to the engine as
//! [`Event::SlotUpdated`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use cabinet_board::Outcome;
use tokio::sync::mpsc;
use tracing::{info, info_span, warn};

use crate::audit::AuditNote;
use crate::control::{
    AuditRow, CommandRow, Control, Refusal, TechAction, TechAnswer, TechError, TechStatus,
};
use crate::engine::Event;
use crate::journal::{Journal, JournalError, StoredCommand};
use crate::protocol;
use crate::technician::{Attempt, Gate};
use crate::witness;

use super::link::Link;
use super::{Answer, KioskError, Runner, now_ms};

/// The journal setting that keeps the technician lockout.
pub(super) const GATE_KEY: &str = "technician_gate";

/// A technician's slot test finished on the blocking pool.
pub(super) type SlotTestDone = (String, u16, Outcome, Answer);

/// A technician who is logged in.
#[derive(Debug)]
struct TechSession {
    name: String,
    last_activity: Instant,
}

/// The desk's state.
pub(super) struct Desk {
    /// Wrong PINs and the lockout; kept in the journal across restarts.
    gate: Gate,
    tech: Option<TechSession>,
    /// A slot test is at the board.
    testing: bool,
    /// Technician actions not yet sent in telemetry.
    pub(super) pending_audit: Vec<protocol::AuditEvent>,
    test_done_tx: mpsc::UnboundedSender<SlotTestDone>,
    /// Slot tests come back here from the blocking pool.
    pub(super) test_done_rx: mpsc::UnboundedReceiver<SlotTestDone>,
}

impl Desk {
    /// The desk at start: the lockout as the journal kept it (power-cycling the cabinet
    /// must not buy more tries).
    pub(super) fn open(journal: &Journal) -> Result<Desk, JournalError> {
        let gate = journal
            .setting(GATE_KEY)?
            .and_then(|v| serde_json::from_str::<Gate>(&v).ok())
            .unwrap_or_default();
        let (test_done_tx, test_done_rx) = mpsc::unbounded_channel();
        Ok(Desk {
            gate,
            tech: None,
            testing: false,
            pending_audit: Vec::new(),
            test_done_tx,
            test_done_rx,
        })
    }

    /// Who is logged in.
    pub(super) fn technician(&self) -> Option<&str> {
        self.tech.as_ref().map(|t| t.name.as_str())
    }
}

/// How far back the technician's search looks for a support code: months of a busy
/// cabinet's commands, hashed in about 80 ms while the cabinet is in maintenance.
const SUPPORT_SEARCH_DEPTH: usize = 100_000;

fn failed(e: impl std::fmt::Display) -> TechError {
    TechError::Failed(e.to_string())
}

impl<L: Link> Runner<L> {
    pub(super) async fn on_control(&mut self, req: Control) -> Result<(), KioskError> {
        match req {
            Control::BeginLogin { technician, reply } => {
                let now = now_ms();
                let answer = if let Some(until_ms) = self.desk.gate.locked(now) {
                    Err(Attempt::LockedOut { until_ms })
                } else if let Some(hash) = self.cfg.technicians.get(&technician) {
                    Ok(hash.expose().to_owned())
                } else {
                    Err(self.login_failed(&technician, now)?)
                };
                let _ = reply.send(answer);
            }
            Control::FinishLogin {
                technician,
                pin_ok,
                reply,
            } => {
                let now = now_ms();
                let answer = if let Some(until_ms) = self.desk.gate.locked(now) {
                    Attempt::LockedOut { until_ms }
                } else if pin_ok {
                    self.desk.gate.on_success();
                    self.save_gate()?;
                    self.audit(&technician, "login", &AuditNote::Empty)?;
                    info!(technician = %technician, "technician logged in: cabinet in maintenance");
                    self.desk.tech = Some(TechSession {
                        name: technician.clone(),
                        last_activity: Instant::now(),
                    });
                    let actions = self.engine.step(Event::Maintenance {
                        on: true,
                        now_ms: now,
                    });
                    self.exec(actions, None).await?;
                    Attempt::LoggedIn { technician }
                } else {
                    self.login_failed(&technician, now)?
                };
                let _ = reply.send(answer);
            }
            Control::Activity => {
                if let Some(t) = &mut self.desk.tech {
                    t.last_activity = Instant::now();
                }
            }
            Control::Logout { reply } => {
                self.logout("logout").await?;
                let _ = reply.send(());
            }
            Control::Tech { action, reply } => {
                let Some(technician) = self.desk.technician().map(str::to_owned) else {
                    let _ = reply.send(Err(TechError::NotLoggedIn));
                    return Ok(());
                };
                match action {
                    // Answered when the board is done (see slot_test_done).
                    TechAction::SlotTest { slot } => self.start_slot_test(&technician, slot, reply),
                    // Answered when the files are written (see export_done).
                    TechAction::Export { dir } => self.start_export(&technician, dir, reply),
                    TechAction::ConfirmFreshStart => {
                        let answer = self.confirm_fresh_start(&technician).await;
                        let _ = reply.send(answer);
                    }
                    action => {
                        let exit = matches!(action, TechAction::Exit);
                        let answer = self.tech_action(&technician, action).await;
                        let _ = reply.send(answer);
                        if exit {
                            info!(technician = %technician, "technician closes the app");
                        }
                    }
                }
            }
            Control::Diagnostics { reply } => {
                let answer = match self.desk.tech {
                    Some(_) => Ok(self.diagnostics()?),
                    None => Err(TechError::NotLoggedIn),
                };
                let _ = reply.send(answer);
            }
            Control::Status { reply } => {
                let _ = reply.send(TechStatus {
                    technicians: self.cfg.technicians.keys().cloned().collect(),
                    logged_in: self.desk.technician().map(str::to_owned),
                    locked_until_ms: self.desk.gate.locked(now_ms()),
                    idle_logout_secs: self.cfg.maintenance.idle_logout_secs,
                });
            }
        }
        Ok(())
    }

    /// Starts a technician's slot test on the blocking pool, or answers why not.
    fn start_slot_test(&mut self, technician: &str, slot: u16, reply: Answer) {
        let refused = if self.desk.testing {
            Some(TechError::Busy(Refusal::SlotTestRunning))
        } else if self.engine.active().is_some() {
            Some(TechError::Busy(Refusal::DispenseFinishing))
        } else if !self.cfg.slots.iter().any(|s| s.slot == slot) {
            Some(TechError::Invalid(Refusal::UnknownSlot { slot }))
        } else {
            None
        };
        if let Some(e) = refused {
            warn!(error = %e, "slot test refused");
            let _ = reply.send(Err(e));
            return;
        }
        self.desk.testing = true;
        let board = Arc::clone(&self.board.board);
        let tx = self.desk.test_done_tx.clone();
        let technician = technician.to_owned();
        let span = info_span!("slot_test", technician = %technician, slot);
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            info!("technician slot test: motor command");
            // Queued behind customers' dispenses on a shared bus (Board::slot_test).
            let outcome = board.slot_test(slot);
            info!(
                outcome = outcome.name(),
                "technician slot test: board outcome"
            );
            let _ = tx.send((technician, slot, outcome, reply));
        });
    }

    /// A slot test came back: audit it, and let the engine book its stock changes as a
    /// customer's dispense (an item that left the slot is gone from the stock, a jam
    /// takes the slot out of service).
    pub(super) async fn slot_test_done(
        &mut self,
        technician: &str,
        slot: u16,
        outcome: Outcome,
    ) -> Result<TechAnswer, TechError> {
        self.desk.testing = false;
        let note = AuditNote::SlotTest {
            slot,
            outcome: outcome.name().to_owned(),
            board: self
                .cfg
                .slot_places()
                .get(&slot)
                .map(|p| (self.cfg.boards[p.board].name.clone(), p.channel)),
        };
        self.audit(technician, "slot_test", &note).map_err(failed)?;
        let actions = self.engine.step(Event::SlotTested {
            slot,
            outcome,
            now_ms: now_ms(),
        });
        self.exec(actions, None).await.map_err(failed)?;
        Ok(TechAnswer::SlotTest { slot, outcome })
    }

    /// Tells the engine the journal's new row for `slot` (the screen follows).
    async fn slot_changed(&mut self, slot: u16) -> Result<(), KioskError> {
        if let Some(row) = self.journal.slot(slot)? {
            let actions = self.engine.step(Event::SlotUpdated {
                slot: row,
                now_ms: now_ms(),
            });
            self.exec(actions, None).await?;
        }
        Ok(())
    }

    async fn tech_action(
        &mut self,
        technician: &str,
        action: TechAction,
    ) -> Result<TechAnswer, TechError> {
        match action {
            TechAction::SlotTest { .. }
            | TechAction::Export { .. }
            | TechAction::ConfirmFreshStart => Err(TechError::Invalid(Refusal::OwnRequest)),
            TechAction::Slots => Ok(TechAnswer::Slots {
                slots: self.journal.inventory().map_err(failed)?,
            }),
            TechAction::ClearJam { slot } => {
                self.known_slot(slot)?;
                self.journal.set_jammed(slot, false).map_err(failed)?;
                self.slot_edited(technician, slot, "clear_jam", AuditNote::Slot { slot })
                    .await
            }
            TechAction::SetEnabled { slot, enabled } => {
                self.known_slot(slot)?;
                self.journal.set_enabled(slot, enabled).map_err(failed)?;
                let what = if enabled {
                    "enable_slot"
                } else {
                    "disable_slot"
                };
                self.slot_edited(technician, slot, what, AuditNote::Slot { slot })
                    .await
            }
            TechAction::SetCount { slot, count } => {
                let capacity = self.known_slot(slot)?;
                if count > capacity {
                    return Err(TechError::Invalid(Refusal::OverCapacity { slot, capacity }));
                }
                let before = self
                    .journal
                    .slot(slot)
                    .map_err(failed)?
                    .map(|s| s.count)
                    .unwrap_or(0);
                self.journal.set_count(slot, count).map_err(failed)?;
                info!(technician = %technician, slot, before, count, "restock");
                let note = AuditNote::Restock {
                    slot,
                    before,
                    after: count,
                };
                self.slot_edited(technician, slot, "restock", note).await
            }
            TechAction::Commands { n, find } => {
                let commands = match find.as_deref().map(str::trim) {
                    Some(text) if !text.is_empty() => self.find_commands(text).map_err(failed)?,
                    _ => self
                        .journal
                        .recent_commands(n.clamp(1, 500))
                        .map_err(failed)?,
                };
                Ok(TechAnswer::Commands {
                    commands: commands.into_iter().map(CommandRow::from).collect(),
                })
            }
            TechAction::Frames => Ok(TechAnswer::Frames {
                frames: self.board.board.recent_frames(),
            }),
            TechAction::Audit { n } => Ok(TechAnswer::Audit {
                entries: self
                    .journal
                    .recent_audit(n.clamp(1, 500))
                    .map_err(failed)?
                    .into_iter()
                    .map(AuditRow::from)
                    .collect(),
            }),
            TechAction::ExportTargets => Ok(TechAnswer::ExportTargets {
                dirs: crate::export::removable_mounts(),
            }),
            TechAction::Exit => {
                self.audit(technician, "exit", &AuditNote::Empty)
                    .map_err(failed)?;
                Ok(TechAnswer::Done)
            }
        }
    }

    /// After a technician changed `slot` in the journal: audit it, tell the engine, and
    /// answer with the slot table. The runner sends the audit (and with it the new stock)
    /// in telemetry right after the action.
    async fn slot_edited(
        &mut self,
        technician: &str,
        slot: u16,
        action: &str,
        note: AuditNote,
    ) -> Result<TechAnswer, TechError> {
        self.audit(technician, action, &note).map_err(failed)?;
        self.slot_changed(slot).await.map_err(failed)?;
        Ok(TechAnswer::Slots {
            slots: self.journal.inventory().map_err(failed)?,
        })
    }

    /// The slot's capacity, or why the slot cannot be changed.
    /// What the panel's search box finds: a support code among the newest
    /// [`SUPPORT_SEARCH_DEPTH`] commands, else a log id (exact, then ignoring case: one
    /// typed on the on-screen keyboard).
    fn find_commands(&self, text: &str) -> Result<Vec<StoredCommand>, JournalError> {
        if let Some(code) = crate::support::parse(text) {
            let found = self
                .journal
                .find_by_support_code(&code, SUPPORT_SEARCH_DEPTH)?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let exact = self.journal.find_by_log_id(text)?;
        if exact.is_empty() {
            self.journal.find_by_log_id_nocase(text)
        } else {
            Ok(exact)
        }
    }

    fn known_slot(&self, slot: u16) -> Result<u32, TechError> {
        self.cfg
            .slots
            .iter()
            .find(|s| s.slot == slot)
            .map(|s| s.capacity)
            .ok_or(TechError::Invalid(Refusal::UnknownSlot { slot }))
    }

    /// Records a technician action in the journal's audit table and queues it for the
    /// next telemetry message.
    pub(super) fn audit(
        &mut self,
        technician: &str,
        action: &str,
        note: &AuditNote,
    ) -> Result<i64, JournalError> {
        let detail = note.detail();
        let id = self.journal.audit(technician, action, &detail)?;
        self.queue_audit(technician, action, detail);
        Ok(id)
    }

    /// Queues an action (already in the journal's audit table) for telemetry.
    pub(super) fn queue_audit(&mut self, technician: &str, action: &str, detail: String) {
        self.desk.pending_audit.push(protocol::AuditEvent {
            at: now_ms(),
            technician: technician.to_owned(),
            action: action.to_owned(),
            detail,
        });
    }

    /// A technician confirms a fresh start from the diagnostics screen.
    async fn confirm_fresh_start(&mut self, technician: &str) -> Result<TechAnswer, TechError> {
        let Some(loss) = &self.journal_loss else {
            return Err(TechError::Invalid(Refusal::NothingToConfirm));
        };
        let described = loss.describe();
        let path = self.upkeep.witness_path().to_owned();
        witness::confirm_fresh_start(&path, &mut self.journal, technician, &described)
            .map_err(failed)?;
        // Audited in the journal by confirm_fresh_start; telemetry carries it too.
        self.queue_audit(technician, "journal_fresh_start", described);
        self.journal_trusted().await.map_err(failed)?;
        Ok(TechAnswer::Done)
    }

    /// A wrong PIN (or a name the config does not know): count it, audit it, persist.
    fn login_failed(&mut self, technician: &str, now: u64) -> Result<Attempt, KioskError> {
        let policy = self.cfg.lockout_policy();
        let attempt = self.desk.gate.on_failure(&policy, now);
        self.save_gate()?;
        self.audit(technician, "failed_pin", &AuditNote::Empty)?;
        if let Attempt::LockedOut { until_ms } = attempt {
            let secs = until_ms.saturating_sub(now) / 1000;
            self.audit(technician, "locked_out", &AuditNote::Lockout { secs })?;
            warn!(technician = %technician, lock_secs = secs, "technician entry locked after wrong PINs");
        } else {
            warn!(technician = %technician, "wrong technician PIN");
        }
        Ok(attempt)
    }

    fn save_gate(&mut self) -> Result<(), KioskError> {
        let json = serde_json::to_string(&self.desk.gate).unwrap_or_default();
        self.journal.set_setting(GATE_KEY, &json)?;
        Ok(())
    }

    pub(super) async fn logout(&mut self, why: &str) -> Result<(), KioskError> {
        let Some(t) = self.desk.tech.take() else {
            return Ok(());
        };
        let note = AuditNote::Logout { why: why.into() };
        self.audit(&t.name, "logout", &note)?;
        info!(technician = %t.name, why, "technician logged out: cabinet back in service");
        let actions = self.engine.step(Event::Maintenance {
            on: false,
            now_ms: now_ms(),
        });
        self.exec(actions, None).await
    }

    pub(super) async fn check_idle_logout(&mut self) -> Result<(), KioskError> {
        let idle = Duration::from_secs(self.cfg.maintenance.idle_logout_secs);
        if self
            .desk
            .tech
            .as_ref()
            .is_some_and(|t| t.last_activity.elapsed() >= idle)
        {
            self.logout("idle").await?;
        }
        Ok(())
    }
}
