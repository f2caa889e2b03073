//! Value caches: bounded in bytes, single-threaded (one per worker, no
//! locks), keyed by byte strings.
//!
//! [`Lirs`] is the engine's policy: LIRS (Jiang & Zhang, SIGMETRICS 2002)
//! weighted by bytes, with non-resident HIR entries, plus one tweak that
//! gives small hot entries extra resistance to eviction. [`Lru`] is the
//! baseline it is measured against. Both implement [`ValueCache`]. The
//! policy and the tweak are specified in `docs/cache.md`.

mod lirs;
mod list;
mod lru;
#[cfg(test)]
mod tests;

pub use lirs::{Lirs, LirsConfig};
pub use lru::Lru;

/// A byte-bounded cache of values by key.
///
/// Every entry carries a `charge` in bytes, given by the caller at insert
/// (the engine charges key, value and bookkeeping). The sum of the charges
/// of resident entries never exceeds [`ValueCache::capacity_bytes`], after
/// any call returns.
pub trait ValueCache<V> {
    /// The value cached for `key`, counting the access (a hit or a miss).
    fn get(&mut self, key: &[u8]) -> Option<&V>;
    /// Caches `value` as the latest value of `key`, replacing any older one.
    /// The value may be evicted at once (or never admitted, when `charge`
    /// exceeds the entry limit), but an older value is never left behind.
    fn insert(&mut self, key: &[u8], value: V, charge: usize);
    /// Forgets `key`. Returns whether a resident value was dropped.
    fn remove(&mut self, key: &[u8]) -> bool;
    /// Sum of the charges of resident entries.
    fn resident_bytes(&self) -> usize;
    /// Resident entries.
    fn resident_count(&self) -> usize;
    /// The byte bound.
    fn capacity_bytes(&self) -> usize;
    /// Resident entries evicted to make room, since creation.
    fn evictions(&self) -> u64;
}
