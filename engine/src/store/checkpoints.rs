//! Checkpoint state the workers, GC and the checkpointer share: the
//! collection of shard copies being taken, and what each root slot holds
//! durably (which GC must honour).

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

/// What one root slot holds, as far as GC must care: a full replay of the
/// log (no checkpoint), or a checkpoint with its lowest watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    /// Recovery may replay the whole log.
    Empty,
    /// Recovery may start from a checkpoint: records above this may be
    /// replayed on top of it.
    Watermark(u64),
}

impl Base {
    /// Whether a delete record with `seq` must be kept for recovery from
    /// this base: when an older put of its key may be replayed, or may be
    /// in the checkpoint. `min_seq_elsewhere` is the lowest sequence number
    /// any other segment may hold.
    pub(crate) fn needs_delete(self, seq: u64, min_seq_elsewhere: u64) -> bool {
        match self {
            Base::Empty => seq > min_seq_elsewhere,
            Base::Watermark(w) => seq > w,
        }
    }
}

/// Checkpoint state shared by the workers and the checkpointer.
pub(crate) struct Checkpoints {
    /// Whether workers should copy their shards now.
    pub collecting: AtomicBool,
    collection: Mutex<Collection>,
    /// What each root slot holds durably: GC keeps what recovery from
    /// either would need.
    bases: Mutex<[Base; 2]>,
}

impl Checkpoints {
    pub(crate) fn new(bases: [Base; 2]) -> Checkpoints {
        Checkpoints {
            collecting: AtomicBool::new(false),
            collection: Mutex::new(Collection::default()),
            bases: Mutex::new(bases),
        }
    }

    /// The shard copies being collected. A poisoned lock is fatal, as for
    /// the segment table: skipping this bookkeeping is worse than stopping.
    pub(crate) fn collection(&self) -> MutexGuard<'_, Collection> {
        self.collection
            .lock()
            .expect("the checkpoint collection's lock is poisoned")
    }

    /// What each root slot holds durably (poisoned: fatal).
    pub(crate) fn bases(&self) -> MutexGuard<'_, [Base; 2]> {
        self.bases
            .lock()
            .expect("the checkpoint bases' lock is poisoned")
    }

    /// Whether a delete record is still needed by either slot's recovery.
    pub(crate) fn needs_delete(&self, seq: u64, min_seq_elsewhere: u64) -> bool {
        self.bases()
            .iter()
            .any(|b| b.needs_delete(seq, min_seq_elsewhere))
    }
}

/// Shard copies gathered so far for the checkpoint being taken.
#[derive(Default)]
pub(crate) struct Collection {
    /// Per shard: its watermark and its encoded section.
    pub sections: Vec<Option<(u64, Vec<u8>)>>,
    pub remaining: usize,
}

impl Collection {
    /// The shards among `owned` still to copy, at most `max`.
    pub(crate) fn wanted(&self, owned: impl Iterator<Item = u16>, max: usize) -> Vec<u16> {
        owned
            .filter(|&s| matches!(self.sections.get(usize::from(s)), Some(None)))
            .take(max)
            .collect()
    }

    /// Stores a shard's copy; returns whether that was the last one.
    pub(crate) fn deposit(&mut self, shard: u16, watermark: u64, section: Vec<u8>) -> bool {
        if let Some(slot @ None) = self.sections.get_mut(usize::from(shard)) {
            *slot = Some((watermark, section));
            self.remaining -= 1;
        }
        self.remaining == 0
    }
}
