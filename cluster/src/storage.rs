//! A group's Raft log and hard state, and the disk they persist to.
//!
//! [`GroupLog`] is what raft-rs reads through its `Storage` trait. It only
//! ever changes by a [`LogWrite`], and the same writes go to the node's
//! [`Disk`], all groups' writes of one step together: one flush per node
//! step persists the entries and hard states of every group the node
//! hosts (the group commit of the design). After a crash the node reopens
//! its groups from the disk.
//!
//! Log compaction keeps a snapshot (the applied state's image at an index,
//! with the configuration) and drops the entries it covers; a follower too
//! far behind is sent that snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::layout::GroupId;

/// Index and term of a new group's first snapshot.
pub const BOOTSTRAP_INDEX: u64 = 5;

/// One group's durable Raft state.
#[derive(Clone, Debug, Default)]
pub struct GroupLog {
    /// This replica's id in the group (0 until the disk says).
    replica: u64,
    hard_state: HardState,
    /// The newest snapshot: what the entries before `first_index` became.
    /// Shared, so that copying a log (the journal's rewrite takes a copy of
    /// every group's) does not copy the applied state's image.
    snapshot: Arc<Snapshot>,
    /// Entries after the snapshot, contiguous.
    entries: Vec<Entry>,
}

/// A change to one group's log, applied in memory and on the disk alike.
#[derive(Clone, Debug, Default)]
pub struct LogWrite {
    pub group: GroupId,
    /// A snapshot received from the leader: replaces the whole log.
    pub install: Option<Snapshot>,
    /// New entries; any stored entry at or after the first one's index is
    /// dropped first (a follower's log overwritten by a new leader's).
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// A snapshot taken locally at the applied index: drops the entries it
    /// covers.
    pub compact: Option<Snapshot>,
    /// The node starts hosting the group as this replica (an empty one
    /// that waits for its snapshot, or a new cluster's first): the disk
    /// remembers it across a crash.
    pub create: Option<u64>,
    /// The node stops hosting the group: the disk drops its log and
    /// remembers it left, so a restart does not bring it back.
    pub destroy: bool,
}

impl LogWrite {
    /// Whether the write changes nothing.
    pub fn is_empty(&self) -> bool {
        self.install.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.compact.is_none()
            && self.create.is_none()
            && !self.destroy
    }
}

impl GroupLog {
    /// A new group's log: its first configuration, as a snapshot at index
    /// and term [`BOOTSTRAP_INDEX`], so a replica added later (its log
    /// empty at index 0) is always brought up by a snapshot, which carries
    /// the configuration (as TiKV starts its regions at index 5).
    pub fn bootstrap(voters: Vec<u64>) -> Self {
        let mut snapshot = Snapshot::default();
        let conf = ConfState {
            voters,
            ..ConfState::default()
        };
        let meta = snapshot.mut_metadata();
        meta.set_conf_state(conf);
        meta.index = BOOTSTRAP_INDEX;
        meta.term = BOOTSTRAP_INDEX;
        let hard_state = HardState {
            term: BOOTSTRAP_INDEX,
            vote: 0,
            commit: BOOTSTRAP_INDEX,
        };
        Self {
            replica: 0,
            hard_state,
            snapshot: Arc::new(snapshot),
            entries: Vec::new(),
        }
    }

    /// An empty log for a replica being added: it waits for the leader's
    /// snapshot.
    pub fn empty(replica: u64) -> Self {
        Self {
            replica,
            ..Self::default()
        }
    }

    /// This replica's id in its group.
    pub fn replica(&self) -> u64 {
        self.replica
    }

    /// Applies a write. Entries must continue the log (raft-rs hands them
    /// out that way); a gap is a bug and panics, as raft-rs's own storage
    /// does, rather than persisting a log with a hole.
    pub fn apply(&mut self, write: &LogWrite) {
        if let Some(replica) = write.create {
            self.replica = replica;
        }
        if let Some(snapshot) = &write.install {
            self.install(snapshot.clone());
        }
        if let Some(first) = write.entries.first() {
            assert!(
                first.index > self.snapshot_index() && first.index <= self.last() + 1,
                "entries from {} do not continue a log of ({}, {}]",
                first.index,
                self.snapshot_index(),
                self.last()
            );
            let keep = (first.index - self.first()) as usize;
            self.entries.truncate(keep);
            self.entries.extend_from_slice(&write.entries);
        }
        if let Some(hs) = &write.hard_state {
            self.hard_state = hs.clone();
        }
        if let Some(snapshot) = &write.compact {
            self.compact(snapshot.clone());
        }
    }

    fn install(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = meta.index;
        self.entries.clear();
        self.snapshot = Arc::new(snapshot);
    }

    fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.get_metadata().index;
        if index <= self.snapshot_index() {
            return;
        }
        let drop = ((index + 1).saturating_sub(self.first()) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.snapshot = Arc::new(snapshot);
    }

    /// The hard state (term, vote, commit).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The newest snapshot.
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The index the snapshot covers up to.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// The stored entries (after the snapshot).
    pub fn stored_entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Stored entries (after the snapshot).
    pub fn entries_len(&self) -> usize {
        self.entries.len()
    }
}

impl raft::Storage for GroupLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let conf = self.snapshot.get_metadata().get_conf_state().clone();
        Ok(RaftState::new(self.hard_state.clone(), conf))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut out = self.entries[from..to].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entries.get((idx - self.first()) as usize) {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(Snapshot::clone(&self.snapshot))
    }
}

/// Where a node's groups persist. `persist` must make every write durable
/// before it returns: the node sends the messages that depend on them
/// (votes, acknowledgements of appends) only afterwards.
pub trait Disk {
    /// The stored log of `group`, if the node hosts it.
    fn load(&self, group: GroupId) -> Option<GroupLog>;
    /// The groups the node hosts.
    fn hosted(&self) -> Vec<GroupId>;
    /// Whether nothing was ever persisted: a new node, which bootstraps the
    /// groups the initial placement gives it.
    fn is_fresh(&self) -> bool;
    /// Applies every write, then makes them all durable with one flush.
    fn persist(&mut self, writes: &[LogWrite]);
    /// Bytes written and flushes made since the disk was opened (for
    /// metrics and the write-amplification figure); a disk that does not
    /// count says zero.
    fn written(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// A disk in memory. It survives the node that wrote it, which is what a
/// crash in the simulator drops; everything `persist` returned from is on
/// it.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    groups: BTreeMap<GroupId, GroupLog>,
    flushes: u64,
    /// Whether a write ever changed anything: a disk that hosted groups
    /// and left them all is not a new node's.
    touched: bool,
}

impl MemDisk {
    /// Flushes so far (one per node step that had something to persist).
    pub fn flushes(&self) -> u64 {
        self.flushes
    }
}

impl MemDisk {
    /// Applies writes read back from a journal. A frame of no writes is
    /// what a rewrite leaves of a node that left every group: not a new
    /// node's disk either.
    pub(crate) fn replay(&mut self, writes: &[LogWrite]) {
        self.touched |= writes.is_empty();
        self.persist(writes);
        self.flushes -= 1;
    }
}

impl Disk for MemDisk {
    fn load(&self, group: GroupId) -> Option<GroupLog> {
        self.groups.get(&group).cloned()
    }

    fn hosted(&self) -> Vec<GroupId> {
        self.groups.keys().copied().collect()
    }

    fn is_fresh(&self) -> bool {
        !self.touched
    }

    fn persist(&mut self, writes: &[LogWrite]) {
        for write in writes {
            self.touched |= !write.is_empty();
            if write.destroy {
                self.groups.remove(&write.group);
            } else {
                self.groups.entry(write.group).or_default().apply(write);
            }
        }
        self.flushes += 1;
    }
}
