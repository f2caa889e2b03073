//! The engine's errors.

use crate::format::DecodeError;
use crate::modify::ModifyError;

/// Where corrupt data was found on the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Segment index.
    pub segment: u32,
    /// Byte offset within the segment.
    pub offset: u32,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segment {} offset {}", self.segment, self.offset)
    }
}

/// Why `Engine::open` or `Engine::format` failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Neither superblock copy is a VeltrixDB superblock.
    #[error("namespace holds no VeltrixDB superblock (format it first)")]
    NotFormatted,
    /// Written by a newer VeltrixDB.
    #[error("namespace was formatted by a newer VeltrixDB (format version {found}; this build reads up to {supported})")]
    NewerVersion {
        /// Version on the namespace.
        found: u32,
        /// Newest this build reads.
        supported: u32,
    },
    /// Both superblock copies fail their checksum.
    #[error("both superblock copies are corrupt: A: {first}; B: {second}")]
    SuperblockCorrupt {
        /// Copy A's error.
        first: DecodeError,
        /// Copy B's error.
        second: DecodeError,
    },
    /// `format` found an existing VeltrixDB superblock and was not forced.
    #[error(
        "namespace already holds a VeltrixDB store (uuid {uuid}); format with force to erase it"
    )]
    AlreadyFormatted {
        /// The existing store's UUID, hex.
        uuid: String,
    },
    /// The superblock disagrees with the namespace's geometry.
    #[error("superblock geometry does not match the namespace: {0}")]
    GeometryMismatch(String),
    /// The configuration is invalid.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// Index checkpoints were written to both root slots and neither can
    /// be loaded: a full replay could bring back deleted keys, so the store
    /// is not opened.
    #[error(
        "both index checkpoints are unusable: {0}. Opening anyway needs discard_checkpoints \
         (veltrixd --discard-checkpoints): the whole log is then replayed, and deleted keys \
         may come back"
    )]
    CheckpointCorrupt(String),
    /// The block layer refused.
    #[error(transparent)]
    Device(#[from] nvme::OpenError),
    /// An I/O error while reading the superblock or replaying the log.
    #[error("I/O error during open: {0}")]
    Io(#[from] nvme::IoError),
}

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The key is empty or longer than `key_bytes_max`.
    #[error("key length {len} outside 1..={max}")]
    KeyLength {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is longer than `value_bytes_max`.
    #[error("value length {len} exceeds {max}")]
    ValueLength {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The batch is larger than a segment can hold.
    #[error("batch of {bytes} bytes exceeds the largest frame ({max})")]
    BatchTooLarge {
        /// Encoded bytes.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Stored data failed verification. Never returned as data.
    #[error("corrupt record at {location}: {detail}")]
    Corruption {
        /// Where.
        location: Location,
        /// What failed.
        detail: String,
    },
    /// The device failed the I/O.
    #[error("I/O error: {0}")]
    Io(nvme::IoError),
    /// A flush failed earlier; writes are refused until the engine is
    /// reopened and recovers what is durable (see docs/format/wal.md).
    #[error("writes fenced after a failed flush ({0}); restart to recover")]
    Fenced(nvme::IoError),
    /// No free segment is left for user writes (the rest is GC's reserve).
    #[error(
        "namespace is full: writes are refused until deletes and GC free space; reads still work"
    )]
    OutOfSpace,
    /// The engine is shutting down.
    #[error("engine is shutting down")]
    ShuttingDown,
    /// An index checkpoint could not be made durable (no room for it, an
    /// I/O error, or checkpoints fenced after a failed root write); the
    /// log still holds everything, so nothing is lost.
    #[error("index checkpoint failed; see the log and veltrix_checkpoint_failures_total")]
    CheckpointFailed,
    /// A request reached a worker that does not own its shard (an engine
    /// bug: the router forwards during shard moves).
    #[error("internal: shard {shard} is not owned by this worker")]
    NotOwner {
        /// The shard.
        shard: u16,
    },
    /// The request queue is full.
    #[error("busy: request queue full")]
    Busy,
    /// A read-modify-write refused the key's value or its own argument
    /// (not a number, an overflow); nothing was written.
    #[error(transparent)]
    Modify(ModifyError),
}
