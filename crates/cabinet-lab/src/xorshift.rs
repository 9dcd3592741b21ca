//! A tiny xorshift generator for benchmark pacing and the fleet's choices. Not for keys,
//! nonces or anything else an attacker could want to predict.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Xorshift64, seeded from the clock.
#[derive(Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded from the current time.
    pub fn new() -> XorShift {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform-ish in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform-ish in `[0, max)`, microsecond resolution.
    pub fn duration_below(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.below(u64::try_from(max.as_micros()).unwrap_or(u64::MAX)))
    }
}
