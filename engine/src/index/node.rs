//! Inner node records: Node4, Node16, Node48 and Node256.
//!
//! Layout, little-endian, no alignment:
//!
//! ```text
//! header (8 bytes): [tag: u8] [count (bits 0..9) | prefix_len << 9: u24] [value: Ref u32]
//! body, by kind, for a capacity of c children:
//!   Node4, Node16: keys [u8; c]      children [Ref; c]  sorted by key        5c bytes
//!   Node48:        bitmap [u64; 4]   children [Ref; c]  packed in key order  32 + 4c bytes
//!   Node256:       children [Ref; 256], NULL when absent                      1024 bytes
//! prefix:           prefix_len bytes, the full compressed path (pessimistic)
//! ```
//!
//! The prefix comes after the body so that the body's offset is fixed: in a
//! Node256 a child's slot is at `8 + 4 * byte` whatever the prefix, and the
//! processor can load it alongside the header instead of after it (one
//! cache miss less per Node256 on a cold lookup).
//!
//! `value` is the leaf of the key that ends exactly at this node (after the
//! prefix), or NULL.
//!
//! Two departures from the paper, both for memory:
//! - Node48 has no 256-byte index into its slots: a 256-bit bitmap says which
//!   bytes are present, and a child's slot is the rank of its byte (a
//!   popcount). A full Node48 is 232 bytes, not 456, and its children stay in
//!   key order.
//! - Node4, Node16 and Node48 come in several capacities ([`SIZES`]): Node4
//!   holds 2 or 4 children, Node16 8 or 16, Node48 24, 32, 40 or 48. A node
//!   grows one size at a time (2, 4, 8, 16, 24, 32, 40, 48, 256) and shrinks
//!   back one size at a time. A new node starts at 2 (it is made for two
//!   entries), which matters because most nodes near the leaves of a large
//!   tree of random keys hold exactly two. The tag byte names the size: tag
//!   `0xF0 + index into SIZES`.

use super::arena::{read_u32, write_u32, Ref, NULL};

/// The smallest node tag; tags below are short leaves.
pub(super) const TAG_MIN: u8 = 0xF0;
/// The largest node tag.
pub(super) const TAG_MAX: u8 = TAG_MIN + SIZES.len() as u8 - 1;
pub(super) const HEADER_BYTES: usize = 8;
/// Byte offset of the value slot in a node record.
pub(super) const VALUE_AT: usize = 4;
const BITMAP_BYTES: usize = 32;
const COUNT_BITS: u32 = 9;
const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;
/// The longest prefix the header can describe.
pub(super) const PREFIX_BYTES_MAX: usize = (1 << (24 - COUNT_BITS)) - 1;

const _: () = assert!(PREFIX_BYTES_MAX >= super::KEY_BYTES_MAX);
const _: () = assert!(256 <= COUNT_MASK as usize);

/// The four node layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    N4,
    N16,
    N48,
    N256,
}

/// Every node size, smallest first: the layout, its capacity in children,
/// and `shrink_at`: a node of this size moves to the next smaller size once a
/// removal leaves it with this many children or fewer. `shrink_at` is below
/// the smaller size's capacity, so a node at a boundary does not move on
/// every insert and remove, and above the smaller size's own `shrink_at`.
const SIZES: [(Kind, usize, usize); 9] = [
    (Kind::N4, 2, 0),
    (Kind::N4, 4, 1),
    (Kind::N16, 8, 3),
    (Kind::N16, 16, 6),
    (Kind::N48, 24, 12),
    (Kind::N48, 32, 20),
    (Kind::N48, 40, 28),
    (Kind::N48, 48, 36),
    (Kind::N256, 256, 40),
];

const _: () = {
    let mut i = 1;
    while i < SIZES.len() {
        let (_, capacity, shrink_at) = SIZES[i];
        let (_, smaller_capacity, smaller_shrink_at) = SIZES[i - 1];
        assert!(smaller_capacity < capacity);
        assert!(shrink_at < smaller_capacity && shrink_at > smaller_shrink_at);
        i += 1;
    }
    assert!(SIZES[SIZES.len() - 1].1 == 256);
    assert!((TAG_MAX as usize) < 0xFF);
};

/// A node size: an index into [`SIZES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Size(u8);

impl Size {
    /// The size of a new node.
    pub(super) const SMALLEST: Size = Size(0);
    /// The size of a node that holds every byte.
    pub(super) const LARGEST: Size = Size(SIZES.len() as u8 - 1);

    #[inline]
    pub(super) const fn kind(self) -> Kind {
        SIZES[self.0 as usize].0
    }

    /// Children a node of this size can hold.
    #[inline]
    pub(super) const fn capacity(self) -> usize {
        SIZES[self.0 as usize].1
    }

    /// See [`SIZES`].
    #[inline]
    pub(super) const fn shrink_at(self) -> usize {
        SIZES[self.0 as usize].2
    }

    /// The next larger size (the largest stays).
    pub(super) const fn grown(self) -> Size {
        if self.0 == Self::LARGEST.0 {
            self
        } else {
            Size(self.0 + 1)
        }
    }

    /// The next smaller size (the smallest stays).
    pub(super) const fn shrunk(self) -> Size {
        Size(self.0.saturating_sub(1))
    }

    #[inline]
    const fn body_bytes(self) -> usize {
        match self.kind() {
            Kind::N4 | Kind::N16 => 5 * self.capacity(),
            Kind::N48 => BITMAP_BYTES + 4 * self.capacity(),
            Kind::N256 => 4 * 256,
        }
    }

    #[inline]
    const fn tag(self) -> u8 {
        TAG_MIN + self.0
    }
}

/// A node's decoded header.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub(super) size: Size,
    pub(super) count: usize,
    pub(super) prefix_len: usize,
    pub(super) value: Ref,
}

impl Header {
    #[inline]
    pub(super) fn kind(&self) -> Kind {
        self.size.kind()
    }

    #[inline]
    pub(super) fn capacity(&self) -> usize {
        self.size.capacity()
    }

    /// Byte offset of the body.
    #[inline]
    pub(super) fn body_at(&self) -> usize {
        HEADER_BYTES
    }

    /// Byte offset of the prefix.
    #[inline]
    pub(super) fn prefix_at(&self) -> usize {
        prefix_at(self.size)
    }

    /// Size of the whole record.
    #[inline]
    pub(super) fn record_bytes(&self) -> usize {
        record_bytes(self.size, self.prefix_len)
    }

    /// Entries: children plus the value, if any.
    #[inline]
    pub(super) fn entries(&self) -> usize {
        self.count + usize::from(self.value != NULL)
    }
}

/// Byte offset of the prefix in a node of `size`.
#[inline]
pub(super) const fn prefix_at(size: Size) -> usize {
    HEADER_BYTES + size.body_bytes()
}

/// Size of a node record.
#[inline]
pub(super) fn record_bytes(size: Size, prefix_len: usize) -> usize {
    HEADER_BYTES + prefix_len + size.body_bytes()
}

/// Decodes the header of a node record (the caller checked it is a node).
#[inline]
pub(super) fn header(record: &[u8]) -> Header {
    debug_assert!((TAG_MIN..=TAG_MAX).contains(&record[0]), "not a node");
    let size = Size(record[0].wrapping_sub(TAG_MIN).min(Size::LARGEST.0));
    let packed = u32::from(record[1]) | u32::from(record[2]) << 8 | u32::from(record[3]) << 16;
    Header {
        size,
        count: (packed & COUNT_MASK) as usize,
        prefix_len: (packed >> COUNT_BITS) as usize,
        value: read_u32(record, VALUE_AT),
    }
}

/// The node's compressed path.
#[inline]
pub(super) fn prefix<'r>(record: &'r [u8], header: &Header) -> &'r [u8] {
    let at = header.prefix_at();
    &record[at..at + header.prefix_len]
}

/// Writes a node header.
pub(super) fn write_header(
    record: &mut [u8],
    size: Size,
    count: usize,
    prefix_len: usize,
    value: Ref,
) {
    assert!(prefix_len <= PREFIX_BYTES_MAX && count <= size.capacity());
    record[0] = size.tag();
    let packed = (count as u32) | (prefix_len as u32) << COUNT_BITS;
    record[1..4].copy_from_slice(&packed.to_le_bytes()[..3]);
    write_u32(record, VALUE_AT, value);
}

fn set_count(record: &mut [u8], header: &Header, count: usize) {
    write_header(record, header.size, count, header.prefix_len, header.value);
}

#[inline]
fn read_u64(record: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&record[at..at + 8]);
    u64::from_le_bytes(word)
}

/// In a Node48, the slot of `byte` among the present bytes, if present.
#[inline]
fn rank48(record: &[u8], body: usize, byte: u8) -> (usize, bool) {
    let word_index = usize::from(byte >> 6);
    let bit = 1u64 << (byte & 63);
    let mut rank = 0;
    for w in 0..word_index {
        rank += read_u64(record, body + 8 * w).count_ones() as usize;
    }
    let word = read_u64(record, body + 8 * word_index);
    rank += (word & (bit - 1)).count_ones() as usize;
    (rank, word & bit != 0)
}

/// Byte offset (within the record) of the child slot for `byte`, if the
/// node has that child.
#[inline]
pub(super) fn find_child(record: &[u8], header: &Header, byte: u8) -> Option<usize> {
    let body = header.body_at();
    match header.kind() {
        Kind::N4 | Kind::N16 => {
            let keys = &record[body..body + header.count];
            let index = keys.iter().position(|&k| k == byte)?;
            Some(body + header.capacity() + 4 * index)
        }
        Kind::N48 => {
            let (rank, present) = rank48(record, body, byte);
            present.then_some(body + BITMAP_BYTES + 4 * rank)
        }
        Kind::N256 => {
            let at = body + 4 * usize::from(byte);
            (read_u32(record, at) != NULL).then_some(at)
        }
    }
}

/// Adds a child for `byte`, which the node must not have; the node must not
/// be full.
pub(super) fn add_child(record: &mut [u8], header: &Header, byte: u8, child: Ref) {
    let count = header.count;
    assert!(count < header.capacity(), "add_child on a full node");
    let body = header.body_at();
    match header.kind() {
        Kind::N4 | Kind::N16 => {
            let capacity = header.capacity();
            let index = record[body..body + count]
                .iter()
                .position(|&k| k > byte)
                .unwrap_or(count);
            debug_assert!(index == 0 || record[body + index - 1] < byte);
            record.copy_within(body + index..body + count, body + index + 1);
            record[body + index] = byte;
            let children = body + capacity;
            record.copy_within(
                children + 4 * index..children + 4 * count,
                children + 4 * index + 4,
            );
            write_u32(record, children + 4 * index, child);
        }
        Kind::N48 => {
            let (rank, present) = rank48(record, body, byte);
            debug_assert!(!present);
            let word_at = body + 8 * usize::from(byte >> 6);
            let word = read_u64(record, word_at) | 1u64 << (byte & 63);
            record[word_at..word_at + 8].copy_from_slice(&word.to_le_bytes());
            let children = body + BITMAP_BYTES;
            record.copy_within(
                children + 4 * rank..children + 4 * count,
                children + 4 * rank + 4,
            );
            write_u32(record, children + 4 * rank, child);
        }
        Kind::N256 => {
            let at = body + 4 * usize::from(byte);
            debug_assert_eq!(read_u32(record, at), NULL);
            write_u32(record, at, child);
        }
    }
    set_count(record, header, count + 1);
}

/// Removes the child for `byte`, which the node must have.
pub(super) fn remove_child(record: &mut [u8], header: &Header, byte: u8) {
    let count = header.count;
    let body = header.body_at();
    match header.kind() {
        Kind::N4 | Kind::N16 => {
            let capacity = header.capacity();
            let index = record[body..body + count].iter().position(|&k| k == byte);
            let Some(index) = index else {
                panic!("remove_child of an absent byte");
            };
            record.copy_within(body + index + 1..body + count, body + index);
            let children = body + capacity;
            record.copy_within(
                children + 4 * index + 4..children + 4 * count,
                children + 4 * index,
            );
        }
        Kind::N48 => {
            let (rank, present) = rank48(record, body, byte);
            assert!(present, "remove_child of an absent byte");
            let word_at = body + 8 * usize::from(byte >> 6);
            let word = read_u64(record, word_at) & !(1u64 << (byte & 63));
            record[word_at..word_at + 8].copy_from_slice(&word.to_le_bytes());
            let children = body + BITMAP_BYTES;
            record.copy_within(
                children + 4 * rank + 4..children + 4 * count,
                children + 4 * rank,
            );
        }
        Kind::N256 => {
            let at = body + 4 * usize::from(byte);
            assert_ne!(read_u32(record, at), NULL, "remove_child of an absent byte");
            write_u32(record, at, NULL);
        }
    }
    set_count(record, header, count - 1);
}

/// The first child whose byte is `from` or greater (`from` may be 256).
#[inline]
pub(super) fn next_child(record: &[u8], header: &Header, from: usize) -> Option<(u8, Ref)> {
    let body = header.body_at();
    match header.kind() {
        Kind::N4 | Kind::N16 => {
            let keys = &record[body..body + header.count];
            let index = keys.iter().position(|&k| usize::from(k) >= from)?;
            let child = read_u32(record, body + header.capacity() + 4 * index);
            Some((keys[index], child))
        }
        Kind::N48 => {
            if from >= 256 {
                return None;
            }
            let mut mask = !0u64 << (from & 63);
            for word_index in from >> 6..4 {
                let bits = read_u64(record, body + 8 * word_index) & mask;
                if bits != 0 {
                    let byte = (word_index * 64) as u8 + bits.trailing_zeros() as u8;
                    let (rank, _) = rank48(record, body, byte);
                    return Some((byte, read_u32(record, body + BITMAP_BYTES + 4 * rank)));
                }
                mask = !0;
            }
            None
        }
        Kind::N256 => (from..256).find_map(|byte| {
            let child = read_u32(record, body + 4 * byte);
            (child != NULL).then_some((byte as u8, child))
        }),
    }
}

/// Copies the node's children, in key order, into `out`; returns how many.
pub(super) fn children(record: &[u8], header: &Header, out: &mut [(u8, Ref); 256]) -> usize {
    let body = header.body_at();
    match header.kind() {
        Kind::N4 | Kind::N16 => {
            let children = body + header.capacity();
            for (index, slot) in out.iter_mut().take(header.count).enumerate() {
                *slot = (record[body + index], read_u32(record, children + 4 * index));
            }
        }
        Kind::N48 => {
            let mut rank = 0;
            for word_index in 0..4 {
                let mut bits = read_u64(record, body + 8 * word_index);
                while bits != 0 {
                    let byte = (word_index * 64) as u8 + bits.trailing_zeros() as u8;
                    let child = read_u32(record, body + BITMAP_BYTES + 4 * rank);
                    out[rank] = (byte, child);
                    rank += 1;
                    bits &= bits - 1;
                }
            }
            debug_assert_eq!(rank, header.count);
        }
        Kind::N256 => {
            let mut index = 0;
            for byte in 0..256 {
                let child = read_u32(record, body + 4 * byte);
                if child != NULL {
                    out[index] = (byte as u8, child);
                    index += 1;
                }
            }
            debug_assert_eq!(index, header.count);
        }
    }
    header.count
}

/// Writes the body of a fresh node from `children`, sorted by byte and at
/// most the kind's capacity. The header must already be written with
/// `count == children.len()`.
pub(super) fn write_body(record: &mut [u8], header: &Header, children: &[(u8, Ref)]) {
    debug_assert_eq!(header.count, children.len());
    debug_assert!(children.windows(2).all(|w| w[0].0 < w[1].0));
    let body = header.body_at();
    match header.kind() {
        Kind::N4 | Kind::N16 => {
            let capacity = header.capacity();
            for (index, &(byte, child)) in children.iter().enumerate() {
                record[body + index] = byte;
                write_u32(record, body + capacity + 4 * index, child);
            }
        }
        Kind::N48 => {
            let mut bitmap = [0u64; 4];
            for (rank, &(byte, child)) in children.iter().enumerate() {
                bitmap[usize::from(byte >> 6)] |= 1 << (byte & 63);
                write_u32(record, body + BITMAP_BYTES + 4 * rank, child);
            }
            for (word_index, word) in bitmap.iter().enumerate() {
                let at = body + 8 * word_index;
                record[at..at + 8].copy_from_slice(&word.to_le_bytes());
            }
        }
        Kind::N256 => {
            for byte in 0..256 {
                write_u32(record, body + 4 * byte, NULL);
            }
            for &(byte, child) in children {
                write_u32(record, body + 4 * usize::from(byte), child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a full node of `size` in a plain buffer (bytes added in a
    /// scrambled order), removes every third, and checks lookups and order.
    fn exercise(size: Size) {
        let capacity = size.capacity();
        let bytes: Vec<u8> = (0..capacity).map(|i| (i * 101 % 256) as u8).rev().collect();
        let prefix = b"pre";
        // Garbage around the record, as in a reused arena slot.
        let mut record = vec![0x55; record_bytes(size, prefix.len()) + 7];
        write_header(&mut record, size, 0, prefix.len(), NULL);
        let at = prefix_at(size);
        record[at..at + 3].copy_from_slice(prefix);
        let h = header(&record);
        write_body(&mut record, &h, &[]);
        let mut model = std::collections::BTreeMap::new();
        for &byte in &bytes {
            let h = header(&record);
            add_child(&mut record, &h, byte, 1000 + u32::from(byte));
            model.insert(byte, 1000 + u32::from(byte));
        }
        assert_eq!(header(&record).count, capacity);
        for (i, &byte) in bytes.iter().enumerate() {
            if i % 3 == 0 {
                let h = header(&record);
                remove_child(&mut record, &h, byte);
                model.remove(&byte);
            }
        }
        let h = header(&record);
        assert_eq!(h.size, size);
        assert_eq!(h.count, model.len());
        assert_eq!(h.value, NULL);
        assert_eq!(super::prefix(&record, &h), prefix);
        for byte in 0..=255u8 {
            let found = find_child(&record, &h, byte).map(|at| read_u32(&record, at));
            assert_eq!(found, model.get(&byte).copied(), "{size:?} byte {byte}");
        }
        let mut out = [(0, NULL); 256];
        let n = children(&record, &h, &mut out);
        let expected: Vec<(u8, Ref)> = model.iter().map(|(&b, &c)| (b, c)).collect();
        assert_eq!(&out[..n], &expected[..]);
        let mut walked = Vec::new();
        let mut from = 0;
        while let Some((byte, child)) = next_child(&record, &h, from) {
            walked.push((byte, child));
            from = usize::from(byte) + 1;
        }
        assert_eq!(walked, expected);
        assert!(record[record_bytes(size, prefix.len())..]
            .iter()
            .all(|&b| b == 0x55));
    }

    #[test]
    fn every_size_keeps_its_children_in_order() {
        let mut size = Size::SMALLEST;
        loop {
            exercise(size);
            if size == Size::LARGEST {
                break;
            }
            size = size.grown();
        }
    }

    #[test]
    fn sizes_step_through_the_four_kinds() {
        let mut size = Size::SMALLEST;
        let mut steps = vec![(size.kind(), size.capacity())];
        while size != Size::LARGEST {
            size = size.grown();
            steps.push((size.kind(), size.capacity()));
        }
        assert_eq!(
            steps,
            [
                (Kind::N4, 2),
                (Kind::N4, 4),
                (Kind::N16, 8),
                (Kind::N16, 16),
                (Kind::N48, 24),
                (Kind::N48, 32),
                (Kind::N48, 40),
                (Kind::N48, 48),
                (Kind::N256, 256)
            ]
        );
        assert_eq!(record_bytes(Size::SMALLEST, 0), 18);
        assert_eq!(record_bytes(Size(1), 0), 28);
        assert_eq!(record_bytes(Size(7), 0), 232);
        assert_eq!(record_bytes(Size::LARGEST, 0), 1032);
    }
}
