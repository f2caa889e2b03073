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
    /// GC victims started.
    pub gc_runs: AtomicU64,
    /// Segments GC freed.
    pub gc_segments_freed: AtomicU64,
    /// Bytes GC read from victims.
    pub gc_bytes_read: AtomicU64,
    /// Records GC rewrote.
    pub gc_records_relocated: AtomicU64,
    /// Victims left in use because records of shards owned by other
    /// workers remained.
    pub gc_victims_blocked: AtomicU64,
    /// Victims left in use because GC found damage in them.
    pub gc_victims_damaged: AtomicU64,
    /// Where (the first [`CORRUPTION_LOCATIONS_MAX`]).
    pub corruption_locations: Mutex<Vec<Location>>,
}
