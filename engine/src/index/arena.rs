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
//! - Each new chunk is at most a sixteenth of the arena's size, between 448 bytes
//!   and [`CHUNK_BYTES_MAX`] (256 KiB): a shard with a few keys costs little,
//!   space not yet handed out stays under a sixteenth of the arena (and under
//!   one maximum chunk for big trees), and growing the tree never copies it,
//!   because chunks are never reallocated.
//! - Freed records go onto a free list per size in units, linked through
//!   their first 4 bytes. An allocation takes an exact fit if there is one,
//!   else splits the smallest free record that leaves a usable remainder,
//!   else carves from the last chunk. Splitting matters: a node that grows
//!   through its sizes leaves one free record of each smaller size behind,
//!   and without splitting those would stay dead once no node of that size
//!   is needed (measured: 5.6 bytes per key at 10M keys). Memory is kept for
//!   reuse, never returned to the system allocator.
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
/// The smallest and largest power of two a chunk is sized from.
const CHUNK_BLOCK_BYTES_MIN: usize = 512;
const CHUNK_BLOCK_BYTES_MAX: usize = (1 << OFFSET_BITS) * UNIT_BYTES;
/// The largest chunk, in bytes (256 KiB less the allocator's header).
pub(super) const CHUNK_BYTES_MAX: usize = CHUNK_BLOCK_BYTES_MAX - ALLOCATOR_HEADER_BYTES;
/// The smallest chunk, in bytes.
const CHUNK_BYTES_MIN: usize = CHUNK_BLOCK_BYTES_MIN - ALLOCATOR_HEADER_BYTES;
/// A new chunk is at most the arena's size divided by this (above the
/// minimum), which bounds the space not yet handed out.
const CHUNK_GROWTH_DIVISOR: usize = 16;
/// Chunks one tree may hold; chunk index `CHUNKS_MAX` is [`NULL`]'s.
const CHUNKS_MAX: usize = (1 << (32 - OFFSET_BITS)) - 1;
/// A tree's arena holds at most this many bytes (just under 8 GiB).
pub(super) const ARENA_BYTES_MAX: usize = CHUNKS_MAX * CHUNK_BYTES_MAX;
/// A free record stores a 4-byte link, so it is at least this many units.
const FREE_UNITS_MIN: usize = 4_usize.div_ceil(UNIT_BYTES);
/// The smallest record the tree allocates (a leaf with an empty suffix, 17
/// bytes). A split never leaves a remainder smaller than this.
pub(super) const RECORD_UNITS_MIN: usize = 9;

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

/// The free records of one size, linked through their first 4 bytes.
#[derive(Clone, Copy, Debug)]
struct FreeList {
    units: u32,
    head: Ref,
}

/// A chunked byte arena with free lists.
#[derive(Clone, Default)]
pub(super) struct Arena {
    chunks: Vec<Box<[u8]>>,
    /// Sum of the chunks' lengths.
    chunk_bytes: usize,
    /// Units handed out from the last chunk.
    tail_units: usize,
    /// The non-empty free lists, sorted by size. Few sizes occur, so a
    /// sorted vector is small and quick to search.
    free_lists: Vec<FreeList>,
    /// Bytes on the free lists.
    free_bytes: usize,
    /// Bytes lost at the end of retired chunks, too short to hold a link.
    lost_bytes: usize,
}

impl Arena {
    pub(super) const fn new() -> Self {
        Self {
            chunks: Vec::new(),
            chunk_bytes: 0,
            tail_units: 0,
            free_lists: Vec::new(),
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
        if let Some(record) = self.take_free(units) {
            return record;
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

    /// Bytes in chunks that hold no live record: never handed out, on the
    /// free lists, or lost at the end of a chunk.
    pub(super) fn idle_bytes(&self) -> usize {
        let tail = self
            .chunks
            .last()
            .map_or(0, |c| c.len() - self.tail_units * UNIT_BYTES);
        tail + self.free_bytes + self.lost_bytes
    }

    /// Heap bytes held: every chunk, and the two vectors that index them.
    pub(super) fn memory_bytes(&self) -> usize {
        self.chunk_bytes
            + self.chunks.capacity() * size_of::<Box<[u8]>>()
            + self.free_lists.capacity() * size_of::<FreeList>()
    }

    /// A free record of exactly `units`, or the front of the smallest free
    /// record that leaves at least [`RECORD_UNITS_MIN`] behind (the rest goes
    /// back on the free lists).
    fn take_free(&mut self, units: usize) -> Option<Ref> {
        let exact = self
            .free_lists
            .partition_point(|l| (l.units as usize) < units);
        let index = match self.free_lists.get(exact) {
            Some(list) if list.units as usize == units => exact,
            _ => {
                let fit = self
                    .free_lists
                    .partition_point(|l| (l.units as usize) < units + RECORD_UNITS_MIN);
                if fit == self.free_lists.len() {
                    return None;
                }
                fit
            }
        };
        let list = self.free_lists[index];
        let next = read_u32(self.record(list.head), 0);
        if next == NULL {
            self.free_lists.remove(index);
        } else {
            self.free_lists[index].head = next;
        }
        let list_units = list.units as usize;
        self.free_bytes -= list_units * UNIT_BYTES;
        if list_units > units {
            // The remainder is in the same chunk, `units` further on.
            self.push_free(list.head + units as u32, list_units - units);
        }
        Some(list.head)
    }

    fn push_free(&mut self, record: Ref, units: usize) {
        debug_assert!(units >= FREE_UNITS_MIN);
        let index = self
            .free_lists
            .partition_point(|l| (l.units as usize) < units);
        let link = match self.free_lists.get_mut(index) {
            Some(list) if list.units as usize == units => {
                let link = list.head;
                list.head = record;
                link
            }
            _ => {
                self.free_lists.insert(
                    index,
                    FreeList {
                        units: units as u32,
                        head: record,
                    },
                );
                NULL
            }
        };
        write_u32(self.record_mut(record), 0, link);
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
        let target = self.chunk_bytes / CHUNK_GROWTH_DIVISOR;
        let block = if target <= CHUNK_BLOCK_BYTES_MIN {
            CHUNK_BLOCK_BYTES_MIN
        } else {
            (1 << target.ilog2()).min(CHUNK_BLOCK_BYTES_MAX)
        };
        let bytes = (block - ALLOCATOR_HEADER_BYTES).max(bytes_needed);
        self.chunks.push(vec![0; bytes].into_boxed_slice());
        self.chunk_bytes += bytes;
        self.tail_units = 0;
    }
}

/// Test-only views for the invariant checker.
#[cfg(test)]
impl Arena {
    /// Total bytes of all chunks.
    pub(super) fn chunk_bytes(&self) -> usize {
        let bytes = self.chunks.iter().map(|c| c.len()).sum();
        assert_eq!(bytes, self.chunk_bytes);
        bytes
    }

    /// Walks every free list and returns the bytes on them.
    pub(super) fn walk_free_lists(&self) -> usize {
        let mut bytes = 0;
        assert!(self.free_lists.windows(2).all(|w| w[0].units < w[1].units));
        for list in &self.free_lists {
            let mut record = list.head;
            assert_ne!(record, NULL, "empty free list kept");
            while record != NULL {
                bytes += list.units as usize * UNIT_BYTES;
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
        for _ in 0..200_000 {
            arena.alloc(30);
        }
        assert!(arena.chunks.iter().all(|c| c.len() <= CHUNK_BYTES_MAX));
        assert!(arena.chunks.iter().any(|c| c.len() == CHUNK_BYTES_MAX));
        // Everything not live is accounted for, and the slack is at most the
        // last chunk plus less than one record per retired chunk.
        let live = 2 * 30 + 18 + 200_000 * 30;
        assert_eq!(arena.chunk_bytes() - arena.idle_bytes(), live);
        let last = arena.chunks.last().map_or(0, |c| c.len());
        assert!(last <= arena.chunk_bytes() / CHUNK_GROWTH_DIVISOR);
        assert!(arena.idle_bytes() <= last + arena.chunks.len() * 30);
    }

    #[test]
    fn larger_free_records_are_split() {
        let mut arena = Arena::new();
        let big = arena.alloc(232);
        let _guard = arena.alloc(30);
        arena.free(big, 232);
        // No exact fit: the front of the 116-unit record is used, and the
        // rest stays free.
        let leaf = arena.alloc(30);
        assert_eq!(leaf, big);
        assert_eq!(arena.free_bytes, 232 - 30);
        let next = arena.alloc(30);
        assert_eq!(next, big + 15);
        // 86 units are left: too few to split 97 off with a usable
        // remainder, so that takes fresh space; 86 takes them exactly.
        let fresh = arena.alloc(2 * 97);
        assert_eq!(locate(fresh).0, 1);
        assert_eq!(arena.alloc(2 * 86), big + 30);
        assert!(arena.free_lists.iter().all(|l| l.units != 86));
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
                + arena.free_lists.capacity() * size_of::<FreeList>()
        );
    }
}
