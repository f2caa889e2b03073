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
/// Bytes of a put's deadline, between the header and the key, when
/// [`FLAG_EXPIRES`] is set.
pub const EXPIRY_BYTES: usize = 8;
/// Flag bit: the put carries a deadline (`expire_at_ms`). Records written
/// before expiry existed have no flag set, and decode as before.
pub const FLAG_EXPIRES: u8 = 1;

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
    /// A put's deadline, in milliseconds since the Unix epoch: the key is
    /// gone once the clock passes it. `None`: it never expires (and for
    /// deletes).
    pub expire_at_ms: Option<u64>,
}

impl Record<'_> {
    /// Bytes the record occupies once encoded.
    pub fn encoded_bytes(&self) -> usize {
        record_bytes_expiring(
            self.key.len(),
            self.value.len(),
            self.expire_at_ms.is_some(),
        )
    }
}

/// Bytes a record without a deadline occupies.
pub fn record_bytes(key_len: usize, value_len: usize) -> usize {
    RECORD_HEADER_BYTES + key_len + value_len
}

/// Bytes a record occupies, with a deadline when `expires`.
pub fn record_bytes_expiring(key_len: usize, value_len: usize, expires: bool) -> usize {
    let deadline = if expires { EXPIRY_BYTES } else { 0 };
    RECORD_HEADER_BYTES + deadline + key_len + value_len
}

/// Appends an encoded record to `out`.
pub fn encode_record(out: &mut Vec<u8>, record: &Record<'_>, seed: u32) {
    let start = out.len();
    let key_len = u16::try_from(record.key.len()).unwrap_or(u16::MAX);
    let value_len = u32::try_from(record.value.len()).unwrap_or(u32::MAX);
    assert_eq!(usize::from(key_len), record.key.len(), "key too long");
    assert_eq!(value_len as usize, record.value.len(), "value too long");
    // Only a put can carry a deadline: a delete's would mean nothing.
    let deadline = record
        .expire_at_ms
        .filter(|_| record.kind == RecordKind::Put);
    assert_eq!(deadline, record.expire_at_ms, "a delete with a deadline");
    out.extend_from_slice(&[0u8; 4]);
    out.push(record.kind as u8);
    out.push(if deadline.is_some() { FLAG_EXPIRES } else { 0 });
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(&record.seq.to_le_bytes());
    out.extend_from_slice(&record.segment.to_le_bytes());
    if let Some(deadline) = deadline {
        out.extend_from_slice(&deadline.to_le_bytes());
    }
    out.extend_from_slice(record.key);
    out.extend_from_slice(record.value);
    let crc = crc32c::crc32c_append(seed, &out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Where a record's parts lie, read from its header alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Offset of the key within the record.
    pub key_start: usize,
    /// Key bytes.
    pub key_len: usize,
    /// The whole record's bytes.
    pub bytes: usize,
}

/// Where the key of the record at the start of `bytes` lies and how long
/// the record is, read from its header without verifying anything (for
/// naming what a damaged record held); `None` when the header is cut short.
pub fn record_extent(bytes: &[u8]) -> Option<Extent> {
    need(bytes, RECORD_HEADER_BYTES).ok()?;
    let key_len = usize::from(u16_at(bytes, 6));
    let value_len = u32_at(bytes, 8) as usize;
    let expires = bytes[5] & FLAG_EXPIRES != 0;
    let key_start = RECORD_HEADER_BYTES + if expires { EXPIRY_BYTES } else { 0 };
    Some(Extent {
        key_start,
        key_len,
        bytes: record_bytes_expiring(key_len, value_len, expires),
    })
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
    let flags = bytes[5];
    if flags & !FLAG_EXPIRES != 0 || (flags != 0 && kind == RecordKind::Delete) {
        return Err(DecodeError::Invalid {
            field: "record flags",
            value: u64::from(flags),
        });
    }
    let extent = record_extent(bytes).ok_or(DecodeError::Truncated {
        need: RECORD_HEADER_BYTES,
        have: bytes.len(),
    })?;
    let (key_start, key_len, len) = (extent.key_start, extent.key_len, extent.bytes);
    need(bytes, len)?;
    check_crc_seeded(u32_at(bytes, 0), seed, &[&bytes[4..len]])?;
    let expire_at_ms = (flags & FLAG_EXPIRES != 0).then(|| u64_at(bytes, RECORD_HEADER_BYTES));
    let record = Record {
        kind,
        seq: u64_at(bytes, 12),
        segment: u32_at(bytes, 20),
        key: &bytes[key_start..key_start + key_len],
        value: &bytes[key_start + key_len..len],
        expire_at_ms,
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

    type Arb = (bool, Vec<u8>, Vec<u8>, Option<u64>);

    fn arb_records() -> impl Strategy<Value = Vec<Arb>> {
        proptest::collection::vec(
            (
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 1..40),
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::option::of(any::<u64>()),
            ),
            1..20,
        )
    }

    fn build(records: &[Arb], first_seq: u64) -> Vec<u8> {
        let mut frame = Vec::new();
        begin_frame(&mut frame);
        for (i, (put, key, value, deadline)) in records.iter().enumerate() {
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
                    expire_at_ms: deadline.filter(|_| *put),
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

    /// A record as format version 1 wrote it (no flags, no deadline),
    /// byte by byte: it still decodes, as a put that never expires.
    #[test]
    fn a_version_1_record_still_decodes() {
        let mut old = vec![0u8; 4];
        old.extend_from_slice(&[1, 0, 2, 0, 3, 0, 0, 0]);
        old.extend_from_slice(&77u64.to_le_bytes());
        old.extend_from_slice(&5u32.to_le_bytes());
        old.extend_from_slice(b"kyval");
        let crc = crc32c::crc32c_append(SEED, &old[4..]);
        old[..4].copy_from_slice(&crc.to_le_bytes());
        let (record, len) = decode_record(&old, SEED).unwrap();
        assert_eq!(len, old.len());
        assert_eq!((record.key, record.value), (&b"ky"[..], &b"val"[..]));
        assert_eq!(
            (record.seq, record.segment, record.expire_at_ms),
            (77, 5, None)
        );
        let mut again = Vec::new();
        encode_record(&mut again, &record, SEED);
        assert_eq!(
            again, old,
            "a put without a deadline is written as version 1 wrote it"
        );
    }

    /// The deadline's bytes, exactly as `docs/format/wal.md` lays them out.
    #[test]
    fn a_deadline_sits_between_the_header_and_the_key() {
        let mut out = Vec::new();
        let record = Record {
            kind: RecordKind::Put,
            seq: 1,
            segment: 2,
            key: b"k",
            value: b"v",
            expire_at_ms: Some(0x0102_0304_0506_0708),
        };
        encode_record(&mut out, &record, SEED);
        assert_eq!(out.len(), 24 + 8 + 2);
        assert_eq!(out[5], FLAG_EXPIRES);
        assert_eq!(&out[24..32], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&out[32..], b"kv");
        assert_eq!(decode_record(&out, SEED).unwrap().0, record);
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
            let mut at = FRAME_HEADER_BYTES;
            for (i, ((start, r), (put, key, value, deadline))) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(*start, at);
                prop_assert_eq!(r.seq, first_seq + i as u64);
                prop_assert_eq!(r.key, key.as_slice());
                prop_assert_eq!(r.kind == RecordKind::Put, *put);
                if *put {
                    prop_assert_eq!(r.value, value.as_slice());
                    prop_assert_eq!(r.expire_at_ms, *deadline);
                } else {
                    prop_assert_eq!(r.expire_at_ms, None);
                }
                let extent = record_extent(&frame[at..]).unwrap();
                prop_assert_eq!(extent.bytes, r.encoded_bytes());
                prop_assert_eq!(&frame[at + extent.key_start..][..extent.key_len], r.key);
                at += extent.bytes;
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
            encode_record(&mut out, &Record { kind: RecordKind::Put, seq: 9, segment: 1, key: &key, value: &value, expire_at_ms: Some(1 << 40) }, SEED);
            let bit = bit % (out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_record(&out, SEED).is_err());
        }

        #[test]
        fn a_record_with_an_unknown_flag_or_a_deleted_deadline_is_refused(flag in 1u8..=255, put: bool) {
            let mut out = Vec::new();
            let kind = if put { RecordKind::Put } else { RecordKind::Delete };
            encode_record(&mut out, &Record { kind, seq: 9, segment: 1, key: b"k", value: b"", expire_at_ms: None }, SEED);
            // Flags are under the crc: fix it up, so only the flag is wrong.
            out[5] = flag;
            let crc = crc32c::crc32c_append(SEED, &out[4..]);
            out[..4].copy_from_slice(&crc.to_le_bytes());
            // A put that claims a deadline is now too short for it.
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
