//! Converting SQLite columns into the journal's types, and the clock rows are stamped with.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::ReplyState;
use crate::reason::Reason;

use super::JournalError;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn parse_state(s: &str) -> Result<ReplyState, JournalError> {
    ReplyState::parse(s).ok_or_else(|| JournalError::Corrupt(format!("unknown state {s:?}")))
}

pub(super) fn parse_reason(s: Option<String>) -> Result<Option<Reason>, JournalError> {
    s.map(|s| {
        s.parse::<Reason>()
            .map_err(|e| JournalError::Corrupt(e.to_string()))
    })
    .transpose()
}

pub(super) fn to_u16(v: Option<i64>, what: &str) -> Result<Option<u16>, JournalError> {
    v.map(|v| {
        u16::try_from(v).map_err(|_| JournalError::Corrupt(format!("{what} {v} out of range")))
    })
    .transpose()
}

pub(super) fn to_u32(v: i64, what: &str) -> Result<u32, JournalError> {
    u32::try_from(v).map_err(|_| JournalError::Corrupt(format!("{what} {v} out of range")))
}

pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
