//! The reason codes: one list shared by logs, replies to the backend and the screen.
//!
//! A rejection or failure is described by exactly one [`Reason`]. The same value is
//! written to the journal, logged as `reason=...`, sent in the reply's `reason` field
//! (docs/PROTOCOL.md) and turned into a short sentence on the customer's failure
//! screen (the page's table, ui/strings.js, which the window's tests hold to this
//! list). Keeping one enum means the screen, a log line and the backend's record all
//! use the same words.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a command was rejected, failed, or ended without a known outcome.
///
/// Serialized in `snake_case`; the wire names are part of the protocol and must not
/// change once a backend depends on them (add new variants instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // --- the command could not be trusted, or is not for us -----------------------
    /// Signed correctly, but `aud` names another cabinet (the incident in docs/ARCHITECTURE.md).
    WrongTarget,
    /// `exp` (plus the allowed clock skew) is in the past.
    Expired,
    /// `iat` is further in the future than the allowed clock skew.
    NotYetValid,
    /// `exp - iat` is longer than the cabinet allows (`commands.max_token_lifetime_secs`):
    /// a token that stays valid for long could be replayed long after it was issued, and
    /// no journal retention could be proven safe against it.
    LifetimeTooLong,
    /// The signature does not verify against the key named by `kid`.
    BadSignature,
    /// The header's `kid` names no configured public key.
    UnknownKey,
    /// The header's `kid` names a trusted key that may not sign this: an operator key
    /// (which signs the cabinet's key sets) on a command.
    KeyNotAllowed,
    /// The header's `alg` is not exactly `EdDSA` (for example `none` or `HS256`).
    UnsupportedAlgorithm,
    /// Not a compact JWS, bad base64, bad JSON, bad UTF-8, or claims of the wrong type.
    Malformed,
    /// The payload is larger than `commands.max_payload_bytes`; not even parsed.
    Oversize,
    /// `kind` is not one this cabinet knows (only `dispense` today).
    UnsupportedKind,
    /// `qty` is not supported (only 1 today: one motor turn per command).
    UnsupportedQuantity,
    /// The command ID was seen before; the stored outcome is reported again.
    Duplicate,
    /// The scanned QR session does not match the cabinet's current one.
    SessionMismatch,

    // --- the command was valid, the cabinet cannot serve it ------------------------
    /// The slot number is not in the cabinet's slot map.
    SlotUnknown,
    /// A technician took the slot out of service.
    SlotDisabled,
    /// The inventory count for the slot is zero.
    SlotEmpty,
    /// A return (`kind` = `return`) for a slot that is not a door of a lock board: only a
    /// door takes an item back.
    NotADoor,
    /// A return for a door that still holds an item (or has a return or sale waiting).
    DoorOccupied,
    /// The slot jammed earlier, or its last dispense ended with an unknown outcome, and no
    /// technician has cleared it yet.
    SlotJammed,
    /// A technician is servicing the cabinet (the diagnostics screen is open).
    Maintenance,
    /// The journal was found missing, empty, corrupt or replaced at start, and nobody has
    /// confirmed a fresh start yet: without it a command served before could be served
    /// again, so nothing is served.
    JournalUnverified,
    /// The journal's file system has less free space than `journal.min_free_mb`: a new
    /// command could not be journaled safely to its end, so none is taken until space
    /// is freed (commands already accepted still finish).
    DiskLow,

    // --- the board tried and reported a failure ------------------------------------
    /// The board reported a jam during this dispense (VMC status 03).
    Jammed,
    /// The board reported the motor did not stop (VMC status 04).
    MotorNotStopped,
    /// The motor turned but the drop sensor saw nothing fall.
    NoDropDetected,
    /// Lock board: unlocked, but the door sensor never showed the door open in time.
    DoorNeverOpened,
    /// The serial port could not be opened or went away.
    BoardUnreachable,
    /// The board did not answer within the protocol's timeout.
    BoardNoReply,
    /// The board reported the dispense as terminated (VMC status FF).
    Terminated,
    /// The app restarted while this command was dispensing; the physical outcome is
    /// not known and the motor is never run again for it.
    Interrupted,
}

impl Reason {
    /// Every reason, in declaration order. Used by tests and to parse codes back.
    pub const ALL: [Reason; 31] = [
        Reason::WrongTarget,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::LifetimeTooLong,
        Reason::BadSignature,
        Reason::UnknownKey,
        Reason::KeyNotAllowed,
        Reason::UnsupportedAlgorithm,
        Reason::Malformed,
        Reason::Oversize,
        Reason::UnsupportedKind,
        Reason::UnsupportedQuantity,
        Reason::Duplicate,
        Reason::SessionMismatch,
        Reason::SlotUnknown,
        Reason::SlotDisabled,
        Reason::SlotEmpty,
        Reason::NotADoor,
        Reason::DoorOccupied,
        Reason::SlotJammed,
        Reason::Maintenance,
        Reason::JournalUnverified,
        Reason::DiskLow,
        Reason::Jammed,
        Reason::MotorNotStopped,
        Reason::NoDropDetected,
        Reason::DoorNeverOpened,
        Reason::BoardUnreachable,
        Reason::BoardNoReply,
        Reason::Terminated,
        Reason::Interrupted,
    ];

    /// The wire code (identical to the serde name), also shown as the support code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::WrongTarget => "wrong_target",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::LifetimeTooLong => "lifetime_too_long",
            Reason::BadSignature => "bad_signature",
            Reason::UnknownKey => "unknown_key",
            Reason::KeyNotAllowed => "key_not_allowed",
            Reason::UnsupportedAlgorithm => "unsupported_algorithm",
            Reason::Malformed => "malformed",
            Reason::Oversize => "oversize",
            Reason::UnsupportedKind => "unsupported_kind",
            Reason::UnsupportedQuantity => "unsupported_quantity",
            Reason::Duplicate => "duplicate",
            Reason::SessionMismatch => "session_mismatch",
            Reason::SlotUnknown => "slot_unknown",
            Reason::SlotDisabled => "slot_disabled",
            Reason::SlotEmpty => "slot_empty",
            Reason::NotADoor => "not_a_door",
            Reason::DoorOccupied => "door_occupied",
            Reason::SlotJammed => "slot_jammed",
            Reason::Maintenance => "maintenance",
            Reason::JournalUnverified => "journal_unverified",
            Reason::DiskLow => "disk_low",
            Reason::Jammed => "jammed",
            Reason::MotorNotStopped => "motor_not_stopped",
            Reason::NoDropDetected => "no_drop_detected",
            Reason::DoorNeverOpened => "door_never_opened",
            Reason::BoardUnreachable => "board_unreachable",
            Reason::BoardNoReply => "board_no_reply",
            Reason::Terminated => "terminated",
            Reason::Interrupted => "interrupted",
        }
    }

    /// True when the command could not be trusted at all (before or at the signature
    /// check). Such commands never enter the command table: an unverified `jti` must
    /// not be able to poison deduplication and block the real command later.
    pub fn is_trust_failure(self) -> bool {
        matches!(
            self,
            Reason::BadSignature
                | Reason::UnknownKey
                | Reason::KeyNotAllowed
                | Reason::UnsupportedAlgorithm
                | Reason::Malformed
                | Reason::Oversize
        )
    }

    /// True when a customer standing at *this* cabinet may be waiting for this command,
    /// so the screen should show the failure screen ("not dispensed", with the code).
    ///
    /// False for commands that were never this cabinet's (wrong target, forged,
    /// unreadable), for duplicates, whose first delivery already drove the screen, and
    /// during maintenance, when the person at the screen is the technician.
    pub fn is_customer_facing_failure(self) -> bool {
        !self.is_trust_failure()
            && !matches!(
                self,
                Reason::WrongTarget | Reason::Duplicate | Reason::Maintenance
            )
    }

    /// True when the reason means the slot should be taken out of service until a
    /// technician clears it (docs/ARCHITECTURE.md, "The invariants").
    pub fn takes_slot_out_of_service(self) -> bool {
        matches!(self, Reason::Jammed | Reason::MotorNotStopped)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A string that is not one of the reason codes (for example a corrupted journal row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason code {0:?}")]
pub struct UnknownReason(pub String);

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .iter()
            .copied()
            .find(|r| r.code() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn code_matches_the_serde_wire_name_for_every_reason() {
        for r in Reason::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.code()), "{r:?}");
            let back: Reason = serde_json::from_str(&json).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn codes_are_unique_and_parse_back() {
        let codes: HashSet<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert_eq!(r.code().parse::<Reason>(), Ok(r));
            assert_eq!(r.to_string(), r.code());
        }
        assert_eq!(
            "no_such_reason".parse::<Reason>(),
            Err(UnknownReason("no_such_reason".into()))
        );
    }

    #[test]
    fn all_lists_every_variant_once() {
        // A new variant not added to ALL would fail to parse back from the journal.
        // The match in code() forces a code per variant; this checks ALL has no gaps.
        let set: HashSet<_> = Reason::ALL.iter().collect();
        assert_eq!(set.len(), Reason::ALL.len());
    }

    #[test]
    fn the_codes_named_in_the_design_brief_exist() {
        for code in [
            "wrong_target",
            "expired",
            "not_yet_valid",
            "bad_signature",
            "unknown_key",
            "malformed",
            "oversize",
            "unsupported_kind",
            "duplicate",
            "slot_unknown",
            "slot_disabled",
            "slot_empty",
            "slot_jammed",
            "maintenance",
            "disk_low",
            "jammed",
            "motor_not_stopped",
            "no_drop_detected",
            "door_never_opened",
            "board_unreachable",
            "board_no_reply",
            "session_mismatch",
            "interrupted",
            "terminated",
        ] {
            assert!(code.parse::<Reason>().is_ok(), "{code}");
        }
    }

    #[test]
    fn forged_and_foreign_commands_never_reach_the_customer_screen() {
        for r in [
            Reason::WrongTarget,
            Reason::BadSignature,
            Reason::UnknownKey,
            Reason::UnsupportedAlgorithm,
            Reason::Malformed,
            Reason::Oversize,
            Reason::Duplicate,
        ] {
            assert!(!r.is_customer_facing_failure(), "{r:?}");
        }
        for r in [
            Reason::SlotEmpty,
            Reason::Jammed,
            Reason::NoDropDetected,
            Reason::Interrupted,
            Reason::SessionMismatch,
            Reason::Expired,
            // A customer who scanned just before the disk ran low is told, not left
            // waiting on an out-of-service screen.
            Reason::DiskLow,
        ] {
            assert!(r.is_customer_facing_failure(), "{r:?}");
        }
    }

    #[test]
    fn trust_failures_are_exactly_the_pre_signature_reasons() {
        assert!(Reason::BadSignature.is_trust_failure());
        assert!(Reason::Oversize.is_trust_failure());
        assert!(!Reason::WrongTarget.is_trust_failure());
        assert!(!Reason::Expired.is_trust_failure());
    }

    #[test]
    fn jams_take_the_slot_out_of_service_but_empty_slots_do_not() {
        assert!(Reason::Jammed.takes_slot_out_of_service());
        assert!(Reason::MotorNotStopped.takes_slot_out_of_service());
        assert!(!Reason::SlotEmpty.takes_slot_out_of_service());
        assert!(!Reason::NoDropDetected.takes_slot_out_of_service());
    }
}
