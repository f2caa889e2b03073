//! Counters the engine keeps for metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::Location;

/// The most corruption locations kept for reporting.
pub const CORRUPTION_LOCATIONS_MAX: usize = 1024;

/// Engine-wide counters, updated with relaxed atomics.
#[derive(Debug)]
pub struct Stats {
    /// Keys in the index.
    pub keys: AtomicU64,
    /// Group commits started.
    pub batches: AtomicU64,
    /// Records written.
    pub records: AtomicU64,
    /// Flushes that completed.
    pub flushes: AtomicU64,
    /// Flushes that failed.
    pub flush_errors: AtomicU64,
    /// Batches failed by a write error.
    pub write_errors: AtomicU64,
    /// Bytes submitted for writing by the log.
    pub bytes_written: AtomicU64,
    /// Bytes read for gets.
    pub bytes_read: AtomicU64,
    /// Gets that read a record.
    pub gets: AtomicU64,
    /// Corrupt records detected on reads.
    pub corruption_detected: AtomicU64,
    /// GC victims started.
    pub gc_runs: AtomicU64,
    /// Segments GC freed.
    pub gc_segments_freed: AtomicU64,
    /// Index checkpoints made durable.
    pub checkpoints: AtomicU64,
    /// Index checkpoints that failed.
    pub checkpoint_failures: AtomicU64,
    /// Bytes of checkpoint bodies written.
    pub checkpoint_bytes: AtomicU64,
    /// The engine's next sequence number when the last durable checkpoint
    /// was taken (0: none this run).
    pub checkpoint_next_seq: AtomicU64,
    /// Bytes GC read from victims.
    pub gc_bytes_read: AtomicU64,
    /// Records GC rewrote.
    pub gc_records_relocated: AtomicU64,
    /// Keys that have a deadline (expiring or already expired but not yet
    /// reclaimed): INFO's `expires=`.
    pub expiring_keys: AtomicU64,
    /// Expired keys whose delete is durable (by the worker's reclaimer or
    /// by GC in place of relocating them).
    pub expired_reclaimed: AtomicU64,
    /// Bytes of the expired records those deletes made garbage.
    pub expired_bytes_reclaimed: AtomicU64,
    /// Victims left in use because records of shards owned by other
    /// workers remained.
    pub gc_victims_blocked: AtomicU64,
    /// Victims left in use because GC found damage in them.
    pub gc_victims_damaged: AtomicU64,
    /// Gets answered from a worker's value cache, with no device read.
    pub cache_hits: AtomicU64,
    /// Gets the value cache could not answer.
    pub cache_misses: AtomicU64,
    /// Bytes charged to resident entries of every worker's value cache.
    pub cache_bytes: AtomicU64,
    /// Value cache entries evicted to make room.
    pub cache_evictions: AtomicU64,
    /// Where (the first [`CORRUPTION_LOCATIONS_MAX`]).
    pub corruption_locations: Mutex<Vec<Location>>,
    /// Requests answered, by kind ([`OpKind`]) and result ([`OpResult`]).
    pub ops: [[AtomicU64; OpResult::COUNT]; OpKind::COUNT],
    /// Request latency from arrival at a worker to its answer, by kind.
    pub op_latency: [Histogram; OpKind::COUNT],
    /// Flush latency (submission to completion) of group commits.
    pub flush_latency: Histogram,
    /// Records per group commit.
    pub batch_records: Histogram,
    /// Bytes per group commit (the frame, padded).
    pub batch_bytes: Histogram,
    /// Writes refused because the namespace is full.
    pub out_of_space: AtomicU64,
    /// Shards moved between workers.
    pub shard_moves: AtomicU64,
    /// Workers fenced after a failed flush (writes refused until restart).
    pub fenced_workers: AtomicU64,
    /// Block-layer commands, by [`IoKind`]: submitted, completed, failed.
    pub io_submitted: [AtomicU64; IoKind::COUNT],
    pub io_completed: [AtomicU64; IoKind::COUNT],
    pub io_failed: [AtomicU64; IoKind::COUNT],
    /// Commands the queue pair refused as full and the engine retried.
    pub io_queue_full: AtomicU64,
    /// Commands in flight on every worker's queue pair.
    pub io_in_flight: AtomicU64,
}

/// What a request asked for, for the per-kind counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Get,
    Exists,
    Put,
    PutIf,
    PutGet,
    Modify,
    Delete,
    Batch,
    Scan,
}

impl OpKind {
    pub const COUNT: usize = 9;
    pub const ALL: [OpKind; OpKind::COUNT] = [
        OpKind::Get,
        OpKind::Exists,
        OpKind::Put,
        OpKind::PutIf,
        OpKind::PutGet,
        OpKind::Modify,
        OpKind::Delete,
        OpKind::Batch,
        OpKind::Scan,
    ];

    /// The label value in metrics.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Exists => "exists",
            OpKind::Put => "put",
            OpKind::PutIf => "put_if",
            OpKind::PutGet => "put_get",
            OpKind::Modify => "modify",
            OpKind::Delete => "delete",
            OpKind::Batch => "batch",
            OpKind::Scan => "scan",
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Done, or a value returned.
    Ok,
    /// The key was absent (a get of nothing, a delete of nothing).
    NotFound,
    /// A conditional put whose condition did not hold.
    NotApplied,
    /// Failed.
    Error,
}

impl OpResult {
    pub const COUNT: usize = 4;
    pub const ALL: [OpResult; OpResult::COUNT] = [
        OpResult::Ok,
        OpResult::NotFound,
        OpResult::NotApplied,
        OpResult::Error,
    ];

    /// The label value in metrics.
    pub fn name(self) -> &'static str {
        match self {
            OpResult::Ok => "ok",
            OpResult::NotFound => "not_found",
            OpResult::NotApplied => "not_applied",
            OpResult::Error => "error",
        }
    }
}

/// Block-layer command kinds, for the I/O counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoKind {
    Read,
    Write,
    Flush,
    Other,
}

impl IoKind {
    pub const COUNT: usize = 4;
    pub const ALL: [IoKind; IoKind::COUNT] =
        [IoKind::Read, IoKind::Write, IoKind::Flush, IoKind::Other];

    /// The label value in metrics.
    pub fn name(self) -> &'static str {
        match self {
            IoKind::Read => "read",
            IoKind::Write => "write",
            IoKind::Flush => "flush",
            IoKind::Other => "other",
        }
    }
}

/// Upper bounds of the latency buckets, in microseconds.
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000, 5_000_000,
];

/// A histogram with fixed bucket bounds and atomic counts: recording is
/// two relaxed increments and an add, with no lock.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// `buckets[i]` counts values `<= bounds[i]` and above the bound
    /// before; the last counts the rest.
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(&LATENCY_BOUNDS_US)
    }
}

impl Histogram {
    /// A histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one value.
    pub fn record(&self, value: u64) {
        let at = self.bounds.partition_point(|&b| b < value);
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The bucket bounds.
    pub fn bounds(&self) -> &'static [u64] {
        self.bounds
    }

    /// Cumulative counts per bound, then the total count (the `+Inf`
    /// bucket), and the sum of the values.
    pub fn snapshot(&self) -> (Vec<u64>, u64, u64) {
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        let mut total = 0;
        for b in &self.buckets {
            total += b.load(Ordering::Relaxed);
            cumulative.push(total);
        }
        cumulative.pop();
        (cumulative, total, self.sum.load(Ordering::Relaxed))
    }
}

/// Bounds for counts of records per group commit.
pub const RECORD_COUNT_BOUNDS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024];
/// Bounds for bytes per group commit.
pub const BYTE_BOUNDS: [u64; 10] = [
    4096,
    8192,
    16_384,
    65_536,
    262_144,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
    256 << 20,
];

impl Default for Stats {
    fn default() -> Self {
        Stats {
            keys: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            records: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flush_errors: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            corruption_detected: AtomicU64::new(0),
            gc_runs: AtomicU64::new(0),
            gc_segments_freed: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            checkpoint_failures: AtomicU64::new(0),
            checkpoint_bytes: AtomicU64::new(0),
            checkpoint_next_seq: AtomicU64::new(0),
            gc_bytes_read: AtomicU64::new(0),
            gc_records_relocated: AtomicU64::new(0),
            expiring_keys: AtomicU64::new(0),
            expired_reclaimed: AtomicU64::new(0),
            expired_bytes_reclaimed: AtomicU64::new(0),
            gc_victims_blocked: AtomicU64::new(0),
            gc_victims_damaged: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_bytes: AtomicU64::new(0),
            cache_evictions: AtomicU64::new(0),
            corruption_locations: Mutex::new(Vec::new()),
            ops: Default::default(),
            op_latency: Default::default(),
            flush_latency: Histogram::default(),
            batch_records: Histogram::new(&RECORD_COUNT_BOUNDS),
            batch_bytes: Histogram::new(&BYTE_BOUNDS),
            out_of_space: AtomicU64::new(0),
            shard_moves: AtomicU64::new(0),
            fenced_workers: AtomicU64::new(0),
            io_submitted: Default::default(),
            io_completed: Default::default(),
            io_failed: Default::default(),
            io_queue_full: AtomicU64::new(0),
            io_in_flight: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounded_above() {
        let h = Histogram::new(&[10, 100]);
        for v in [0, 10, 11, 100, 101, 5000] {
            h.record(v);
        }
        let (cumulative, count, sum) = h.snapshot();
        assert_eq!(cumulative, vec![2, 4]);
        assert_eq!(count, 6);
        assert_eq!(sum, 5222);
    }
}
