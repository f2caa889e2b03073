//! What a namespace reports about itself.

/// How a namespace stores per-block metadata and end-to-end protection
/// information (PI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataFormat {
    /// No metadata: plain blocks. Every file-backed and simulated namespace.
    None,
    /// Metadata bytes per block, with the given PI type (0 = no PI) and
    /// whether the metadata is transferred inline at the end of each block
    /// (`extended`) or in a separate buffer. Filled in by the vfio backend.
    Protected {
        /// Metadata bytes per logical block.
        metadata_bytes: u16,
        /// NVMe PI type: 0 (none), 1, 2 or 3.
        pi_type: u8,
        /// Metadata is interleaved with data (MSET=1).
        extended: bool,
    },
}

/// The shape and abilities of a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per logical block: 512 or 4096 in practice, always a power of two.
    pub lba_bytes: u32,
    /// Capacity in logical blocks.
    pub lba_count: u64,
    /// Largest single transfer in bytes (a multiple of `lba_bytes`).
    pub transfer_bytes_max: u32,
    /// Metadata and protection-information format.
    pub metadata: MetadataFormat,
    /// Flush is meaningful (a volatile write cache exists). When false, a flush
    /// still succeeds and is a no-op, because every write is already durable.
    pub supports_flush: bool,
    /// Writes may carry force-unit-access.
    pub supports_fua: bool,
    /// Deallocate (TRIM / discard / hole punch) is supported.
    pub supports_deallocate: bool,
    /// After deallocate, the blocks read back as zeroes (NVMe DLFEAT=001b).
    /// When false, deallocated blocks read back unspecified contents.
    pub deallocate_reads_zeroes: bool,
}

impl Geometry {
    /// Capacity in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.lba_count * u64::from(self.lba_bytes)
    }
}
