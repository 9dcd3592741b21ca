//! Test hooks: environment variables that make the kiosk abort or hang at an exact point,
//! for the crash-point and systemd watchdog tests (`crates/cabinet-cli/tests/kiosk.rs`).
//!
//! They exist only with the `test-hooks` cargo feature. An environment variable that can
//! abort or hang a cabinet must not reach the shipped binaries: the feature is enabled
//! through `cabinet-cli`'s `[dev-dependencies]`, which cargo (resolver 2 and later)
//! applies when it builds the workspace for `cargo test`, and not for `cargo build`
//! (`make deb`, `scripts/build-deb.sh`). Without the feature [`Hooks::from_env`] returns
//! inert hooks and the variable names are not even compiled in.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the hooks say, read once at start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hooks {
    /// `CABINET_TEST_CRASH_AT=<point>`: abort the process there (no clean-up, as kill -9
    /// or a power cut would), for the crash-point tests ([`CrashPoint`]).
    pub(crate) crash_at: Option<CrashPoint>,
    /// `CABINET_TEST_HANG_WHEN=<path>`: once that file exists, the runner blocks forever in
    /// its loop (after saying so in a `STATUS=` line), as a runner stuck in a call that
    /// never returns would: the systemd watchdog test.
    pub(crate) hang_when: Option<PathBuf>,
}

/// Where a dispense can be cut short by a crash: each journal transition, and between the
/// motor command and its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// `accepted` journaled, before the PUBACK (the broker redelivers the command).
    Accepted,
    /// `dispensing` journaled, before the motor command goes to the board.
    Dispensing,
    /// The board reported the motor's outcome, before it is journaled.
    MotorDone,
    /// The terminal state journaled, before its reply is published.
    Outcome,
}

impl Hooks {
    /// The hooks the process environment asks for (none without the feature).
    pub(crate) fn from_env() -> Hooks {
        Hooks::from_vars(|name| std::env::var_os(name))
    }

    /// Without the `test-hooks` feature: inert, whatever the variables say.
    #[cfg(not(feature = "test-hooks"))]
    fn from_vars(_var: impl Fn(&str) -> Option<OsString>) -> Hooks {
        Hooks::default()
    }

    #[cfg(feature = "test-hooks")]
    fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Hooks {
        let crash_at = var("CABINET_TEST_CRASH_AT").and_then(|p| {
            Some(match p.to_str()? {
                "accepted" => CrashPoint::Accepted,
                "dispensing" => CrashPoint::Dispensing,
                "motor_done" => CrashPoint::MotorDone,
                "outcome" => CrashPoint::Outcome,
                _ => return None,
            })
        });
        Hooks {
            crash_at,
            hang_when: var("CABINET_TEST_HANG_WHEN").map(Into::into),
        }
    }

    /// Abort here if the crash-point hook says so.
    pub(crate) fn crash(&self, point: CrashPoint) {
        if self.crash_at == Some(point) {
            tracing::error!(?point, "test hook: crashing here");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a test (or an attacker with access to the unit's environment) would set.
    fn every_hook_set(name: &str) -> Option<OsString> {
        match name {
            "CABINET_TEST_CRASH_AT" => Some("accepted".into()),
            "CABINET_TEST_HANG_WHEN" => Some("/".into()),
            _ => None,
        }
    }

    /// Runs with `cargo test -p cabinet-core` (as `make test` does; the workspace-wide run
    /// enables the feature through cabinet-cli's dev-dependencies).
    #[cfg(not(feature = "test-hooks"))]
    #[test]
    fn without_the_test_hooks_feature_the_variables_neither_crash_nor_hang() {
        let hooks = Hooks::from_vars(every_hook_set);
        assert_eq!(hooks.crash_at, None);
        assert_eq!(hooks.hang_when, None);
        // Returns instead of aborting the test process.
        hooks.crash(CrashPoint::Accepted);
    }

    #[cfg(feature = "test-hooks")]
    #[test]
    fn with_the_test_hooks_feature_the_variables_set_the_hooks() {
        let hooks = Hooks::from_vars(every_hook_set);
        assert_eq!(hooks.crash_at, Some(CrashPoint::Accepted));
        assert_eq!(hooks.hang_when, Some(PathBuf::from("/")));
        let unknown = Hooks::from_vars(|n| (n == "CABINET_TEST_CRASH_AT").then(|| "x".into()));
        assert_eq!(unknown.crash_at, None, "an unknown point crashes nowhere");
        // A point other than the one set does not abort.
        hooks.crash(CrashPoint::Outcome);
    }
}
