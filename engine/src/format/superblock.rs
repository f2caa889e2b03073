//! The superblock: two copies at the start of the namespace, written
//! alternately, so that a torn superblock write leaves the other in force.
//! See `docs/format/superblock.md`.

use super::{check_crc, need, u16_at, u32_at, u64_at, DecodeError};

/// "VELTRIX1" read as a little-endian u64.
pub const SUPERBLOCK_MAGIC: u64 = u64::from_le_bytes(*b"VELTRIX1");
/// The format version this build writes and the newest it reads. Version
/// 2 added put records with a deadline (`docs/format/wal.md`); a version 1
/// store opens, and its first open by this build raises the superblock to
/// version 2, so that an older build, which would misread such a record,
/// refuses the store instead.
pub const FORMAT_VERSION: u32 = 2;
/// Encoded bytes (the rest of the block is zero).
pub const SUPERBLOCK_BYTES: usize = 96;

/// The namespace-wide description written at format time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Format version.
    pub version: u32,
    /// Random identity of this namespace, stamped into every segment header.
    pub uuid: [u8; 16],
    /// Increases with every superblock write; the valid copy with the higher
    /// generation wins.
    pub generation: u64,
    /// Logical block size the namespace was formatted with.
    pub lba_bytes: u32,
    /// Bytes per segment.
    pub segment_bytes: u64,
    /// Segments, including segment 0 (which holds the superblocks).
    pub segment_count: u32,
    /// Logical shards (1024).
    pub shard_count: u16,
    /// Capacity of the namespace in blocks at format time.
    pub lba_count: u64,
}

impl Superblock {
    /// Encodes into `out[..SUPERBLOCK_BYTES]`.
    pub fn encode(&self, out: &mut [u8]) {
        assert!(out.len() >= SUPERBLOCK_BYTES);
        let b = &mut out[..SUPERBLOCK_BYTES];
        b.fill(0);
        b[0..8].copy_from_slice(&SUPERBLOCK_MAGIC.to_le_bytes());
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        // 12..16: crc32c of bytes 8..12 and 16..SUPERBLOCK_BYTES.
        b[16..32].copy_from_slice(&self.uuid);
        b[32..40].copy_from_slice(&self.generation.to_le_bytes());
        b[40..44].copy_from_slice(&self.lba_bytes.to_le_bytes());
        b[44..46].copy_from_slice(&self.shard_count.to_le_bytes());
        // 46..48 reserved.
        b[48..56].copy_from_slice(&self.segment_bytes.to_le_bytes());
        b[56..60].copy_from_slice(&self.segment_count.to_le_bytes());
        // 60..64 reserved.
        b[64..72].copy_from_slice(&self.lba_count.to_le_bytes());
        // 72..96 reserved for encryption (key-encryption-key id) and
        // checkpoint locations.
        let crc = crc32c::crc32c_append(crc32c::crc32c(&b[8..12]), &b[16..]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes and verifies one copy.
    pub fn decode(bytes: &[u8]) -> Result<Superblock, DecodeError> {
        need(bytes, SUPERBLOCK_BYTES)?;
        let b = &bytes[..SUPERBLOCK_BYTES];
        let magic = u64_at(b, 0);
        if magic != SUPERBLOCK_MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        check_crc(u32_at(b, 12), &[&b[8..12], &b[16..]])?;
        let version = u32_at(b, 8);
        if version > FORMAT_VERSION {
            return Err(DecodeError::NewerVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if b[46..48]
            .iter()
            .chain(&b[60..64])
            .chain(&b[72..])
            .any(|&x| x != 0)
        {
            return Err(DecodeError::Invalid {
                field: "reserved bytes",
                value: 0,
            });
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        let sb = Superblock {
            version,
            uuid,
            generation: u64_at(b, 32),
            lba_bytes: u32_at(b, 40),
            shard_count: u16_at(b, 44),
            segment_bytes: u64_at(b, 48),
            segment_count: u32_at(b, 56),
            lba_count: u64_at(b, 64),
        };
        sb.validate()?;
        Ok(sb)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        let invalid = |field, value| Err(DecodeError::Invalid { field, value });
        if !self.lba_bytes.is_power_of_two() || !(512..=4096).contains(&self.lba_bytes) {
            return invalid("lba_bytes", u64::from(self.lba_bytes));
        }
        if self.segment_bytes == 0 || !self.segment_bytes.is_multiple_of(u64::from(self.lba_bytes))
        {
            return invalid("segment_bytes", self.segment_bytes);
        }
        if self.version == 0 {
            return invalid("version", 0);
        }
        if self.segment_count < 2 {
            return invalid("segment_count", u64::from(self.segment_count));
        }
        if self.shard_count != crate::shard::SHARD_COUNT {
            return invalid("shard_count", u64::from(self.shard_count));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb() -> impl Strategy<Value = Superblock> {
        (
            any::<[u8; 16]>(),
            any::<u64>(),
            0u32..3,
            1u64..1000,
            2u32..100_000,
            any::<u64>(),
        )
            .prop_map(
                |(uuid, generation, lba_shift, segment_lbas, segment_count, lba_count)| {
                    let lba_bytes = 1024u32 << lba_shift;
                    Superblock {
                        version: FORMAT_VERSION,
                        uuid,
                        generation,
                        lba_bytes,
                        segment_bytes: segment_lbas * u64::from(lba_bytes),
                        segment_count,
                        shard_count: crate::shard::SHARD_COUNT,
                        lba_count,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(sb in arb()) {
            let mut block = [0u8; 512];
            sb.encode(&mut block);
            prop_assert_eq!(Superblock::decode(&block), Ok(sb));
        }

        #[test]
        fn any_single_bit_flip_is_rejected(sb in arb(), bit in 0usize..SUPERBLOCK_BYTES * 8) {
            let mut block = [0u8; SUPERBLOCK_BYTES];
            sb.encode(&mut block);
            block[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Superblock::decode(&block).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Superblock::decode(&bytes);
        }
    }

    /// A small valid superblock of format `version`.
    fn small(version: u32) -> Superblock {
        Superblock {
            version,
            uuid: [1; 16],
            generation: 1,
            lba_bytes: 4096,
            segment_bytes: 1 << 20,
            segment_count: 4,
            shard_count: crate::shard::SHARD_COUNT,
            lba_count: 1024,
        }
    }

    /// A store formatted before key expiry (version 1) still opens.
    #[test]
    fn version_1_is_still_read() {
        let sb = small(1);
        let mut block = [0u8; SUPERBLOCK_BYTES];
        sb.encode(&mut block);
        assert_eq!(Superblock::decode(&block), Ok(sb));
    }

    #[test]
    fn newer_version_is_refused_by_name() {
        let sb = small(FORMAT_VERSION + 1);
        let mut block = [0u8; SUPERBLOCK_BYTES];
        sb.encode(&mut block);
        assert!(matches!(
            Superblock::decode(&block),
            Err(DecodeError::NewerVersion {
                found: 3,
                supported: 2
            })
        ));
    }
}
