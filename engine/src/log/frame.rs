//! What a valid frame is, and what an invalid position of a log holds.
//!
//! A frame is valid at a place when its crc holds, its identity (segment,
//! generation, offset) names exactly that place, and its sequence numbers
//! follow the stream's last record. Anything else is examined by
//! [`examine`], which tells zeroes from a misplaced header from a damaged
//! frame, and lists the records of a damaged frame as far as they can still
//! be told apart (recovery salvages them, `inspect` reports them).

use crate::format::record::{
    decode_frame_header, decode_record, record_extent, verify_frame, FrameHeader, RecordKind,
    RECORD_HEADER_BYTES,
};
use crate::format::DecodeError;

/// The header of the valid frame at `offset` of a segment's bytes, if there
/// is one that belongs exactly there and follows `last_seq`. A frame with no
/// records is a seal: the stream left the segment there.
pub(crate) fn valid_frame_at(
    data: &[u8],
    segment: u32,
    generation: u64,
    offset: usize,
    last_seq: u64,
    seed: u32,
) -> Option<FrameHeader> {
    if offset >= data.len() {
        return None;
    }
    let frame = verify_frame(&data[offset..], seed).ok()?;
    let identity_ok = frame.segment == segment
        && frame.segment_generation == generation
        && frame.offset as usize == offset
        && frame.first_seq > last_seq;
    identity_ok.then_some(frame)
}

/// What an invalid position of a log holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// A zeroed block: the end of the written log, or a lost write.
    Zeroes,
    /// A block the device could not read: never what a torn write leaves.
    Unreadable,
    /// No frame header decodes.
    NoHeader(DecodeError),
    /// A frame header that names another place, or runs past the segment.
    Misplaced(FrameHeader),
    /// A whole, verified frame an earlier use (an older generation) of this
    /// segment wrote at exactly this place: leftovers, not damage, past the
    /// end of a log. (A header whose generation a bit flip lowered does not
    /// verify, so it is `Misplaced`.)
    Earlier(FrameHeader),
    /// A frame header for exactly this place whose frame fails verification.
    Damaged(DamagedFrame),
}

impl Invalid {
    /// Whether this is what a log holds past its end when nothing was
    /// written there in the segment's current use: zeroes, or a whole frame
    /// an earlier use (an older generation) of the same segment left.
    /// Anything else at the end of a log was written there by this use (the
    /// remains of a group commit in flight at a crash), or is damage.
    pub(crate) fn is_unwritten(&self) -> bool {
        match self {
            Invalid::Zeroes | Invalid::Earlier(_) => true,
            Invalid::Misplaced(_)
            | Invalid::Unreadable
            | Invalid::NoHeader(_)
            | Invalid::Damaged(_) => false,
        }
    }
}

/// A frame that belongs where it was read but fails its crc (or whose
/// sequence numbers do not follow the stream's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DamagedFrame {
    pub header: FrameHeader,
    /// Whether its sequence numbers follow the stream's last record (else it
    /// cannot be part of the log at this point, and nothing is salvaged).
    pub follows: bool,
    /// Its records, in order, up to the first whose header is unusable.
    pub records: Vec<FoundRecord>,
    /// Whether every one of its `record_count` records was told apart.
    pub complete: bool,
}

/// A record found in a damaged frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FoundRecord {
    /// Byte offset of the record within the segment.
    pub at: usize,
    pub seq: u64,
    pub key: Vec<u8>,
    /// Bytes the record occupies.
    pub length: usize,
    /// Put or delete when its own crc holds; the failure otherwise.
    pub verified: Result<RecordKind, DecodeError>,
    /// A verified put's deadline.
    pub expire_at_ms: Option<u64>,
}

/// Examines `offset` of a segment's bytes, where [`valid_frame_at`] found no
/// valid frame.
pub(crate) fn examine(
    data: &[u8],
    segment: u32,
    generation: u64,
    offset: usize,
    block_bytes: usize,
    last_seq: u64,
    seed: u32,
) -> Invalid {
    let block_end = (offset + block_bytes).min(data.len());
    if data[offset..block_end].iter().all(|&b| b == 0) {
        return Invalid::Zeroes;
    }
    let header = match decode_frame_header(&data[offset..]) {
        Ok(header) => header,
        Err(e) => return Invalid::NoHeader(e),
    };
    let end = offset.saturating_add(header.frame_bytes as usize);
    let placed = header.segment == segment
        && header.segment_generation == generation
        && header.offset as usize == offset;
    if !placed || end > data.len() {
        let earlier = header.segment == segment
            && header.segment_generation < generation
            && header.offset as usize == offset
            && verify_frame(&data[offset..], seed).is_ok();
        return if earlier {
            Invalid::Earlier(header)
        } else {
            Invalid::Misplaced(header)
        };
    }
    let mut records = Vec::new();
    let mut at = offset + crate::format::record::FRAME_HEADER_BYTES;
    for i in 0..u64::from(header.record_count) {
        if at + RECORD_HEADER_BYTES > end {
            break;
        }
        let bytes = &data[at..end];
        let found = match decode_record(bytes, seed) {
            Ok((record, length)) => FoundRecord {
                at,
                seq: header.first_seq + i,
                key: record.key.to_vec(),
                length,
                verified: Ok(record.kind),
                expire_at_ms: record.expire_at_ms,
            },
            Err(e) => {
                let Some(extent) = record_extent(bytes) else {
                    break;
                };
                if extent.key_len == 0 || extent.bytes > bytes.len() {
                    break;
                }
                let key = &bytes[extent.key_start..extent.key_start + extent.key_len];
                FoundRecord {
                    at,
                    seq: header.first_seq + i,
                    key: key.to_vec(),
                    length: extent.bytes,
                    verified: Err(e),
                    expire_at_ms: None,
                }
            }
        };
        at += found.length;
        records.push(found);
    }
    let complete = records.len() == header.record_count as usize;
    Invalid::Damaged(DamagedFrame {
        follows: header.first_seq > last_seq,
        header,
        records,
        complete,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    const SEED: u32 = 7;

    fn segment_with_frame(keys: &[&[u8]]) -> Vec<u8> {
        let frame = super::super::testing::frame(3, 5, 512, 10, keys, b"value", SEED);
        let mut data = vec![0u8; 4096];
        data[512..512 + frame.len()].copy_from_slice(&frame);
        data
    }

    #[test]
    fn a_valid_frame_is_valid_only_where_it_belongs() {
        let data = segment_with_frame(&[b"a", b"bb"]);
        assert!(valid_frame_at(&data, 3, 5, 512, 9, SEED).is_some());
        assert!(valid_frame_at(&data, 3, 5, 512, 10, SEED).is_none(), "seq");
        assert!(
            valid_frame_at(&data, 4, 5, 512, 9, SEED).is_none(),
            "segment"
        );
        assert!(
            valid_frame_at(&data, 3, 6, 512, 9, SEED).is_none(),
            "generation"
        );
    }

    #[test]
    fn examine_names_the_records_of_a_damaged_frame() {
        let mut data = segment_with_frame(&[b"a", b"bb", b"ccc"]);
        // Flip a value byte of the second record.
        let second = 512
            + crate::format::record::FRAME_HEADER_BYTES
            + crate::format::record::record_bytes(1, 5);
        data[second + RECORD_HEADER_BYTES + 2 + 1] ^= 1;
        assert!(valid_frame_at(&data, 3, 5, 512, 9, SEED).is_none());
        let Invalid::Damaged(frame) = examine(&data, 3, 5, 512, 512, 9, SEED) else {
            panic!("a damaged frame");
        };
        assert!(frame.complete && frame.follows);
        let keys: Vec<&[u8]> = frame.records.iter().map(|r| r.key.as_slice()).collect();
        assert_eq!(keys, [b"a".as_slice(), b"bb", b"ccc"]);
        assert!(frame.records[0].verified.is_ok());
        assert!(frame.records[1].verified.is_err());
        assert_eq!(frame.records[2].seq, 12);
    }

    #[test]
    fn only_zeroes_and_an_earlier_use_s_headers_are_unwritten() {
        let data = segment_with_frame(&[b"a"]);
        assert!(examine(&data, 3, 5, 0, 512, 0, SEED).is_unwritten());
        // The frame of generation 5, read at generation 6: an earlier use.
        let earlier = examine(&data, 3, 6, 512, 512, 0, SEED);
        assert!(earlier.is_unwritten(), "{earlier:?}");
        // The same, damaged: a header whose generation a flip lowered looks
        // just like it, and must not pass for leftovers.
        let mut flipped = data.clone();
        flipped[512 + 60] ^= 0x01;
        assert!(!examine(&flipped, 3, 6, 512, 512, 0, SEED).is_unwritten());
        // A header naming another segment: written here by mistake.
        let elsewhere = examine(&data, 4, 5, 512, 512, 0, SEED);
        assert!(!elsewhere.is_unwritten());
        // A header of a later generation: never an earlier use's.
        let later = examine(&data, 3, 4, 512, 512, 0, SEED);
        assert!(!later.is_unwritten());
        let mut garbage = data.clone();
        garbage[512] ^= 0xFF;
        assert!(!examine(&garbage, 3, 5, 512, 512, 0, SEED).is_unwritten());
        garbage[512] ^= 0xFF;
        garbage[600] ^= 0x01;
        assert!(!examine(&garbage, 3, 5, 512, 512, 0, SEED).is_unwritten());
    }

    #[test]
    fn examine_tells_zeroes_and_misplaced_headers() {
        let data = segment_with_frame(&[b"a"]);
        assert_eq!(examine(&data, 3, 5, 0, 512, 0, SEED), Invalid::Zeroes);
        assert!(matches!(
            examine(&data, 4, 5, 512, 512, 0, SEED),
            Invalid::Misplaced(_)
        ));
        let mut garbage = data.clone();
        garbage[512] ^= 0xFF;
        assert!(matches!(
            examine(&garbage, 3, 5, 512, 512, 0, SEED),
            Invalid::NoHeader(_)
        ));
    }
}
