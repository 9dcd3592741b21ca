//! Dispense orders as the lab's backends sign them.

use std::time::{SystemTime, UNIX_EPOCH};

use cabinet_core::protocol::{self, CommandClaims};

/// Wall clock, unix seconds (the claims' `iat`/`exp` unit).
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A dispense command's claims for cabinet `aud`, with ids derived from `id`.
pub fn claims(aud: &str, id: &str, slot: u16, iat: i64, exp: i64) -> CommandClaims {
    CommandClaims {
        aud: aud.into(),
        jti: id.into(),
        iat,
        exp,
        kind: protocol::KIND_DISPENSE.into(),
        slot,
        qty: 1,
        order_id: format!("order-{id}"),
        log_id: format!("log-{id}"),
        session: None,
        count: None,
    }
}
