//! What the customer sees: the engine's state as a [`Screen`], sent as a new
//! [`Snapshot`] only when it changed.

use super::*;

impl Engine {
    pub(super) fn show_failed(&mut self, reason: Reason, uncertain: bool, cmd_id: &str, now: u64) {
        let support_code = crate::support::code(cmd_id);
        let until_ms = now + self.cfg.failed_ms;
        self.earlier_failure = Some(EarlierFailure {
            support_code: support_code.clone(),
            uncertain,
            until_ms,
        });
        self.transient = Some(Screen::Failed {
            reason,
            uncertain,
            support_code,
            until_ms,
        });
    }

    /// The failure an order's screen carries along: the latest one, while its own
    /// screen would still show and is not the one showing.
    fn earlier_failure(&mut self, screen: &Screen, now: u64) -> Option<EarlierFailure> {
        if self
            .earlier_failure
            .as_ref()
            .is_some_and(|f| f.until_ms <= now)
        {
            self.earlier_failure = None;
        }
        match screen {
            Screen::Accepted { .. }
            | Screen::Dispensing { .. }
            | Screen::TakeItem { .. }
            | Screen::PutBack { .. } => self.earlier_failure.clone(),
            _ => None,
        }
    }

    pub(super) fn product(&self, slot: u16) -> String {
        self.inventory
            .get(&slot)
            .map(|s| s.product.clone())
            .unwrap_or_default()
    }

    pub(super) fn screen(&mut self, now: u64) -> Screen {
        if let Some((job, since)) = &self.active {
            return Screen::Dispensing {
                slot: job.slot,
                product: self.product(job.slot),
                log_id: job.log_id.clone(),
                since_ms: *since,
            };
        }
        if let Some(job) = self.queue.front() {
            return Screen::Accepted {
                slot: job.slot,
                product: self.product(job.slot),
                log_id: job.log_id.clone(),
            };
        }
        match &self.transient {
            Some(
                Screen::TakeItem { until_ms, .. }
                | Screen::PutBack { until_ms, .. }
                | Screen::Failed { until_ms, .. },
            ) if *until_ms > now => {
                if let Some(s) = &self.transient {
                    return s.clone();
                }
            }
            _ => self.transient = None,
        }
        let grace = self.cfg.out_of_service_grace_ms;
        if let Some(since) = self.journal_unverified_since {
            return Screen::OutOfService {
                reason: OutOfService::JournalUnverified,
                since_ms: since,
            };
        }
        if let Some(since) = self.maintenance_since {
            return Screen::OutOfService {
                reason: OutOfService::Maintenance,
                since_ms: since,
            };
        }
        // No grace period: it does not blink, and every new command is refused meanwhile.
        if let Some(since) = self.disk_low_since {
            return Screen::OutOfService {
                reason: OutOfService::DiskLow,
                since_ms: since,
            };
        }
        if !self.link_up && now.saturating_sub(self.link_down_since) >= grace {
            let reason = if self.ever_connected {
                OutOfService::BrokerDown
            } else {
                OutOfService::Starting
            };
            return Screen::OutOfService {
                reason,
                since_ms: self.link_down_since,
            };
        }
        if !self.link_up && !self.ever_connected {
            return Screen::OutOfService {
                reason: OutOfService::Starting,
                since_ms: self.link_down_since,
            };
        }
        if !self.board_up && now.saturating_sub(self.board_down_since) >= grace {
            return Screen::OutOfService {
                reason: OutOfService::BoardDown,
                since_ms: self.board_down_since,
            };
        }
        Screen::Idle
    }

    pub(super) fn emit_screen(&mut self, now: u64, out: &mut Vec<Action>) {
        let screen = self.screen(now);
        let earlier_failure = self.earlier_failure(&screen, now);
        let snap = Snapshot {
            machine_code: self.cfg.machine_code.clone(),
            cabinet_name: self.cfg.cabinet_name.clone(),
            items: self
                .inventory
                .values()
                .map(|s| Item {
                    slot: s.slot,
                    product: s.product.clone(),
                    count: s.count,
                    available: s.unavailable_reason().is_none()
                        && !self.unreachable.contains(&s.slot),
                })
                .collect(),
            screen,
            link_up: self.link_up,
            board_up: self.board_up,
            queued: self.queue.len(),
            qr_nonce: None,
            earlier_failure,
            config_version: self.cfg.config_version,
            info: std::sync::Arc::clone(&self.cfg.info),
            version: self.version,
        };
        let qr_nonce = (snap.screen == Screen::Idle)
            .then(|| self.sessions.back().map(|(n, _)| n.clone()))
            .flatten();
        let snap = Snapshot { qr_nonce, ..snap };
        // Unchanged unless something but the version counter differs.
        let same = self.last_screen.as_ref().is_some_and(|l| {
            *l == Snapshot {
                version: l.version,
                ..snap.clone()
            }
        });
        if !same {
            self.version += 1;
            let snap = Snapshot {
                version: self.version,
                ..snap
            };
            self.last_screen = Some(snap.clone());
            out.push(Action::Screen(snap));
        }
    }
}
