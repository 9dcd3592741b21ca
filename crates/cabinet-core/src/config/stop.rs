//! The stop budget: how long the kiosk may take to stop (a dispense under way, the
//! link's goodbye), and the rule that keeps it inside the shipped units' `TimeoutStopSec`.

use std::time::Duration;

use super::validate::Validator;
use super::{BoardProtocol, Config, LockboardConfig, VmcConfig};

/// `TimeoutStopSec` of the shipped systemd units (`deploy/systemd/*.service`): how long
/// systemd lets the kiosk stop before it kills it. [`Config::validate`] refuses a board
/// timeout whose [`Config::stop_budget`] does not fit in it (a test keeps this equal to
/// the unit files), because a kill in the middle of a dispense turns an outcome the board
/// was about to report into `outcome_unknown`.
pub const UNIT_STOP_TIMEOUT_SECS: u64 = 60;

/// Added to the longest dispense when the kiosk stops: the VMC board's ACK round and
/// resends before its report window opens (under 3 s), and journaling the outcome.
pub const STOP_MARGIN_SECS: u64 = 10;

/// The MQTT link's goodbye on stop (the `offline` presence and a clean disconnect).
pub const LINK_GOODBYE_SECS: u64 = 5;

/// What a binary allows beyond [`Config::stop_budget`] before it gives up on the core
/// (the core's own bounds fire first), and what the unit allows beyond that for the
/// process to exit (the window's teardown, flushing logs).
pub const STOP_GRACE_SECS: u64 = 5;

impl Config {
    /// The longest a dispense already under way can still take: the VMC board's
    /// report timeout; for the lock board the unlock's reply, the wait for the door and
    /// the last door query's reply. With `[[boards]]`, the slowest board's. A lock board
    /// that shares its bus may also wait for another board's exchange before its unlock
    /// and its last query (2 × `reply_timeout_ms` at most); that comes out of
    /// [`STOP_MARGIN_SECS`], whose VMC ACK round a lock board does not have.
    pub fn dispense_bound(&self) -> Duration {
        self.slowest_board().map_or(Duration::ZERO, |b| b.bound)
    }

    /// The board whose dispense can take longest, with the field names that set it.
    fn slowest_board(&self) -> Option<SlowestBoard> {
        let b = &self.board;
        if self.boards.is_empty() {
            return Some(SlowestBoard::of(
                b.protocol,
                &b.vmc,
                &b.lockboard,
                "board.vmc.",
                "board.lockboard.",
            ));
        }
        self.boards
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let prefix = format!("boards[{i}].");
                SlowestBoard::of(
                    e.protocol,
                    &e.vmc(&b.vmc),
                    &e.lockboard(&b.lockboard),
                    &prefix,
                    &prefix,
                )
            })
            .max_by_key(|s| s.bound)
    }

    /// How long the kiosk, once told to stop, waits for a dispense in progress to end
    /// and journals its outcome: [`Config::dispense_bound`] + [`STOP_MARGIN_SECS`].
    pub fn stop_dispense_wait(&self) -> Duration {
        self.dispense_bound() + Duration::from_secs(STOP_MARGIN_SECS)
    }

    /// The whole stop of the kiosk core: the dispense wait and the link's goodbye
    /// ([`LINK_GOODBYE_SECS`]). Both binaries wait this plus [`STOP_GRACE_SECS`] for the
    /// core; the shipped units allow [`UNIT_STOP_TIMEOUT_SECS`], which
    /// [`Config::validate`] keeps at least this plus twice the grace.
    pub fn stop_budget(&self) -> Duration {
        self.stop_dispense_wait() + Duration::from_secs(LINK_GOODBYE_SECS)
    }

    /// How long a binary (`cabinet run`, the window app) waits for the core once it
    /// asked it to stop: the core's [`Config::stop_budget`] plus [`STOP_GRACE_SECS`], so
    /// the core's own bounds end the wait, not this one. Within the units'
    /// `TimeoutStopSec` by [`Config::validate`], so systemd does not kill a kiosk that is
    /// still journaling a dispense.
    pub fn stop_timeout(&self) -> Duration {
        self.stop_budget() + Duration::from_secs(STOP_GRACE_SECS)
    }

    /// The stop budget must fit in the shipped units' `TimeoutStopSec`, or systemd kills
    /// a kiosk that is waiting for a board to report a dispense. Named on the timeout of
    /// the protocol in use; skipped while that timeout is out of its range (already
    /// reported).
    pub(super) fn check_stop_budget(&self, v: &mut Validator) {
        let fits = |c: &Config| {
            c.stop_timeout() + Duration::from_secs(STOP_GRACE_SECS)
                <= Duration::from_secs(UNIT_STOP_TIMEOUT_SECS)
        };
        if fits(self) {
            return;
        }
        // The largest value of the field that fits, for the message.
        let overhead = STOP_MARGIN_SECS + LINK_GOODBYE_SECS + 2 * STOP_GRACE_SECS;
        let why = format!(
            "on stop the kiosk lets a dispense in progress end, which takes up to this timeout + {overhead} s, \
             and the shipped systemd units allow {UNIT_STOP_TIMEOUT_SECS} s (TimeoutStopSec) before they kill it"
        );
        let Some(slow) = self.slowest_board() else {
            return;
        };
        let (vmc, lock) = (&slow.vmc, &slow.lock);
        match slow.protocol {
            BoardProtocol::Vmc if (1..=300).contains(&vmc.report_timeout_secs) => {
                let max = UNIT_STOP_TIMEOUT_SECS.saturating_sub(overhead);
                v.add(
                    &format!("{}report_timeout_secs", slow.vmc_prefix),
                    &format!(
                        "must be at most {max} (got {}): {why}",
                        vmc.report_timeout_secs
                    ),
                );
            }
            BoardProtocol::Lockboard
                if (1..=600).contains(&lock.door_open_timeout_secs)
                    && (100..=10_000).contains(&lock.reply_timeout_ms) =>
            {
                let replies = (2 * lock.reply_timeout_ms).div_ceil(1000);
                let max = UNIT_STOP_TIMEOUT_SECS.saturating_sub(overhead + replies);
                let p = &slow.lock_prefix;
                v.add(
                    &format!("{p}door_open_timeout_secs"),
                    &format!(
                        "must be at most {max} with {p}reply_timeout_ms = {} (got {}): {why} \
                         (plus two replies)",
                        lock.reply_timeout_ms, lock.door_open_timeout_secs
                    ),
                );
            }
            _ => {}
        }
    }
}

/// The slowest board of a cabinet and where its timeouts are set.
struct SlowestBoard {
    protocol: BoardProtocol,
    vmc: VmcConfig,
    lock: LockboardConfig,
    vmc_prefix: String,
    lock_prefix: String,
    bound: Duration,
}

impl SlowestBoard {
    fn of(
        protocol: BoardProtocol,
        vmc: &VmcConfig,
        lock: &LockboardConfig,
        vmc_prefix: &str,
        lock_prefix: &str,
    ) -> SlowestBoard {
        let bound = match protocol {
            BoardProtocol::Vmc => Duration::from_secs(vmc.report_timeout_secs),
            BoardProtocol::Lockboard => {
                Duration::from_secs(lock.door_open_timeout_secs)
                    + 2 * Duration::from_millis(lock.reply_timeout_ms)
            }
        };
        SlowestBoard {
            protocol,
            vmc: vmc.clone(),
            lock: lock.clone(),
            vmc_prefix: vmc_prefix.to_owned(),
            lock_prefix: lock_prefix.to_owned(),
            bound,
        }
    }
}
