//! Drawing one crash state from the crash model, and settling the writes a
//! failed flush should have covered.
//!
//! The model (DESIGN.md, "Acknowledged means durable"): every write no
//! completed flush covered may be lost, may be torn at sector granularity, and
//! may be reordered with the others. So a crash state starts from the durable
//! image, and the uncovered writes are visited in a random order, each kept
//! whole, dropped, or torn (each sector independently new or old, where "old"
//! is whatever the state holds when the write is visited). Because of the
//! reordering, an earlier write may land over a later one on LBAs they share,
//! except where a FUA write superseded the earlier one.
//!
//! A failed flush settles the writes it should have covered the same way, at
//! once, into the durable image ([`settle`]): the device wrote some of them
//! (perhaps torn) before failing and lost the rest.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::media::{self, Content, Image, Media, Override, Payload, Uncovered};

/// What one crash did to the writes no flush had covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashSummary {
    /// Writes that were uncovered at the crash.
    pub uncovered: usize,
    /// Of those, written whole.
    pub kept: usize,
    /// Lost entirely.
    pub dropped: usize,
    /// Torn: each sector new or old.
    pub torn: usize,
}

#[derive(Clone, Copy)]
enum Outcome {
    Kept,
    Dropped,
    Torn,
}

/// Draws a crash state of `media`: the new durable image.
pub(super) fn draw(
    media: &Media,
    lba_bytes: usize,
    sector_bytes: usize,
    rng: &mut ChaCha8Rng,
) -> (Image, CrashSummary) {
    let mut image = media.durable().clone();
    let summary = settle(&mut image, media.uncovered(), lba_bytes, sector_bytes, rng);
    (image, summary)
}

/// Settles `writes` into `image`: visits them in a random order and keeps,
/// drops or tears each.
///
/// The mix of outcomes is itself drawn per call (three uniform weights), so
/// that across seeds some calls keep nearly everything, some lose nearly
/// everything, and some tear a lot.
pub(super) fn settle(
    image: &mut Image,
    writes: &[Uncovered],
    lba_bytes: usize,
    sector_bytes: usize,
    rng: &mut ChaCha8Rng,
) -> CrashSummary {
    let mut order: Vec<usize> = (0..writes.len()).collect();
    order.shuffle(rng);
    let weights: [f64; 3] = [rng.random(), rng.random(), rng.random()];
    let weight_total: f64 = weights.iter().sum();
    let mut summary = CrashSummary {
        uncovered: writes.len(),
        ..CrashSummary::default()
    };
    for index in order {
        let write = &writes[index];
        let pick = rng.random::<f64>() * weight_total;
        let outcome = if pick < weights[0] {
            Outcome::Kept
        } else if pick < weights[0] + weights[1] {
            Outcome::Dropped
        } else {
            Outcome::Torn
        };
        match outcome {
            Outcome::Kept => {
                summary.kept += 1;
                media::apply(image, write, lba_bytes);
            }
            Outcome::Dropped => summary.dropped += 1,
            Outcome::Torn => {
                summary.torn += 1;
                tear(image, write, lba_bytes, sector_bytes, rng);
            }
        }
    }
    assert_eq!(
        summary.kept + summary.dropped + summary.torn,
        summary.uncovered
    );
    summary
}

/// Applies `write` with each sector independently new or old.
fn tear(
    image: &mut Image,
    write: &Uncovered,
    lba_bytes: usize,
    sector_bytes: usize,
    rng: &mut ChaCha8Rng,
) {
    match &write.payload {
        Payload::Data(_) => {
            for lba in write.lba..write.end() {
                match write.content(lba, lba_bytes) {
                    Content::Superseded => {}
                    Content::Zeroes => tear_block(image, lba, None, lba_bytes, sector_bytes, rng),
                    Content::Bytes(new) => {
                        tear_block(image, lba, Some(new), lba_bytes, sector_bytes, rng);
                    }
                }
            }
        }
        Payload::Zeroes => {
            // Where the state already holds zeroes, old and new agree, so only
            // present blocks (and overridden ones) can tear. Visiting just
            // those keeps a namespace-wide deallocate cheap.
            let present: Vec<u64> = image
                .range(write.lba..write.end())
                .map(|(&lba, _)| lba)
                .filter(|lba| !write.overrides.contains_key(lba))
                .collect();
            for lba in present {
                tear_block(image, lba, None, lba_bytes, sector_bytes, rng);
            }
            for (&lba, exception) in &write.overrides {
                if let Override::Block(new) = exception {
                    tear_block(image, lba, Some(new), lba_bytes, sector_bytes, rng);
                }
            }
        }
    }
}

/// One block, each sector from `new` (zeroes when `None`) or kept as is.
fn tear_block(
    image: &mut Image,
    lba: u64,
    new: Option<&[u8]>,
    lba_bytes: usize,
    sector_bytes: usize,
    rng: &mut ChaCha8Rng,
) {
    let mut block: Box<[u8]> = image
        .get(&lba)
        .cloned()
        .unwrap_or_else(|| vec![0; lba_bytes].into());
    for (sector, target) in block.chunks_mut(sector_bytes).enumerate() {
        if rng.random::<bool>() {
            match new {
                Some(new) => {
                    let start = sector * sector_bytes;
                    target.copy_from_slice(&new[start..start + target.len()]);
                }
                None => target.fill(0),
            }
        }
    }
    image.insert(lba, block);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_outcome_occurs_and_sectors_are_new_or_old() {
        let (lba_bytes, sector_bytes) = (64, 16);
        let mut media = Media::new(lba_bytes);
        media.write(0, &[1; 64], true);
        media.write(0, &[2; 64], false);
        let mut seen = CrashSummary::default();
        let mut torn_mixed = false;
        for seed in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (image, summary) = draw(&media, lba_bytes, sector_bytes, &mut rng);
            seen.kept += summary.kept;
            seen.dropped += summary.dropped;
            seen.torn += summary.torn;
            let block = &image[&0];
            for sector in block.chunks(sector_bytes) {
                assert!(sector == [1; 16] || sector == [2; 16], "{sector:?}");
            }
            torn_mixed |= block.contains(&1) && block.contains(&2);
        }
        assert!(
            seen.kept > 0 && seen.dropped > 0 && seen.torn > 0,
            "{seen:?}"
        );
        assert!(torn_mixed);
    }

    #[test]
    fn the_draw_is_a_function_of_the_seed() {
        let mut media = Media::new(32);
        for lba in 0..20 {
            media.write(lba % 7, &[lba as u8 + 1; 64], false);
        }
        media.write_zeroes(0, 5);
        let crash = |seed| draw(&media, 32, 8, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(crash(9), crash(9));
        assert_ne!(crash(9).0, crash(10).0);
    }
}
