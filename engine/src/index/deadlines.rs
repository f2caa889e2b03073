//! Per-key deadlines (key expiry) beside a shard's tree.
//!
//! Only keys that expire are here, so a key without a deadline costs
//! nothing: the tree's leaves keep their 16-byte pointer, and a lookup of
//! a shard with no expiring key is one `is_empty` check. A key with a
//! deadline costs two ordered-map entries (by key, for reads; by deadline,
//! for reclamation), about 2 × (key + 40) bytes: ordered maps, not hash
//! maps, so iteration is deterministic and the simulator replays.
//!
//! A key is expired at `now_ms` when `now_ms > deadline` (Redis's
//! `keyIsExpired`: from the first millisecond after its deadline).

use std::collections::{BTreeMap, BTreeSet};

/// The deadlines of one shard's expiring keys: nothing allocated (and one
/// pointer in the tree, which moves between workers by value) until a key
/// has one.
#[derive(Clone, Debug, Default)]
pub(super) struct Deadlines(Option<Box<Maps>>);

#[derive(Clone, Debug, Default)]
struct Maps {
    by_key: BTreeMap<Box<[u8]>, u64>,
    by_time: BTreeSet<(u64, Box<[u8]>)>,
}

/// Estimated heap bytes of one entry of either map besides its key: the
/// B-tree's share of a node per entry, the box's pointer and length, and
/// the deadline.
const ENTRY_OVERHEAD_BYTES: usize = 40;

impl Deadlines {
    pub(super) fn get(&self, key: &[u8]) -> Option<u64> {
        let maps = self.0.as_ref()?;
        if maps.by_key.is_empty() {
            return None;
        }
        maps.by_key.get(key).copied()
    }

    /// Sets (or, with `None`, clears) the deadline of `key`.
    pub(super) fn set(&mut self, key: &[u8], deadline: Option<u64>) {
        if deadline.is_none() && self.0.is_none() {
            return;
        }
        self.0.get_or_insert_with(Box::default).set(key, deadline);
    }

    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |maps| maps.by_key.len())
    }

    /// Up to `limit` keys expired at `now_ms`, earliest deadline first.
    pub(super) fn due(&self, now_ms: u64, limit: usize) -> impl Iterator<Item = (&[u8], u64)> {
        self.0
            .iter()
            .flat_map(|maps| maps.by_time.iter())
            .take_while(move |(at, _)| *at < now_ms)
            .take(limit)
            .map(|(at, key)| (&key[..], *at))
    }

    /// How many keys are expired at `now_ms`.
    pub(super) fn expired_count(&self, now_ms: u64) -> usize {
        let Some(maps) = &self.0 else {
            return 0;
        };
        maps.by_time.range(..(now_ms, Box::from(&[][..]))).count()
    }

    pub(super) fn memory_bytes(&self) -> usize {
        let Some(maps) = &self.0 else {
            return 0;
        };
        let keys: usize = maps.by_key.keys().map(|k| k.len()).sum();
        std::mem::size_of::<Maps>() + 2 * (keys + maps.by_key.len() * ENTRY_OVERHEAD_BYTES)
    }
}

impl Maps {
    fn set(&mut self, key: &[u8], deadline: Option<u64>) {
        if deadline.is_none() && self.by_key.is_empty() {
            return;
        }
        let old = match deadline {
            Some(at) => self.by_key.insert(Box::from(key), at),
            None => self.by_key.remove(key),
        };
        if let Some(old) = old {
            let removed = self.by_time.remove(&(old, Box::from(key)));
            assert!(removed, "a deadline by key with none by time");
        }
        if let Some(at) = deadline {
            self.by_time.insert((at, Box::from(key)));
        }
        assert_eq!(self.by_key.len(), self.by_time.len());
    }
}
