//! Counters the engine keeps for metrics.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use crate::error::Location;

/// The most corruption locations kept for reporting.
pub const CORRUPTION_LOCATIONS_MAX: usize = 1024;

/// Engine-wide counters, updated with relaxed atomics.
#[derive(Default, Debug)]
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
}
