//! What the simulator injects, how often, and the counts of what it did.
//!
//! Every decision is a draw from the namespace's one seeded stream, made when
//! the command executes (completes). A probability of zero draws nothing, so a
//! fault-free namespace spends its stream on latency alone.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How far (in LBAs, beyond the write's own length) a misdirected write may
/// land from its target.
pub(super) const MISDIRECT_SPREAD_LBAS: u64 = 8;

/// Fault probabilities (each in `0.0..=1.0`) and the latency range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Probability that a successful read returns one flipped bit. Transient:
    /// the medium is unchanged.
    pub read_bitflip: f64,
    /// Probability that a write leaves a latent sector error on one of the
    /// LBAs it wrote: later reads of that LBA fail with
    /// [`crate::IoError::Media`] until the LBA is rewritten. The write itself
    /// reports success.
    pub latent_sector: f64,
    /// Probability that a write lands at a different LBA, near the target and
    /// in range, not overlapping the target range, while reporting success.
    /// The target range keeps its old content.
    pub misdirected_write: f64,
    /// Probability that a read, write, write-zeroes or deallocate fails with
    /// [`crate::IoError::Device`] (`EIO`) and changes nothing.
    pub transient_error: f64,
    /// Probability that a flush fails with [`crate::IoError::Flush`] (`EIO`).
    /// The writes it would have covered stay uncovered: a crash may still lose
    /// them (fsyncgate semantics).
    pub flush_error: f64,
    /// Each command completes a uniformly drawn `0..=latency_ticks_max` ticks
    /// of simulated time after its submission.
    pub latency_ticks_max: u64,
}

impl FaultConfig {
    /// Panics on a probability outside `0.0..=1.0` (or NaN): a caller bug.
    pub(super) fn validate(&self) {
        for (name, p) in self.probabilities() {
            assert!(
                (0.0..=1.0).contains(&p),
                "FaultConfig::{name} = {p} is not a probability in 0.0..=1.0"
            );
        }
    }

    fn probabilities(&self) -> [(&'static str, f64); 5] {
        [
            ("read_bitflip", self.read_bitflip),
            ("latent_sector", self.latent_sector),
            ("misdirected_write", self.misdirected_write),
            ("transient_error", self.transient_error),
            ("flush_error", self.flush_error),
        ]
    }

    /// `none`, or the non-zero settings, for [`crate::Namespace::describe`].
    pub(super) fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .probabilities()
            .iter()
            .filter(|(_, p)| *p > 0.0)
            .map(|(name, p)| format!("{name}={p}"))
            .collect();
        if self.latency_ticks_max > 0 {
            parts.push(format!("latency_ticks_max={}", self.latency_ticks_max));
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// How many faults of each kind were injected. Field names match
/// [`FaultConfig`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Reads that returned a flipped bit.
    pub read_bitflip: u64,
    /// Latent sector errors left by writes (not those added with
    /// [`super::SimNamespace::add_latent_error`]).
    pub latent_sector: u64,
    /// Writes that landed elsewhere.
    pub misdirected_write: u64,
    /// Commands failed with a transient device error.
    pub transient_error: u64,
    /// Flushes that failed.
    pub flush_error: u64,
}

impl FaultCounts {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.read_bitflip
            + self.latent_sector
            + self.misdirected_write
            + self.transient_error
            + self.flush_error
    }
}

/// One Bernoulli draw; draws nothing when `p` is zero.
pub(super) fn fires(rng: &mut ChaCha8Rng, p: f64) -> bool {
    p > 0.0 && rng.random_bool(p)
}

/// A simulated completion latency.
pub(super) fn latency(rng: &mut ChaCha8Rng, latency_ticks_max: u64) -> u64 {
    if latency_ticks_max == 0 {
        0
    } else {
        rng.random_range(0..=latency_ticks_max)
    }
}

/// Where a misdirected write of `blocks` LBAs aimed at `lba` lands: a start
/// within [`MISDIRECT_SPREAD_LBAS`] of either end of the target range, such
/// that the landed range is in the namespace and does not overlap the target.
/// `None` when no such place exists (a namespace barely larger than the write).
pub(super) fn misdirect_target(
    rng: &mut ChaCha8Rng,
    lba: u64,
    blocks: u64,
    lba_count: u64,
) -> Option<u64> {
    // Above: starts lba+blocks ..= lba+blocks+spread-1, ending in range.
    let above_first = lba + blocks;
    let above_last =
        (above_first + MISDIRECT_SPREAD_LBAS - 1).min(lba_count.saturating_sub(blocks));
    let above = if above_first <= above_last {
        above_last - above_first + 1
    } else {
        0
    };
    // Below: starts lba-blocks-spread+1 ..= lba-blocks, not below zero.
    let (below_first, below) = match lba.checked_sub(blocks) {
        Some(below_last) => {
            let below_first = below_last.saturating_sub(MISDIRECT_SPREAD_LBAS - 1);
            (below_first, below_last - below_first + 1)
        }
        None => (0, 0),
    };
    if above + below == 0 {
        return None;
    }
    let pick = rng.random_range(0..above + below);
    Some(if pick < above {
        above_first + pick
    } else {
        below_first + (pick - above)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn misdirected_targets_are_near_in_range_and_disjoint() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (lba, blocks, lba_count) in
            [(0, 1, 64), (5, 3, 64), (60, 4, 64), (30, 2, 40), (0, 4, 8)]
        {
            for _ in 0..200 {
                let target = misdirect_target(&mut rng, lba, blocks, lba_count).unwrap();
                assert!(target + blocks <= lba_count, "in range");
                assert!(target + blocks <= lba || target >= lba + blocks, "disjoint");
                assert!(
                    target.abs_diff(lba) < blocks + MISDIRECT_SPREAD_LBAS,
                    "near"
                );
            }
        }
        assert_eq!(misdirect_target(&mut rng, 0, 4, 4), None);
        assert_eq!(misdirect_target(&mut rng, 2, 4, 7), None);
    }

    #[test]
    fn describe_lists_what_is_set() {
        assert_eq!(FaultConfig::default().describe(), "none");
        let faults = FaultConfig {
            flush_error: 0.5,
            latency_ticks_max: 3,
            ..FaultConfig::default()
        };
        assert_eq!(faults.describe(), "flush_error=0.5 latency_ticks_max=3");
    }

    #[test]
    #[should_panic(expected = "not a probability")]
    fn probabilities_are_checked() {
        FaultConfig {
            read_bitflip: 1.5,
            ..FaultConfig::default()
        }
        .validate();
    }
}
