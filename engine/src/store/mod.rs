//! The store: what every worker of an engine shares — the layout, the
//! sequence counter, the segment table, live bytes per segment, and the
//! engine-wide counters.
//!
//! The segment table is durable bookkeeping: a worker that skipped an
//! update of it (say, because another thread panicked while holding its
//! lock) would free a referenced segment or reuse a generation later. So a
//! poisoned lock is fatal here ([`Shared::segments`]), never skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::EngineConfig;
use crate::layout::Layout;
pub(crate) mod checkpoints;
pub(crate) mod segments;

use crate::stats::Stats;
use segments::{LiveBytes, SegmentAllocator};

/// How the namespace's segments are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// Bytes per segment.
    pub segment_bytes: u64,
    /// Segments for data (all but the reserved segment 0).
    pub segments: u32,
    /// Segments free now.
    pub free: u32,
    /// Segments holding index checkpoints.
    pub checkpoint: u32,
    /// Free segments kept for GC and deletes: user writes fail with
    /// `OutOfSpace` rather than take them.
    pub reserve: u32,
    /// Bytes of records the index points at.
    pub live_bytes: u64,
}

/// Segments and sequence numbers, shared by every worker of an engine.
pub(crate) struct Shared {
    pub layout: Layout,
    pub uuid: [u8; 16],
    /// crc seed of every frame and record of this store.
    pub seed: u32,
    pub config: EngineConfig,
    /// Number of workers (GC: worker `w` collects streams `s % workers == w`).
    pub workers: u16,
    pub next_seq: AtomicU64,
    /// The segment table; take it with [`Shared::segments`].
    pub segments: Mutex<SegmentAllocator>,
    /// Bytes the index points at, per segment.
    pub live: LiveBytes,
    /// Keys per shard (for the admin port's shard listing).
    pub shard_keys: Vec<AtomicU64>,
    /// GC storms requested so far (each worker starts one per increment).
    pub gc_storms: AtomicU64,
    /// GC starts on its own when fewer segments than this are free.
    pub gc_free_target: usize,
    /// Index checkpoints: the collection in progress and what GC honours.
    pub checkpoints: checkpoints::Checkpoints,
    /// Wakes the checkpoint driver: a collection is complete, enough
    /// records were written for the next checkpoint, or the engine stops.
    pub checkpoint_events: Signal,
    /// The sequence number at which enough records will have been written
    /// for a checkpoint (`u64::MAX`: none due by count). The worker whose
    /// commit passes it signals `checkpoint_events` once.
    pub checkpoint_due_seq: AtomicU64,
    /// Whether any flush on the namespace failed since open. A flush is one
    /// command for the whole namespace: a path's failed flush may have
    /// dropped another path's writes, and that path's own later flush
    /// succeeding proves nothing about them. Set by
    /// [`Shared::flush_failure`], read by every path before it counts a
    /// flush as proof.
    pub flush_failed: std::sync::atomic::AtomicBool,
    pub stats: Arc<Stats>,
}

/// A counter others can wait on: each `notify` wakes every waiter.
#[derive(Default)]
pub(crate) struct Signal {
    count: Mutex<u64>,
    changed: Condvar,
}

impl Signal {
    /// How many times it has been notified; pass it to [`Signal::wait`].
    pub fn count(&self) -> u64 {
        *self.count.lock().expect("a signal's lock is poisoned")
    }

    pub fn notify(&self) {
        *self.count.lock().expect("a signal's lock is poisoned") += 1;
        self.changed.notify_all();
    }

    /// Waits until notified after `seen` was read, or `timeout` passes.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        let count = self.count.lock().expect("a signal's lock is poisoned");
        let _ = self
            .changed
            .wait_timeout_while(count, timeout, |count| *count == seen)
            .expect("a signal's lock is poisoned");
    }
}

impl Shared {
    /// The segment table. Panics if another thread panicked while holding
    /// it: its state may be half-changed, and carrying on could free a
    /// segment that is still referenced.
    pub fn segments(&self) -> MutexGuard<'_, SegmentAllocator> {
        self.segments
            .lock()
            .expect("the segment table's lock is poisoned: a thread panicked while changing it")
    }

    /// Records a failed flush (any path's): counted, and from now on no
    /// flush proves anything until the next open.
    pub fn flush_failure(&self) {
        self.stats.flush_errors.fetch_add(1, Ordering::Relaxed);
        self.flush_failed.store(true, Ordering::Release);
    }

    /// Whether a flush failed since open (see [`Shared::flush_failed`]).
    /// No ordering closes the window in which another thread's flush has
    /// failed on the device but its completion is not handled yet; the
    /// deterministic simulator, stepping everything from one thread, has no
    /// such window.
    pub fn any_flush_failed(&self) -> bool {
        self.flush_failed.load(Ordering::Acquire)
    }

    /// Called after each commit: signals the checkpoint driver once when the
    /// records written reach the count for the next checkpoint.
    pub fn note_commit(&self) {
        let due = self.checkpoint_due_seq.load(Ordering::Relaxed);
        if self.next_seq.load(Ordering::Relaxed) >= due
            && self
                .checkpoint_due_seq
                .compare_exchange(due, u64::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.checkpoint_events.notify();
        }
    }

    pub fn space(&self) -> Space {
        let (free, reserve, checkpoint) = {
            let s = self.segments();
            (s.free.len(), s.reserve, s.checkpoint_segments())
        };
        Space {
            segment_bytes: self.layout.segment_bytes,
            segments: self.layout.segment_count.saturating_sub(1),
            free: free as u32,
            checkpoint: checkpoint as u32,
            reserve: reserve as u32,
            live_bytes: self.live.total(),
        }
    }
}
