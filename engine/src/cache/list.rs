//! Intrusive doubly linked lists over a slab of nodes, addressed by `u32`
//! index. A node may sit on several lists at once; each list names which of
//! the node's link pairs it uses.

/// No node.
pub(crate) const NIL: u32 = u32::MAX;

/// Puts `node` into the slab: a freed slot if there is one, else a new one.
/// Returns its index.
pub(crate) fn place<T>(nodes: &mut Vec<T>, free: &mut Vec<u32>, node: T) -> u32 {
    match free.pop() {
        Some(i) => {
            nodes[i as usize] = node;
            i
        }
        None => {
            nodes.push(node);
            (nodes.len() - 1) as u32
        }
    }
}

/// One list's links inside a node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Links {
    pub prev: u32,
    pub next: u32,
}

impl Links {
    pub const UNLINKED: Links = Links {
        prev: NIL,
        next: NIL,
    };
}

/// A node that carries link pairs, `which` selecting one.
pub(crate) trait Linked {
    fn links(&self, which: usize) -> &Links;
    fn links_mut(&mut self, which: usize) -> &mut Links;
}

/// A list: `front` is the oldest end, `back` the newest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    which: usize,
    front: u32,
    back: u32,
    len: usize,
}

impl List {
    pub fn new(which: usize) -> List {
        List {
            which,
            front: NIL,
            back: NIL,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn front(&self) -> Option<u32> {
        (self.front != NIL).then_some(self.front)
    }

    /// The node after `i` (towards the back).
    pub fn next<T: Linked>(&self, nodes: &[T], i: u32) -> Option<u32> {
        let next = nodes[i as usize].links(self.which).next;
        (next != NIL).then_some(next)
    }

    /// Appends unlinked node `i` at the back.
    pub fn push_back<T: Linked>(&mut self, nodes: &mut [T], i: u32) {
        let back = self.back;
        *nodes[i as usize].links_mut(self.which) = Links {
            prev: back,
            next: NIL,
        };
        if back == NIL {
            self.front = i;
        } else {
            nodes[back as usize].links_mut(self.which).next = i;
        }
        self.back = i;
        self.len += 1;
    }

    /// Removes node `i`, which must be on this list.
    pub fn unlink<T: Linked>(&mut self, nodes: &mut [T], i: u32) {
        let Links { prev, next } = *nodes[i as usize].links(self.which);
        if prev == NIL {
            assert_eq!(self.front, i, "unlinking a node that is not on the list");
            self.front = next;
        } else {
            nodes[prev as usize].links_mut(self.which).next = next;
        }
        if next == NIL {
            assert_eq!(self.back, i, "unlinking a node that is not on the list");
            self.back = prev;
        } else {
            nodes[next as usize].links_mut(self.which).prev = prev;
        }
        *nodes[i as usize].links_mut(self.which) = Links::UNLINKED;
        self.len -= 1;
    }

    /// Moves node `i`, which must be on this list, to the back.
    pub fn move_to_back<T: Linked>(&mut self, nodes: &mut [T], i: u32) {
        if self.back == i {
            return;
        }
        self.unlink(nodes, i);
        self.push_back(nodes, i);
    }
}
