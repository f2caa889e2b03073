//! Ordered walks: [`Art::for_each`] and [`Art::range_from`].
//!
//! A walk is a depth-first traversal with an explicit stack (keys can be
//! 1024 levels deep, so no recursion). A node's value comes before its
//! children, because a key sorts before its extensions; children come in
//! byte order. The walk rebuilds each key in one buffer from the prefixes,
//! edge bytes and leaf suffixes on its path.

use std::ops::ControlFlow;

use super::arena::{read_u32, Ref, NULL};
use super::tree::Art;
use super::{leaf, node, ValuePointer};

/// A node on the walk's path.
struct Frame {
    node: Ref,
    /// Length of the key buffer at this node, after its prefix.
    key_len: usize,
    /// The smallest edge byte not yet visited (256 when done).
    next: usize,
}

/// The walk's state: the key being built and the path.
struct Walk {
    key: Vec<u8>,
    stack: Vec<Frame>,
}

impl Art {
    /// Calls `f` with every key and its pointer, in ascending key order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], ValuePointer)) {
        let _ = self.walk(None, |key, value| {
            f(key, value);
            ControlFlow::Continue(())
        });
    }

    /// Appends to `out` (without clearing it) the entries whose key is
    /// `start` or greater, in ascending key order, at most `limit` of them.
    ///
    /// Returns `None` when no entry follows the ones appended: the scan is
    /// complete. Otherwise returns the key to pass as `start` to continue:
    /// the exclusive successor of the last key appended (that key followed
    /// by a 0x00 byte, so it may be one byte longer than [`KEY_BYTES_MAX`]),
    /// or `start` itself when `limit` is 0. Keys inserted or removed between
    /// calls after the resume key are seen or not as they stand then; keys
    /// already returned are never returned again.
    ///
    /// [`KEY_BYTES_MAX`]: super::KEY_BYTES_MAX
    pub fn range_from(
        &self,
        start: &[u8],
        limit: usize,
        out: &mut Vec<(Vec<u8>, ValuePointer)>,
    ) -> Option<Vec<u8>> {
        let mut taken = 0;
        let mut resume = None;
        let _ = self.walk(Some(start), |key, value| {
            if taken == limit {
                resume = Some(match out.last() {
                    Some((last, _)) if taken > 0 => {
                        let mut successor = Vec::with_capacity(last.len() + 1);
                        successor.extend_from_slice(last);
                        successor.push(0);
                        successor
                    }
                    _ => start.to_vec(),
                });
                return ControlFlow::Break(());
            }
            out.push((key.to_vec(), value));
            taken += 1;
            ControlFlow::Continue(())
        });
        resume
    }

    /// Calls `emit` for every entry with key `start` or greater (every entry
    /// when `start` is None), in order, until it breaks.
    fn walk(
        &self,
        start: Option<&[u8]>,
        mut emit: impl FnMut(&[u8], ValuePointer) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut walk = Walk {
            key: Vec::with_capacity(64),
            stack: Vec::new(),
        };
        match start {
            None => self.enter(self.root, &mut walk, &mut emit)?,
            Some(start) => self.seek(start, &mut walk, &mut emit)?,
        }
        while let Some(frame) = walk.stack.last_mut() {
            let record = self.arena.record(frame.node);
            let header = node::header(record);
            match node::next_child(record, &header, frame.next) {
                None => {
                    walk.stack.pop();
                }
                Some((byte, child)) => {
                    frame.next = usize::from(byte) + 1;
                    let key_len = frame.key_len;
                    walk.key.truncate(key_len);
                    walk.key.push(byte);
                    self.enter(child, &mut walk, &mut emit)?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Visits the whole subtree at `target`, whose path is `walk.key`: emits
    /// a leaf, or a node's value and pushes the node to visit its children.
    fn enter(
        &self,
        target: Ref,
        walk: &mut Walk,
        emit: &mut impl FnMut(&[u8], ValuePointer) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if target == NULL {
            return ControlFlow::Continue(());
        }
        let record = self.arena.record(target);
        if leaf::is_leaf(record[0]) {
            let len = walk.key.len();
            walk.key.extend_from_slice(leaf::suffix(record));
            let flow = emit(&walk.key, leaf::value(record));
            walk.key.truncate(len);
            return flow;
        }
        let header = node::header(record);
        walk.key.extend_from_slice(node::prefix(record, &header));
        if header.value != NULL {
            emit(&walk.key, leaf::value(self.arena.record(header.value)))?;
        }
        walk.stack.push(Frame {
            node: target,
            key_len: walk.key.len(),
            next: 0,
        });
        ControlFlow::Continue(())
    }

    /// Descends along `start`, emitting what sorts at or after it on the way
    /// down and leaving on the stack every node with later children to visit.
    fn seek(
        &self,
        start: &[u8],
        walk: &mut Walk,
        emit: &mut impl FnMut(&[u8], ValuePointer) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut current = self.root;
        let mut depth = 0;
        loop {
            if current == NULL {
                return ControlFlow::Continue(());
            }
            let record = self.arena.record(current);
            if leaf::is_leaf(record[0]) {
                let len = walk.key.len();
                walk.key.extend_from_slice(leaf::suffix(record));
                let flow = if walk.key.as_slice() >= start {
                    emit(&walk.key, leaf::value(record))
                } else {
                    ControlFlow::Continue(())
                };
                walk.key.truncate(len);
                return flow;
            }
            let header = node::header(record);
            let prefix = node::prefix(record, &header);
            let rest = &start[depth..];
            let shared = prefix.len().min(rest.len());
            match prefix[..shared].cmp(&rest[..shared]) {
                // Every key below sorts before `start`.
                std::cmp::Ordering::Less => return ControlFlow::Continue(()),
                // Every key below sorts after `start`, or `start` ends within
                // or exactly at the prefix and every key below extends it.
                std::cmp::Ordering::Greater => return self.enter(current, walk, emit),
                std::cmp::Ordering::Equal if rest.len() <= prefix.len() => {
                    return self.enter(current, walk, emit)
                }
                std::cmp::Ordering::Equal => {}
            }
            // `start` continues below this node: its value sorts before
            // `start`, and so do children below `start`'s next byte.
            walk.key.extend_from_slice(prefix);
            depth += prefix.len();
            let byte = start[depth];
            walk.stack.push(Frame {
                node: current,
                key_len: walk.key.len(),
                next: usize::from(byte) + 1,
            });
            let Some(at) = node::find_child(record, &header, byte) else {
                return ControlFlow::Continue(());
            };
            current = read_u32(record, at);
            walk.key.push(byte);
            depth += 1;
        }
    }
}
