//! [`Art`] and its point operations: get, insert, remove, compare-and-swap.
//!
//! Structural invariants, checked by the tests after every operation:
//! - every node has at least two entries (children plus its value), so a
//!   path never runs through a node that does not branch;
//! - a node's child count is within its size's capacity and above its
//!   size's `shrink_at`;
//! - a leaf in a value slot has an empty suffix;
//! - every record in the arena is reachable from the root exactly once, or
//!   is on a free list.

use std::fmt;

use super::arena::{self, read_u32, write_u32, Arena, Ref, NULL};
use super::deadlines::Deadlines;
use super::node::{self, Size, HEADER_BYTES};
use super::{leaf, ValuePointer, KEY_BYTES_MAX};

/// An adaptive radix tree from byte-string keys (1 to [`KEY_BYTES_MAX`]
/// bytes) to [`ValuePointer`]s, ordered by key bytes.
///
/// All nodes and leaves live in one arena owned by the tree; dropping the
/// tree frees it. Removing keys keeps the arena's memory for reuse.
#[derive(Clone)]
pub struct Art {
    pub(super) arena: Arena,
    pub(super) root: Ref,
    pub(super) len: usize,
    /// Deadlines of the keys that expire (none for most keys).
    pub(super) deadlines: Deadlines,
}

/// Where a reference to a record is stored: the tree's root, or a byte
/// offset within a node record (a child slot or the value slot).
#[derive(Clone, Copy, Debug)]
enum Slot {
    Root,
    In { node: Ref, at: usize },
}

fn key_is_valid(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= KEY_BYTES_MAX
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Default for Art {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Art {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Art")
            .field("len", &self.len)
            .field("memory_bytes", &self.memory_bytes())
            .finish_non_exhaustive()
    }
}

impl Art {
    /// An empty tree. Allocates nothing until the first insert.
    pub fn new() -> Self {
        Self {
            arena: Arena::new(),
            root: NULL,
            len: 0,
            deadlines: Deadlines::default(),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pointer stored for `key`. Keys outside 1..=[`KEY_BYTES_MAX`]
    /// bytes are never present.
    pub fn get(&self, key: &[u8]) -> Option<ValuePointer> {
        self.locate(key)
            .map(|found| leaf::value(self.arena.record(found)))
    }

    /// Stores `value` for `key` with a deadline (milliseconds since the
    /// Unix epoch; `None`: it never expires) and returns the pointer it
    /// replaced. Panics as [`Art::insert`] does.
    pub fn insert_expiring(
        &mut self,
        key: &[u8],
        value: ValuePointer,
        deadline: Option<u64>,
    ) -> Option<ValuePointer> {
        let old = self.insert_pointer(key, value);
        self.deadlines.set(key, deadline);
        old
    }

    /// The deadline of `key`, if it is present and expires.
    pub fn deadline(&self, key: &[u8]) -> Option<u64> {
        self.deadlines.get(key)
    }

    /// The pointer stored for `key` unless its deadline has passed at
    /// `now_ms` (Redis's rule: expired when `now_ms > deadline`).
    pub fn get_live(&self, key: &[u8], now_ms: u64) -> Option<ValuePointer> {
        match self.deadlines.get(key) {
            Some(deadline) if now_ms > deadline => None,
            _ => self.get(key),
        }
    }

    /// Whether `key` is present with a deadline passed at `now_ms`.
    pub fn expired(&self, key: &[u8], now_ms: u64) -> bool {
        self.deadlines.get(key).is_some_and(|d| now_ms > d)
    }

    /// Keys with a deadline.
    pub fn expiring_len(&self) -> usize {
        self.deadlines.len()
    }

    /// Keys present but expired at `now_ms`.
    pub fn expired_len(&self, now_ms: u64) -> usize {
        self.deadlines.expired_count(now_ms)
    }

    /// Up to `limit` keys expired at `now_ms` with their pointers, earliest
    /// deadline first.
    pub fn due(&self, now_ms: u64, limit: usize) -> Vec<(Vec<u8>, ValuePointer)> {
        self.deadlines
            .due(now_ms, limit)
            .filter_map(|(key, _)| Some((key.to_vec(), self.get(key)?)))
            .collect()
    }

    /// Stores `value` for `key` (which then never expires) and returns the
    /// pointer it replaced.
    ///
    /// # Panics
    ///
    /// If `key` is empty or longer than [`KEY_BYTES_MAX`] bytes (callers
    /// validate keys at the protocol boundary), or if the tree's arena
    /// would exceed its bound of just under 8 GiB.
    pub fn insert(&mut self, key: &[u8], value: ValuePointer) -> Option<ValuePointer> {
        let old = self.insert_pointer(key, value);
        self.deadlines.set(key, None);
        old
    }

    fn insert_pointer(&mut self, key: &[u8], value: ValuePointer) -> Option<ValuePointer> {
        assert!(
            key_is_valid(key),
            "index key of {} bytes outside 1..={KEY_BYTES_MAX}",
            key.len()
        );
        let mut slot = Slot::Root;
        let mut current = self.root;
        let mut depth = 0;
        loop {
            if current == NULL {
                // An empty tree, or a node's empty value slot.
                let fresh = self.new_leaf(&key[depth..], value);
                self.set_slot(slot, fresh);
                self.len += 1;
                return None;
            }
            let record = self.arena.record(current);
            let rest = &key[depth..];
            if leaf::is_leaf(record[0]) {
                let suffix = leaf::suffix(record);
                if suffix == rest {
                    let old = leaf::value(record);
                    leaf::set_value(self.arena.record_mut(current), value);
                    return Some(old);
                }
                let common = common_prefix_len(suffix, rest);
                self.split_leaf(slot, current, rest, common, value);
                self.len += 1;
                return None;
            }
            let header = node::header(record);
            let common = common_prefix_len(node::prefix(record, &header), rest);
            if common < header.prefix_len {
                self.split_prefix(slot, current, rest, common, value);
                self.len += 1;
                return None;
            }
            depth += common;
            if depth == key.len() {
                slot = Slot::In {
                    node: current,
                    at: node::VALUE_AT,
                };
                current = header.value;
                continue;
            }
            let byte = key[depth];
            if let Some(at) = node::find_child(record, &header, byte) {
                slot = Slot::In { node: current, at };
                current = read_u32(record, at);
                depth += 1;
                continue;
            }
            let fresh = self.new_leaf(&key[depth + 1..], value);
            self.add_child(slot, current, byte, fresh);
            self.len += 1;
            return None;
        }
    }

    /// Removes `key` (and its deadline) and returns its pointer.
    pub fn remove(&mut self, key: &[u8]) -> Option<ValuePointer> {
        let old = self.remove_pointer(key);
        self.deadlines.set(key, None);
        old
    }

    fn remove_pointer(&mut self, key: &[u8]) -> Option<ValuePointer> {
        if !key_is_valid(key) {
            return None;
        }
        // The node whose slot leads to `current`, the slot that leads to that
        // node, and the edge byte (None: the value slot).
        let mut parent: Option<(Slot, Ref, Option<u8>)> = None;
        let mut slot = Slot::Root;
        let mut current = self.root;
        let mut depth = 0;
        loop {
            if current == NULL {
                return None;
            }
            let record = self.arena.record(current);
            if leaf::is_leaf(record[0]) {
                let suffix = leaf::suffix(record);
                if suffix != &key[depth..] {
                    return None;
                }
                let old = leaf::value(record);
                let bytes = leaf::record_bytes(suffix.len());
                self.arena.free(current, bytes);
                self.len -= 1;
                match parent {
                    None => self.root = NULL,
                    Some((parent_slot, parent_node, edge)) => {
                        let record = self.arena.record_mut(parent_node);
                        match edge {
                            None => write_u32(record, node::VALUE_AT, NULL),
                            Some(byte) => {
                                let header = node::header(record);
                                node::remove_child(record, &header, byte);
                            }
                        }
                        self.after_remove(parent_slot, parent_node);
                    }
                }
                return Some(old);
            }
            let header = node::header(record);
            if !key[depth..].starts_with(node::prefix(record, &header)) {
                return None;
            }
            depth += header.prefix_len;
            let (edge, at) = if depth == key.len() {
                (None, node::VALUE_AT)
            } else {
                let byte = key[depth];
                depth += 1;
                (Some(byte), node::find_child(record, &header, byte)?)
            };
            parent = Some((slot, current, edge));
            slot = Slot::In { node: current, at };
            current = read_u32(record, at);
        }
    }

    /// Replaces the pointer for `key` with `new` only if it is `expected`,
    /// and says whether it did. GC uses it to relocate a record without
    /// overwriting a newer write of the same key.
    pub fn compare_and_swap(
        &mut self,
        key: &[u8],
        expected: ValuePointer,
        new: ValuePointer,
    ) -> bool {
        let Some(found) = self.locate(key) else {
            return false;
        };
        if leaf::value(self.arena.record(found)) != expected {
            return false;
        }
        leaf::set_value(self.arena.record_mut(found), new);
        true
    }

    /// Heap bytes held by the tree: its arena chunks (all nodes, leaves and
    /// key bytes, live or free) and the arena's two index vectors, computed
    /// from their sizes and capacities. The `Art` value itself is not
    /// included.
    pub fn memory_bytes(&self) -> usize {
        self.arena.memory_bytes() + self.deadlines.memory_bytes()
    }

    /// The leaf holding `key`, if present.
    fn locate(&self, key: &[u8]) -> Option<Ref> {
        if !key_is_valid(key) {
            return None;
        }
        let mut current = self.root;
        let mut depth = 0;
        loop {
            if current == NULL {
                return None;
            }
            let record = self.arena.record(current);
            if leaf::is_leaf(record[0]) {
                return (leaf::suffix(record) == &key[depth..]).then_some(current);
            }
            let header = node::header(record);
            if !key[depth..].starts_with(node::prefix(record, &header)) {
                return None;
            }
            depth += header.prefix_len;
            if depth == key.len() {
                current = header.value;
                continue;
            }
            let at = node::find_child(record, &header, key[depth])?;
            current = read_u32(record, at);
            depth += 1;
        }
    }

    fn set_slot(&mut self, slot: Slot, target: Ref) {
        match slot {
            Slot::Root => self.root = target,
            Slot::In { node, at } => write_u32(self.arena.record_mut(node), at, target),
        }
    }

    fn new_leaf(&mut self, suffix: &[u8], value: ValuePointer) -> Ref {
        let fresh = self.arena.alloc(leaf::record_bytes(suffix.len()));
        leaf::write(self.arena.record_mut(fresh), suffix, value);
        fresh
    }

    /// A fresh node of the smallest size (two entries) with the given
    /// prefix, value and children.
    fn new_node(&mut self, prefix: &[u8], value: Ref, children: &[(u8, Ref)]) -> Ref {
        let size = Size::SMALLEST;
        let fresh = self.arena.alloc(node::record_bytes(size, prefix.len()));
        let record = self.arena.record_mut(fresh);
        node::write_header(record, size, children.len(), prefix.len(), value);
        let at = node::prefix_at(size);
        record[at..at + prefix.len()].copy_from_slice(prefix);
        node::write_body(record, &node::header(record), children);
        fresh
    }

    /// The key `rest` (below the slot) diverges from the leaf `old` after
    /// `common` bytes: put a Node4 holding both in the leaf's place.
    fn split_leaf(
        &mut self,
        slot: Slot,
        old: Ref,
        rest: &[u8],
        common: usize,
        value: ValuePointer,
    ) {
        let old_branch = leaf::suffix(self.arena.record(old)).get(common).copied();
        let moved = self.drop_front(old, common + usize::from(old_branch.is_some()));
        let new_branch = rest.get(common).copied();
        let fresh = match new_branch {
            Some(_) => self.new_leaf(&rest[common + 1..], value),
            None => self.new_leaf(&[], value),
        };
        let parent = match (old_branch, new_branch) {
            (Some(a), Some(b)) => {
                let children = if a < b {
                    [(a, moved), (b, fresh)]
                } else {
                    [(b, fresh), (a, moved)]
                };
                self.new_node(&rest[..common], NULL, &children)
            }
            (None, Some(b)) => self.new_node(&rest[..common], moved, &[(b, fresh)]),
            (Some(a), None) => self.new_node(&rest[..common], fresh, &[(a, moved)]),
            (None, None) => unreachable!("split_leaf of equal keys"),
        };
        self.set_slot(slot, parent);
    }

    /// The key `rest` (below the slot) diverges from the prefix of `old`
    /// after `common` bytes: put a Node4 above it holding the shared part.
    fn split_prefix(
        &mut self,
        slot: Slot,
        old: Ref,
        rest: &[u8],
        common: usize,
        value: ValuePointer,
    ) {
        let record = self.arena.record(old);
        let header = node::header(record);
        let old_branch = node::prefix(record, &header)[common];
        let moved = self.drop_front(old, common + 1);
        let parent = match rest.get(common).copied() {
            Some(new_branch) => {
                let fresh = self.new_leaf(&rest[common + 1..], value);
                let children = if old_branch < new_branch {
                    [(old_branch, moved), (new_branch, fresh)]
                } else {
                    [(new_branch, fresh), (old_branch, moved)]
                };
                self.new_node(&rest[..common], NULL, &children)
            }
            None => {
                let fresh = self.new_leaf(&[], value);
                self.new_node(&rest[..common], fresh, &[(old_branch, moved)])
            }
        };
        self.set_slot(slot, parent);
    }

    /// Adds a child to `target`, growing it into the next size if full.
    fn add_child(&mut self, slot: Slot, target: Ref, byte: u8, child: Ref) {
        let header = node::header(self.arena.record(target));
        let target = if header.count == header.capacity() {
            let grown = self.resize(target, header.size.grown());
            self.set_slot(slot, grown);
            grown
        } else {
            target
        };
        let record = self.arena.record_mut(target);
        let header = node::header(record);
        node::add_child(record, &header, byte, child);
    }

    /// Restores the invariants of `target` after it lost an entry: a node
    /// left with one entry merges into it; a sparse node shrinks.
    fn after_remove(&mut self, slot: Slot, target: Ref) {
        let record = self.arena.record(target);
        let header = node::header(record);
        assert!(header.entries() >= 1, "node left empty");
        if header.entries() == 1 {
            let mut front = [0u8; KEY_BYTES_MAX];
            let prefix_len = header.prefix_len;
            front[..prefix_len].copy_from_slice(node::prefix(record, &header));
            let (only, front_len) = match node::next_child(record, &header, 0) {
                Some((byte, child)) => {
                    front[prefix_len] = byte;
                    (child, prefix_len + 1)
                }
                None => (header.value, prefix_len),
            };
            let merged = self.prepend(only, &front[..front_len]);
            self.arena.free(target, header.record_bytes());
            self.set_slot(slot, merged);
        } else if header.count <= header.size.shrink_at() {
            let shrunk = self.resize(target, header.size.shrunk());
            self.set_slot(slot, shrunk);
        }
    }

    /// Moves a node's children, value and prefix into a new node of `size`.
    fn resize(&mut self, old: Ref, size: Size) -> Ref {
        let record = self.arena.record(old);
        let header = node::header(record);
        let mut children = [(0u8, NULL); 256];
        let count = node::children(record, &header, &mut children);
        assert!(count <= size.capacity(), "resize would drop children");
        let fresh = self
            .arena
            .alloc(node::record_bytes(size, header.prefix_len));
        let record = self.arena.record_mut(fresh);
        node::write_header(record, size, count, header.prefix_len, header.value);
        node::write_body(record, &node::header(record), &children[..count]);
        self.arena.copy(
            old,
            header.prefix_at(),
            fresh,
            node::prefix_at(size),
            header.prefix_len,
        );
        self.arena.free(old, header.record_bytes());
        fresh
    }

    /// Drops the first `n` bytes of a leaf's suffix or a node's prefix.
    fn drop_front(&mut self, old: Ref, n: usize) -> Ref {
        if n == 0 {
            return old;
        }
        let record = self.arena.record(old);
        if leaf::is_leaf(record[0]) {
            let old_len = leaf::suffix_len(record);
            let value = leaf::value(record);
            let new_len = old_len - n;
            let old_bytes = leaf::record_bytes(old_len);
            let target = self.shift_tail(
                old,
                old_bytes,
                leaf::record_bytes(new_len),
                leaf::header_bytes(old_len) + n,
                leaf::header_bytes(new_len),
                new_len,
            );
            leaf::write_header(self.arena.record_mut(target), new_len, value);
            if target != old {
                self.arena.free(old, old_bytes);
            }
            target
        } else {
            let header = node::header(record);
            let prefix_at = header.prefix_at();
            let prefix_len = header.prefix_len - n;
            let old_bytes = header.record_bytes();
            let new_bytes = node::record_bytes(header.size, prefix_len);
            let target = self.shift_tail(
                old,
                old_bytes,
                new_bytes,
                prefix_at + n,
                prefix_at,
                prefix_len,
            );
            if target != old {
                let body_bytes = prefix_at - HEADER_BYTES;
                self.arena
                    .copy(old, HEADER_BYTES, target, HEADER_BYTES, body_bytes);
            }
            let record = self.arena.record_mut(target);
            node::write_header(record, header.size, header.count, prefix_len, header.value);
            if target != old {
                self.arena.free(old, old_bytes);
            }
            target
        }
    }

    /// Moves bytes `from..from + len` of `old` to offset `to` of a record of
    /// `new_bytes`: `old` itself when its size in units does not change, a
    /// fresh record otherwise (which the caller frees `old` for).
    fn shift_tail(
        &mut self,
        old: Ref,
        old_bytes: usize,
        new_bytes: usize,
        from: usize,
        to: usize,
        len: usize,
    ) -> Ref {
        if arena::allocated_units(old_bytes) == arena::allocated_units(new_bytes) {
            self.arena.record_mut(old).copy_within(from..from + len, to);
            old
        } else {
            let fresh = self.arena.alloc(new_bytes);
            self.arena.copy(old, from, fresh, to, len);
            fresh
        }
    }

    /// Prepends `front` to a leaf's suffix or a node's prefix, moving it to
    /// a larger record.
    fn prepend(&mut self, old: Ref, front: &[u8]) -> Ref {
        if front.is_empty() {
            return old;
        }
        let record = self.arena.record(old);
        let fresh;
        let old_bytes;
        if leaf::is_leaf(record[0]) {
            let old_len = leaf::suffix_len(record);
            let value = leaf::value(record);
            let new_len = old_len + front.len();
            old_bytes = leaf::record_bytes(old_len);
            fresh = self.arena.alloc(leaf::record_bytes(new_len));
            let new_at = leaf::header_bytes(new_len);
            let record = self.arena.record_mut(fresh);
            leaf::write_header(record, new_len, value);
            record[new_at..new_at + front.len()].copy_from_slice(front);
            self.arena.copy(
                old,
                leaf::header_bytes(old_len),
                fresh,
                new_at + front.len(),
                old_len,
            );
        } else {
            let header = node::header(record);
            let new_prefix_len = header.prefix_len + front.len();
            old_bytes = header.record_bytes();
            fresh = self
                .arena
                .alloc(node::record_bytes(header.size, new_prefix_len));
            let record = self.arena.record_mut(fresh);
            node::write_header(
                record,
                header.size,
                header.count,
                new_prefix_len,
                header.value,
            );
            let prefix_at = header.prefix_at();
            record[prefix_at..prefix_at + front.len()].copy_from_slice(front);
            let body_bytes = prefix_at - HEADER_BYTES;
            self.arena
                .copy(old, HEADER_BYTES, fresh, HEADER_BYTES, body_bytes);
            self.arena.copy(
                old,
                prefix_at,
                fresh,
                prefix_at + front.len(),
                header.prefix_len,
            );
        }
        self.arena.free(old, old_bytes);
        fresh
    }
}
