//! The byte arena that holds every record (node or leaf) of one tree.
//!
//! Why an arena: a tree of boxed nodes pays 8 bytes per child pointer, plus
//! the allocator's header and rounding on every leaf (glibc rounds a 30-byte
//! request up to a 48-byte chunk). Here a child reference is 4 bytes, records
//! are packed back to back in 2-byte units, and the allocator sees only a
//! handful of large chunks.
//!
//! - A [`Ref`] is a chunk index (high 15 bits) and an offset in 2-byte units
//!   within the chunk (low 17 bits). [`NULL`] is never a valid record.
//! - Chunks start small (so that a shard with a few keys costs little) and
//!   double up to [`CHUNK_BYTES_MAX`]; they are never reallocated, so growing
//!   the tree never copies it, and the slack is at most one chunk.
//! - Freed records go onto a free list per size in units (exact fit), linked
//!   through their first 4 bytes. Memory is kept for reuse, never returned.
//! - Records are read and written as bytes with explicit little-endian
//!   encoding; nothing depends on alignment.

/// Address of a record: chunk index in the high bits, offset in units within
/// the chunk in the low bits.
pub(super) type Ref = u32;

/// The absent record. Its chunk index is one past the last chunk allowed.
pub(super) const NULL: Ref = u32::MAX;

/// Allocation granule, in bytes.
pub(super) const UNIT_BYTES: usize = 2;
const OFFSET_BITS: u32 = 17;
const OFFSET_MASK: u32 = (1 << OFFSET_BITS) - 1;
/// Chunk sizes are a power of two minus this, so that a chunk plus the
/// system allocator's header fits a power-of-two block or whole pages.
const ALLOCATOR_HEADER_BYTES: usize = 64;
/// The largest chunk, in bytes (256 KiB less the allocator's header).
pub(super) const CHUNK_BYTES_MAX: usize = (1 << OFFSET_BITS) * UNIT_BYTES - ALLOCATOR_HEADER_BYTES;
/// The first chunk, in bytes.
const CHUNK_BYTES_MIN: usize = 512 - ALLOCATOR_HEADER_BYTES;
/// Chunks one tree may hold; chunk index `CHUNKS_MAX` is [`NULL`]'s.
const CHUNKS_MAX: usize = (1 << (32 - OFFSET_BITS)) - 1;
/// A tree's arena holds at most this many bytes (just under 8 GiB).
pub(super) const ARENA_BYTES_MAX: usize = CHUNKS_MAX * CHUNK_BYTES_MAX;
/// A free record stores a 4-byte link, so it is at least this many units.
const FREE_UNITS_MIN: usize = 4_usize.div_ceil(UNIT_BYTES);

const _: () = assert!(NULL >> OFFSET_BITS == CHUNKS_MAX as u32);
const _: () = assert!(
    CHUNK_BYTES_MIN.is_multiple_of(UNIT_BYTES)
        && ALLOCATOR_HEADER_BYTES.is_multiple_of(UNIT_BYTES)
        && CHUNK_BYTES_MIN <= CHUNK_BYTES_MAX
);

/// Reads a little-endian `u32` at byte `at`.
#[inline]
pub(super) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Writes a little-endian `u32` at byte `at`.
#[inline]
pub(super) fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Units a record of `bytes` occupies.
#[inline]
pub(super) fn allocated_units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT_BYTES).max(FREE_UNITS_MIN)
}

#[inline]
fn locate(record: Ref) -> (usize, usize) {
    (
        (record >> OFFSET_BITS) as usize,
        (record & OFFSET_MASK) as usize * UNIT_BYTES,
    )
}

#[inline]
fn make_ref(chunk: usize, offset_units: usize) -> Ref {
    debug_assert!(chunk < CHUNKS_MAX && offset_units <= OFFSET_MASK as usize);
    ((chunk as u32) << OFFSET_BITS) | offset_units as u32
}

/// A chunked byte arena with exact-fit free lists.
#[derive(Clone, Default)]
pub(super) struct Arena {
    chunks: Vec<Box<[u8]>>,
    /// Units handed out from the last chunk.
    tail_units: usize,
    /// `free_heads[n]` is the first free record of `n` units, or [`NULL`].
    free_heads: Vec<Ref>,
    /// Bytes on the free lists.
    free_bytes: usize,
    /// Bytes lost at the end of retired chunks, too short to hold a link.
    lost_bytes: usize,
}

impl Arena {
    pub(super) const fn new() -> Self {
        Self {
            chunks: Vec::new(),
            tail_units: 0,
            free_heads: Vec::new(),
            free_bytes: 0,
            lost_bytes: 0,
        }
    }

    /// The bytes from the start of `record` to the end of its chunk.
    #[inline]
    pub(super) fn record(&self, record: Ref) -> &[u8] {
        let (chunk, offset) = locate(record);
        &self.chunks[chunk][offset..]
    }

    /// The bytes from the start of `record` to the end of its chunk.
    #[inline]
    pub(super) fn record_mut(&mut self, record: Ref) -> &mut [u8] {
        let (chunk, offset) = locate(record);
        &mut self.chunks[chunk][offset..]
    }

    /// Allocates a record of `bytes`. Its contents are unspecified.
    ///
    /// # Panics
    ///
    /// When the arena would exceed [`ARENA_BYTES_MAX`].
    pub(super) fn alloc(&mut self, bytes: usize) -> Ref {
        let units = allocated_units(bytes);
        if let Some(&head) = self.free_heads.get(units) {
            if head != NULL {
                self.free_heads[units] = read_u32(self.record(head), 0);
                self.free_bytes -= units * UNIT_BYTES;
                return head;
            }
        }
        let last_units = self.chunks.last().map_or(0, |c| c.len() / UNIT_BYTES);
        if self.chunks.is_empty() || self.tail_units + units > last_units {
            self.push_chunk(units);
        }
        let record = make_ref(self.chunks.len() - 1, self.tail_units);
        self.tail_units += units;
        record
    }

    /// Returns a record of `bytes` (the size it was allocated with) to the
    /// free lists.
    pub(super) fn free(&mut self, record: Ref, bytes: usize) {
        self.push_free(record, allocated_units(bytes));
    }

    /// Copies `len` bytes from `source` + `source_at` to `target` +
    /// `target_at`. The two ranges may be in the same chunk, but must not
    /// overlap.
    pub(super) fn copy(
        &mut self,
        source: Ref,
        source_at: usize,
        target: Ref,
        target_at: usize,
        len: usize,
    ) {
        let (source_chunk, source_offset) = locate(source);
        let (target_chunk, target_offset) = locate(target);
        let from = source_offset + source_at;
        let to = target_offset + target_at;
        if source_chunk == target_chunk {
            debug_assert!(from + len <= to || to + len <= from);
            self.chunks[source_chunk].copy_within(from..from + len, to);
        } else if source_chunk < target_chunk {
            let (low, high) = self.chunks.split_at_mut(target_chunk);
            high[0][to..to + len].copy_from_slice(&low[source_chunk][from..from + len]);
        } else {
            let (low, high) = self.chunks.split_at_mut(source_chunk);
            low[target_chunk][to..to + len].copy_from_slice(&high[0][from..from + len]);
        }
    }

    /// Heap bytes held: every chunk, and the two vectors that index them.
    pub(super) fn memory_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum::<usize>()
            + self.chunks.capacity() * size_of::<Box<[u8]>>()
            + self.free_heads.capacity() * size_of::<Ref>()
    }

    fn push_free(&mut self, record: Ref, units: usize) {
        debug_assert!(units >= FREE_UNITS_MIN);
        if self.free_heads.len() <= units {
            self.free_heads.resize(units + 1, NULL);
        }
        let head = self.free_heads[units];
        write_u32(self.record_mut(record), 0, head);
        self.free_heads[units] = record;
        self.free_bytes += units * UNIT_BYTES;
    }

    fn push_chunk(&mut self, units_needed: usize) {
        let bytes_needed = units_needed * UNIT_BYTES;
        assert!(
            bytes_needed <= CHUNK_BYTES_MAX,
            "index record of {bytes_needed} bytes exceeds a chunk"
        );
        assert!(
            self.chunks.len() < CHUNKS_MAX,
            "index arena full: one tree holds at most {ARENA_BYTES_MAX} bytes"
        );
        // Retire the unused end of the current chunk onto the free lists.
        if let Some(last) = self.chunks.last() {
            let spare_units = last.len() / UNIT_BYTES - self.tail_units;
            if spare_units >= FREE_UNITS_MIN {
                let spare = make_ref(self.chunks.len() - 1, self.tail_units);
                self.push_free(spare, spare_units);
            } else {
                self.lost_bytes += spare_units * UNIT_BYTES;
            }
        }
        // Each chunk doubles the last (counting the header), up to the cap.
        let bytes = self
            .chunks
            .last()
            .map_or(CHUNK_BYTES_MIN, |c| {
                ((c.len() + ALLOCATOR_HEADER_BYTES) * 2 - ALLOCATOR_HEADER_BYTES)
                    .min(CHUNK_BYTES_MAX)
            })
            .max(bytes_needed);
        self.chunks.push(vec![0; bytes].into_boxed_slice());
        self.tail_units = 0;
    }
}

/// Test-only views for the invariant checker.
#[cfg(test)]
impl Arena {
    /// Bytes in chunks that were never handed out, on free lists, or lost:
    /// everything except live records.
    pub(super) fn idle_bytes(&self) -> usize {
        let tail = self
            .chunks
            .last()
            .map_or(0, |c| c.len() - self.tail_units * UNIT_BYTES);
        tail + self.free_bytes + self.lost_bytes
    }

    /// Total bytes of all chunks.
    pub(super) fn chunk_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    /// Walks every free list and returns the bytes on them.
    pub(super) fn walk_free_lists(&self) -> usize {
        let mut bytes = 0;
        for (units, &head) in self.free_heads.iter().enumerate() {
            let mut record = head;
            while record != NULL {
                bytes += units * UNIT_BYTES;
                record = read_u32(self.record(record), 0);
            }
        }
        assert_eq!(bytes, self.free_bytes, "free list bytes");
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_reused_exactly_and_chunks_grow_to_the_cap() {
        let mut arena = Arena::new();
        let a = arena.alloc(30);
        let b = arena.alloc(30);
        assert_ne!(a, b);
        arena.record_mut(b)[..30].fill(7);
        arena.free(a, 30);
        // Same size: the freed record comes back. Other size: fresh space.
        assert_eq!(arena.alloc(29), a);
        let c = arena.alloc(17);
        assert_ne!(c, a);
        assert!(arena.record(b)[..30].iter().all(|&x| x == 7));
        // Fill well past one maximum chunk; chunks stop growing at the cap.
        for _ in 0..40_000 {
            arena.alloc(30);
        }
        assert!(arena.chunks.iter().all(|c| c.len() <= CHUNK_BYTES_MAX));
        assert!(arena.chunks.iter().any(|c| c.len() == CHUNK_BYTES_MAX));
        // Everything not live is accounted for, and the slack is at most the
        // last chunk plus less than one record per retired chunk.
        let live = 2 * 30 + 18 + 40_000 * 30;
        assert_eq!(arena.chunk_bytes() - arena.idle_bytes(), live);
        assert!(arena.idle_bytes() <= CHUNK_BYTES_MAX + arena.chunks.len() * 30);
    }

    #[test]
    fn copy_works_within_and_across_chunks() {
        let mut arena = Arena::new();
        let a = arena.alloc(100);
        for (i, byte) in arena.record_mut(a)[..100].iter_mut().enumerate() {
            *byte = i as u8;
        }
        let b = arena.alloc(100);
        arena.copy(a, 10, b, 0, 50);
        assert_eq!(&arena.record(b)[..50], &(10..60).collect::<Vec<u8>>()[..]);
        // Force a second chunk.
        let c = arena.alloc(CHUNK_BYTES_MIN);
        assert_ne!(locate(c).0, locate(a).0);
        arena.copy(a, 0, c, 5, 100);
        assert_eq!(&arena.record(c)[5..105], &(0..100).collect::<Vec<u8>>()[..]);
        arena.copy(c, 5, a, 0, 3);
        assert_eq!(&arena.record(a)[..3], &[0, 1, 2]);
    }

    #[test]
    fn memory_bytes_counts_every_allocation() {
        let mut arena = Arena::new();
        assert_eq!(arena.memory_bytes(), 0);
        let a = arena.alloc(40);
        arena.free(a, 40);
        assert_eq!(
            arena.memory_bytes(),
            CHUNK_BYTES_MIN
                + arena.chunks.capacity() * size_of::<Box<[u8]>>()
                + arena.free_heads.capacity() * 4
        );
    }
}
