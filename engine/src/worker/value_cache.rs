//! The worker's value cache: what is cached when, and how staleness is
//! prevented (`docs/cache.md`).
//!
//! - A get that hits is answered from memory, with no device read.
//! - A get that misses reads the device as before; the verified value is
//!   cached only if the index still points at the record that was read (a
//!   write that committed meanwhile wins).
//! - A committed put writes its value through, after the flush, when the
//!   index is updated; a committed delete invalidates. Writes that fail, and
//!   conditional puts that do not apply, change nothing.
//! - Each entry carries its shard's epoch; releasing or adopting a shard
//!   bumps the epoch, so entries cached before a shard move are never served.
//! - The cache lives in memory only: after a restart it starts empty.
//! - It sits behind a mutex so that `Engine::get` can answer a hit on the
//!   caller's thread ([`SharedCache`]). The worker holds the lock across a
//!   whole batch's write-through, so such a reader sees all of a committed
//!   batch or none of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::WorkerCore;
use crate::cache::{Lirs, LirsConfig, ValueCache};
use crate::format::record::{decode_record, RecordKind};
use crate::index::ValuePointer;
use crate::shard::SHARD_COUNT;
use crate::stats::Stats;

/// Bytes charged per entry on top of its key and value: the entry's node,
/// its hash-table slot and two allocation headers, rounded up.
pub(crate) const ENTRY_OVERHEAD_BYTES: usize = 128;

#[derive(Clone)]
struct Cached {
    value: Arc<[u8]>,
    /// The shard's epoch when cached.
    epoch: u64,
}

/// A worker's cache, shared with callers of `Engine::get` on other threads.
pub(crate) type SharedCache = Arc<Mutex<WorkerCache>>;

/// A reader of one worker's cache for other threads: `Engine::get` answers
/// hits with it on the caller's thread, and the simulator reads through it
/// between steps, as such a caller would.
#[derive(Clone)]
pub struct CacheReader {
    cache: SharedCache,
    stats: Arc<Stats>,
}

impl CacheReader {
    pub(crate) fn new(cache: SharedCache, stats: Arc<Stats>) -> CacheReader {
        CacheReader { cache, stats }
    }

    /// The cached value of `key`, if the worker's cache holds a current
    /// one; counts only hits (a miss goes on to the worker, which counts
    /// it).
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        lock(&self.cache).get_hit(key, &self.stats)
    }
}

/// Locks a worker's cache. A panic while it was held left it consistent
/// (every method leaves it whole), so a poisoned lock is taken anyway.
pub(crate) fn lock(cache: &SharedCache) -> MutexGuard<'_, WorkerCache> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One worker's cache, or nothing when the budget is 0.
pub(crate) struct WorkerCache {
    lirs: Option<Lirs<Cached>>,
    shard_epochs: Vec<u64>,
    published_bytes: u64,
    published_evictions: u64,
}

impl WorkerCache {
    pub(crate) fn new(capacity_bytes: usize) -> WorkerCache {
        let lirs = (capacity_bytes > 0).then(|| Lirs::new(&LirsConfig::new(capacity_bytes)));
        WorkerCache {
            lirs,
            shard_epochs: vec![0; usize::from(SHARD_COUNT)],
            published_bytes: 0,
            published_evictions: 0,
        }
    }

    fn charge(key: &[u8], value_len: usize) -> usize {
        key.len() + value_len + ENTRY_OVERHEAD_BYTES
    }

    /// The cached value of `key` if current, counting only a hit: for a
    /// caller that falls back to the worker on a miss (which counts it).
    pub(crate) fn get_hit(&mut self, key: &[u8], stats: &Stats) -> Option<Vec<u8>> {
        let lirs = self.lirs.as_mut()?;
        let epoch = self.shard_epochs[usize::from(WorkerCore::shard_of(key))];
        let value = lirs
            .get(key)
            .filter(|cached| cached.epoch == epoch)
            .map(|cached| cached.value.to_vec())?;
        stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(value)
    }

    /// The cached value of `key` if current; counts a hit or a miss.
    fn get(&mut self, key: &[u8], stats: &Stats) -> Option<Vec<u8>> {
        let lirs = self.lirs.as_mut()?;
        let epoch = self.shard_epochs[usize::from(WorkerCore::shard_of(key))];
        let found = match lirs.get(key) {
            Some(cached) if cached.epoch == epoch => Some(cached.value.to_vec()),
            Some(_) => {
                // Cached before its shard moved: never served.
                lirs.remove(key);
                None
            }
            None => None,
        };
        let counter = if found.is_some() {
            &stats.cache_hits
        } else {
            &stats.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.publish(stats);
        found
    }

    /// Caches `value` as the latest value of `key`, or forgets `key` when
    /// `value` is `None`.
    fn write(&mut self, key: &[u8], value: Option<&[u8]>, stats: &Stats) {
        let Some(lirs) = self.lirs.as_mut() else {
            return;
        };
        match value {
            Some(value) => {
                let epoch = self.shard_epochs[usize::from(WorkerCore::shard_of(key))];
                let charge = Self::charge(key, value.len());
                let cached = Cached {
                    value: Arc::from(value),
                    epoch,
                };
                lirs.insert(key, cached, charge);
            }
            None => {
                lirs.remove(key);
            }
        }
        self.publish(stats);
    }

    /// Makes every entry of `shard` unservable (lazily: they age out).
    pub(crate) fn forget_shard(&mut self, shard: u16) {
        self.shard_epochs[usize::from(shard)] += 1;
    }

    fn publish(&mut self, stats: &Stats) {
        let Some(lirs) = self.lirs.as_ref() else {
            return;
        };
        let bytes = lirs.resident_bytes() as u64;
        let evictions = lirs.evictions();
        add_delta(&stats.cache_bytes, self.published_bytes, bytes);
        stats
            .cache_evictions
            .fetch_add(evictions - self.published_evictions, Ordering::Relaxed);
        self.published_bytes = bytes;
        self.published_evictions = evictions;
    }
}

fn add_delta(counter: &AtomicU64, before: u64, after: u64) {
    if after >= before {
        counter.fetch_add(after - before, Ordering::Relaxed);
    } else {
        counter.fetch_sub(before - after, Ordering::Relaxed);
    }
}

impl WorkerCore {
    /// A get served from the cache, if the key's shard is owned and its
    /// value is cached.
    pub(super) fn cache_get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        if !self.owns(WorkerCore::shard_of(key)) {
            return None;
        }
        lock(&self.cache).get(key, &self.shared.stats)
    }

    /// Caches a value read from the device, unless the index has moved on
    /// from the record it came from or the key expires (a reader on
    /// another thread has no clock to check a deadline against).
    pub(super) fn cache_fill(&mut self, key: &[u8], pointer: ValuePointer, value: &[u8]) {
        let Some(art) = self.shards.get(&WorkerCore::shard_of(key)) else {
            return;
        };
        if art.get(key) == Some(pointer) && art.deadline(key).is_none() {
            lock(&self.cache).write(key, Some(value), &self.shared.stats);
        }
    }

    /// Writes a committed update through: the value of the put record at
    /// `pointer` in the frame just made durable (`frame` starts at segment
    /// offset `frame_offset`), or an invalidation for a delete.
    pub(super) fn cache_commit(
        cache: &mut WorkerCache,
        stats: &Stats,
        seed: u32,
        key: &[u8],
        put: Option<(&[u8], u32, ValuePointer)>,
    ) {
        let value = put.and_then(|(frame, frame_offset, pointer)| {
            let start = (pointer.offset - frame_offset) as usize;
            let bytes = frame.get(start..start + pointer.length as usize)?;
            // The frame is ours, in memory; decoding checks it once more.
            match decode_record(bytes, seed) {
                Ok((record, _)) if record.kind == RecordKind::Put && record.key == key => {
                    Some(record.value)
                }
                _ => None,
            }
        });
        cache.write(key, value, stats);
    }
}
