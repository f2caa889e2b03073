//! The write path: group commit.
//!
//! Writes wait in `waiting`. When the oldest has waited `commit_interval_us`,
//! or the waiting bytes reach `batch_bytes_max`, the worker takes them all
//! (up to the limit) as one batch, encodes them as one log frame, writes the
//! frame (and a segment header, when the frame opens a segment), then issues
//! one flush; a frame that is one write with nothing before it is written
//! FUA instead, the write and the flush in one command. Only when the flush
//! (or the FUA write) completes does it update the index and answer every
//! writer of the batch at once: acknowledged means durable.
//!
//! A failed write fails the batch; the next batch rewrites the same place. A
//! failed flush fails the batch and fences the worker: after a failed flush
//! the device may have dropped the data it had cached, and a second flush
//! that succeeds proves nothing (PostgreSQL's "fsyncgate"). Writes are then
//! refused until the engine is reopened and recovery re-reads what is truly
//! durable. Reads keep working.
//!
//! `plan.rs` decides a batch (pure: answers, index updates, the encoded
//! frame); `apply.rs` applies a durable batch to the index, the live bytes
//! and the cache.

mod apply;
mod plan;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use nvme::{Command, IoError};

use super::{token, Reply, RequestId, WorkerCore, TAG_FLUSH, TAG_WRITE};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::format::record::{
    begin_frame, finish_frame, record_bytes, record_bytes_expiring, FrameHeader, FRAME_HEADER_BYTES,
};
use crate::format::segment::{SegmentHeader, KIND_LOG, SEGMENT_HEADER_BYTES};
use crate::index::ValuePointer;
use crate::log::Tail;
use crate::store::segments::Purpose;

/// GC's batches may be this large even when `batch_bytes_max` is smaller
/// (see `CommitPath::gc_frame_max`).
const GC_BATCH_BYTES_MIN: usize = 256 << 10;

/// One write in an atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Set a key; it never expires.
    Put(Vec<u8>, Vec<u8>),
    /// Set a key that expires once the clock passes the deadline
    /// (milliseconds since the Unix epoch).
    PutUntil(Vec<u8>, Vec<u8>, u64),
    /// Remove a key.
    Delete(Vec<u8>),
}

impl BatchOp {
    /// A put with an optional deadline.
    pub fn put(key: Vec<u8>, value: Vec<u8>, deadline: Option<u64>) -> BatchOp {
        match deadline {
            Some(at) => BatchOp::PutUntil(key, value, at),
            None => BatchOp::Put(key, value),
        }
    }

    /// The key it writes.
    pub fn key(&self) -> &[u8] {
        match self {
            BatchOp::Put(key, _) | BatchOp::PutUntil(key, _, _) | BatchOp::Delete(key) => key,
        }
    }

    /// The value a put writes (`None` for a delete).
    pub fn value(&self) -> Option<&[u8]> {
        match self {
            BatchOp::Put(_, value) | BatchOp::PutUntil(_, value, _) => Some(value),
            BatchOp::Delete(_) => None,
        }
    }

    /// A put's deadline.
    pub fn deadline(&self) -> Option<u64> {
        match self {
            BatchOp::PutUntil(_, _, at) => Some(*at),
            BatchOp::Put(..) | BatchOp::Delete(_) => None,
        }
    }

    pub(crate) fn encoded_bytes(&self) -> usize {
        match self {
            BatchOp::Put(key, value) => record_bytes(key.len(), value.len()),
            BatchOp::PutUntil(key, value, _) => record_bytes_expiring(key.len(), value.len(), true),
            BatchOp::Delete(key) => record_bytes(key.len(), 0),
        }
    }
}

/// What a waiting write answers, and whether it is conditional.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// Answer `Done`.
    Plain,
    /// Answer `Deleted(existed)`.
    Delete,
    /// Write only if the condition holds; answer `Done` or `NotApplied`.
    Conditional(super::Condition),
    /// A read-modify-write: answer what it decided (from the value read
    /// before its write was queued; writes of the key waited for it).
    Modify,
    /// GC: rewrite a live record, only if the index still points at
    /// `expected` (a newer write of the key wins). Answers nobody.
    Relocate(ValuePointer),
    /// GC: rewrite a delete record, only if the key is still absent.
    RelocateDelete,
    /// Reclaim an expired key: a delete, written only if the index still
    /// points at `pointer` and the key is expired when the batch is
    /// planned (a newer write, or a clock that went back, wins). Answers
    /// nobody. `by_gc`: GC's, in place of relocating the expired record,
    /// and counted with GC's requests.
    Reclaim {
        /// The expired record.
        pointer: ValuePointer,
        /// Whether GC asked for it.
        by_gc: bool,
    },
}

impl WriteKind {
    pub(super) fn is_gc(self) -> bool {
        matches!(
            self,
            WriteKind::Relocate(_)
                | WriteKind::RelocateDelete
                | WriteKind::Reclaim { by_gc: true, .. }
        )
    }

    /// Whether nobody waits for an answer (the engine's own writes).
    pub(super) fn silent(self) -> bool {
        self.is_gc() || matches!(self, WriteKind::Reclaim { .. })
    }
}

/// What became of GC's relocation requests: the commit path's event to GC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GcDone {
    /// Requests finished: written durably, found superseded, or failed.
    pub finished: u64,
    /// Of which failed.
    pub failed: u64,
    /// Bytes of records rewritten for GC (they count against its I/O share).
    pub relocated_bytes: u64,
    /// Room in the stream GC's records took: the padded frames of batches
    /// of GC requests alone, and what such a batch left unused at the end
    /// of the segment it switched from; in a batch shared with user writes,
    /// its records' bytes. GC weighs it against the room a victim frees.
    pub room_bytes: u64,
}

impl GcDone {
    fn finish(&mut self, requests: u64, failed: bool) {
        self.finished += requests;
        if failed {
            self.failed += requests;
        }
    }
}

pub(super) struct Waiting {
    pub id: RequestId,
    pub ops: Vec<BatchOp>,
    pub kind: WriteKind,
    pub bytes: usize,
    pub arrived_us: u64,
    /// For a read-modify-write: its answer, decided when it was queued.
    pub answer: Option<Reply>,
}

impl Waiting {
    /// How far into the reserve the request may go.
    fn purpose(&self) -> Purpose {
        if self.kind.is_gc() {
            Purpose::Gc
        } else if self.ops.iter().any(|op| op.value().is_some()) {
            Purpose::Write
        } else {
            Purpose::Delete
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Idle,
    Writing {
        /// Bytes of the staged frame submitted so far.
        submitted: usize,
        outstanding: u32,
        failed: Option<IoError>,
        /// The batch is one FUA write: durable when it completes, with no
        /// flush after it (`CommitPath::durable_write`).
        fua: bool,
    },
    Flushing,
}

/// A request of a batch with its place in it (`usize::MAX` for GC's
/// requests that joined later), so that those held back go back to the
/// queue in their order (`CommitPath::find_room`).
type Placed = (usize, Waiting);

pub(super) struct IndexUpdate {
    pub shard: u16,
    pub key: Vec<u8>,
    pub pointer: Option<ValuePointer>,
    /// A put's deadline.
    pub deadline: Option<u64>,
    /// For a GC relocation: apply only if the index still holds this.
    pub expected: Option<ValuePointer>,
}

pub(crate) struct CommitPath {
    waiting: VecDeque<Waiting>,
    waiting_bytes: usize,
    state: State,
    /// The batch being committed: its updates and its answers.
    updates: Vec<IndexUpdate>,
    answers: Vec<(RequestId, Reply)>,
    /// Where the next frame goes, and whether its segment's header is known
    /// durable.
    tail: Option<Tail>,
    /// Whether the tail's segment was taken out of the reserve (for deletes
    /// or GC): user puts stay out of it until free segments are above the
    /// reserve again.
    tail_reserved: bool,
    header_durable: bool,
    /// Header block to write before the frame (a new segment).
    header_block: Option<Vec<u8>>,
    /// The previous segment of the stream, to seal when a new one opens:
    /// set at the switch, cleared once the seal is durable.
    to_seal: Option<Tail>,
    /// The seal frame's block and where it goes, while being written.
    seal_block: Option<(u64, Vec<u8>)>,
    /// GC requests in the batch being committed.
    gc_in_batch: u64,
    /// Room GC's records take in the batch being committed (`GcDone::room_bytes`).
    gc_room_in_batch: u64,
    /// Room at the end of the segment left by this batch's switch.
    batch_waste: usize,
    /// What became of GC's requests since GC was last told.
    gc_done: GcDone,
    /// The frame being written, padded to whole blocks.
    staging: Vec<u8>,
    fenced: Option<IoError>,
    /// When the current batch's flush was submitted.
    flush_started_us: u64,
    /// Requests in the last batch started (see `interval_us`).
    last_batch_requests: usize,
    batch_bytes_max: usize,
    /// Sequence number of the last record of this stream known durable.
    last_seq: u64,
    /// Sequence number of the last record of the frame being committed.
    batch_last_seq: u64,
    /// Sequence number of the first record of the frame being committed.
    batch_first_seq: u64,
    /// The first sequence number of a failed batch whose frame may be on the
    /// media, until a later batch is durable at its place.
    unresolved_from: Option<u64>,
}

impl CommitPath {
    pub(crate) fn new(config: &EngineConfig, tail: Option<Tail>) -> CommitPath {
        CommitPath {
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            state: State::Idle,
            updates: Vec::new(),
            answers: Vec::new(),
            header_durable: tail.is_some(),
            tail,
            tail_reserved: false,
            header_block: None,
            to_seal: None,
            seal_block: None,
            gc_in_batch: 0,
            gc_room_in_batch: 0,
            batch_waste: 0,
            gc_done: GcDone::default(),
            staging: Vec::new(),
            fenced: None,
            flush_started_us: 0,
            last_batch_requests: 0,
            batch_bytes_max: config.batch_bytes_max,
            last_seq: tail.map_or(0, |t| t.last_seq),
            batch_last_seq: 0,
            batch_first_seq: 0,
            unresolved_from: None,
        }
    }

    pub(crate) fn enqueue(
        &mut self,
        id: RequestId,
        ops: Vec<BatchOp>,
        kind: WriteKind,
        now_us: u64,
    ) {
        let bytes = ops.iter().map(BatchOp::encoded_bytes).sum();
        self.waiting_bytes += bytes;
        self.waiting.push_back(Waiting {
            id,
            ops,
            kind,
            bytes,
            arrived_us: now_us,
            answer: None,
        });
    }

    /// The segment the stream left whose seal is not durable yet: GC must
    /// not collect it (the seal would be written into a freed segment).
    pub(crate) fn sealing(&self) -> Option<u32> {
        self.to_seal.map(|t| t.segment)
    }

    /// Whether writes are fenced after a failed flush.
    pub(crate) fn fenced(&self) -> bool {
        self.fenced.is_some()
    }

    /// Fences writes after a failed flush (the commit path's own, or GC's).
    /// The first error is the one writers are told from then on. Returns
    /// whether this is the first fence.
    pub(crate) fn fence(&mut self, error: IoError) -> bool {
        let first = self.fenced.is_none();
        self.fenced.get_or_insert(error);
        first
    }

    /// What became of GC's requests since the last call: GC learns it
    /// through this, never by reading the commit path's fields.
    pub(crate) fn take_gc_done(&mut self) -> GcDone {
        std::mem::take(&mut self.gc_done)
    }

    /// Queues the write of a read-modify-write whose answer is decided,
    /// to be given once the write is durable.
    pub(crate) fn enqueue_modified(
        &mut self,
        id: RequestId,
        ops: Vec<BatchOp>,
        answer: Reply,
        now_us: u64,
    ) {
        self.enqueue(id, ops, WriteKind::Modify, now_us);
        if let Some(waiting) = self.waiting.back_mut() {
            waiting.answer = Some(answer);
        }
    }

    /// Queues the reclamation of an expired key (the worker's own, not
    /// GC's): a delete nobody waits for.
    pub(crate) fn enqueue_reclaim(&mut self, key: Vec<u8>, pointer: ValuePointer, now_us: u64) {
        let kind = WriteKind::Reclaim {
            pointer,
            by_gc: false,
        };
        self.enqueue(0, vec![BatchOp::Delete(key)], kind, now_us);
    }

    /// Reclamations waiting for a batch.
    pub(crate) fn reclaims_waiting(&self) -> usize {
        let reclaim = |kind| matches!(kind, WriteKind::Reclaim { by_gc: false, .. });
        self.waiting.iter().filter(|w| reclaim(w.kind)).count()
    }

    /// Queues a GC request: one record to rewrite, under `kind`.
    pub(crate) fn enqueue_gc(&mut self, op: BatchOp, kind: WriteKind, now_us: u64) {
        debug_assert!(kind.is_gc());
        self.enqueue(0, vec![op], kind, now_us);
    }

    /// Whether user writes are waiting or being committed.
    pub(crate) fn has_user_work(&self) -> bool {
        !self.answers.is_empty() || self.waiting.iter().any(|w| !w.kind.silent())
    }

    /// The highest sequence number at or below which every record of this
    /// worker's shards is applied to its index: one before the batch being
    /// committed, or, with none, the last one issued (`next_seq - 1`), since
    /// this worker issues its shards' numbers only for its own batches.
    ///
    /// Never at or above a failed batch's records while that batch is
    /// unresolved: its frame may be durable (a write reported failed may
    /// have landed, and any later flush on the namespace covers it) though
    /// the index lacks it, and recovery must then treat it the same whether
    /// it starts from a checkpoint or replays the whole log.
    pub(crate) fn applied_through(&self, next_seq: u64) -> u64 {
        let through = if self.state == State::Idle {
            next_seq.saturating_sub(1)
        } else {
            self.batch_first_seq.saturating_sub(1)
        };
        match self.unresolved_from {
            Some(first) => through.min(first.saturating_sub(1)),
            None => through,
        }
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.waiting.is_empty() || self.state != State::Idle
    }

    pub(crate) fn due_us(&self, interval_us: u64) -> Option<u64> {
        if self.state != State::Idle {
            return None;
        }
        let interval_us = self.interval_us(interval_us);
        self.waiting.front().map(|w| w.arrived_us + interval_us)
    }

    /// How long the first write of a batch waits for company: the
    /// configured interval while writes come in groups, nothing when the
    /// last batch had a single request (a lone writer would only wait).
    /// Writes that arrive while a batch is being flushed still group behind
    /// it either way.
    fn interval_us(&self, configured_us: u64) -> u64 {
        if self.last_batch_requests <= 1 {
            0
        } else {
            configured_us
        }
    }

    /// Whether a write to `key` is waiting or being committed.
    pub(crate) fn touches_key(&self, key: &[u8]) -> bool {
        self.updates.iter().any(|u| u.key == key)
            || self
                .waiting
                .iter()
                .flat_map(|w| w.ops.iter())
                .any(|op| op.key() == key)
    }

    pub(crate) fn touches_shard(&self, shard: u16) -> bool {
        self.updates.iter().any(|u| u.shard == shard)
            || self
                .waiting
                .iter()
                .flat_map(|w| w.ops.iter())
                .any(|op| WorkerCore::shard_of(op.key()) == shard)
    }

    /// Starts a group commit when one is due, or continues submitting the
    /// current one.
    pub(crate) fn maybe_start(core: &mut WorkerCore, now_us: u64) -> bool {
        if let State::Writing { .. } = core.commit.state {
            return Self::submit_chunks(core);
        }
        if core.commit.state != State::Idle || core.commit.waiting.is_empty() {
            return false;
        }
        if let Some(error) = core.commit.fenced.clone() {
            while let Some(w) = core.commit.waiting.pop_front() {
                if w.kind.is_gc() {
                    core.commit.gc_done.finish(1, true);
                    continue;
                }
                if w.kind.silent() {
                    continue;
                }
                core.replies
                    .push((w.id, Reply::Failed(EngineError::Fenced(error.clone()))));
            }
            core.commit.waiting_bytes = 0;
            return true;
        }
        let interval = core
            .commit
            .interval_us(core.shared.config.commit_interval_us);
        let due = core.commit.waiting_bytes >= core.commit.batch_bytes_max
            || core
                .commit
                .waiting
                .front()
                .is_some_and(|w| now_us >= w.arrived_us + interval);
        if !due {
            return false;
        }
        Self::start(core)
    }

    /// Starts a group commit; returns whether anything happened (writes
    /// that only went back to wait for GC's room are not progress).
    fn start(core: &mut WorkerCore) -> bool {
        let (batch, frame_bytes) = Self::take_batch(core);
        let before = (core.replies.len(), core.commit.gc_done);
        let Some((tail, batch, frame_bytes)) = Self::find_room(core, batch, frame_bytes) else {
            return (core.replies.len(), core.commit.gc_done) != before;
        };
        let record_count: usize = batch.iter().map(|w| w.ops.len()).sum();
        let gc_only = batch.iter().all(|w| w.kind.is_gc());
        let waste = std::mem::take(&mut core.commit.batch_waste) as u64;
        let first_seq = core
            .shared
            .next_seq
            .fetch_add(record_count as u64, Ordering::Relaxed);
        Self::stage_header_and_seal(core, tail);
        let planned = Self::plan(core, batch, tail, first_seq);
        let written = planned.records;
        let staging = Self::adopt_plan(core, planned, gc_only, waste);
        if written == 0 {
            Self::finish_unwritten(core, staging);
            return true;
        }
        Self::start_writing(core, staging, frame_bytes, first_seq, written);
        true
    }

    /// Plans the batch, to be written at `tail` with sequence numbers from
    /// `first_seq`, into the staging buffer.
    fn plan(
        core: &mut WorkerCore,
        batch: Vec<Waiting>,
        tail: Tail,
        first_seq: u64,
    ) -> plan::Planned {
        // Encode the frame; decide every answer against the index as it
        // will be after the batches before this one (all applied: one batch
        // at a time) and the earlier writes of this batch.
        let staging = std::mem::take(&mut core.commit.staging);
        let shards = &core.shards;
        let lookup = |key: &[u8]| {
            let art = shards.get(&WorkerCore::shard_of(key))?;
            Some((art.get(key)?, art.deadline(key)))
        };
        let at = plan::At {
            tail,
            first_seq,
            now_ms: core.clock_ms,
        };
        plan::plan_batch(batch, &lookup, at, core.shared.seed, staging)
    }

    /// Keeps what the plan decided (index updates and answers, for when the
    /// frame is durable) and counts GC's share of the batch; returns the
    /// frame. `waste` is the room lost at the end of the segment the batch
    /// left.
    fn adopt_plan(
        core: &mut WorkerCore,
        planned: plan::Planned,
        gc_only: bool,
        waste: u64,
    ) -> Vec<u8> {
        let stats = &core.shared.stats;
        stats
            .gc_records_relocated
            .fetch_add(planned.relocated_records, Ordering::Relaxed);
        core.commit.gc_done.relocated_bytes += planned.relocated_bytes;
        if gc_only {
            // The room at the segment's end is lost whatever the batch
            // becomes; the frame's, once it is durable.
            core.commit.gc_done.room_bytes += waste;
        }
        core.commit.gc_room_in_batch = match gc_only {
            true => core.shared.layout.pad(planned.frame.len()) as u64,
            false => planned.relocated_bytes,
        };
        core.commit.gc_in_batch = planned.gc_requests;
        core.commit.updates = planned.updates;
        core.commit.answers = planned.answers;
        planned.frame
    }

    /// Ends a batch whose plan writes no record: answers it at once.
    fn finish_unwritten(core: &mut WorkerCore, staging: Vec<u8>) {
        // Nothing to write (conditional puts that did not apply, records
        // GC no longer needs to move): answer now. A segment opened for
        // this batch stays the tail; its header goes out with the next.
        core.commit.staging = staging;
        core.commit.header_block = None;
        core.commit.seal_block = None;
        core.commit.gc_done.finish(core.commit.gc_in_batch, false);
        core.commit.gc_room_in_batch = 0;
        core.replies.append(&mut core.commit.answers);
    }

    /// Pads the planned frame of `written` records (from `first_seq`) and
    /// starts submitting it; `frame_bytes` is the size it was estimated at.
    fn start_writing(
        core: &mut WorkerCore,
        mut staging: Vec<u8>,
        frame_bytes: usize,
        first_seq: u64,
        written: usize,
    ) {
        let seq = first_seq + written as u64;
        // Writes that did not apply make the frame smaller than estimated,
        // never larger.
        assert!(staging.len() <= frame_bytes, "frame larger than estimated");
        let padded = core.shared.layout.pad(staging.len());
        staging.resize(padded, 0);
        core.commit.staging = staging;
        core.commit.batch_last_seq = seq - 1;
        core.commit.batch_first_seq = first_seq;
        core.commit.state = State::Writing {
            submitted: 0,
            outstanding: 0,
            failed: None,
            fua: Self::durable_write(core),
        };
        let stats = &core.shared.stats;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.records.fetch_add(written as u64, Ordering::Relaxed);
        stats.batch_records.record(written as u64);
        stats.batch_bytes.record(padded as u64);
        Self::submit_chunks(core);
    }

    /// Whether the batch staged is written as one FUA write instead of a
    /// write and then a flush: the frame is one transfer, with no segment
    /// header or seal to write before it, and the namespace honours FUA.
    ///
    /// It is the write and the flush in one submission: one completion for
    /// the worker to wait for instead of two (on a file, `RWF_DSYNC`; on
    /// NVMe, the FUA bit). What it makes durable is all this batch wrote;
    /// every earlier batch was durable before this one started.
    fn durable_write(core: &WorkerCore) -> bool {
        core.commit.header_block.is_none()
            && core.commit.seal_block.is_none()
            && core.commit.staging.len() <= core.read.chunk_bytes_max()
            && core.namespace.geometry().supports_fua
            && core.shared.config.fua_commit
    }

    /// Takes whole waiting requests up to the batch limit (always at least
    /// one); returns them and the frame bytes they need.
    ///
    /// A batch led by GC's requests has the limit of
    /// [`CommitPath::gc_frame_max`] instead: packed as tightly as the tail
    /// allows.
    fn take_batch(core: &mut WorkerCore) -> (Vec<Waiting>, usize) {
        let frame_max = core.shared.layout.frame_bytes_max();
        let batch_max = match core.commit.waiting.front() {
            Some(first) if first.kind.is_gc() => Self::gc_frame_max(core, first.bytes),
            _ => core.commit.batch_bytes_max,
        };
        let mut batch: Vec<Waiting> = Vec::new();
        let mut frame_bytes = FRAME_HEADER_BYTES;
        while let Some(next) = core.commit.waiting.front() {
            let fits = frame_bytes + next.bytes <= frame_max
                && (batch.is_empty() || frame_bytes + next.bytes <= batch_max);
            if !fits && !batch.is_empty() {
                break;
            }
            let Some(next) = core.commit.waiting.pop_front() else {
                break;
            };
            core.commit.waiting_bytes -= next.bytes;
            frame_bytes += next.bytes;
            batch.push(next);
        }
        core.commit.last_batch_requests = batch.len();
        (batch, frame_bytes)
    }

    /// When the batch opens a segment: its header, and the seal of the
    /// segment the stream leaves. The header names the last sequence number
    /// before it, so recovery can tell a clean segment switch from a lost
    /// frame; the seal closes the segment before it, so recovery accepts a
    /// gap after it once GC has collected the segments in between.
    fn stage_header_and_seal(core: &mut WorkerCore, tail: Tail) {
        let layout = core.shared.layout;
        if core.commit.header_durable {
            core.commit.header_block = None;
            core.commit.seal_block = None;
            return;
        }
        let mut block = vec![0u8; layout.lba_bytes as usize];
        SegmentHeader {
            kind: KIND_LOG,
            uuid: core.shared.uuid,
            generation: tail.generation,
            segment: tail.segment,
            stream: core.id,
            prev_seq: core.commit.last_seq,
            key_id: 0,
        }
        .encode(&mut block[..SEGMENT_HEADER_BYTES]);
        core.commit.header_block = Some(block);
        core.commit.seal_block = core.commit.to_seal.map(|old| {
            (
                layout.segment_lba(old.segment) + u64::from(old.offset / layout.lba_bytes),
                Self::seal(core, old),
            )
        });
    }

    /// Where the batch goes: the stream's tail, or a fresh segment. Keeps
    /// the last block of every segment free for its seal. Returns the tail
    /// and what is left of the batch.
    ///
    /// On a full namespace each request takes only the room its purpose
    /// allows (`Purpose`: user puts stop at the reserve, deletes go further
    /// into it, GC's requests may take it all). When the batch cannot have
    /// the room it needs, the requests that need it wait for the room GC is
    /// making (backpressure), or, when GC has nothing to collect, fail with
    /// `OutOfSpace` at once; the others go on. GC's requests have priority
    /// for the reserved room: those waiting behind the refused writes join
    /// the batch, so they never queue behind writes that wait for the room
    /// they would make.
    fn find_room(
        core: &mut WorkerCore,
        batch: Vec<Waiting>,
        mut frame_bytes: usize,
    ) -> Option<(Tail, Vec<Waiting>, usize)> {
        // Each request with its place in the batch, so that those held back
        // go back to the queue in their order.
        let mut batch: Vec<Placed> = batch.into_iter().enumerate().collect();
        let mut held_back: Vec<Placed> = Vec::new();
        let found = loop {
            let wanted = batch
                .iter()
                .map(|(_, w)| w.purpose())
                .max()
                .unwrap_or(Purpose::Gc);
            if let Some(tail) = Self::room(core, wanted, frame_bytes) {
                break Some(tail);
            }
            if wanted == Purpose::Gc {
                // Not even GC can get a segment: its requests fail, and GC
                // gives up on its victim for now.
                tracing::error!(worker = core.id, "no free segment left even for GC");
                core.commit.gc_done.finish(batch.len() as u64, true);
                batch.clear();
                break None;
            }
            let waits = core.gc_can_make_room();
            let (mut go_on, refused) =
                Self::split_refused(std::mem::take(&mut batch), wanted, waits);
            Self::refuse(core, refused, waits, &mut held_back);
            Self::join_waiting_gc(core, &mut go_on);
            if go_on.is_empty() {
                break None;
            }
            frame_bytes = FRAME_HEADER_BYTES + go_on.iter().map(|(_, w)| w.bytes).sum::<usize>();
            batch = go_on;
        };
        Self::requeue_held_back(core, held_back);
        let tail = found?;
        let batch = batch.into_iter().map(|(_, w)| w).collect();
        Some((tail, batch, frame_bytes))
    }

    /// Splits a batch refused the room of `wanted` into the requests that go
    /// on and those refused (`waits`: whether the refused ones will wait for
    /// GC's room rather than fail).
    fn split_refused(
        batch: Vec<Placed>,
        wanted: Purpose,
        waits: bool,
    ) -> (Vec<Placed>, Vec<Placed>) {
        let mut go_on = Vec::new();
        let mut refused: Vec<Placed> = Vec::new();
        for (at, w) in batch {
            // A request that needs less room goes on, unless it writes a
            // key an earlier request that now waits also writes (per-key
            // order). A refused request that fails is never applied, so
            // it holds nothing up. GC's requests never wait: a
            // relocation is decided against the index when its batch is
            // built, so it may go before an earlier write of its key.
            let held = w.purpose() == wanted
                || (waits
                    && !w.kind.is_gc()
                    && w.ops.iter().any(|op| {
                        refused
                            .iter()
                            .flat_map(|(_, r)| r.ops.iter())
                            .any(|r| r.key() == op.key())
                    }));
            if held {
                refused.push((at, w));
            } else {
                go_on.push((at, w));
            }
        }
        (go_on, refused)
    }

    /// Requests refused room: held back to wait for the room GC is making
    /// when it can make some (`waits`), otherwise failed with `OutOfSpace`.
    fn refuse(
        core: &mut WorkerCore,
        mut refused: Vec<Placed>,
        waits: bool,
        held_back: &mut Vec<Placed>,
    ) {
        if waits {
            held_back.append(&mut refused);
        } else {
            for (_, w) in refused.into_iter().filter(|(_, w)| !w.kind.silent()) {
                core.shared
                    .stats
                    .out_of_space
                    .fetch_add(1, Ordering::Relaxed);
                core.replies
                    .push((w.id, Reply::Failed(EngineError::OutOfSpace)));
            }
        }
    }

    /// Adds to the requests that go on the GC requests waiting behind, as
    /// many as fit GC's frame with them.
    fn join_waiting_gc(core: &mut WorkerCore, go_on: &mut Vec<Placed>) {
        // GC's requests waiting behind join what goes on.
        let taken: usize = go_on.iter().map(|(_, w)| w.bytes).sum();
        let least = match taken {
            0 => core
                .commit
                .waiting
                .iter()
                .find(|w| w.kind.is_gc())
                .map_or(0, |w| w.bytes),
            _ => taken,
        };
        let frame_max = Self::gc_frame_max(core, least);
        let mut gc = Vec::new();
        Self::take_waiting_gc(core, &mut gc, frame_max, taken);
        go_on.extend(gc.into_iter().map(|w| (usize::MAX, w)));
    }

    /// Puts the requests held back for GC's room back at the front of the
    /// queue.
    fn requeue_held_back(core: &mut WorkerCore, mut held_back: Vec<Placed>) {
        // Back to the front of the queue, in their order.
        held_back.sort_by_key(|(at, _)| *at);
        for (_, w) in held_back.into_iter().rev() {
            core.commit.waiting_bytes += w.bytes;
            core.commit.waiting.push_front(w);
        }
    }

    /// How large a frame led by GC's requests may be, when its first
    /// records take at least `first_bytes`: what is left of the tail
    /// segment when they fit there (the tail is filled before the stream
    /// switches, so no room is left behind), otherwise a whole segment's
    /// room; and no more than a batch, but a batch of at least
    /// `GC_BATCH_BYTES_MIN` even when `batch_bytes_max` is smaller. Packing
    /// GC's records densely is what makes collecting a segment free room:
    /// records relocated one small frame each would be padded to whole
    /// blocks again, and a segment whose garbage is padding would take as
    /// much room as it frees.
    fn gc_frame_max(core: &WorkerCore, first_bytes: usize) -> usize {
        let layout = core.shared.layout;
        let room_end = layout.segment_bytes as usize - layout.lba_bytes as usize;
        let room = match core.commit.tail {
            Some(t)
                if t.offset as usize + layout.pad(FRAME_HEADER_BYTES + first_bytes) <= room_end =>
            {
                room_end - t.offset as usize
            }
            _ => layout.frame_bytes_max(),
        };
        room.min(core.commit.batch_bytes_max.max(GC_BATCH_BYTES_MIN))
    }

    /// Moves the GC requests waiting in the queue into `batch`, in order, as
    /// many as fit a frame of `frame_max` bytes along with `taken` bytes of
    /// records already in it (at least one when there are none).
    fn take_waiting_gc(
        core: &mut WorkerCore,
        batch: &mut Vec<Waiting>,
        frame_max: usize,
        taken: usize,
    ) {
        let commit = &mut core.commit;
        let mut frame_bytes = FRAME_HEADER_BYTES + taken;
        let mut at = 0;
        while let Some(w) = commit.waiting.get(at) {
            if !w.kind.is_gc() {
                at += 1;
                continue;
            }
            if frame_bytes + w.bytes > frame_max && frame_bytes > FRAME_HEADER_BYTES {
                break;
            }
            let Some(w) = commit.waiting.remove(at) else {
                break;
            };
            commit.waiting_bytes -= w.bytes;
            frame_bytes += w.bytes;
            batch.push(w);
        }
    }

    /// Room for a frame of `frame_bytes` for `purpose`: the stream's tail if
    /// the frame fits there, otherwise a fresh segment, if the free segments
    /// left are not reserved for others. A segment taken out of the reserve
    /// (for deletes or GC) is not for user puts while free segments are
    /// still at or below the reserve: user puts riding in it would spend the
    /// reserve a segment at a time.
    fn room(core: &mut WorkerCore, purpose: Purpose, frame_bytes: usize) -> Option<Tail> {
        let layout = core.shared.layout;
        let room_end = layout.segment_bytes as usize - layout.lba_bytes as usize;
        if let Some(t) = core.commit.tail {
            if t.offset as usize + layout.pad(frame_bytes) <= room_end {
                if purpose == Purpose::Write && core.commit.tail_reserved {
                    if !core.shared.segments().above_reserve() {
                        return None;
                    }
                    core.commit.tail_reserved = false;
                }
                return Some(t);
            }
        }
        let min_seq = core.shared.next_seq.load(Ordering::Relaxed);
        let (segment, generation, reserved) = {
            let mut segments = core.shared.segments();
            let reserved = !segments.above_reserve();
            let (segment, generation) = segments.allocate(core.id, min_seq, purpose)?;
            (segment, generation, reserved)
        };
        core.commit.tail_reserved = reserved;
        core.commit.header_durable = false;
        // Seal the segment we leave, if its seal block is ours to write (a
        // stream recovered at a segment's very end has nothing to seal).
        if let Some(old) = core.commit.tail {
            core.commit.batch_waste += room_end.saturating_sub(old.offset as usize);
            if (old.offset as usize) <= room_end && core.commit.to_seal.is_none() {
                // The seal follows the stream's last durable record.
                core.commit.to_seal = Some(Tail {
                    last_seq: core.commit.last_seq,
                    ..old
                });
            }
        }
        let tail = Tail {
            segment,
            generation,
            offset: layout.lba_bytes,
            last_seq: core.commit.last_seq,
        };
        core.commit.tail = Some(tail);
        Some(tail)
    }

    /// A seal: a frame with no records at a segment's end, saying the
    /// stream left this segment cleanly after `old.last_seq`.
    fn seal(core: &WorkerCore, old: Tail) -> Vec<u8> {
        let layout = core.shared.layout;
        let mut block = Vec::with_capacity(layout.lba_bytes as usize);
        begin_frame(&mut block);
        finish_frame(
            &mut block,
            &FrameHeader {
                frame_bytes: FRAME_HEADER_BYTES as u32,
                record_count: 0,
                segment_generation: old.generation,
                segment: old.segment,
                offset: old.offset,
                first_seq: old.last_seq + 1,
            },
            core.shared.seed,
        );
        block.resize(layout.lba_bytes as usize, 0);
        block
    }

    /// Submits as much of the staged frame (and header) as buffers allow.
    fn submit_chunks(core: &mut WorkerCore) -> bool {
        let layout = core.shared.layout;
        let Some(tail) = core.commit.tail else {
            return false;
        };
        let mut progressed = false;
        if let Some(block) = core.commit.header_block.take() {
            let Some(mut buf) = core.namespace.buffers().alloc(block.len()) else {
                core.commit.header_block = Some(block);
                return false;
            };
            buf.as_mut_slice().copy_from_slice(&block);
            Self::submit_write(core, layout.segment_lba(tail.segment), buf, false);
            progressed = true;
        }
        if let Some((lba, block)) = core.commit.seal_block.take() {
            let Some(mut buf) = core.namespace.buffers().alloc(block.len()) else {
                core.commit.seal_block = Some((lba, block));
                return progressed;
            };
            buf.as_mut_slice().copy_from_slice(&block);
            Self::submit_write(core, lba, buf, false);
            progressed = true;
        }
        let chunk_max = core.read.chunk_bytes_max();
        while let State::Writing { submitted, .. } = core.commit.state {
            if submitted >= core.commit.staging.len() {
                break;
            }
            let len = chunk_max.min(core.commit.staging.len() - submitted);
            let Some(mut buf) = core.namespace.buffers().alloc(len) else {
                break;
            };
            buf.as_mut_slice()
                .copy_from_slice(&core.commit.staging[submitted..submitted + len]);
            let lba = layout.segment_lba(tail.segment)
                + (tail.offset as u64 + submitted as u64) / u64::from(layout.lba_bytes);
            let fua = matches!(core.commit.state, State::Writing { fua: true, .. });
            Self::submit_write(core, lba, buf, fua);
            if let State::Writing { submitted, .. } = &mut core.commit.state {
                *submitted += len;
            }
            progressed = true;
        }
        progressed
    }

    /// Submits one write of the commit and counts it.
    fn submit_write(core: &mut WorkerCore, lba: u64, buf: nvme::DmaBuf, fua: bool) {
        core.shared
            .stats
            .bytes_written
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        core.submit(token(TAG_WRITE, 0), Command::Write { lba, buf, fua });
        if let State::Writing { outstanding, .. } = &mut core.commit.state {
            *outstanding += 1;
        }
    }

    pub(crate) fn write_done(core: &mut WorkerCore, result: Result<(), IoError>) {
        let State::Writing {
            submitted,
            outstanding,
            failed,
            fua,
        } = &mut core.commit.state
        else {
            panic!("write completion outside a commit");
        };
        *outstanding -= 1;
        if let Err(e) = result {
            failed.get_or_insert(e);
        }
        let all_submitted = *submitted >= core.commit.staging.len()
            && core.commit.header_block.is_none()
            && core.commit.seal_block.is_none();
        if *outstanding > 0 || !all_submitted {
            return;
        }
        let fua = *fua;
        if let Some(error) = failed.take() {
            // Nothing of this batch is acknowledged; the next batch rewrites
            // the same place (and the segment header, if this one opened it).
            core.shared
                .stats
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            if fua {
                // A FUA write is a write and a flush: its failure may be
                // the flush's (on a file, `RWF_DSYNC`'s fdatasync), after
                // which nothing the device held uncovered is known.
                Self::flush_failed(core, error);
                return;
            }
            Self::fail_batch(core, EngineError::Io(error));
            return;
        }
        if fua {
            Self::durable(core);
            return;
        }
        core.commit.state = State::Flushing;
        core.commit.flush_started_us = core.now_us;
        core.submit(token(TAG_FLUSH, 0), Command::Flush);
    }

    pub(crate) fn flush_done(core: &mut WorkerCore, result: Result<(), IoError>) {
        assert_eq!(
            core.commit.state,
            State::Flushing,
            "flush completion outside a commit"
        );
        if let Err(error) = result {
            Self::flush_failed(core, error);
            return;
        }
        core.shared.stats.flushes.fetch_add(1, Ordering::Relaxed);
        core.shared
            .stats
            .flush_latency
            .record(core.now_us.saturating_sub(core.commit.flush_started_us));
        Self::durable(core);
    }

    /// A failed flush (or FUA write): the batch fails and the worker is
    /// fenced until reopen.
    fn flush_failed(core: &mut WorkerCore, error: IoError) {
        core.shared.flush_failure();
        core.fence(error.clone());
        Self::fail_batch(core, EngineError::Io(error));
    }

    /// The batch's frame is on the media, covered by a flush or written
    /// FUA: the index learns it and its writers are answered.
    fn durable(core: &mut WorkerCore) {
        // A flush is one command for the whole namespace: one that failed
        // on another path (a worker, GC, the checkpointer) may have dropped
        // this batch's writes, and this flush's success proves nothing about
        // them (`Shared::flush_failed`).
        if core.shared.any_flush_failed() {
            // EIO: the failure itself was reported to the path that flushed.
            let error = IoError::Flush { errno: 5 };
            core.fence(error.clone());
            // Io, not Fenced: this batch was written and may be durable
            // (`Fenced` promises a write that never reached the device).
            Self::fail_batch(core, EngineError::Io(error));
            return;
        }
        core.commit.header_durable = true;
        core.commit.last_seq = core.commit.batch_last_seq;
        // This frame (or the seal before it) went where the failed one was.
        core.commit.unresolved_from = None;
        let sealed = core.commit.to_seal.take();
        let frame_offset = core.commit.tail.map_or(0, |t| t.offset);
        if let Some(tail) = &mut core.commit.tail {
            tail.offset += core.commit.staging.len() as u32;
            let mut segments = core.shared.segments();
            let info = segments.used.get_mut(&tail.segment);
            let info = info.expect("the stream's tail segment is in the segment table");
            info.last_seq = core.commit.last_seq;
            if let Some(old) = sealed {
                let info = segments.used.get_mut(&old.segment);
                info.expect("a sealed segment is in the segment table")
                    .sealed = true;
            }
        }
        let updates = std::mem::take(&mut core.commit.updates);
        apply::apply_updates(core, updates, frame_offset);
        core.commit.gc_done.finish(core.commit.gc_in_batch, false);
        core.commit.gc_done.room_bytes += std::mem::take(&mut core.commit.gc_room_in_batch);
        core.commit.gc_in_batch = 0;
        core.replies.append(&mut core.commit.answers);
        core.commit.state = State::Idle;
        core.shared.note_commit();
    }

    fn fail_batch(core: &mut WorkerCore, error: EngineError) {
        // Until a later batch's frame (or seal) overwrites its place
        // durably, the failed frame may be on the media.
        core.commit
            .unresolved_from
            .get_or_insert(core.commit.batch_first_seq);
        core.commit.gc_done.finish(core.commit.gc_in_batch, true);
        core.commit.gc_in_batch = 0;
        core.commit.gc_room_in_batch = 0;
        core.commit.updates.clear();
        for (id, _) in core.commit.answers.drain(..) {
            core.replies.push((id, Reply::Failed(error.clone())));
        }
        core.commit.state = State::Idle;
    }
}
