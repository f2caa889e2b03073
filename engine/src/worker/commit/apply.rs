//! Applying a durable batch: the index, the live bytes per segment, the key
//! counts and the value cache's write-through.

use std::sync::atomic::Ordering;

use super::IndexUpdate;
use crate::index::Art;
use crate::store::Shared;
use crate::worker::{value_cache, WorkerCore};

/// Applies `updates`, whose frame (now durable) is the worker's staging
/// buffer, written at `frame_offset` of its segment.
pub(super) fn apply_updates(core: &mut WorkerCore, updates: Vec<IndexUpdate>, frame_offset: u32) {
    // Held across the batch: a reader on another thread sees all of its
    // write-through or none.
    let cache = std::sync::Arc::clone(&core.cache);
    let mut cache = value_cache::lock(&cache);
    for update in updates {
        let art = core.shards.get_mut(&update.shard).unwrap_or_else(|| {
            panic!(
                "shard {} released while its writes were in flight",
                update.shard
            )
        });
        apply_one(&core.shared, art, &update);
        // Write-through, now that the write is durable and indexed. A GC
        // relocation changes no value, and must not pull cold data into the
        // cache.
        if update.expected.is_some() {
            continue;
        }
        // A value that expires is never cached: another thread's cache
        // read has no clock to check it against.
        let frame = update
            .pointer
            .filter(|_| update.deadline.is_none())
            .map(|p| (core.commit.staging.as_slice(), frame_offset, p));
        WorkerCore::cache_commit(
            &mut cache,
            &core.shared.stats,
            core.shared.seed,
            &update.key,
            frame,
        );
    }
}

/// One update to a shard's index, with its live-byte, key-count and
/// expiring-key-count effects.
fn apply_one(shared: &Shared, art: &mut Art, update: &IndexUpdate) {
    let expiring = art.expiring_len();
    apply_pointer(shared, art, update);
    let now = art.expiring_len();
    let gauge = &shared.stats.expiring_keys;
    if now > expiring {
        gauge.fetch_add((now - expiring) as u64, Ordering::Relaxed);
    } else if now < expiring {
        gauge.fetch_sub((expiring - now) as u64, Ordering::Relaxed);
    }
}

fn apply_pointer(shared: &Shared, art: &mut Art, update: &IndexUpdate) {
    let live = &shared.live;
    let keys = |delta: i64| {
        let shard_keys = &shared.shard_keys[usize::from(update.shard)];
        if delta > 0 {
            shared.stats.keys.fetch_add(1, Ordering::Relaxed);
            shard_keys.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.stats.keys.fetch_sub(1, Ordering::Relaxed);
            shard_keys.fetch_sub(1, Ordering::Relaxed);
        }
    };
    match (update.pointer, update.expected) {
        (Some(pointer), Some(expected)) => {
            // A relocation: it was live when the batch was built, and
            // nothing can have changed it since (one batch at a time); the
            // swap is conditional all the same.
            if art.compare_and_swap(&update.key, expected, pointer) {
                live.add(pointer.segment, pointer.length);
                live.sub(expected.segment, expected.length);
            }
        }
        (Some(pointer), None) => {
            live.add(pointer.segment, pointer.length);
            match art.insert_expiring(&update.key, pointer, update.deadline) {
                Some(old) => live.sub(old.segment, old.length),
                None => keys(1),
            }
        }
        (None, Some(expected)) => {
            // An expired key reclaimed: planned only while the index held
            // `expected`, and one batch at a time, so it still does.
            let old = art.remove(&update.key);
            assert_eq!(
                old,
                Some(expected),
                "a reclaimed key changed under its batch"
            );
            live.sub(expected.segment, expected.length);
            keys(-1);
            let stats = &shared.stats;
            stats.expired_reclaimed.fetch_add(1, Ordering::Relaxed);
            stats
                .expired_bytes_reclaimed
                .fetch_add(u64::from(expected.length), Ordering::Relaxed);
        }
        (None, None) => {
            if let Some(old) = art.remove(&update.key) {
                live.sub(old.segment, old.length);
                keys(-1);
            }
        }
    }
}
