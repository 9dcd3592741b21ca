//! What a board's outcome means for the command, the stock and the slot.

use super::*;

/// What a board outcome means for the command, the stock and the slot.
pub fn judge(
    outcome: &Outcome,
    slot: u16,
) -> (ReplyState, Option<Reason>, Evidence, Vec<InventoryChange>) {
    let ev = |drop: Option<bool>, door: Option<bool>| Evidence {
        drop_detected: drop,
        door_open: door,
        board_status: Some(outcome.name().to_owned()),
        ..Evidence::default()
    };
    match *outcome {
        // Stock goes down only on a confirmed drop (or, without a sensor, the board's word).
        Outcome::Dispensed {
            drop_detected: Some(true),
        } => (
            ReplyState::Succeeded,
            None,
            ev(Some(true), None),
            vec![InventoryChange::Decrement(slot)],
        ),
        Outcome::Dispensed {
            drop_detected: None,
        } => (
            ReplyState::Succeeded,
            None,
            ev(None, None),
            vec![InventoryChange::Decrement(slot)],
        ),
        Outcome::Dispensed {
            drop_detected: Some(false),
        } => (
            ReplyState::Failed,
            Some(Reason::NoDropDetected),
            ev(Some(false), None),
            vec![],
        ),
        Outcome::DoorOpened => (
            ReplyState::Succeeded,
            None,
            ev(None, Some(true)),
            vec![InventoryChange::Decrement(slot)],
        ),
        Outcome::DoorNeverOpened => (
            ReplyState::Failed,
            Some(Reason::DoorNeverOpened),
            ev(None, Some(false)),
            vec![],
        ),
        Outcome::Jammed => (
            ReplyState::Failed,
            Some(Reason::Jammed),
            ev(None, None),
            vec![InventoryChange::Jammed(slot)],
        ),
        Outcome::MotorNotStopped => (
            ReplyState::Failed,
            Some(Reason::MotorNotStopped),
            ev(None, None),
            vec![InventoryChange::Jammed(slot)],
        ),
        Outcome::NoSuchSlot => (
            ReplyState::Failed,
            Some(Reason::SlotUnknown),
            ev(None, None),
            vec![],
        ),
        Outcome::Terminated => (
            ReplyState::Failed,
            Some(Reason::Terminated),
            ev(None, None),
            vec![],
        ),
        // Whenever the outcome is unknown, the slot waits for a technician (as after a
        // jam): its motor may still be turning, or the board may report this dispense
        // late, and a late report must never confirm the slot's next command (a board's
        // success report 6 s late was once credited to the next command on the slot).
        Outcome::UnknownStatus { code } => {
            let e = Evidence {
                board_status: Some(format!("unknown_status:{code:02x}")),
                ..Evidence::default()
            };
            (
                ReplyState::OutcomeUnknown,
                Some(Reason::BoardNoReply),
                e,
                vec![InventoryChange::Jammed(slot)],
            )
        }
        Outcome::NoReply { reach } | Outcome::BadFrame { reach } | Outcome::PortGone { reach } => {
            if reach == Reach::NotSent {
                // Nothing reached the board: a safe failure, nobody is charged.
                (
                    ReplyState::Failed,
                    Some(Reason::BoardUnreachable),
                    ev(None, None),
                    vec![],
                )
            } else {
                (
                    ReplyState::OutcomeUnknown,
                    Some(Reason::BoardNoReply),
                    ev(None, None),
                    vec![InventoryChange::Jammed(slot)],
                )
            }
        }
    }
}
