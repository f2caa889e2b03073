//! The in-flight table of a queue pair: one entry per command the kernel may
//! still be working on, indexed by the SQE's `user_data`.
//!
//! Allocated once, `depth` entries, when the queue pair is created. Inserting
//! and removing move a [`Command`] (and so its buffer) in and out of a
//! preallocated slot and push/pop a preallocated free list: nothing is
//! allocated per I/O. Keying `user_data` by slab index rather than by a
//! pointer is what lets the queue, not the caller, own the buffer until the
//! completion arrives.

use crate::command::Command;

/// Which ring a command was queued on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RingId {
    /// The ring that carries reads and writes (and everything else unless
    /// IOPOLL is on).
    Data,
    /// The non-IOPOLL ring that carries flush and fallocate when the data
    /// ring is IOPOLL.
    Control,
}

/// One command in flight.
#[derive(Debug)]
pub(super) struct InFlight {
    /// The caller's token, returned in the completion.
    pub token: u64,
    /// The command, holding its buffer while the kernel may touch it.
    pub command: Command,
    /// Bytes already transferred; a short transfer is resubmitted for the rest.
    pub done_bytes: u32,
    /// The ring its SQE went to.
    pub ring: RingId,
}

/// A fixed table of in-flight commands with a free-index list.
#[derive(Debug)]
pub(super) struct Slab {
    entries: Vec<Option<InFlight>>,
    free: Vec<u32>,
}

impl Slab {
    /// A table of `depth` empty entries.
    pub fn new(depth: u32) -> Slab {
        let mut entries = Vec::with_capacity(depth as usize);
        entries.resize_with(depth as usize, || None);
        // Pop from the end: hand out low indices first.
        let free = (0..depth).rev().collect();
        Slab { entries, free }
    }

    /// Entries in use.
    pub fn len(&self) -> u32 {
        (self.entries.len() - self.free.len()) as u32
    }

    /// Stores `entry` and returns its index, or hands it back when every
    /// entry is taken (the caller admitted past the depth: a bug upstream,
    /// reported as backpressure rather than a panic).
    pub fn insert(&mut self, entry: InFlight) -> Result<u32, InFlight> {
        let Some(index) = self.free.pop() else {
            return Err(entry);
        };
        let place = &mut self.entries[index as usize];
        assert!(
            place.is_none(),
            "slab index {index} on the free list is in use"
        );
        *place = Some(entry);
        Ok(index)
    }

    /// The entry at `index`, if in use.
    pub fn get_mut(&mut self, index: u32) -> Option<&mut InFlight> {
        self.entries.get_mut(index as usize)?.as_mut()
    }

    /// Removes and returns the entry at `index`, freeing the index.
    pub fn remove(&mut self, index: u32) -> Option<InFlight> {
        let entry = self.entries.get_mut(index as usize)?.take()?;
        // Cannot grow past capacity: the index was not on the list.
        self.free.push(index);
        Some(entry)
    }

    /// Removes every entry (for a queue pair that gives up on draining).
    pub fn drain(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.free.clear();
        self.free.extend((0..self.entries.len() as u32).rev());
        self.entries.iter_mut().filter_map(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{BufferPool, PoolClass, PoolConfig};

    fn entry(token: u64) -> InFlight {
        InFlight {
            token,
            command: Command::Flush,
            done_bytes: 0,
            ring: RingId::Data,
        }
    }

    #[test]
    fn indices_are_reused_and_bounded() {
        let mut slab = Slab::new(3);
        let a = slab.insert(entry(10)).unwrap();
        let b = slab.insert(entry(11)).unwrap();
        let c = slab.insert(entry(12)).unwrap();
        assert_eq!(slab.len(), 3);
        let refused = slab.insert(entry(13)).unwrap_err();
        assert_eq!(refused.token, 13);
        assert_eq!(slab.remove(b).unwrap().token, 11);
        assert!(slab.remove(b).is_none(), "double remove finds nothing");
        assert_eq!(
            slab.insert(entry(14)).unwrap(),
            b,
            "the freed index is reused"
        );
        assert_eq!(slab.get_mut(a).unwrap().token, 10);
        assert_eq!(slab.get_mut(c).unwrap().token, 12);
        assert!(slab.get_mut(99).is_none());
        let mut tokens: Vec<u64> = slab.drain().map(|e| e.token).collect();
        tokens.sort_unstable();
        assert_eq!(tokens, [10, 12, 14]);
        assert_eq!(slab.len(), 0);
    }

    #[test]
    fn holds_buffers_without_growing() {
        let pool = BufferPool::new(&PoolConfig {
            classes: vec![PoolClass {
                slot_bytes: 4096,
                slots: 2,
            }],
            hugepages: false,
        })
        .unwrap();
        let mut slab = Slab::new(2);
        let capacity = slab.entries.capacity();
        for round in 0..100u64 {
            let buf = pool.alloc(4096).unwrap();
            let index = slab
                .insert(InFlight {
                    token: round,
                    command: Command::Read { lba: round, buf },
                    done_bytes: 0,
                    ring: RingId::Data,
                })
                .unwrap();
            let back = slab.remove(index).unwrap();
            drop(back.command.into_buf());
        }
        assert_eq!(slab.entries.capacity(), capacity);
        assert_eq!(pool.free_slots(), 2);
    }
}
