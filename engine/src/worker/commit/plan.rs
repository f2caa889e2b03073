//! Planning a group commit, with no I/O and no state of its own: given the
//! batch, the index as it stands and where the frame goes, decide every
//! answer, the index updates the batch makes once durable, and the frame's
//! bytes.
//!
//! Every answer is decided against the index as it will be after the
//! batches before this one (all applied: one batch at a time) and after the
//! earlier writes of this batch (the overlay).

use std::collections::BTreeMap;

use super::{BatchOp, IndexUpdate, Waiting, WriteKind};
use crate::format::record::{
    begin_frame, encode_record, finish_frame, FrameHeader, Record, RecordKind,
};
use crate::index::ValuePointer;
use crate::log::Tail;
use crate::worker::{Condition, Reply, RequestId, WorkerCore};

/// A planned batch.
pub(super) struct Planned {
    /// The frame, finished but not padded; empty of records when nothing
    /// is written.
    pub frame: Vec<u8>,
    /// Records in the frame.
    pub records: usize,
    /// What the index becomes once the frame is durable.
    pub updates: Vec<IndexUpdate>,
    /// Answers to send once the frame is durable (or at once, if nothing is
    /// written).
    pub answers: Vec<(RequestId, Reply)>,
    /// GC requests in the batch (each finishes with the batch).
    pub gc_requests: u64,
    /// Of those, records still live and rewritten, and their bytes.
    pub relocated_records: u64,
    pub relocated_bytes: u64,
}

/// Where and when a batch is planned.
pub(super) struct At {
    /// Where the frame goes.
    pub tail: Tail,
    /// The sequence number of its first record.
    pub first_seq: u64,
    /// The worker's clock: a key whose deadline it has passed is absent.
    pub now_ms: u64,
}

/// What the index holds for a key: its pointer and deadline.
pub(super) type Lookup<'a> = &'a dyn Fn(&[u8]) -> Option<(ValuePointer, Option<u64>)>;

/// Plans `batch`, to be written where and when `at` says. `index` looks a
/// key up as the index stands (expired or not). `frame` is a buffer to
/// reuse.
pub(super) fn plan_batch(
    batch: Vec<Waiting>,
    index: Lookup<'_>,
    at: At,
    seed: u32,
    mut frame: Vec<u8>,
) -> Planned {
    let At {
        tail,
        first_seq,
        now_ms,
    } = at;
    frame.clear();
    begin_frame(&mut frame);
    let mut planner = Planner {
        index,
        now_ms,
        tail,
        seed,
        seq: first_seq,
        frame,
        overlay: BTreeMap::new(),
        planned: Planned {
            frame: Vec::new(),
            records: 0,
            updates: Vec::new(),
            answers: Vec::new(),
            gc_requests: 0,
            relocated_records: 0,
            relocated_bytes: 0,
        },
    };
    for w in batch {
        planner.plan_request(w);
    }
    planner.finish(first_seq)
}

/// Whether a request of the batch writes its records.
enum Verdict {
    /// It writes; its index updates apply only if the index still holds
    /// `expected` (a relocation's compare-and-swap), else unconditionally.
    Write { expected: Option<ValuePointer> },
    /// A condition that does not hold: answered at once, nothing written.
    NotApplied,
    /// A relocation whose record a newer write has superseded: nothing to
    /// move, and nobody to answer.
    Superseded,
}

/// A batch being planned: the frame so far, and what the batch's earlier
/// requests decided.
struct Planner<'a> {
    /// The index as it stands (before this batch).
    index: Lookup<'a>,
    now_ms: u64,
    tail: Tail,
    seed: u32,
    /// The next record's sequence number.
    seq: u64,
    frame: Vec<u8>,
    /// Keys this batch has written so far, and whether each now exists.
    overlay: BTreeMap<Vec<u8>, bool>,
    planned: Planned,
}

impl Planner<'_> {
    /// Plans one request: decides whether it writes, appends its records
    /// and decides its answer.
    fn plan_request(&mut self, w: Waiting) {
        if w.kind.is_gc() {
            self.planned.gc_requests += 1;
        }
        let expected = match self.verdict(w.kind, &w.ops) {
            Verdict::Write { expected } => expected,
            Verdict::NotApplied => {
                self.planned.answers.push((w.id, Reply::NotApplied));
                return;
            }
            Verdict::Superseded => return,
        };
        if w.kind.is_gc() {
            self.planned.relocated_records += 1;
            self.planned.relocated_bytes += w.bytes as u64;
        }
        let mut existed_any = false;
        for op in &w.ops {
            existed_any |= self.exists(op.key());
            self.append_record(op, expected);
        }
        let answer = match w.kind {
            WriteKind::Delete => Reply::Deleted(existed_any),
            WriteKind::Plain | WriteKind::Conditional(_) => Reply::Done,
            WriteKind::Modify => w.answer.unwrap_or(Reply::Done),
            WriteKind::Relocate(_) | WriteKind::RelocateDelete | WriteKind::Reclaim { .. } => {
                return
            }
        };
        self.planned.answers.push((w.id, answer));
    }

    /// Whether a request of `kind` writing `ops` writes, judged against
    /// the index and this batch's earlier writes.
    fn verdict(&self, kind: WriteKind, ops: &[BatchOp]) -> Verdict {
        let key = ops.first().map(BatchOp::key).unwrap_or_default();
        match kind {
            WriteKind::Conditional(condition) => {
                // A conditional batch (MSETNX) needs it of every key, judged
                // before any of its own writes.
                let holds = ops.iter().all(|op| match condition {
                    Condition::Absent => !self.exists(op.key()),
                    Condition::Present => self.exists(op.key()),
                });
                if holds {
                    Verdict::Write { expected: None }
                } else {
                    Verdict::NotApplied
                }
            }
            WriteKind::Reclaim { pointer, .. } => {
                // Only the expired record itself, and only while it is
                // expired: a newer write of the key, or a clock that went
                // back, keeps the key.
                let current = (self.index)(key);
                let expired = current.is_some_and(|(p, deadline)| {
                    p == pointer && deadline.is_some_and(|d| self.now_ms > d)
                });
                if self.overlay.contains_key(key) || !expired {
                    return Verdict::Superseded;
                }
                Verdict::Write {
                    expected: Some(pointer),
                }
            }
            WriteKind::Relocate(_) | WriteKind::RelocateDelete => {
                // A write of the key in this batch or since GC read the
                // record has superseded it: nothing to move.
                let current = (self.index)(key).map(|(pointer, _)| pointer);
                let live = !self.overlay.contains_key(key)
                    && match kind {
                        WriteKind::Relocate(pointer) => current == Some(pointer),
                        _ => current.is_none(),
                    };
                if !live {
                    return Verdict::Superseded;
                }
                let expected = match kind {
                    WriteKind::Relocate(pointer) => Some(pointer),
                    _ => None,
                };
                Verdict::Write { expected }
            }
            WriteKind::Plain | WriteKind::Delete | WriteKind::Modify => {
                Verdict::Write { expected: None }
            }
        }
    }

    /// Whether `key` exists (and has not expired) once the batches before
    /// and this batch's earlier writes are applied.
    fn exists(&self, key: &[u8]) -> bool {
        match self.overlay.get(key) {
            Some(&present) => present,
            None => (self.index)(key)
                .is_some_and(|(_, deadline)| deadline.is_none_or(|d| self.now_ms <= d)),
        }
    }

    /// Appends `op`'s record to the frame, with the index update it makes
    /// once durable.
    fn append_record(&mut self, op: &BatchOp, expected: Option<ValuePointer>) {
        let key = op.key();
        let offset = self.tail.offset as usize + self.frame.len();
        let (kind, value) = match op.value() {
            Some(value) => (RecordKind::Put, value),
            None => (RecordKind::Delete, &[][..]),
        };
        let deadline = op.deadline();
        let record = Record {
            kind,
            seq: self.seq,
            segment: self.tail.segment,
            key,
            value,
            expire_at_ms: deadline,
        };
        encode_record(&mut self.frame, &record, self.seed);
        let pointer = (kind == RecordKind::Put).then(|| ValuePointer {
            segment: self.tail.segment,
            offset: offset as u32,
            length: record.encoded_bytes() as u32,
            sequence_low: self.seq as u32,
        });
        // A put whose deadline has already passed (`SET ... PXAT` in the
        // past) is written, as Redis stores it, but the key is absent.
        let present = pointer.is_some() && deadline.is_none_or(|d| self.now_ms <= d);
        self.overlay.insert(key.to_vec(), present);
        self.planned.updates.push(IndexUpdate {
            shard: WorkerCore::shard_of(key),
            key: key.to_vec(),
            pointer,
            deadline,
            expected,
        });
        self.seq += 1;
    }

    /// The plan, with the frame finished if it holds any record.
    fn finish(mut self, first_seq: u64) -> Planned {
        self.planned.records = (self.seq - first_seq) as usize;
        if self.planned.records > 0 {
            let header = FrameHeader {
                frame_bytes: self.frame.len() as u32,
                record_count: self.planned.records as u32,
                segment_generation: self.tail.generation,
                segment: self.tail.segment,
                offset: self.tail.offset,
                first_seq,
            };
            finish_frame(&mut self.frame, &header, self.seed);
        }
        self.planned.frame = self.frame;
        self.planned
    }
}
