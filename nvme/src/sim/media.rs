//! The simulated medium: the durable image, the volatile view, the writes no
//! flush has covered yet (in execution order), and latent sector errors.
//!
//! Invariants:
//! - `volatile` is `durable` with every uncovered write applied in execution
//!   order, where FUA writes (which go straight to `durable`) supersede the
//!   uncovered writes before them on the LBAs they share.
//! - An absent LBA reads as zeroes, in both images.
//! - Every uncovered write has a sequence number below `writes_executed`, and
//!   the list is in increasing sequence order.

use std::collections::{BTreeMap, BTreeSet};

/// A sparse set of blocks: LBA → one block of data. Absent blocks are zero.
pub(super) type Image = BTreeMap<u64, Box<[u8]>>;

/// What an uncovered write puts on the medium.
#[derive(Debug)]
pub(super) enum Payload {
    /// `blocks × lba_bytes` bytes of data.
    Data(Box<[u8]>),
    /// Zeroes (write-zeroes and deallocate), stored without materialising
    /// them: a range may span the whole namespace.
    Zeroes,
}

/// An exception to an uncovered write's payload on one LBA.
#[derive(Debug)]
pub(super) enum Override {
    /// A later FUA write made this LBA durable with newer data: this write
    /// must never land here, however the crash reorders writes.
    Superseded,
    /// This LBA's content, replacing the payload's (a bit flipped at rest
    /// while the write was pending).
    Block(Box<[u8]>),
}

/// One block's content under an uncovered write.
pub(super) enum Content<'a> {
    /// The write no longer lands on this LBA.
    Superseded,
    /// The write puts zeroes here.
    Zeroes,
    /// The write puts these bytes here.
    Bytes(&'a [u8]),
}

/// A write (or write-zeroes, or deallocate) that executed and that no
/// completed flush has covered.
#[derive(Debug)]
pub(super) struct Uncovered {
    /// Execution order among all non-FUA writes of this medium.
    pub seq: u64,
    /// First LBA.
    pub lba: u64,
    /// LBAs written.
    pub blocks: u64,
    pub payload: Payload,
    /// Per-LBA exceptions to the payload; usually empty.
    pub overrides: BTreeMap<u64, Override>,
}

impl Uncovered {
    /// One past the last LBA.
    pub fn end(&self) -> u64 {
        self.lba + self.blocks
    }

    /// What this write puts on `lba` (which it must touch).
    pub fn content(&self, lba: u64, lba_bytes: usize) -> Content<'_> {
        debug_assert!((self.lba..self.end()).contains(&lba));
        match self.overrides.get(&lba) {
            Some(Override::Superseded) => Content::Superseded,
            Some(Override::Block(block)) => Content::Bytes(block),
            None => match &self.payload {
                Payload::Zeroes => Content::Zeroes,
                Payload::Data(data) => {
                    let start = (lba - self.lba) as usize * lba_bytes;
                    Content::Bytes(&data[start..start + lba_bytes])
                }
            },
        }
    }

    fn overlap(&self, lba: u64, blocks: u64) -> std::ops::Range<u64> {
        self.lba.max(lba)..self.end().min(lba + blocks)
    }
}

/// Removes every present block in `[lba, lba + blocks)` (they become zeroes),
/// except those `keep` names.
pub(super) fn zero_range(image: &mut Image, lba: u64, blocks: u64, keep: &BTreeMap<u64, Override>) {
    let present: Vec<u64> = image
        .range(lba..lba + blocks)
        .map(|(&l, _)| l)
        .filter(|l| !keep.contains_key(l))
        .collect();
    for l in present {
        image.remove(&l);
    }
}

/// Applies a whole uncovered write to `image`, honouring its overrides.
pub(super) fn apply(image: &mut Image, write: &Uncovered, lba_bytes: usize) {
    apply_within(image, write, lba_bytes, write.lba..write.end());
}

/// Applies the part of an uncovered write that falls in `range`.
fn apply_within(
    image: &mut Image,
    write: &Uncovered,
    lba_bytes: usize,
    range: std::ops::Range<u64>,
) {
    let range = write.overlap(range.start, range.end.saturating_sub(range.start));
    if range.is_empty() {
        return;
    }
    match &write.payload {
        Payload::Data(_) => {
            for lba in range {
                match write.content(lba, lba_bytes) {
                    Content::Superseded => {}
                    Content::Zeroes => {
                        image.remove(&lba);
                    }
                    Content::Bytes(bytes) => {
                        image.insert(lba, bytes.into());
                    }
                }
            }
        }
        Payload::Zeroes => {
            zero_range(
                image,
                range.start,
                range.end - range.start,
                &write.overrides,
            );
            for (&lba, exception) in write.overrides.range(range) {
                if let Override::Block(block) = exception {
                    image.insert(lba, block.clone());
                }
            }
        }
    }
}

/// The whole simulated medium.
#[derive(Debug)]
pub(super) struct Media {
    lba_bytes: usize,
    durable: Image,
    volatile: Image,
    uncovered: Vec<Uncovered>,
    /// Sequence number of the next non-FUA write to execute.
    writes_executed: u64,
    /// LBAs whose reads fail until rewritten.
    latent: BTreeSet<u64>,
}

impl Media {
    /// An all-zero medium.
    pub fn new(lba_bytes: usize) -> Media {
        Media::from_image(lba_bytes, Image::new(), BTreeSet::new())
    }

    /// A medium whose durable and volatile contents are both `image`, with
    /// nothing uncovered: the state right after a crash.
    pub fn from_image(lba_bytes: usize, image: Image, latent: BTreeSet<u64>) -> Media {
        assert!(image.values().all(|block| block.len() == lba_bytes));
        Media {
            lba_bytes,
            volatile: image.clone(),
            durable: image,
            uncovered: Vec::new(),
            writes_executed: 0,
            latent,
        }
    }

    pub fn durable(&self) -> &Image {
        &self.durable
    }

    pub fn uncovered(&self) -> &[Uncovered] {
        &self.uncovered
    }

    pub fn latent(&self) -> &BTreeSet<u64> {
        &self.latent
    }

    /// The sequence number the next non-FUA write will get. A flush submitted
    /// now covers exactly the writes numbered below it.
    pub fn writes_executed(&self) -> u64 {
        self.writes_executed
    }

    /// Copies `out.len() / lba_bytes` blocks of the volatile view from `lba`.
    pub fn read(&self, lba: u64, out: &mut [u8]) {
        for (i, chunk) in out.chunks_mut(self.lba_bytes).enumerate() {
            match self.volatile.get(&(lba + i as u64)) {
                Some(block) => chunk.copy_from_slice(block),
                None => chunk.fill(0),
            }
        }
    }

    pub fn volatile_block(&self, lba: u64) -> Vec<u8> {
        block_or_zeroes(&self.volatile, lba, self.lba_bytes)
    }

    pub fn durable_block(&self, lba: u64) -> Vec<u8> {
        block_or_zeroes(&self.durable, lba, self.lba_bytes)
    }

    /// Writes `data` (whole blocks) at `lba`. A FUA write is durable at once
    /// and supersedes the uncovered writes before it on the same LBAs; any
    /// other write joins the uncovered list.
    pub fn write(&mut self, lba: u64, data: &[u8], fua: bool) {
        assert!(!data.is_empty() && data.len().is_multiple_of(self.lba_bytes));
        let blocks = (data.len() / self.lba_bytes) as u64;
        for (i, block) in data.chunks(self.lba_bytes).enumerate() {
            self.volatile.insert(lba + i as u64, block.into());
        }
        self.clear_latent(lba, blocks);
        if fua {
            for (i, block) in data.chunks(self.lba_bytes).enumerate() {
                self.durable.insert(lba + i as u64, block.into());
            }
            for write in &mut self.uncovered {
                for superseded in write.overlap(lba, blocks) {
                    write.overrides.insert(superseded, Override::Superseded);
                }
            }
        } else {
            self.push_uncovered(lba, blocks, Payload::Data(data.into()));
        }
    }

    /// Write-zeroes or deallocate: uncovered until flushed, like a write.
    pub fn write_zeroes(&mut self, lba: u64, blocks: u64) {
        assert!(blocks > 0);
        zero_range(&mut self.volatile, lba, blocks, &BTreeMap::new());
        self.clear_latent(lba, blocks);
        self.push_uncovered(lba, blocks, Payload::Zeroes);
    }

    fn push_uncovered(&mut self, lba: u64, blocks: u64, payload: Payload) {
        self.uncovered.push(Uncovered {
            seq: self.writes_executed,
            lba,
            blocks,
            payload,
            overrides: BTreeMap::new(),
        });
        self.writes_executed += 1;
    }

    /// Makes durable, in execution order, every uncovered write numbered
    /// below `covers_before`; the rest stay uncovered. Returns how many were
    /// covered.
    pub fn flush(&mut self, covers_before: u64) -> usize {
        let Media {
            lba_bytes,
            durable,
            uncovered,
            ..
        } = self;
        let before = uncovered.len();
        uncovered.retain(|write| {
            if write.seq < covers_before {
                apply(durable, write, *lba_bytes);
                false
            } else {
                true
            }
        });
        before - uncovered.len()
    }

    /// A flush that should have covered the writes numbered below
    /// `covers_before` failed. The device may have written any of them,
    /// whole or torn, before it failed, and lost the rest: `settle` decides
    /// each into the durable image (the crash model's draw), and they leave
    /// the uncovered list, so no later flush can make them durable. Reads see
    /// the outcome at once: the volatile view of their LBAs is rebuilt from
    /// the durable image and the writes still uncovered. Returns what
    /// `settle` returned.
    pub fn fail_flush<T>(
        &mut self,
        covers_before: u64,
        settle: impl FnOnce(&mut Image, &[Uncovered]) -> T,
    ) -> T {
        let split = self.uncovered.partition_point(|w| w.seq < covers_before);
        let settled: Vec<Uncovered> = self.uncovered.drain(..split).collect();
        let outcome = settle(&mut self.durable, &settled);
        let mut ranges: Vec<(u64, u64)> = settled.iter().map(|w| (w.lba, w.end())).collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        for (start, end) in merged {
            self.rebuild_volatile(start..end);
        }
        outcome
    }

    /// Recomputes the volatile view of `range` from the durable image and
    /// the uncovered writes, in execution order (the invariant).
    fn rebuild_volatile(&mut self, range: std::ops::Range<u64>) {
        let stale: Vec<u64> = self
            .volatile
            .range(range.clone())
            .map(|(&l, _)| l)
            .collect();
        for lba in stale {
            self.volatile.remove(&lba);
        }
        for (&lba, block) in self.durable.range(range.clone()) {
            self.volatile.insert(lba, block.clone());
        }
        for write in &self.uncovered {
            apply_within(&mut self.volatile, write, self.lba_bytes, range.clone());
        }
    }

    pub fn first_latent(&self, lba: u64, blocks: u64) -> Option<u64> {
        self.latent.range(lba..lba + blocks).next().copied()
    }

    pub fn add_latent(&mut self, lba: u64) {
        self.latent.insert(lba);
    }

    fn clear_latent(&mut self, lba: u64, blocks: u64) {
        let rewritten: Vec<u64> = self.latent.range(lba..lba + blocks).copied().collect();
        for l in rewritten {
            self.latent.remove(&l);
        }
    }

    /// Flips one bit of `lba` in every copy: durable, volatile, and each
    /// pending write's content for that LBA, so whatever ends up there after
    /// a flush or a crash carries the flip.
    pub fn flip_bit(&mut self, lba: u64, bit: u32) {
        let lba_bytes = self.lba_bytes;
        assert!((bit as usize) < lba_bytes * 8, "bit {bit} past the block");
        let (byte, mask) = (bit as usize / 8, 1u8 << (bit % 8));
        for image in [&mut self.durable, &mut self.volatile] {
            image
                .entry(lba)
                .or_insert_with(|| vec![0; lba_bytes].into())[byte] ^= mask;
        }
        for write in &mut self.uncovered {
            if !(write.lba..write.end()).contains(&lba) {
                continue;
            }
            let mut block: Box<[u8]> = match write.content(lba, lba_bytes) {
                Content::Superseded => continue,
                Content::Zeroes => vec![0; lba_bytes].into(),
                Content::Bytes(bytes) => bytes.into(),
            };
            block[byte] ^= mask;
            write.overrides.insert(lba, Override::Block(block));
        }
    }
}

fn block_or_zeroes(image: &Image, lba: u64, lba_bytes: usize) -> Vec<u8> {
    image
        .get(&lba)
        .map_or_else(|| vec![0; lba_bytes], |block| block.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LBA: usize = 16;

    fn block(byte: u8, blocks: usize) -> Vec<u8> {
        vec![byte; LBA * blocks]
    }

    fn volatile_equals_durable(media: &Media) -> bool {
        (0..16).all(|lba| media.volatile_block(lba) == media.durable_block(lba))
    }

    #[test]
    fn writes_are_volatile_until_flushed() {
        let mut media = Media::new(LBA);
        media.write(2, &block(1, 2), false);
        assert_eq!(media.volatile_block(3), block(1, 1));
        assert_eq!(media.durable_block(3), block(0, 1));
        assert_eq!(media.flush(media.writes_executed()), 1);
        assert_eq!(media.durable_block(3), block(1, 1));
        assert!(media.uncovered().is_empty());
        assert!(volatile_equals_durable(&media));
    }

    #[test]
    fn a_flush_covers_only_writes_executed_before_its_submission() {
        let mut media = Media::new(LBA);
        media.write(0, &block(1, 1), false);
        let covers_before = media.writes_executed();
        media.write(1, &block(2, 1), false);
        assert_eq!(media.flush(covers_before), 1);
        assert_eq!(media.durable_block(0), block(1, 1));
        assert_eq!(media.durable_block(1), block(0, 1));
        assert_eq!(media.uncovered().len(), 1);
    }

    #[test]
    fn fua_supersedes_earlier_uncovered_writes_on_shared_lbas() {
        let mut media = Media::new(LBA);
        media.write(0, &block(1, 3), false);
        media.write(1, &block(2, 1), true);
        assert_eq!(media.durable_block(1), block(2, 1));
        assert!(matches!(
            media.uncovered()[0].content(1, LBA),
            Content::Superseded
        ));
        assert!(matches!(
            media.uncovered()[0].content(2, LBA),
            Content::Bytes(_)
        ));
        media.flush(media.writes_executed());
        assert_eq!(media.durable_block(0), block(1, 1));
        assert_eq!(
            media.durable_block(1),
            block(2, 1),
            "not undone by the flush"
        );
        assert!(volatile_equals_durable(&media));
    }

    #[test]
    fn zeroes_and_latent_errors() {
        let mut media = Media::new(LBA);
        media.write(0, &block(7, 4), true);
        media.add_latent(2);
        assert_eq!(media.first_latent(0, 4), Some(2));
        media.write_zeroes(1, 2);
        assert_eq!(media.first_latent(0, 4), None, "rewritten");
        assert_eq!(media.volatile_block(1), block(0, 1));
        assert_eq!(media.durable_block(1), block(7, 1));
        media.flush(media.writes_executed());
        assert_eq!(media.durable_block(2), block(0, 1));
        assert_eq!(media.durable_block(3), block(7, 1));
    }

    #[test]
    fn a_flip_reaches_every_copy() {
        let mut media = Media::new(LBA);
        media.write(0, &block(1, 2), false);
        media.write_zeroes(1, 4);
        media.flip_bit(1, 9);
        let mut expected = block(0, 1);
        expected[1] ^= 2;
        assert_eq!(media.volatile_block(1), expected);
        media.flush(media.writes_executed());
        assert_eq!(media.durable_block(1), expected);
        assert!(volatile_equals_durable(&media));
    }
}
