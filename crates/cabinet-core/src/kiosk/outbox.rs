//! The outbox window: which journaled replies are in the link's hands.
//!
//! Every reply is first a row in the journal's outbox (in the same transaction as the
//! state it reports). The window hands at most [`MAX_IN_FLIGHT`] of them to the link,
//! oldest first, and forgets a row when the broker acknowledged it (the row leaves the
//! journal then). A connection the broker did not keep (`session_present = false`) loses
//! what was handed, so the window empties and the rows go again.

use std::collections::HashSet;

use crate::journal::{Journal, OutboxEntry};

use super::KioskError;
use super::link::{Link, stopped_is_not_an_error};

/// Outbox replies handed to the link at once.
pub(super) const MAX_IN_FLIGHT: usize = 32;

/// The outbox rows handed to the link and not yet acknowledged by the broker.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    handed: HashSet<i64>,
}

impl Outbox {
    /// The broker lost our session: nothing handed before will be acknowledged.
    pub(super) fn session_lost(&mut self) {
        self.handed.clear();
    }

    /// The broker acknowledged row `id`: it leaves the journal and the window.
    pub(super) fn published(&mut self, journal: &mut Journal, id: i64) -> Result<(), KioskError> {
        journal.outbox_ack(id)?;
        self.handed.remove(&id);
        Ok(())
    }

    /// The pending rows the window has room for, oldest first. (Read before any
    /// await: the journal's connection stays on the runner's side of it.)
    pub(super) fn due(&self, journal: &Journal) -> Result<Vec<OutboxEntry>, KioskError> {
        let room = MAX_IN_FLIGHT.saturating_sub(self.handed.len());
        if room == 0 {
            return Ok(Vec::new());
        }
        let pending = journal.outbox_pending(MAX_IN_FLIGHT * 2)?;
        Ok(pending
            .into_iter()
            .filter(|e| !self.handed.contains(&e.id))
            .take(room)
            .collect())
    }

    /// Hands `due` rows to the link, in order.
    pub(super) async fn hand(
        &mut self,
        due: Vec<OutboxEntry>,
        link: &impl Link,
    ) -> Result<(), KioskError> {
        for entry in due {
            let id = u64::try_from(entry.id).unwrap_or(0);
            let handed = link.publish_reply(id, &entry.topic, entry.payload).await;
            if handed.is_err() {
                // Stopping: the row stays in the outbox for the next start.
                return stopped_is_not_an_error(handed);
            }
            self.handed.insert(entry.id);
        }
        Ok(())
    }
}
