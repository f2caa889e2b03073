//! Segment headers: the first block of every segment in use. They say which
//! log stream the segment belongs to and its place in that stream. See
//! `docs/format/wal.md`.

use super::{check_crc, need, u16_at, u32_at, u64_at, DecodeError};

/// "VXSEGMT1" as a little-endian u64.
pub const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"VXSEGMT1");
/// Encoded bytes (the rest of the block is zero).
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// A log segment (WAL records with their values). The other kind holds part
/// of an index checkpoint (`format::checkpoint::KIND_CHECKPOINT`).
pub const KIND_LOG: u32 = 1;

/// The header of a segment in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment kind ([`KIND_LOG`]).
    pub kind: u32,
    /// The namespace's UUID: a segment of another namespace is foreign.
    pub uuid: [u8; 16],
    /// Namespace-wide counter, increased each time any segment is opened.
    /// Orders a stream's segments, and tells a reused segment's new life from
    /// its old one.
    pub generation: u64,
    /// The segment's own index: a header read from the wrong place is caught.
    pub segment: u32,
    /// The log stream (worker) the segment belongs to.
    pub stream: u16,
    /// Sequence number of the stream's last record before this segment (0:
    /// none). Recovery uses it to tell a clean segment switch from a lost
    /// frame at the end of the previous segment.
    pub prev_seq: u64,
    /// Data-encryption key id (0: none). Reserved for encryption at rest.
    pub key_id: u64,
}

impl SegmentHeader {
    /// Encodes into `out[..SEGMENT_HEADER_BYTES]`.
    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..SEGMENT_HEADER_BYTES];
        b.fill(0);
        b[0..8].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        b[12..16].copy_from_slice(&self.kind.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..40].copy_from_slice(&self.generation.to_le_bytes());
        b[40..44].copy_from_slice(&self.segment.to_le_bytes());
        b[44..46].copy_from_slice(&self.stream.to_le_bytes());
        b[48..56].copy_from_slice(&self.prev_seq.to_le_bytes());
        b[56..64].copy_from_slice(&self.key_id.to_le_bytes());
        let crc = crc32c::crc32c(&b[12..]);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes and verifies a log segment's header.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
        Self::decode_kind(bytes, KIND_LOG)
    }

    /// Decodes and verifies the header of a segment of `kind`.
    pub fn decode_kind(bytes: &[u8], kind: u32) -> Result<SegmentHeader, DecodeError> {
        need(bytes, SEGMENT_HEADER_BYTES)?;
        let b = &bytes[..SEGMENT_HEADER_BYTES];
        let magic = u64_at(b, 0);
        if magic != SEGMENT_MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        check_crc(u32_at(b, 8), &[&b[12..]])?;
        if b[46..48] != [0, 0] {
            return Err(DecodeError::Invalid {
                field: "reserved bytes",
                value: u64::from(u16_at(b, 46)),
            });
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        let header = SegmentHeader {
            kind: u32_at(b, 12),
            uuid,
            generation: u64_at(b, 32),
            segment: u32_at(b, 40),
            stream: u16_at(b, 44),
            prev_seq: u64_at(b, 48),
            key_id: u64_at(b, 56),
        };
        if header.kind != kind {
            return Err(DecodeError::Invalid {
                field: "segment kind",
                value: u64::from(header.kind),
            });
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(uuid in any::<[u8; 16]>(), generation: u64, segment: u32, stream: u16, prev_seq: u64, key_id: u64) {
            let h = SegmentHeader { kind: KIND_LOG, uuid, generation, segment, stream, prev_seq, key_id };
            let mut b = [0u8; SEGMENT_HEADER_BYTES];
            h.encode(&mut b);
            prop_assert_eq!(SegmentHeader::decode(&b), Ok(h));
        }

        #[test]
        fn bit_flips_are_rejected(bit in 0usize..SEGMENT_HEADER_BYTES * 8) {
            let h = SegmentHeader { kind: KIND_LOG, uuid: [7; 16], generation: 9, segment: 3, stream: 1, prev_seq: 5, key_id: 0 };
            let mut b = [0u8; SEGMENT_HEADER_BYTES];
            h.encode(&mut b);
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(SegmentHeader::decode(&b).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = SegmentHeader::decode(&bytes);
        }
    }
}
