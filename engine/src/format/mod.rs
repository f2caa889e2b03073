//! The on-disk format: the superblock, segment headers and log records.
//!
//! Every integer is fixed-width little-endian; nothing is `usize`. Every
//! structure carries a crc32c and enough identity (magic, namespace UUID,
//! segment id and generation, record sequence) that a stale or misdirected
//! block is detected rather than mistaken for data. The byte-level specs are
//! `docs/format/{superblock,wal,vlog}.md`.

pub mod checkpoint;
pub mod record;
pub mod segment;
pub mod superblock;

/// Why a structure read from media was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the structure needs.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The magic number is wrong: not this structure at all.
    #[error("bad magic {found:#x}")]
    BadMagic {
        /// What was found.
        found: u64,
    },
    /// The checksum does not match the contents.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// Stored crc32c.
        stored: u32,
        /// Computed crc32c.
        computed: u32,
    },
    /// A field is out of range or inconsistent.
    #[error("invalid field {field}: {value}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// Written by a newer format version.
    #[error("format version {found} is newer than this build's {supported}")]
    NewerVersion {
        /// Version found.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
}

pub(crate) fn need(bytes: &[u8], len: usize) -> Result<(), DecodeError> {
    if bytes.len() < len {
        return Err(DecodeError::Truncated {
            need: len,
            have: bytes.len(),
        });
    }
    Ok(())
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn check_crc(stored: u32, covered: &[&[u8]]) -> Result<(), DecodeError> {
    check_crc_seeded(stored, 0, covered)
}

/// The crc seed of a store: crc32c of its UUID. Frames and records are
/// checksummed from this seed, so a frame or record left on the media by
/// another store (an earlier format) never verifies as ours.
pub fn store_seed(uuid: &[u8; 16]) -> u32 {
    crc32c::crc32c(uuid)
}

pub(crate) fn check_crc_seeded(
    stored: u32,
    seed: u32,
    covered: &[&[u8]],
) -> Result<(), DecodeError> {
    let computed = covered
        .iter()
        .fold(seed, |c, part| crc32c::crc32c_append(c, part));
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(())
}
