//! What a technician's audit row says. The journal keeps, and telemetry carries, one
//! detail text per row (PROTOCOL.md documents its forms for backends); it is written and
//! read back here, in one place, so the technician's panel can word it in its own
//! language instead of showing the English text.

use serde::Serialize;

/// An audit row's detail, as the panel words it. Serialized as `{"kind": ..., fields}`;
/// the panel has a sentence for each kind (ui/strings.js, `audit_notes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditNote {
    /// Nothing to add (a login, a wrong PIN, closing the app).
    Empty,
    /// The slot acted on (a jam cleared, a slot enabled or disabled).
    Slot {
        /// The slot.
        slot: u16,
    },
    /// A restock: the count before and after.
    Restock {
        /// The slot.
        slot: u16,
        /// The count before.
        before: u32,
        /// The count set.
        after: u32,
    },
    /// A slot test and the board's outcome (`Outcome::name`).
    SlotTest {
        /// The slot.
        slot: u16,
        /// The board's outcome.
        outcome: String,
        /// On a cabinet of several boards: the board that acted and the slot's channel
        /// (or motor) on it.
        #[serde(skip_serializing_if = "Option::is_none")]
        board: Option<(String, u16)>,
    },
    /// Entry locked after wrong PINs, for this long.
    Lockout {
        /// Seconds.
        secs: u64,
    },
    /// How a technician left: `logout` (the button) or `idle` (automatically).
    Logout {
        /// `logout` or `idle`.
        why: String,
    },
    /// Anything else (an export's path, what a fresh start of the journal lost): shown
    /// as written.
    Text {
        /// The detail.
        text: String,
    },
}

impl AuditNote {
    /// The detail text the journal stores and telemetry sends.
    pub fn detail(&self) -> String {
        match self {
            AuditNote::Empty => String::new(),
            AuditNote::Slot { slot } => format!("slot {slot}"),
            AuditNote::Restock {
                slot,
                before,
                after,
            } => format!("slot {slot}: {before} -> {after}"),
            AuditNote::SlotTest {
                slot,
                outcome,
                board: None,
            } => format!("slot {slot}: {outcome}"),
            AuditNote::SlotTest {
                slot,
                outcome,
                board: Some((board, channel)),
            } => format!("slot {slot}: {outcome} on {board} channel {channel}"),
            AuditNote::Lockout { secs } => format!("{secs} s"),
            AuditNote::Logout { why } => why.clone(),
            AuditNote::Text { text } => text.clone(),
        }
    }

    /// Reads back the detail of a row with `action`. A detail in no known form (a row
    /// written by an older version, say) is [`AuditNote::Text`], never lost.
    pub fn read(action: &str, detail: &str) -> AuditNote {
        let text = || AuditNote::Text {
            text: detail.to_owned(),
        };
        if detail.is_empty() {
            return AuditNote::Empty;
        }
        let slot = |s: &str| s.strip_prefix("slot ").and_then(|n| n.parse::<u16>().ok());
        let note = match action {
            "clear_jam" | "enable_slot" | "disable_slot" => {
                slot(detail).map(|slot| AuditNote::Slot { slot })
            }
            "restock" => detail.split_once(": ").and_then(|(s, counts)| {
                let (before, after) = counts.split_once(" -> ")?;
                Some(AuditNote::Restock {
                    slot: slot(s)?,
                    before: before.parse().ok()?,
                    after: after.parse().ok()?,
                })
            }),
            "slot_test" => detail.split_once(": ").and_then(|(s, rest)| {
                let (outcome, board) = match rest.split_once(" on ") {
                    Some((o, at)) => {
                        let (b, channel) = at.split_once(" channel ")?;
                        (o, Some((b.to_owned(), channel.parse().ok()?)))
                    }
                    None => (rest, None),
                };
                Some(AuditNote::SlotTest {
                    slot: slot(s)?,
                    outcome: outcome.to_owned(),
                    board,
                })
            }),
            "locked_out" => detail
                .strip_suffix(" s")
                .and_then(|n| n.parse().ok())
                .map(|secs| AuditNote::Lockout { secs }),
            "logout" => Some(AuditNote::Logout {
                why: detail.to_owned(),
            }),
            _ => None,
        };
        note.unwrap_or_else(text)
    }
}

#[cfg(test)]
mod tests {
    use super::AuditNote;

    #[test]
    fn every_note_reads_back_as_written() {
        let notes = [
            ("login", AuditNote::Empty),
            ("clear_jam", AuditNote::Slot { slot: 7 }),
            ("enable_slot", AuditNote::Slot { slot: 65535 }),
            ("disable_slot", AuditNote::Slot { slot: 1 }),
            (
                "restock",
                AuditNote::Restock {
                    slot: 11,
                    before: 0,
                    after: 10,
                },
            ),
            (
                "slot_test",
                AuditNote::SlotTest {
                    slot: 3,
                    outcome: "jammed".into(),
                    board: None,
                },
            ),
            (
                "slot_test",
                AuditNote::SlotTest {
                    slot: 13,
                    outcome: "door_opened".into(),
                    board: Some(("wall-3".into(), 4)),
                },
            ),
            ("locked_out", AuditNote::Lockout { secs: 600 }),
            ("logout", AuditNote::Logout { why: "idle".into() }),
            (
                "export",
                AuditNote::Text {
                    text: "/media/usb/cabinet-C001-20261205.tar".into(),
                },
            ),
        ];
        for (action, note) in notes {
            assert_eq!(AuditNote::read(action, &note.detail()), note, "{action}");
        }
        // The form PROTOCOL.md shows backends.
        assert_eq!(
            AuditNote::read("restock", "slot 11: 0 -> 10").detail(),
            "slot 11: 0 -> 10"
        );
    }

    #[test]
    fn a_detail_in_no_known_form_is_kept_as_text() {
        for (action, detail) in [
            ("restock", "slot 3: five -> 10"),
            ("restock", "slot x"),
            ("clear_jam", "slot -1"),
            ("slot_test", "slot 99999: dispensed"),
            ("locked_out", "ten minutes"),
            ("journal_fresh_start", "the journal file was missing"),
        ] {
            assert_eq!(
                AuditNote::read(action, detail),
                AuditNote::Text {
                    text: detail.into()
                },
                "{action}: {detail}"
            );
        }
    }
}
