//! The in-memory index: an adaptive radix tree (ART, Leis et al., ICDE 2013)
//! from key to [`ValuePointer`], one tree per shard.
//!
//! The tree is built for memory per key. Every node and leaf is a record in
//! one chunked byte arena owned by the tree (`arena.rs`), and records refer to
//! each other by 32-bit references instead of 64-bit pointers. Leaves hold only
//! the part of the key below their parent and the 16-byte pointer. Prefixes are
//! stored in full in their node (pessimistic path compression), and a key that
//! is a prefix of another key lives in its node's value slot.
//! `docs/index.md` describes the layout byte by byte and the measured bytes
//! per key.
//!
//! Code map:
//! - `arena.rs`: the chunked byte arena, its references and free lists;
//! - `leaf.rs` and `node.rs`: the record layouts, and the operations on one
//!   record (find, add and remove a child, walk children in order);
//! - `tree.rs`: [`Art`] and the point operations (get, insert, remove,
//!   compare-and-swap), including growth, shrinking, prefix splits and merges;
//! - `iter.rs`: the ordered walks (`for_each`, `range_from`);
//! - `deadlines.rs`: the deadlines of a shard's expiring keys, beside the
//!   tree (nothing for a key that does not expire);
//! - `compact.rs`: copying the tree into a fresh arena to give back the
//!   space that removals left behind.

mod arena;
mod compact;
mod deadlines;
mod iter;
mod leaf;
mod node;
mod tree;

#[cfg(test)]
mod tests;

pub use tree::Art;

/// The longest key the index accepts, in bytes. Keys are 1 to
/// `KEY_BYTES_MAX` bytes long.
pub const KEY_BYTES_MAX: usize = 1024;

/// Where a value lives on the namespace. Fixed 16 bytes, stored in every leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValuePointer {
    /// The VLog segment holding the record.
    pub segment: u32,
    /// Byte offset of the record within the segment.
    pub offset: u32,
    /// Length of the record in bytes.
    pub length: u32,
    /// Low 32 bits of the sequence number of the write that produced it.
    pub sequence_low: u32,
}

impl ValuePointer {
    /// Encoded size in a leaf record.
    pub(crate) const BYTES: usize = 16;

    /// The pointer to a put record found at `offset` of `segment`.
    pub(crate) fn to_record(
        segment: u32,
        offset: usize,
        record: &crate::format::record::Record<'_>,
    ) -> ValuePointer {
        ValuePointer {
            segment,
            offset: offset as u32,
            length: record.encoded_bytes() as u32,
            sequence_low: record.seq as u32,
        }
    }

    pub(crate) fn encode(self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.segment.to_le_bytes());
        out[4..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..12].copy_from_slice(&self.length.to_le_bytes());
        out[12..16].copy_from_slice(&self.sequence_low.to_le_bytes());
    }

    pub(crate) fn decode(bytes: &[u8]) -> Self {
        Self {
            segment: arena::read_u32(bytes, 0),
            offset: arena::read_u32(bytes, 4),
            length: arena::read_u32(bytes, 8),
            sequence_low: arena::read_u32(bytes, 12),
        }
    }
}
