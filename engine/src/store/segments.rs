//! The segment table: which segments are free, what each used one holds,
//! and how many of its bytes the index still points at.
//!
//! Shared by every worker. Allocation and GC decisions take the mutex;
//! live-byte accounting, which every committed write touches, is a relaxed
//! atomic per segment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

/// What the engine knows about one segment in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    /// The log stream (worker) that wrote it.
    pub stream: u16,
    /// Its generation: orders a stream's segments.
    pub generation: u64,
    /// No record in the segment has a sequence number below this. GC may
    /// drop a delete record only when every other segment is above it.
    pub min_seq: u64,
    /// The last sequence number written to it (its age, for GC).
    pub last_seq: u64,
    /// Whether its end is marked by a durable seal frame, so that recovery
    /// accepts a gap after it (the next segment of the stream collected).
    pub sealed: bool,
    /// GC found damage in it, or live data it cannot move: not a victim
    /// again until `retry_after_seq`.
    pub retry_after_seq: u64,
    /// GC gave up on it because live records of shards another worker owns
    /// remained (its own were relocated): a victim again as soon as its
    /// live bytes are zero, when freeing it needs no relocation at all.
    pub retry_when_empty: bool,
}

/// Why a write may take a segment: user writes stop short of the reserve
/// that GC (and deletes, which make garbage GC can then reclaim) need to
/// make progress on a full namespace. Ordered by how much free room each
/// leaves alone: GC least, user puts most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Purpose {
    /// A batch of GC records only.
    Gc,
    /// A batch of deletes (and GC records).
    Delete,
    /// A batch with user puts.
    Write,
}

/// Deletes stop short of at most this many free segments, whatever the
/// worker count: the reserve grows with the workers (GC needs a segment per
/// worker to relocate into), and a store filled under fewer workers then
/// reopened with more would otherwise refuse the deletes that make the
/// garbage GC needs. Two segments still let GC make progress, one worker at
/// a time.
pub(crate) const DELETE_FLOOR_MAX: usize = 2;

/// The free segments user puts leave alone on a store opened with
/// `workers` workers: per worker, one for its deletes and one for its GC's
/// relocations (each worker appends to a log stream of its own, so on a
/// full store each may need a fresh segment at once), and two for GC to
/// make progress with. Deletes may go down to `DELETE_FLOOR_MAX`, GC to
/// none.
///
/// It is per worker, and decided at each open: a full store reopened with
/// more workers starts below its new reserve, and user writes come back
/// only once deletes and GC have freed the growth too (two segments per
/// added worker). The reserve is not lowered to what is free instead: it
/// is what lets a store filled under `w` workers be reopened with up to
/// `2w` and still delete on every worker (`2w + 2` free segments, the
/// delete floor 2).
pub(crate) fn reserve(workers: usize) -> usize {
    2 * workers + 2
}

/// Free segments, used segments, and the generation counter.
pub(crate) struct SegmentAllocator {
    pub free: BTreeSet<u32>,
    pub used: BTreeMap<u32, SegmentInfo>,
    pub next_generation: u64,
    /// Free segments only GC and deletes may take.
    pub reserve: usize,
    /// Segments holding the body of the checkpoint in each root slot.
    pub checkpoint: [Vec<u32>; 2],
    /// Segments taken for a checkpoint whose root is not durable yet.
    pub checkpoint_pending: Vec<u32>,
}

impl SegmentAllocator {
    /// Takes the lowest free segment and a fresh generation for it, for
    /// `stream`, unless the free segments left are reserved for others.
    pub fn allocate(&mut self, stream: u16, min_seq: u64, purpose: Purpose) -> Option<(u32, u64)> {
        let floor = match purpose {
            Purpose::Write => self.reserve,
            Purpose::Delete => (self.reserve / 2).min(DELETE_FLOOR_MAX),
            Purpose::Gc => 0,
        };
        if self.free.len() <= floor {
            return None;
        }
        let segment = self.free.pop_first()?;
        let generation = self.next_generation;
        self.next_generation += 1;
        assert!(
            !self.is_checkpoint(segment),
            "segment {segment} is free and holds a checkpoint"
        );
        let previous = self.used.insert(
            segment,
            SegmentInfo {
                stream,
                generation,
                min_seq,
                last_seq: min_seq.saturating_sub(1),
                sealed: false,
                retry_after_seq: 0,
                retry_when_empty: false,
            },
        );
        assert!(previous.is_none(), "segment {segment} was free and in use");
        Some((segment, generation))
    }

    /// Whether more segments are free than the reserve: user puts may take
    /// one.
    pub fn above_reserve(&self) -> bool {
        self.free.len() > self.reserve
    }

    /// Returns a collected segment (its header durably erased) to the free
    /// list.
    pub fn release(&mut self, segment: u32) {
        assert!(
            self.used.remove(&segment).is_some(),
            "released segment {segment}, which is not in use"
        );
        assert!(
            self.free.insert(segment),
            "released segment {segment}, which is already free"
        );
    }

    /// Whether `segment` holds a checkpoint body, durable or being written.
    fn is_checkpoint(&self, segment: u32) -> bool {
        self.checkpoint.iter().any(|c| c.contains(&segment))
            || self.checkpoint_pending.contains(&segment)
    }

    /// Takes `count` free segments for a checkpoint body, leaving the
    /// reserve alone (checkpoints are not needed to make room).
    pub fn allocate_checkpoint(&mut self, count: usize) -> Option<Vec<u32>> {
        if self.free.len() < count + self.reserve {
            return None;
        }
        let taken: Vec<u32> = (0..count).filter_map(|_| self.free.pop_first()).collect();
        self.checkpoint_pending.extend(&taken);
        Some(taken)
    }

    /// A checkpoint's root is durable in `slot`: its segments replace those
    /// of the checkpoint the slot held, which are freed.
    pub fn install_checkpoint(&mut self, slot: usize, segments: Vec<u32>) {
        assert!(
            segments.iter().all(|s| self.checkpoint_pending.contains(s)),
            "installed checkpoint segments {segments:?} that were not taken for it"
        );
        self.checkpoint_pending.retain(|s| !segments.contains(s));
        let old = std::mem::replace(&mut self.checkpoint[slot], segments);
        for segment in old {
            assert!(
                !self.used.contains_key(&segment) && !self.is_checkpoint(segment),
                "segment {segment} of a replaced checkpoint is still referenced"
            );
            assert!(self.free.insert(segment), "segment {segment} freed twice");
        }
    }

    /// A checkpoint failed before its root was written: its segments are
    /// free again.
    pub fn abandon_checkpoint(&mut self, segments: &[u32]) {
        self.checkpoint_pending.retain(|s| !segments.contains(s));
        self.free.extend(segments);
    }

    /// Segments held by checkpoints, durable or being written.
    pub fn checkpoint_segments(&self) -> usize {
        self.checkpoint[0].len() + self.checkpoint[1].len() + self.checkpoint_pending.len()
    }

    /// The lowest `min_seq` of every used segment but `except`.
    pub fn min_seq_except(&self, except: u32) -> u64 {
        self.used
            .iter()
            .filter(|(&s, _)| s != except)
            .map(|(_, info)| info.min_seq)
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// Bytes of records the index points at, per segment.
pub(crate) struct LiveBytes {
    bytes: Vec<AtomicU64>,
}

impl LiveBytes {
    pub fn new(segment_count: u32) -> LiveBytes {
        LiveBytes {
            bytes: (0..segment_count).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn add(&self, segment: u32, bytes: u32) {
        if let Some(b) = self.bytes.get(segment as usize) {
            b.fetch_add(u64::from(bytes), Ordering::Relaxed);
        }
    }

    /// Panics when the count would go below zero: the index and the live
    /// bytes disagree, and GC could free a referenced segment.
    pub fn sub(&self, segment: u32, bytes: u32) {
        if let Some(b) = self.bytes.get(segment as usize) {
            let before = b.fetch_sub(u64::from(bytes), Ordering::Relaxed);
            assert!(
                before >= u64::from(bytes),
                "live bytes of segment {segment} would go below zero ({before} - {bytes})"
            );
        }
    }

    pub fn get(&self, segment: u32) -> u64 {
        self.bytes
            .get(segment as usize)
            .map_or(0, |b| b.load(Ordering::Relaxed))
    }

    /// Every segment's live bytes, summed.
    pub fn total(&self) -> u64 {
        self.bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator(free: u32, reserve: usize) -> SegmentAllocator {
        SegmentAllocator {
            free: (1..=free).collect(),
            used: BTreeMap::new(),
            next_generation: 1,
            reserve,
            checkpoint: [Vec::new(), Vec::new()],
            checkpoint_pending: Vec::new(),
        }
    }

    #[test]
    fn user_writes_stop_at_the_reserve_and_gc_does_not() {
        let mut a = allocator(4, 2);
        assert!(a.allocate(0, 1, Purpose::Write).is_some());
        assert!(a.allocate(0, 2, Purpose::Write).is_some());
        assert_eq!(a.allocate(0, 3, Purpose::Write), None);
        assert!(a.allocate(0, 3, Purpose::Delete).is_some());
        assert_eq!(a.allocate(0, 4, Purpose::Delete), None);
        assert!(a.allocate(0, 4, Purpose::Gc).is_some());
        assert_eq!(a.allocate(0, 5, Purpose::Gc), None);
        a.release(2);
        assert_eq!(a.allocate(0, 6, Purpose::Gc), Some((2, 5)));
    }

    #[test]
    fn the_reserve_is_two_segments_per_worker_and_two_more() {
        assert_eq!(reserve(1), 4);
        assert_eq!(reserve(3), 8);
        assert!(Purpose::Gc < Purpose::Delete && Purpose::Delete < Purpose::Write);
        let mut a = allocator(3, 2);
        assert!(a.above_reserve());
        assert!(a.allocate(0, 1, Purpose::Write).is_some());
        assert!(!a.above_reserve(), "two free: the reserve, and no more");
        a.release(1);
        assert!(a.above_reserve());
    }

    #[test]
    fn deletes_stop_at_two_free_segments_whatever_the_reserve() {
        // Reserve of a store opened with 4 workers: 10.
        let mut a = allocator(4, 10);
        assert_eq!(
            a.allocate(0, 1, Purpose::Write),
            None,
            "user puts stop at the reserve"
        );
        assert!(a.allocate(0, 1, Purpose::Delete).is_some());
        assert!(a.allocate(0, 2, Purpose::Delete).is_some());
        assert_eq!(a.allocate(0, 3, Purpose::Delete), None, "two stay for GC");
        assert!(a.allocate(0, 3, Purpose::Gc).is_some());
    }

    #[test]
    fn checkpoints_take_free_segments_and_give_back_the_replaced_ones() {
        let mut a = allocator(8, 2);
        let first = a.allocate_checkpoint(3).unwrap();
        assert_eq!(a.free.len(), 5);
        a.install_checkpoint(1, first.clone());
        let second = a.allocate_checkpoint(3).unwrap();
        assert_eq!(a.allocate_checkpoint(1), None, "the reserve stays");
        a.install_checkpoint(0, second);
        let third = a.allocate_checkpoint(1);
        assert_eq!(third, None);
        let fourth = a.allocate_checkpoint(0).unwrap();
        a.install_checkpoint(1, fourth);
        assert!(
            first.iter().all(|s| a.free.contains(s)),
            "slot 1's old body is freed"
        );
        assert_eq!(a.checkpoint_segments(), 3);
        let fifth = a.allocate_checkpoint(2).unwrap();
        a.abandon_checkpoint(&fifth);
        assert_eq!(a.free.len(), 5);
    }

    #[test]
    fn min_seq_skips_the_victim() {
        let mut a = allocator(6, 0);
        let (s1, _) = a.allocate(0, 10, Purpose::Write).unwrap();
        let (s2, _) = a.allocate(1, 20, Purpose::Write).unwrap();
        assert_eq!(a.min_seq_except(s1), 20);
        assert_eq!(a.min_seq_except(s2), 10);
        a.release(s1);
        assert_eq!(a.min_seq_except(s2), u64::MAX);
    }
}
