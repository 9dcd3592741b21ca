//! Technician entry: PINs stored as Argon2id hashes, and the lockout after wrong PINs.
//!
//! A PIN is checked against the hash configured for the technician's name
//! (`[technicians]` in the config; `cabinet pin-hash` makes one). After
//! [`LockoutPolicy::max_failures`] wrong PINs in a row, entry is locked for
//! [`LockoutPolicy::first_lockout_ms`], doubling with every further lockout up to
//! [`LockoutPolicy::max_lockout_ms`]; a correct PIN resets both. The [`Gate`] is plain data
//! so the journal can keep it: restarting the app does not reset a lockout.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

/// Shortest and longest PIN accepted by [`hash_pin`].
pub const PIN_LEN: std::ops::RangeInclusive<usize> = 4..=12;

/// Why a PIN could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Not 4–12 ASCII digits.
    #[error("a PIN is 4 to 12 digits (0-9)")]
    Format,
    /// The hash could not be computed (no randomness for the salt).
    #[error("cannot hash the PIN: {0}")]
    Hash(String),
}

/// Whether `pin` has the shape of a PIN (4–12 ASCII digits).
pub fn is_pin(pin: &str) -> bool {
    PIN_LEN.contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Hashes a PIN with Argon2id (default parameters, random salt) into a PHC string
/// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) for the config.
pub fn hash_pin(pin: &str) -> Result<String, PinError> {
    if !is_pin(pin) {
        return Err(PinError::Format);
    }
    Argon2::default()
        .hash_password(pin.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PinError::Hash(e.to_string()))
}

/// Checks that `phc` is an Argon2 PHC string this build can verify (for config
/// validation). The message never includes the string itself.
pub fn check_pin_hash(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc)
        .map_err(|_| "must be an Argon2 PHC string made by `cabinet pin-hash`".to_owned())?;
    match hash.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => Ok(()),
        _ => Err("must be an Argon2 hash (argon2id), made by `cabinet pin-hash`".to_owned()),
    }
}

/// Whether `pin` matches `phc`. Runs the full Argon2 computation (slow on purpose).
pub fn verify_pin(phc: &str, pin: &str) -> bool {
    if !is_pin(pin) {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(pin.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// How wrong PINs are punished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Wrong PINs in a row before entry locks.
    pub max_failures: u32,
    /// The first lockout; each further one doubles.
    pub first_lockout_ms: u64,
    /// The longest lockout.
    pub max_lockout_ms: u64,
}

/// The lockout state, kept in the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// Wrong PINs since the last success or lockout.
    pub failures: u32,
    /// Lockouts since the last success (each doubles the next).
    pub lockouts: u32,
    /// Entry is refused until this time, unix ms (0 = not locked).
    pub locked_until_ms: u64,
}

/// What a PIN attempt led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Attempt {
    /// In.
    LoggedIn {
        /// Who.
        technician: String,
    },
    /// Wrong name or PIN; this many tries remain before a lockout.
    WrongPin {
        /// Tries left.
        tries_left: u32,
    },
    /// Entry is locked until this time (this attempt was not checked, or it was the
    /// one that caused the lockout).
    LockedOut {
        /// Unix ms.
        until_ms: u64,
    },
}

impl Gate {
    /// `Some(until)` while entry is locked at `now_ms`.
    pub fn locked(&self, now_ms: u64) -> Option<u64> {
        (now_ms < self.locked_until_ms).then_some(self.locked_until_ms)
    }

    /// Records a wrong PIN at `now_ms` and says what the technician sees.
    pub fn on_failure(&mut self, policy: &LockoutPolicy, now_ms: u64) -> Attempt {
        self.failures += 1;
        if self.failures < policy.max_failures.max(1) {
            return Attempt::WrongPin {
                tries_left: policy.max_failures - self.failures,
            };
        }
        let factor = 1u64 << self.lockouts.min(32);
        let duration = policy
            .first_lockout_ms
            .saturating_mul(factor)
            .min(policy.max_lockout_ms);
        self.lockouts = self.lockouts.saturating_add(1);
        self.failures = 0;
        self.locked_until_ms = now_ms.saturating_add(duration);
        Attempt::LockedOut {
            until_ms: self.locked_until_ms,
        }
    }

    /// Records a correct PIN: everything is forgiven.
    pub fn on_success(&mut self) {
        *self = Gate::default();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const POLICY: LockoutPolicy = LockoutPolicy {
        max_failures: 5,
        first_lockout_ms: 30_000,
        max_lockout_ms: 100_000,
    };

    #[test]
    fn a_hashed_pin_verifies_and_nothing_else_does() {
        let phc = hash_pin("2468").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("2468"));
        check_pin_hash(&phc).unwrap();
        assert!(verify_pin(&phc, "2468"));
        assert!(!verify_pin(&phc, "2469"));
        assert!(!verify_pin(&phc, ""));
        assert!(!verify_pin("not a hash", "2468"));
        assert_ne!(hash_pin("2468").unwrap(), phc, "salted");
    }

    #[test]
    fn pins_are_4_to_12_digits() {
        assert!(matches!(hash_pin("123"), Err(PinError::Format)));
        assert!(matches!(hash_pin("12a4"), Err(PinError::Format)));
        assert!(matches!(hash_pin("1234567890123"), Err(PinError::Format)));
        assert!(is_pin("123456789012"));
        assert!(check_pin_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
        assert!(check_pin_hash("1234").is_err());
    }

    #[test]
    fn five_wrong_pins_lock_entry_for_a_growing_time_and_a_right_one_resets() {
        let mut g = Gate::default();
        let mut now = 1_000_000;
        for left in (1..5).rev() {
            assert_eq!(
                g.on_failure(&POLICY, now),
                Attempt::WrongPin { tries_left: left }
            );
        }
        assert_eq!(
            g.on_failure(&POLICY, now),
            Attempt::LockedOut {
                until_ms: now + 30_000
            }
        );
        assert_eq!(g.locked(now + 29_999), Some(now + 30_000));
        assert_eq!(g.locked(now + 30_000), None);
        now += 30_000;
        for _ in 0..4 {
            g.on_failure(&POLICY, now);
        }
        assert_eq!(
            g.on_failure(&POLICY, now),
            Attempt::LockedOut {
                until_ms: now + 60_000
            },
            "the second lockout doubles"
        );
        now += 60_000;
        for _ in 0..5 {
            g.on_failure(&POLICY, now);
        }
        assert_eq!(g.locked_until_ms, now + 100_000, "capped");
        g.on_success();
        assert_eq!(g, Gate::default());
    }
}
