//! Inner node records: Node4, Node16, Node48 and Node256.
//!
//! Layout, little-endian, no alignment:
//!
//! ```text
//! header (8 bytes): [tag: u8] [count (bits 0..9) | prefix_len << 9: u24] [value: Ref u32]
//! prefix:           prefix_len bytes, the full compressed path (pessimistic)
//! body, by kind:
//!   Node4:   keys [u8; 4]    children [Ref; 4]      sorted by key     20 bytes
//!   Node16:  keys [u8; 16]   children [Ref; 16]     sorted by key     80 bytes
//!   Node48:  bitmap [u64; 4] children [Ref; 48]     packed in key order, 224 bytes
//!   Node256: children [Ref; 256], NULL when absent                   1024 bytes
//! ```
//!
//! `value` is the leaf of the key that ends exactly at this node (after the
//! prefix), or NULL. Node48 differs from the paper's: instead of a 256-byte
//! index into 48 slots, a 256-bit bitmap says which bytes are present and a
//! child's slot is the rank of its byte (a popcount), so the node is 232
//! bytes, not 456, and its children stay in key order.

use super::arena::{read_u32, write_u32, Ref, NULL};

/// The smallest node tag; tags below are short leaves.
pub(super) const TAG_MIN: u8 = 0xF0;
/// The largest node tag.
pub(super) const TAG_MAX: u8 = 0xF3;
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

/// The four node kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    N4,
    N16,
    N48,
    N256,
}

impl Kind {
    /// Children the kind can hold.
    pub(super) const fn capacity(self) -> usize {
        match self {
            Kind::N4 => 4,
            Kind::N16 => 16,
            Kind::N48 => 48,
            Kind::N256 => 256,
        }
    }

    const fn body_bytes(self) -> usize {
        match self {
            Kind::N4 => 4 * 5,
            Kind::N16 => 16 * 5,
            Kind::N48 => BITMAP_BYTES + 48 * 4,
            Kind::N256 => 256 * 4,
        }
    }

    const fn tag(self) -> u8 {
        match self {
            Kind::N4 => TAG_MIN,
            Kind::N16 => TAG_MIN + 1,
            Kind::N48 => TAG_MIN + 2,
            Kind::N256 => TAG_MAX,
        }
    }

    /// The kind a full node of this kind grows into.
    pub(super) const fn grown(self) -> Kind {
        match self {
            Kind::N4 => Kind::N16,
            Kind::N16 => Kind::N48,
            Kind::N48 | Kind::N256 => Kind::N256,
        }
    }

    /// The kind this kind shrinks into.
    pub(super) const fn shrunk(self) -> Kind {
        match self {
            Kind::N4 | Kind::N16 => Kind::N4,
            Kind::N48 => Kind::N16,
            Kind::N256 => Kind::N48,
        }
    }

    /// A node of this kind shrinks once a removal leaves it with this many
    /// children or fewer. Below the smaller kind's capacity, so that a
    /// node at the boundary does not flip kinds on every insert and remove.
    pub(super) const fn shrink_at(self) -> usize {
        match self {
            Kind::N4 => 0,
            Kind::N16 => 3,
            Kind::N48 => 12,
            Kind::N256 => 40,
        }
    }
}

const _: () = {
    let kinds = [Kind::N16, Kind::N48, Kind::N256];
    let mut i = 0;
    while i < kinds.len() {
        assert!(kinds[i].shrink_at() < kinds[i].shrunk().capacity());
        i += 1;
    }
};

/// A node's decoded header.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub(super) kind: Kind,
    pub(super) count: usize,
    pub(super) prefix_len: usize,
    pub(super) value: Ref,
}

impl Header {
    /// Byte offset of the body.
    #[inline]
    pub(super) fn body_at(&self) -> usize {
        HEADER_BYTES + self.prefix_len
    }

    /// Size of the whole record.
    #[inline]
    pub(super) fn record_bytes(&self) -> usize {
        record_bytes(self.kind, self.prefix_len)
    }

    /// Entries: children plus the value, if any.
    #[inline]
    pub(super) fn entries(&self) -> usize {
        self.count + usize::from(self.value != NULL)
    }
}

/// Size of a node record.
#[inline]
pub(super) fn record_bytes(kind: Kind, prefix_len: usize) -> usize {
    HEADER_BYTES + prefix_len + kind.body_bytes()
}

/// Decodes the header of a node record (the caller checked it is a node).
#[inline]
pub(super) fn header(record: &[u8]) -> Header {
    let kind = match record[0] {
        0xF0 => Kind::N4,
        0xF1 => Kind::N16,
        0xF2 => Kind::N48,
        tag => {
            debug_assert_eq!(tag, TAG_MAX, "not a node");
            Kind::N256
        }
    };
    let packed = u32::from(record[1]) | u32::from(record[2]) << 8 | u32::from(record[3]) << 16;
    Header {
        kind,
        count: (packed & COUNT_MASK) as usize,
        prefix_len: (packed >> COUNT_BITS) as usize,
        value: read_u32(record, VALUE_AT),
    }
}

/// The node's compressed path.
#[inline]
pub(super) fn prefix<'r>(record: &'r [u8], header: &Header) -> &'r [u8] {
    &record[HEADER_BYTES..header.body_at()]
}

/// Writes a node header.
pub(super) fn write_header(
    record: &mut [u8],
    kind: Kind,
    count: usize,
    prefix_len: usize,
    value: Ref,
) {
    assert!(prefix_len <= PREFIX_BYTES_MAX && count <= kind.capacity());
    record[0] = kind.tag();
    let packed = (count as u32) | (prefix_len as u32) << COUNT_BITS;
    record[1..4].copy_from_slice(&packed.to_le_bytes()[..3]);
    write_u32(record, VALUE_AT, value);
}

fn set_count(record: &mut [u8], header: &Header, count: usize) {
    write_header(record, header.kind, count, header.prefix_len, header.value);
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
    match header.kind {
        Kind::N4 | Kind::N16 => {
            let keys = &record[body..body + header.count];
            let index = keys.iter().position(|&k| k == byte)?;
            Some(body + header.kind.capacity() + 4 * index)
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
    assert!(count < header.kind.capacity(), "add_child on a full node");
    let body = header.body_at();
    match header.kind {
        Kind::N4 | Kind::N16 => {
            let capacity = header.kind.capacity();
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
    match header.kind {
        Kind::N4 | Kind::N16 => {
            let capacity = header.kind.capacity();
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
    match header.kind {
        Kind::N4 | Kind::N16 => {
            let keys = &record[body..body + header.count];
            let index = keys.iter().position(|&k| usize::from(k) >= from)?;
            let child = read_u32(record, body + header.kind.capacity() + 4 * index);
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
    match header.kind {
        Kind::N4 | Kind::N16 => {
            let children = body + header.kind.capacity();
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
    match header.kind {
        Kind::N4 | Kind::N16 => {
            let capacity = header.kind.capacity();
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

    /// Builds a node of `kind` in a plain buffer, adds `bytes` in the given
    /// order, removes every third, and checks lookups and order throughout.
    fn exercise(kind: Kind, bytes: &[u8]) {
        let prefix = b"pre";
        let mut record = vec![0x55; record_bytes(kind, prefix.len())];
        write_header(&mut record, kind, 0, prefix.len(), NULL);
        record[HEADER_BYTES..HEADER_BYTES + 3].copy_from_slice(prefix);
        let h = header(&record);
        write_body(&mut record, &h, &[]);
        let mut model = std::collections::BTreeMap::new();
        for &byte in bytes {
            let h = header(&record);
            add_child(&mut record, &h, byte, 1000 + u32::from(byte));
            model.insert(byte, 1000 + u32::from(byte));
        }
        for (i, &byte) in bytes.iter().enumerate() {
            if i % 3 == 0 {
                let h = header(&record);
                remove_child(&mut record, &h, byte);
                model.remove(&byte);
            }
        }
        let h = header(&record);
        assert_eq!(h.kind, kind);
        assert_eq!(h.count, model.len());
        assert_eq!(super::prefix(&record, &h), prefix);
        for byte in 0..=255u8 {
            let found = find_child(&record, &h, byte).map(|at| read_u32(&record, at));
            assert_eq!(found, model.get(&byte).copied(), "{kind:?} byte {byte}");
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
    }

    #[test]
    fn every_kind_keeps_its_children_in_order() {
        exercise(Kind::N4, &[200, 3, 255, 0]);
        let sixteen: Vec<u8> = (0..16).map(|i| (i * 37 % 256) as u8).rev().collect();
        exercise(Kind::N16, &sixteen);
        let forty_eight: Vec<u8> = (0..48).map(|i| (i * 101 % 256) as u8).collect();
        exercise(Kind::N48, &forty_eight);
        let all: Vec<u8> = (0..=255u8).map(|b| b.wrapping_mul(7)).collect();
        exercise(Kind::N256, &all);
    }
}
