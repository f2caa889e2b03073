//! Leaf records: the value pointer and the key bytes below the leaf's parent.
//!
//! A leaf stores only the suffix of its key: the bytes after the edge byte
//! that leads to it (or, in a node's value slot, nothing; for a root leaf,
//! the whole key). The full key is the path from the root.
//!
//! Layout, little-endian, no alignment:
//!
//! ```text
//! short (suffix <= 239 bytes): [len: u8 (0..=239)] [pointer: 16] [suffix]
//! long:                        [0xFF]              [pointer: 16] [len: u16] [suffix]
//! ```
//!
//! The first byte doubles as the record's tag: node tags are 0xF0..=0xF8.
//! A 16-byte key whose leaf sits three levels down is a 30-byte record.

use super::ValuePointer;

/// Tag of a leaf whose suffix length follows as a `u16`.
const TAG_LONG: u8 = 0xFF;
/// The longest suffix whose length fits in the tag byte.
const SHORT_SUFFIX_BYTES_MAX: usize = 0xEF;
const VALUE_AT: usize = 1;
const SHORT_HEADER_BYTES: usize = 1 + ValuePointer::BYTES;
const LONG_HEADER_BYTES: usize = SHORT_HEADER_BYTES + 2;

const _: () = assert!(SHORT_SUFFIX_BYTES_MAX < super::node::TAG_MIN as usize);
const _: () = assert!(TAG_LONG > super::node::TAG_MAX);
const _: () =
    assert!(record_bytes(0).div_ceil(super::arena::UNIT_BYTES) == super::arena::RECORD_UNITS_MIN);

/// Whether a record with first byte `tag` is a leaf.
#[inline]
pub(super) fn is_leaf(tag: u8) -> bool {
    tag <= SHORT_SUFFIX_BYTES_MAX as u8 || tag == TAG_LONG
}

/// Bytes before the suffix in a leaf whose suffix is `suffix_len` bytes.
#[inline]
pub(super) const fn header_bytes(suffix_len: usize) -> usize {
    if suffix_len <= SHORT_SUFFIX_BYTES_MAX {
        SHORT_HEADER_BYTES
    } else {
        LONG_HEADER_BYTES
    }
}

/// Size of a leaf record whose suffix is `suffix_len` bytes.
#[inline]
pub(super) const fn record_bytes(suffix_len: usize) -> usize {
    header_bytes(suffix_len) + suffix_len
}

#[inline]
pub(super) fn suffix_len(record: &[u8]) -> usize {
    if record[0] == TAG_LONG {
        usize::from(u16::from_le_bytes([
            record[SHORT_HEADER_BYTES],
            record[SHORT_HEADER_BYTES + 1],
        ]))
    } else {
        usize::from(record[0])
    }
}

/// The key bytes stored in the leaf.
#[inline]
pub(super) fn suffix(record: &[u8]) -> &[u8] {
    let len = suffix_len(record);
    let at = header_bytes(len);
    &record[at..at + len]
}

#[inline]
pub(super) fn value(record: &[u8]) -> ValuePointer {
    ValuePointer::decode(&record[VALUE_AT..VALUE_AT + ValuePointer::BYTES])
}

#[inline]
pub(super) fn set_value(record: &mut [u8], value: ValuePointer) {
    value.encode(&mut record[VALUE_AT..VALUE_AT + ValuePointer::BYTES]);
}

/// Writes the header of a leaf with a suffix of `suffix_len` bytes; the
/// caller writes the suffix at [`header_bytes`].
pub(super) fn write_header(record: &mut [u8], suffix_len: usize, value: ValuePointer) {
    assert!(suffix_len <= usize::from(u16::MAX), "leaf suffix too long");
    set_value(record, value);
    if suffix_len <= SHORT_SUFFIX_BYTES_MAX {
        record[0] = suffix_len as u8;
    } else {
        record[0] = TAG_LONG;
        record[SHORT_HEADER_BYTES..LONG_HEADER_BYTES]
            .copy_from_slice(&(suffix_len as u16).to_le_bytes());
    }
}

/// Writes a whole leaf.
pub(super) fn write(record: &mut [u8], suffix: &[u8], value: ValuePointer) {
    write_header(record, suffix.len(), value);
    let at = header_bytes(suffix.len());
    record[at..at + suffix.len()].copy_from_slice(suffix);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_leaves_round_trip() {
        let value = ValuePointer {
            segment: 1,
            offset: 2,
            length: 3,
            sequence_low: 0xDEAD_BEEF,
        };
        for len in [0, 1, 13, 239, 240, 1024] {
            let suffix: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut record = vec![0xAA; record_bytes(len) + 5];
            write(&mut record, &suffix, value);
            assert!(is_leaf(record[0]), "len {len}");
            assert_eq!(suffix_len(&record), len);
            assert_eq!(self::suffix(&record), &suffix[..]);
            assert_eq!(self::value(&record), value);
        }
        assert_eq!(record_bytes(13), 30);
        assert_eq!(record_bytes(240), 259);
    }
}
