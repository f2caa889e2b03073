//! The engine's limits and tunables.

/// Tunables for an open engine. Limits are named `*_max`, units last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Worker threads (0: one per available core).
    pub workers: usize,
    /// How long the first write of a batch may wait for company, in µs.
    /// 0 commits as soon as the worker is free.
    pub commit_interval_us: u64,
    /// A batch closes once its records reach this many bytes.
    pub batch_bytes_max: usize,
    /// Longest key.
    pub key_bytes_max: usize,
    /// Longest value.
    pub value_bytes_max: usize,
    /// Depth of each worker's queue pair.
    pub queue_depth: u32,
    /// Requests a worker's inbox holds before callers block.
    pub inbox_max: usize,
    /// Reads a worker keeps in flight.
    pub reads_in_flight_max: usize,
    /// Percent of a worker's I/O bytes that GC may use while foreground
    /// requests are waiting (1..=100; GC runs freely when none wait).
    pub gc_io_share: u8,
    /// The value cache's budget in bytes, split evenly over the workers
    /// (`docs/cache.md`). 0 disables the cache.
    pub cache_bytes: usize,
    /// Take an index checkpoint once this many records, and at least as
    /// many as there are keys, were written since the last one; and at a
    /// clean shutdown after any write. 0: only when asked
    /// (`docs/format/checkpoint.md`).
    pub checkpoint_records: u64,
    /// Also take one when this many seconds passed since the last and
    /// anything was written (0: no time trigger). Ignored when
    /// `checkpoint_records` is 0.
    pub checkpoint_interval_s: u64,
    /// Erase both checkpoint roots at open and replay the whole log: the way
    /// out when both checkpoints are damaged (`OpenError::CheckpointCorrupt`).
    /// A key whose delete record GC already dropped may come back.
    pub discard_checkpoints: bool,
    /// Commit a single-write batch as one write with force-unit-access
    /// instead of a write then a flush, where the namespace supports FUA.
    /// Off by default: in the hardware tier's only NVMe controller (QEMU's)
    /// a trace of the block layer shows no write carrying FUA, and that
    /// tier checks that acknowledged writes were flushed; it cannot vouch
    /// for FUA commits yet (`docs/format/wal.md`).
    pub fua_commit: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 0,
            commit_interval_us: 50,
            batch_bytes_max: 1 << 20,
            key_bytes_max: 1024,
            value_bytes_max: 4 << 20,
            queue_depth: 128,
            inbox_max: 4096,
            reads_in_flight_max: 64,
            gc_io_share: 10,
            cache_bytes: 256 << 20,
            checkpoint_records: 1 << 20,
            checkpoint_interval_s: 300,
            discard_checkpoints: false,
            fua_commit: false,
        }
    }
}

/// How to format a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatOptions {
    /// Bytes per segment; a multiple of the LBA size.
    pub segment_bytes: u64,
    /// Erase an existing VeltrixDB store.
    pub force: bool,
    /// The new store's identity. The caller supplies the randomness: the
    /// engine has no random source of its own.
    pub uuid: [u8; 16],
}

impl FormatOptions {
    /// 8 MiB segments, not forced.
    pub fn new(uuid: [u8; 16]) -> Self {
        FormatOptions {
            segment_bytes: 8 << 20,
            force: false,
            uuid,
        }
    }
}
