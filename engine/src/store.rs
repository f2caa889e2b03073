//! The store: what every worker of an engine shares — the layout, the
//! sequence counter, the segment table, live bytes per segment, and the
//! engine-wide counters.
//!
//! The segment table is durable bookkeeping: a worker that skipped an
//! update of it (say, because another thread panicked while holding its
//! lock) would free a referenced segment or reuse a generation later. So a
//! poisoned lock is fatal here ([`Shared::segments`]), never skipped.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::EngineConfig;
use crate::layout::Layout;
use crate::segments::{LiveBytes, SegmentAllocator};
use crate::stats::Stats;

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
    pub checkpoints: crate::checkpoint::Checkpoints,
    pub stats: Arc<Stats>,
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

    pub fn space(&self) -> crate::Space {
        let (free, reserve, checkpoint) = {
            let s = self.segments();
            (s.free.len(), s.reserve, s.checkpoint_segments())
        };
        crate::Space {
            segment_bytes: self.layout.segment_bytes,
            segments: self.layout.segment_count.saturating_sub(1),
            free: free as u32,
            checkpoint: checkpoint as u32,
            reserve: reserve as u32,
            live_bytes: self.live.total(),
        }
    }
}
