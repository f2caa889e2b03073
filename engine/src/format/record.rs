//! Log frames and records: what one group commit writes. See
//! `docs/format/wal.md` and `docs/format/vlog.md`.
//!
//! A frame is a header and its records, back to back, padded with zeroes to
//! the next block. Its crc covers the whole frame, so a torn frame is
//! rejected whole: a group commit is all or nothing. Each record has its own
//! crc as well, so a point read verifies one record without the frame.

use super::{check_crc_seeded, need, u16_at, u32_at, u64_at, DecodeError};

/// "VXFR" as a little-endian u32.
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"VXFR");
/// Frame header bytes.
pub const FRAME_HEADER_BYTES: usize = 40;
/// Record header bytes.
pub const RECORD_HEADER_BYTES: usize = 24;

/// What a record does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Set the key to the value.
    Put = 1,
    /// Remove the key.
    Delete = 2,
}

/// The fixed part of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Header plus records, before padding.
    pub frame_bytes: u32,
    /// Number of records.
    pub record_count: u32,
    /// Generation of the segment this frame was written into.
    pub segment_generation: u64,
    /// The segment it was written into.
    pub segment: u32,
    /// Its byte offset within that segment.
    pub offset: u32,
    /// Sequence number of the first record; record i has `first_seq + i`.
    pub first_seq: u64,
}

/// One decoded record, borrowing its key and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Put or delete.
    pub kind: RecordKind,
    /// Global sequence number.
    pub seq: u64,
    /// The segment the record was written into (identity check on reads).
    pub segment: u32,
    /// The key.
    pub key: &'a [u8],
    /// The value (empty for deletes).
    pub value: &'a [u8],
}

/// Bytes a record occupies.
pub fn record_bytes(key_len: usize, value_len: usize) -> usize {
    RECORD_HEADER_BYTES + key_len + value_len
}

/// Appends an encoded record to `out`.
pub fn encode_record(out: &mut Vec<u8>, record: &Record<'_>, seed: u32) {
    let start = out.len();
    let key_len = u16::try_from(record.key.len()).unwrap_or(u16::MAX);
    let value_len = u32::try_from(record.value.len()).unwrap_or(u32::MAX);
    assert_eq!(usize::from(key_len), record.key.len(), "key too long");
    assert_eq!(value_len as usize, record.value.len(), "value too long");
    out.extend_from_slice(&[0u8; 4]);
    out.push(record.kind as u8);
    out.push(0);
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(&record.seq.to_le_bytes());
    out.extend_from_slice(&record.segment.to_le_bytes());
    out.extend_from_slice(record.key);
    out.extend_from_slice(record.value);
    let crc = crc32c::crc32c_append(seed, &out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The key length and the whole length of the record at the start of
/// `bytes`, read from its header without verifying anything (for naming
/// what a damaged record held); `None` when the header is cut short.
pub fn record_extent(bytes: &[u8]) -> Option<(usize, usize)> {
    need(bytes, RECORD_HEADER_BYTES).ok()?;
    let key_len = usize::from(u16_at(bytes, 6));
    let value_len = u32_at(bytes, 8) as usize;
    Some((key_len, record_bytes(key_len, value_len)))
}

/// Decodes and verifies the record at the start of `bytes`, returning it and
/// its length.
pub fn decode_record(bytes: &[u8], seed: u32) -> Result<(Record<'_>, usize), DecodeError> {
    need(bytes, RECORD_HEADER_BYTES)?;
    let kind = match bytes[4] {
        1 => RecordKind::Put,
        2 => RecordKind::Delete,
        other => {
            return Err(DecodeError::Invalid {
                field: "record kind",
                value: u64::from(other),
            })
        }
    };
    let (key_len, len) = record_extent(bytes).ok_or(DecodeError::Truncated {
        need: RECORD_HEADER_BYTES,
        have: bytes.len(),
    })?;
    need(bytes, len)?;
    check_crc_seeded(u32_at(bytes, 0), seed, &[&bytes[4..len]])?;
    let key_start = RECORD_HEADER_BYTES;
    let record = Record {
        kind,
        seq: u64_at(bytes, 12),
        segment: u32_at(bytes, 20),
        key: &bytes[key_start..key_start + key_len],
        value: &bytes[key_start + key_len..len],
    };
    if key_len == 0 {
        return Err(DecodeError::Invalid {
            field: "key length",
            value: 0,
        });
    }
    Ok((record, len))
}

/// Starts a frame in `out` (which must be empty): reserves the header.
pub fn begin_frame(out: &mut Vec<u8>) {
    assert!(out.is_empty());
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
}

/// Completes the frame begun in `out`: fills in the header and the crc.
pub fn finish_frame(out: &mut [u8], header: &FrameHeader, seed: u32) {
    assert_eq!(header.frame_bytes as usize, out.len());
    let b = &mut out[..FRAME_HEADER_BYTES];
    b[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    b[8..12].copy_from_slice(&header.frame_bytes.to_le_bytes());
    b[12..16].copy_from_slice(&header.record_count.to_le_bytes());
    b[16..24].copy_from_slice(&header.segment_generation.to_le_bytes());
    b[24..28].copy_from_slice(&header.segment.to_le_bytes());
    b[28..32].copy_from_slice(&header.offset.to_le_bytes());
    b[32..40].copy_from_slice(&header.first_seq.to_le_bytes());
    let crc = crc32c::crc32c_append(seed, &out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes a frame header without checking the frame's crc (the caller then
/// reads `frame_bytes` and calls [`verify_frame`]).
pub fn decode_frame_header(bytes: &[u8]) -> Result<FrameHeader, DecodeError> {
    need(bytes, FRAME_HEADER_BYTES)?;
    let magic = u32_at(bytes, 0);
    if magic != FRAME_MAGIC {
        return Err(DecodeError::BadMagic {
            found: u64::from(magic),
        });
    }
    let header = FrameHeader {
        frame_bytes: u32_at(bytes, 8),
        record_count: u32_at(bytes, 12),
        segment_generation: u64_at(bytes, 16),
        segment: u32_at(bytes, 24),
        offset: u32_at(bytes, 28),
        first_seq: u64_at(bytes, 32),
    };
    if (header.frame_bytes as usize) < FRAME_HEADER_BYTES {
        return Err(DecodeError::Invalid {
            field: "frame_bytes",
            value: u64::from(header.frame_bytes),
        });
    }
    Ok(header)
}

/// Verifies a whole frame (`bytes` holds at least `frame_bytes`) and returns
/// its header. Every record inside is then known good.
pub fn verify_frame(bytes: &[u8], seed: u32) -> Result<FrameHeader, DecodeError> {
    let header = decode_frame_header(bytes)?;
    let len = header.frame_bytes as usize;
    need(bytes, len)?;
    check_crc_seeded(u32_at(bytes, 4), seed, &[&bytes[8..len]])?;
    Ok(header)
}

/// Iterates the records of a verified frame.
pub fn frame_records(
    frame: &[u8],
    seed: u32,
) -> impl Iterator<Item = Result<(usize, Record<'_>), DecodeError>> {
    let mut at = FRAME_HEADER_BYTES;
    std::iter::from_fn(move || {
        if at >= frame.len() {
            return None;
        }
        match decode_record(&frame[at..], seed) {
            Ok((record, len)) => {
                let start = at;
                at += len;
                Some(Ok((start, record)))
            }
            Err(e) => {
                at = frame.len();
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEED: u32 = 0x1234_5678;

    fn arb_records() -> impl Strategy<Value = Vec<(bool, Vec<u8>, Vec<u8>)>> {
        proptest::collection::vec(
            (
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 1..40),
                proptest::collection::vec(any::<u8>(), 0..300),
            ),
            1..20,
        )
    }

    fn build(records: &[(bool, Vec<u8>, Vec<u8>)], first_seq: u64) -> Vec<u8> {
        let mut frame = Vec::new();
        begin_frame(&mut frame);
        for (i, (put, key, value)) in records.iter().enumerate() {
            encode_record(
                &mut frame,
                &Record {
                    kind: if *put {
                        RecordKind::Put
                    } else {
                        RecordKind::Delete
                    },
                    seq: first_seq + i as u64,
                    segment: 7,
                    key,
                    value: if *put { value } else { &[] },
                },
                SEED,
            );
        }
        let header = FrameHeader {
            frame_bytes: frame.len() as u32,
            record_count: records.len() as u32,
            segment_generation: 3,
            segment: 7,
            offset: 4096,
            first_seq,
        };
        finish_frame(&mut frame, &header, SEED);
        frame
    }

    proptest! {
        #[test]
        fn frames_round_trip(records in arb_records(), first_seq in 0u64..u64::MAX / 2) {
            let frame = build(&records, first_seq);
            let header = verify_frame(&frame, SEED).unwrap();
            prop_assert_eq!(header.record_count as usize, records.len());
            prop_assert_eq!(header.first_seq, first_seq);
            let decoded: Vec<_> = frame_records(&frame, SEED).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (i, ((_, r), (put, key, value))) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(r.seq, first_seq + i as u64);
                prop_assert_eq!(r.key, key.as_slice());
                prop_assert_eq!(r.kind == RecordKind::Put, *put);
                if *put { prop_assert_eq!(r.value, value.as_slice()); }
            }
        }

        #[test]
        fn a_flipped_bit_anywhere_fails_the_frame(records in arb_records(), bit: usize) {
            let mut frame = build(&records, 1);
            let bit = bit % (frame.len() * 8);
            frame[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_frame(&frame, SEED).is_err());
        }

        #[test]
        fn a_flipped_bit_in_a_record_fails_the_record(key in proptest::collection::vec(any::<u8>(), 1..40), value in proptest::collection::vec(any::<u8>(), 0..300), bit: usize) {
            let mut out = Vec::new();
            encode_record(&mut out, &Record { kind: RecordKind::Put, seq: 9, segment: 1, key: &key, value: &value }, SEED);
            let bit = bit % (out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_record(&out, SEED).is_err());
        }

        #[test]
        fn another_stores_frame_never_verifies(records in arb_records()) {
            let frame = build(&records, 1);
            prop_assert!(verify_frame(&frame, SEED ^ 1).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = verify_frame(&bytes, SEED);
            let _ = decode_record(&bytes, SEED);
            let _ = frame_records(&bytes, SEED).count();
        }

        #[test]
        fn truncation_is_rejected(records in arb_records(), cut: usize) {
            let frame = build(&records, 1);
            let cut = cut % frame.len();
            prop_assert!(verify_frame(&frame[..cut], SEED).is_err());
        }
    }
}
