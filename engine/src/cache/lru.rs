//! A byte-bounded LRU: the baseline the LIRS cache is measured against.

use std::collections::HashMap;
use std::sync::Arc;

use super::list::{place, Linked, Links, List};
use super::ValueCache;

struct Node<V> {
    key: Arc<[u8]>,
    value: Option<V>,
    charge: usize,
    links: Links,
}

impl<V> Linked for Node<V> {
    fn links(&self, _: usize) -> &Links {
        &self.links
    }
    fn links_mut(&mut self, _: usize) -> &mut Links {
        &mut self.links
    }
}

/// Least recently used, bounded in bytes. Entries larger than
/// `entry_bytes_max` are not admitted.
pub struct Lru<V> {
    map: HashMap<Arc<[u8]>, u32>,
    nodes: Vec<Node<V>>,
    free: Vec<u32>,
    /// Front: least recently used.
    order: List,
    bytes: usize,
    capacity_bytes: usize,
    entry_bytes_max: usize,
    evictions: u64,
    empty_key: Arc<[u8]>,
}

impl<V> Lru<V> {
    /// An empty cache of `capacity_bytes`, admitting entries up to
    /// `entry_bytes_max`.
    pub fn new(capacity_bytes: usize, entry_bytes_max: usize) -> Lru<V> {
        Lru {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            order: List::new(0),
            bytes: 0,
            capacity_bytes,
            entry_bytes_max: entry_bytes_max.min(capacity_bytes),
            evictions: 0,
            empty_key: Arc::from(&[][..]),
        }
    }

    fn release(&mut self, i: u32) -> Option<V> {
        let node = &mut self.nodes[i as usize];
        let key = std::mem::replace(&mut node.key, Arc::clone(&self.empty_key));
        self.bytes -= node.charge;
        node.charge = 0;
        let value = node.value.take();
        self.map.remove(&key);
        self.free.push(i);
        value
    }
}

impl<V> ValueCache<V> for Lru<V> {
    fn get(&mut self, key: &[u8]) -> Option<&V> {
        let i = *self.map.get(key)?;
        self.order.move_to_back(&mut self.nodes, i);
        self.nodes[i as usize].value.as_ref()
    }

    fn insert(&mut self, key: &[u8], value: V, charge: usize) {
        if charge > self.entry_bytes_max {
            self.remove(key);
            return;
        }
        if let Some(&i) = self.map.get(key) {
            let node = &mut self.nodes[i as usize];
            self.bytes = self.bytes - node.charge + charge;
            node.charge = charge;
            node.value = Some(value);
            self.order.move_to_back(&mut self.nodes, i);
        } else {
            let key: Arc<[u8]> = Arc::from(key);
            let node = Node {
                key: Arc::clone(&key),
                value: Some(value),
                charge,
                links: Links::UNLINKED,
            };
            let i = place(&mut self.nodes, &mut self.free, node);
            self.map.insert(key, i);
            self.bytes += charge;
            self.order.push_back(&mut self.nodes, i);
        }
        while self.bytes > self.capacity_bytes {
            let Some(oldest) = self.order.front() else {
                break;
            };
            self.order.unlink(&mut self.nodes, oldest);
            self.release(oldest);
            self.evictions += 1;
        }
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        let Some(&i) = self.map.get(key) else {
            return false;
        };
        self.order.unlink(&mut self.nodes, i);
        self.release(i).is_some()
    }

    fn resident_bytes(&self) -> usize {
        self.bytes
    }

    fn resident_count(&self) -> usize {
        self.map.len()
    }

    fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    fn evictions(&self) -> u64 {
        self.evictions
    }
}
