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
    begin_frame, encode_record, finish_frame, record_bytes, FrameHeader, Record, RecordKind,
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

/// Plans `batch`, to be written at `tail` with sequence numbers from
/// `first_seq`. `index` looks a key up as the index stands. `frame` is a
/// buffer to reuse.
pub(super) fn plan_batch(
    batch: Vec<Waiting>,
    index: &dyn Fn(&[u8]) -> Option<ValuePointer>,
    tail: Tail,
    first_seq: u64,
    seed: u32,
    mut frame: Vec<u8>,
) -> Planned {
    frame.clear();
    begin_frame(&mut frame);
    let mut planned = Planned {
        frame: Vec::new(),
        records: 0,
        updates: Vec::new(),
        answers: Vec::new(),
        gc_requests: 0,
        relocated_records: 0,
        relocated_bytes: 0,
    };
    let mut overlay: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    let exists = |overlay: &BTreeMap<Vec<u8>, bool>, key: &[u8]| match overlay.get(key) {
        Some(&present) => present,
        None => index(key).is_some(),
    };
    let mut seq = first_seq;
    for w in batch {
        let key = w.ops.first().map(BatchOp::key).unwrap_or_default();
        let expected = match w.kind {
            WriteKind::Conditional(condition) => {
                let holds = match condition {
                    Condition::Absent => !exists(&overlay, key),
                    Condition::Present => exists(&overlay, key),
                };
                if !holds {
                    planned.answers.push((w.id, Reply::NotApplied));
                    continue;
                }
                None
            }
            WriteKind::Relocate(_) | WriteKind::RelocateDelete => {
                planned.gc_requests += 1;
                // A write of the key in this batch or since GC read the
                // record has superseded it: nothing to move.
                let current = index(key);
                let live = !overlay.contains_key(key)
                    && match w.kind {
                        WriteKind::Relocate(pointer) => current == Some(pointer),
                        _ => current.is_none(),
                    };
                if !live {
                    continue;
                }
                planned.relocated_records += 1;
                planned.relocated_bytes += w.bytes as u64;
                match w.kind {
                    WriteKind::Relocate(pointer) => Some(pointer),
                    _ => None,
                }
            }
            WriteKind::Plain | WriteKind::Delete | WriteKind::PutGet => None,
        };
        let mut existed_any = false;
        for op in &w.ops {
            let key = op.key();
            existed_any |= exists(&overlay, key);
            let offset = tail.offset as usize + frame.len();
            let (kind, value): (RecordKind, &[u8]) = match op {
                BatchOp::Put(_, value) => (RecordKind::Put, value),
                BatchOp::Delete(_) => (RecordKind::Delete, &[]),
            };
            let record = Record {
                kind,
                seq,
                segment: tail.segment,
                key,
                value,
            };
            encode_record(&mut frame, &record, seed);
            let pointer = (kind == RecordKind::Put).then(|| ValuePointer {
                segment: tail.segment,
                offset: offset as u32,
                length: record_bytes(key.len(), value.len()) as u32,
                sequence_low: seq as u32,
            });
            overlay.insert(key.to_vec(), pointer.is_some());
            planned.updates.push(IndexUpdate {
                shard: WorkerCore::shard_of(key),
                key: key.to_vec(),
                pointer,
                expected,
            });
            seq += 1;
        }
        let answer = match w.kind {
            WriteKind::Delete => Reply::Deleted(existed_any),
            WriteKind::Plain | WriteKind::Conditional(_) => Reply::Done,
            WriteKind::PutGet => Reply::Value(w.old),
            WriteKind::Relocate(_) | WriteKind::RelocateDelete => continue,
        };
        planned.answers.push((w.id, answer));
    }
    planned.records = (seq - first_seq) as usize;
    if planned.records > 0 {
        let header = FrameHeader {
            frame_bytes: frame.len() as u32,
            record_count: planned.records as u32,
            segment_generation: tail.generation,
            segment: tail.segment,
            offset: tail.offset,
            first_seq,
        };
        finish_frame(&mut frame, &header, seed);
    }
    planned.frame = frame;
    planned
}
