//! LIRS weighted by bytes, with the small-hot-entry tweak.
//!
//! Terms follow Jiang & Zhang (SIGMETRICS 2002). Every entry is LIR (low
//! inter-reference recency: the protected set), resident HIR (on probation)
//! or non-resident HIR (its value is gone; its key remembers a recent
//! access, so a quick return proves reuse).
//!
//! - Stack S orders entries by recency: LIR entries, and HIR entries (resident
//!   or not) accessed more recently than the oldest LIR entry. Its bottom is
//!   always LIR ("stack pruning" removes HIR entries from the bottom).
//! - Queue Q holds the resident HIR entries in access order; eviction takes
//!   its front.
//! - Queue N holds the non-resident entries in the order they lost their
//!   value; it bounds their number to `nonresident_ratio` × resident entries.
//!
//! Bytes: LIR entries hold at most `capacity - hir_capacity` bytes; all
//! resident entries at most `capacity`.
//!
//! The tweak: an LIR entry whose charge is at most `small_bytes_max` and that
//! was accessed while LIR is *hot*. When the LIR set must shed bytes and a hot
//! small entry is at the bottom of S, it is not demoted: it loses its hot mark
//! and moves to the top of S, and demotion tries the next bottom entry. See
//! `docs/cache.md`.

use std::collections::HashMap;
use std::sync::Arc;

use super::list::{place, Linked, Links, List};
use super::ValueCache;

const STACK: usize = 0;
/// Q (resident HIR) and N (non-resident HIR) share a link pair: an entry is
/// on at most one of them.
const QUEUE: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Lir,
    Hir,
    NonResident,
}

struct Node<V> {
    key: Arc<[u8]>,
    value: Option<V>,
    charge: usize,
    status: Status,
    in_stack: bool,
    /// Small, and accessed while LIR since it became LIR or was last spared.
    hot: bool,
    /// Large, and reused once already during its current stay in S.
    reused: bool,
    links: [Links; 2],
}

impl<V> Linked for Node<V> {
    fn links(&self, which: usize) -> &Links {
        &self.links[which]
    }
    fn links_mut(&mut self, which: usize) -> &mut Links {
        &mut self.links[which]
    }
}

/// How to build a [`Lirs`] cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LirsConfig {
    /// The byte bound on resident entries.
    pub capacity_bytes: usize,
    /// The share of `capacity_bytes` kept for resident HIR entries, in
    /// percent (1..=50). The LIR set gets the rest.
    pub hir_percent: u8,
    /// Non-resident entries kept, at most this many per resident entry.
    pub nonresident_ratio: usize,
    /// Entries charged at most this many bytes are small: when hot they are
    /// spared one demotion (the tweak). 0 turns the tweak off (plain LIRS).
    pub small_bytes_max: usize,
    /// Larger entries are never admitted.
    pub entry_bytes_max: usize,
}

impl LirsConfig {
    /// The defaults: 1% HIR, 2 non-resident entries per resident one, small
    /// means at most 1 KiB, entries up to an eighth of the capacity.
    pub fn new(capacity_bytes: usize) -> LirsConfig {
        LirsConfig {
            capacity_bytes,
            hir_percent: 1,
            nonresident_ratio: 2,
            small_bytes_max: 1024,
            entry_bytes_max: capacity_bytes / 8,
        }
    }
}

/// A byte-bounded LIRS cache; see the module documentation.
pub struct Lirs<V> {
    map: HashMap<Arc<[u8]>, u32>,
    nodes: Vec<Node<V>>,
    free: Vec<u32>,
    /// S: front is the bottom (oldest), back the top.
    stack: List,
    /// Q: resident HIR entries; front is evicted first.
    queue: List,
    /// N: non-resident entries; front is forgotten first.
    nonresident: List,
    lir_bytes: usize,
    hir_bytes: usize,
    resident: usize,
    capacity_bytes: usize,
    lir_capacity_bytes: usize,
    nonresident_ratio: usize,
    small_bytes_max: usize,
    entry_bytes_max: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
    spared: u64,
    empty_key: Arc<[u8]>,
}

impl<V> Lirs<V> {
    /// An empty cache.
    ///
    /// # Panics
    /// When `hir_percent` is outside 1..=50.
    pub fn new(config: &LirsConfig) -> Lirs<V> {
        assert!(
            (1..=50).contains(&config.hir_percent),
            "hir_percent {} outside 1..=50",
            config.hir_percent
        );
        let hir_capacity = config.capacity_bytes / 100 * usize::from(config.hir_percent)
            + config.capacity_bytes % 100 * usize::from(config.hir_percent) / 100;
        Lirs {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            stack: List::new(STACK),
            queue: List::new(QUEUE),
            nonresident: List::new(QUEUE),
            lir_bytes: 0,
            hir_bytes: 0,
            resident: 0,
            capacity_bytes: config.capacity_bytes,
            lir_capacity_bytes: config.capacity_bytes - hir_capacity,
            nonresident_ratio: config.nonresident_ratio,
            small_bytes_max: config.small_bytes_max,
            // An entry must fit the LIR set alone, or S could hold HIR
            // entries and no LIR one.
            entry_bytes_max: config
                .entry_bytes_max
                .min(config.capacity_bytes - hir_capacity),
            hits: 0,
            misses: 0,
            evictions: 0,
            spared: 0,
            empty_key: Arc::from(&[][..]),
        }
    }

    /// Gets that found a resident value.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Gets that did not.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Times the tweak spared a hot small entry from demotion.
    pub fn spared(&self) -> u64 {
        self.spared
    }

    /// Non-resident entries remembered.
    pub fn nonresident_count(&self) -> usize {
        self.nonresident.len()
    }

    /// Bytes held by LIR entries.
    pub fn lir_bytes(&self) -> usize {
        self.lir_bytes
    }

    /// The bound on [`Lirs::lir_bytes`].
    pub fn lir_capacity_bytes(&self) -> usize {
        self.lir_capacity_bytes
    }

    fn is_small(&self, charge: usize) -> bool {
        self.small_bytes_max > 0 && charge <= self.small_bytes_max
    }

    fn is_large(&self, charge: usize) -> bool {
        self.small_bytes_max > 0 && charge > self.small_bytes_max
    }

    fn allocate(&mut self, key: &[u8], value: V, charge: usize, status: Status) -> u32 {
        let key: Arc<[u8]> = Arc::from(key);
        let node = Node {
            key: Arc::clone(&key),
            value: Some(value),
            charge,
            status,
            in_stack: false,
            hot: false,
            reused: false,
            links: [Links::UNLINKED; 2],
        };
        let i = place(&mut self.nodes, &mut self.free, node);
        self.map.insert(key, i);
        i
    }

    /// Drops node `i`, already off every list, and its key.
    fn release(&mut self, i: u32) {
        let node = &mut self.nodes[i as usize];
        let key = std::mem::replace(&mut node.key, Arc::clone(&self.empty_key));
        node.value = None;
        node.charge = 0;
        node.in_stack = false;
        self.map.remove(&key);
        self.free.push(i);
    }

    fn push_top(&mut self, i: u32) {
        if self.nodes[i as usize].in_stack {
            self.stack.move_to_back(&mut self.nodes, i);
        } else {
            self.stack.push_back(&mut self.nodes, i);
            self.nodes[i as usize].in_stack = true;
        }
    }

    /// Stack pruning: removes HIR entries from the bottom of S until an LIR
    /// entry is there. Non-resident entries leaving S are forgotten.
    fn prune(&mut self) {
        while let Some(bottom) = self.stack.front() {
            let status = self.nodes[bottom as usize].status;
            if status == Status::Lir {
                break;
            }
            self.stack.unlink(&mut self.nodes, bottom);
            self.nodes[bottom as usize].in_stack = false;
            self.nodes[bottom as usize].reused = false;
            if status == Status::NonResident {
                self.nonresident.unlink(&mut self.nodes, bottom);
                self.release(bottom);
            }
        }
    }

    /// Demotes LIR entries from the bottom of S to the back of Q until the
    /// LIR set fits its bytes, sparing hot small entries once each (the
    /// tweak). Every spare clears a hot mark and nothing here sets one, so
    /// the loop ends.
    fn shrink_lir(&mut self) {
        while self.lir_bytes > self.lir_capacity_bytes {
            let Some(bottom) = self.stack.front() else {
                break;
            };
            let node = &mut self.nodes[bottom as usize];
            debug_assert_eq!(node.status, Status::Lir, "bottom of S is not LIR");
            if node.hot {
                node.hot = false;
                self.spared += 1;
                self.stack.move_to_back(&mut self.nodes, bottom);
                self.prune();
                continue;
            }
            node.status = Status::Hir;
            node.reused = false;
            let charge = node.charge;
            self.lir_bytes -= charge;
            self.hir_bytes += charge;
            self.stack.unlink(&mut self.nodes, bottom);
            self.nodes[bottom as usize].in_stack = false;
            self.queue.push_back(&mut self.nodes, bottom);
            self.prune();
        }
    }

    /// Evicts resident HIR entries from the front of Q until the resident
    /// bytes fit. An evicted entry still in S stays as non-resident.
    fn evict(&mut self) {
        while self.lir_bytes + self.hir_bytes > self.capacity_bytes {
            // The LIR set fits its share, so the excess is HIR bytes and Q
            // is not empty.
            let Some(victim) = self.queue.front() else {
                break;
            };
            self.queue.unlink(&mut self.nodes, victim);
            let node = &mut self.nodes[victim as usize];
            self.hir_bytes -= node.charge;
            self.resident -= 1;
            self.evictions += 1;
            if node.in_stack {
                node.status = Status::NonResident;
                node.value = None;
                node.charge = 0;
                self.nonresident.push_back(&mut self.nodes, victim);
            } else {
                self.release(victim);
            }
        }
    }

    /// Forgets the oldest non-resident entries past the bound.
    fn trim_nonresident(&mut self) {
        let max = self.nonresident_ratio.saturating_mul(self.resident);
        while self.nonresident.len() > max {
            let Some(oldest) = self.nonresident.front() else {
                break;
            };
            self.nonresident.unlink(&mut self.nodes, oldest);
            // Non-resident entries live in S, never at its bottom.
            self.stack.unlink(&mut self.nodes, oldest);
            self.release(oldest);
        }
    }

    /// An access to resident entry `i` (a hit, or an overwrite).
    fn touch(&mut self, i: u32) {
        let node = &self.nodes[i as usize];
        match node.status {
            Status::Lir => {
                let was_bottom = self.stack.front() == Some(i);
                let small = self.is_small(node.charge);
                self.nodes[i as usize].hot = small;
                self.stack.move_to_back(&mut self.nodes, i);
                if was_bottom {
                    self.prune();
                }
            }
            Status::Hir if self.lir_bytes + node.charge <= self.lir_capacity_bytes => {
                // The LIR set has room (warm-up, or after removals).
                let charge = node.charge;
                self.queue.unlink(&mut self.nodes, i);
                self.push_top(i);
                let node = &mut self.nodes[i as usize];
                node.status = Status::Lir;
                node.reused = false;
                self.hir_bytes -= charge;
                self.lir_bytes += charge;
            }
            Status::Hir if node.in_stack && self.is_large(node.charge) && !node.reused => {
                // The tweak: a large entry must be reused twice within S
                // before it may displace LIR entries.
                self.nodes[i as usize].reused = true;
                self.stack.move_to_back(&mut self.nodes, i);
                self.queue.move_to_back(&mut self.nodes, i);
            }
            Status::Hir if node.in_stack => {
                // Its reuse distance beats the oldest LIR entry's recency.
                let charge = node.charge;
                self.queue.unlink(&mut self.nodes, i);
                self.stack.move_to_back(&mut self.nodes, i);
                let node = &mut self.nodes[i as usize];
                node.status = Status::Lir;
                node.hot = false;
                node.reused = false;
                self.hir_bytes -= charge;
                self.lir_bytes += charge;
                self.shrink_lir();
            }
            Status::Hir => {
                self.push_top(i);
                self.queue.move_to_back(&mut self.nodes, i);
            }
            Status::NonResident => unreachable!("touch of a non-resident entry"),
        }
    }

    /// Checks every invariant the cache keeps; for tests. O(entries).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut lir = 0;
        let mut hir = 0;
        let mut resident = 0;
        let mut nonresident = 0;
        for (key, &i) in &self.map {
            let node = &self.nodes[i as usize];
            if &node.key != key {
                return Err("map and node disagree on a key".into());
            }
            match node.status {
                Status::Lir => {
                    lir += node.charge;
                    resident += 1;
                    if !node.in_stack {
                        return Err("LIR entry outside S".into());
                    }
                }
                Status::Hir => {
                    hir += node.charge;
                    resident += 1;
                }
                Status::NonResident => {
                    nonresident += 1;
                    if !node.in_stack || node.value.is_some() {
                        return Err("non-resident entry outside S or with a value".into());
                    }
                }
            }
            if node.status != Status::NonResident && node.value.is_none() {
                return Err("resident entry without a value".into());
            }
            if node.reused && (node.status == Status::Lir || !node.in_stack) {
                return Err("reuse mark on an entry that is LIR or outside S".into());
            }
            if node.hot && (node.status != Status::Lir || !self.is_small(node.charge)) {
                return Err("hot mark on an entry that is not small and LIR".into());
            }
        }
        if lir != self.lir_bytes || hir != self.hir_bytes || resident != self.resident {
            return Err(format!(
                "byte counts drifted: lir {lir} vs {}, hir {hir} vs {}, resident {resident} vs {}",
                self.lir_bytes, self.hir_bytes, self.resident
            ));
        }
        if lir > self.lir_capacity_bytes || lir + hir > self.capacity_bytes {
            return Err(format!(
                "over capacity: lir {lir} of {}, resident {} of {}",
                self.lir_capacity_bytes,
                lir + hir,
                self.capacity_bytes
            ));
        }
        if nonresident != self.nonresident.len()
            || nonresident > self.nonresident_ratio * self.resident
        {
            return Err(format!(
                "non-resident entries {nonresident}, list {}, bound {}",
                self.nonresident.len(),
                self.nonresident_ratio * self.resident
            ));
        }
        let hir_count = self
            .map
            .values()
            .filter(|&&i| self.nodes[i as usize].status == Status::Hir)
            .count();
        if self.count_list(&self.queue, Status::Hir)? != hir_count {
            return Err("Q does not hold exactly the resident HIR entries".into());
        }
        if self.count_list(&self.nonresident, Status::NonResident)? != nonresident {
            return Err("N does not hold exactly the non-resident entries".into());
        }
        if let Some(bottom) = self.stack.front() {
            if self.nodes[bottom as usize].status != Status::Lir {
                return Err("bottom of S is not LIR".into());
            }
        }
        let in_stack = self
            .map
            .values()
            .filter(|&&i| self.nodes[i as usize].in_stack)
            .count();
        if in_stack != self.stack.len() {
            return Err("S length and in-stack marks disagree".into());
        }
        Ok(())
    }

    fn count_list(&self, list: &List, status: Status) -> Result<usize, String> {
        let mut count = 0;
        let mut at = list.front();
        while let Some(i) = at {
            if self.nodes[i as usize].status != status {
                return Err(format!(
                    "{status:?} list holds a {:?} entry",
                    self.nodes[i as usize].status
                ));
            }
            count += 1;
            at = list.next(&self.nodes, i);
        }
        if count != list.len() {
            return Err("list length drifted".into());
        }
        Ok(count)
    }
}

impl<V> ValueCache<V> for Lirs<V> {
    fn get(&mut self, key: &[u8]) -> Option<&V> {
        let Some(&i) = self.map.get(key) else {
            self.misses += 1;
            return None;
        };
        if self.nodes[i as usize].status == Status::NonResident {
            // The insert that follows the miss is the access.
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        self.touch(i);
        self.nodes[i as usize].value.as_ref()
    }

    fn insert(&mut self, key: &[u8], value: V, charge: usize) {
        if charge > self.entry_bytes_max {
            self.remove(key);
            return;
        }
        match self.map.get(key).copied() {
            Some(i) => {
                let node = &mut self.nodes[i as usize];
                match node.status {
                    Status::Lir | Status::Hir => {
                        let old = node.charge;
                        node.charge = charge;
                        node.value = Some(value);
                        if node.status == Status::Lir {
                            self.lir_bytes = self.lir_bytes - old + charge;
                        } else {
                            self.hir_bytes = self.hir_bytes - old + charge;
                        }
                        self.touch(i);
                        self.shrink_lir();
                    }
                    Status::NonResident
                        if self.small_bytes_max > 0
                            && charge > self.small_bytes_max
                            && !node.reused
                            && self.lir_bytes + charge > self.lir_capacity_bytes =>
                    {
                        // The tweak: a large entry's first reuse within S
                        // earns it residence as HIR, not LIR status.
                        node.status = Status::Hir;
                        node.value = Some(value);
                        node.charge = charge;
                        node.reused = true;
                        self.nonresident.unlink(&mut self.nodes, i);
                        self.stack.move_to_back(&mut self.nodes, i);
                        self.queue.push_back(&mut self.nodes, i);
                        self.hir_bytes += charge;
                        self.resident += 1;
                    }
                    Status::NonResident => {
                        // A miss on an entry still in S: it becomes LIR.
                        node.status = Status::Lir;
                        node.value = Some(value);
                        node.charge = charge;
                        node.hot = false;
                        node.reused = false;
                        self.nonresident.unlink(&mut self.nodes, i);
                        self.stack.move_to_back(&mut self.nodes, i);
                        self.lir_bytes += charge;
                        self.resident += 1;
                        self.shrink_lir();
                    }
                }
            }
            None => {
                // While the LIR set has room, new entries join it (LIRS's
                // warm-up); otherwise they start as resident HIR.
                if self.lir_bytes + charge <= self.lir_capacity_bytes {
                    let i = self.allocate(key, value, charge, Status::Lir);
                    self.push_top(i);
                    self.lir_bytes += charge;
                } else {
                    let i = self.allocate(key, value, charge, Status::Hir);
                    self.push_top(i);
                    self.queue.push_back(&mut self.nodes, i);
                    self.hir_bytes += charge;
                }
                self.resident += 1;
            }
        }
        self.evict();
        self.trim_nonresident();
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        let Some(&i) = self.map.get(key) else {
            return false;
        };
        let node = &self.nodes[i as usize];
        let (status, charge, in_stack) = (node.status, node.charge, node.in_stack);
        let was_bottom = self.stack.front() == Some(i);
        if in_stack {
            self.stack.unlink(&mut self.nodes, i);
        }
        match status {
            Status::Lir => self.lir_bytes -= charge,
            Status::Hir => {
                self.queue.unlink(&mut self.nodes, i);
                self.hir_bytes -= charge;
            }
            Status::NonResident => self.nonresident.unlink(&mut self.nodes, i),
        }
        self.release(i);
        if was_bottom {
            self.prune();
        }
        if status == Status::NonResident {
            return false;
        }
        self.resident -= 1;
        self.trim_nonresident();
        true
    }

    fn resident_bytes(&self) -> usize {
        self.lir_bytes + self.hir_bytes
    }

    fn resident_count(&self) -> usize {
        self.resident
    }

    fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    fn evictions(&self) -> u64 {
        self.evictions
    }
}
