//! Failed logins, limited per source address: each source may fail
//! [`FAILURES_BURST`] times, and earns one more try every
//! [`REFILL_EVERY`]. Past that its logins are refused at once, without a
//! password check, with the same `-WRONGPASS` as a wrong password (so the
//! answer reveals nothing about the user), until it has earned a try.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins a source may make in a burst.
pub const FAILURES_BURST: u32 = 10;
/// A source earns one more try this often (six a minute).
pub const REFILL_EVERY: Duration = Duration::from_secs(10);
/// Sources tracked at once; when full, the ones whose tries are back to a
/// full burst are forgotten first, then every one (an attacker with more
/// addresses than this gets no more than a fresh burst each).
pub const SOURCES_MAX: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tries left, as of `at`.
    tries: u32,
    at: Instant,
}

impl Bucket {
    /// The tries left at `now`, with those earned since `at`.
    fn refilled(self, now: Instant) -> Bucket {
        let earned = now.saturating_duration_since(self.at).as_secs() / REFILL_EVERY.as_secs();
        if earned == 0 {
            return self;
        }
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        let tries = self.tries.saturating_add(earned).min(FAILURES_BURST);
        // Keep the fraction of a period already served.
        let served = REFILL_EVERY * earned.min(FAILURES_BURST);
        Bucket {
            tries,
            at: if tries == FAILURES_BURST {
                now
            } else {
                self.at + served
            },
        }
    }
}

/// Every worker's view of the failed logins per source.
#[derive(Debug, Default)]
pub struct Throttle {
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Throttle {
    /// Whether `source` may try a login now.
    pub fn allows(&self, source: IpAddr, now: Instant) -> bool {
        let sources = self
            .sources
            .lock()
            .expect("login throttle lock is poisoned");
        sources
            .get(&source)
            .is_none_or(|bucket| bucket.refilled(now).tries > 0)
    }

    /// Records a failed login from `source`.
    pub fn failed(&self, source: IpAddr, now: Instant) {
        let mut sources = self
            .sources
            .lock()
            .expect("login throttle lock is poisoned");
        if sources.len() >= SOURCES_MAX && !sources.contains_key(&source) {
            sources.retain(|_, bucket| bucket.refilled(now).tries < FAILURES_BURST);
            if sources.len() >= SOURCES_MAX {
                sources.clear();
            }
        }
        let fresh = Bucket {
            tries: FAILURES_BURST,
            at: now,
        };
        let bucket = sources.entry(source).or_insert(fresh);
        let mut refilled = bucket.refilled(now);
        if refilled.tries == FAILURES_BURST {
            // The clock for earning tries back starts at the first failure.
            refilled.at = now;
        }
        refilled.tries = refilled.tries.saturating_sub(1);
        *bucket = refilled;
        debug_assert!(sources.len() <= SOURCES_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_a_burst_then_one_try_per_period() {
        let throttle = Throttle::default();
        let (one, other): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let start = Instant::now();
        for _ in 0..FAILURES_BURST {
            assert!(throttle.allows(one, start));
            throttle.failed(one, start);
        }
        assert!(!throttle.allows(one, start));
        assert!(throttle.allows(other, start), "sources are apart");
        let almost = start + REFILL_EVERY - Duration::from_millis(1);
        assert!(!throttle.allows(one, almost));
        let earned = start + REFILL_EVERY;
        assert!(throttle.allows(one, earned));
        throttle.failed(one, earned);
        assert!(!throttle.allows(one, earned));
        // A long quiet spell gives back a full burst, no more.
        let later = earned + REFILL_EVERY * (FAILURES_BURST * 5);
        for _ in 0..FAILURES_BURST {
            assert!(throttle.allows(one, later));
            throttle.failed(one, later);
        }
        assert!(!throttle.allows(one, later));
    }

    #[test]
    fn the_table_stays_bounded() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for n in 0..(SOURCES_MAX as u32 + 10) {
            throttle.failed(IpAddr::from(n.to_be_bytes()), now);
        }
        let sources = throttle.sources.lock().unwrap();
        assert!(sources.len() <= SOURCES_MAX, "{}", sources.len());
    }
}
