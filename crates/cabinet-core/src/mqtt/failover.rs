//! Failover and backoff: the order a cabinet tries a cluster's endpoints in, and when it
//! tries the next one.

use std::time::Duration;

use super::options::now_millis;

/// The order in which a cabinet tries the endpoints: highest random weight first
/// (rendezvous hashing of the machine code with each endpoint's position, FNV-1a). So a
/// fleet spreads evenly over a cluster's nodes, each cabinet always starts on the same
/// one, and the cabinets of a dead node spread evenly over the others instead of all
/// landing on the next one in the list.
pub(super) fn endpoint_order(machine_code: &str, n: usize) -> Vec<usize> {
    let weight = |i: usize| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in machine_code.bytes().chain((i as u64).to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // FNV's low bits mix poorly: finish with a multiply-xorshift.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(weight(i)));
    order
}

/// A connection that lasted this long was a working one: its loss starts a fresh round
/// (first retry at once, backoff from the minimum). A shorter one counts as a failure,
/// so a broker that accepts and then drops the cabinet (a duplicate client id, an ACL
/// that disconnects) is retried with a growing backoff, not in a tight loop.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// When to connect again: at once to the next endpoint while some endpoint of this round
/// has not failed yet; after an exponential backoff once every endpoint failed in a row.
#[derive(Debug)]
pub(super) struct Retry {
    min: Duration,
    max: Duration,
    backoff: Duration,
    failed_in_row: usize,
    up_since: Option<std::time::Instant>,
}

impl Retry {
    pub(super) fn new(min: Duration, max: Duration) -> Retry {
        Retry {
            min,
            max,
            backoff: min,
            failed_in_row: 0,
            up_since: None,
        }
    }

    /// ConnAck received at `now`.
    pub(super) fn connected(&mut self, now: std::time::Instant) {
        self.up_since = Some(now);
    }

    /// A connection or an attempt failed at `now`, with `endpoints` in all. `None`: try
    /// the next endpoint now; `Some(d)`: wait about `d` first.
    pub(super) fn failed(&mut self, now: std::time::Instant, endpoints: usize) -> Option<Duration> {
        if self
            .up_since
            .take()
            .is_some_and(|t| now.duration_since(t) >= STABLE_AFTER)
        {
            self.backoff = self.min;
            self.failed_in_row = 0;
        }
        self.failed_in_row += 1;
        if self.failed_in_row < endpoints {
            return None;
        }
        self.failed_in_row = 0;
        let d = self.backoff;
        self.backoff = (self.backoff * 2).min(self.max);
        Some(d)
    }
}

/// A delay between `d / 2` and `d`.
pub(super) fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 8];
    let r = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => u64::from(now_millis() as u32),
    };
    let half = d / 2;
    let span = half.as_millis() as u64;
    if span == 0 {
        return d;
    }
    half + Duration::from_millis(r % (span + 1))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_endpoint_backs_off_exponentially_until_a_stable_connection() {
        let ms = Duration::from_millis;
        let t0 = std::time::Instant::now();
        let mut r = Retry::new(ms(500), ms(3000));
        let waits: Vec<_> = (0..5).map(|_| r.failed(t0, 1)).collect();
        assert_eq!(
            waits,
            [
                Some(ms(500)),
                Some(ms(1000)),
                Some(ms(2000)),
                Some(ms(3000)),
                Some(ms(3000))
            ]
        );
        // A connection that dropped right away does not reset the backoff...
        r.connected(t0);
        assert_eq!(r.failed(t0 + ms(100), 1), Some(ms(3000)));
        // ...one that worked for a while does.
        r.connected(t0);
        assert_eq!(r.failed(t0 + STABLE_AFTER, 1), Some(ms(500)));
    }

    #[test]
    fn several_endpoints_are_tried_at_once_then_backed_off_as_a_round() {
        let ms = Duration::from_millis;
        let t0 = std::time::Instant::now();
        let mut r = Retry::new(ms(100), ms(1000));
        let waits: Vec<_> = (0..6).map(|_| r.failed(t0, 3)).collect();
        assert_eq!(
            waits,
            [None, None, Some(ms(100)), None, None, Some(ms(200))]
        );
        // A node dies under a working connection: the next node at once.
        r.connected(t0);
        assert_eq!(r.failed(t0 + STABLE_AFTER, 3), None);
        // A broker that accepts and drops the cabinet over and over: still a round, and
        // the backoff grows instead of a tight loop between the nodes.
        let mut flapping = Vec::new();
        for _ in 0..6 {
            r.connected(t0);
            flapping.push(r.failed(t0 + ms(10), 3));
        }
        assert_eq!(
            flapping,
            [None, Some(ms(100)), None, None, Some(ms(200)), None]
        );
    }

    fn within_10_percent(per: &[u32], what: &str) {
        let even = per.iter().sum::<u32>() / per.len() as u32;
        for count in per {
            assert!(
                count.abs_diff(even) * 10 < even,
                "{what}: {per:?} is not within 10 % of {even} each"
            );
        }
    }

    #[test]
    fn a_fleet_spreads_evenly_over_the_endpoints_and_so_does_a_dead_ones_share() {
        assert_eq!(endpoint_order("C001", 0), Vec::<usize>::new());
        assert_eq!(endpoint_order("C001", 1), [0]);
        for n in 2..=4 {
            let orders: Vec<Vec<usize>> = (0..6000)
                .map(|i| endpoint_order(&format!("C{i:04}"), n))
                .collect();
            let mut first = vec![0u32; n];
            for o in &orders {
                let mut sorted = o.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "each endpoint once");
                first[o[0]] += 1;
            }
            within_10_percent(&first, &format!("{n} endpoints, first choice"));
            if n > 2 {
                // The cabinets that start on node 0 move evenly to the others when it dies.
                let mut second = vec![0u32; n];
                for o in orders.iter().filter(|o| o[0] == 0) {
                    second[o[1]] += 1;
                }
                within_10_percent(&second[1..], &format!("{n} endpoints, node 0's share"));
            }
        }
        // The same cabinet always has the same order.
        assert_eq!(endpoint_order("C001", 3), endpoint_order("C001", 3));
    }

    #[test]
    fn jitter_stays_between_half_and_full() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(1000));
        }
    }
}
