//! The read path: index lookup, then read and verify the record.
//!
//! Every byte read is verified before use: the record's crc32c, its sequence
//! number against the index pointer (a stale or misdirected block carries a
//! different one), its segment, and its key. A record that fails is reported
//! as corruption with its location and counted; it is never returned.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;

use nvme::{Command, Completion, IoError};

use super::{token, Reply, RequestId, WorkerCore, TAG_READ};
use crate::config::EngineConfig;
use crate::error::{EngineError, Location};
use crate::format::record::{decode_record, RecordKind};
use crate::index::{Art, ValuePointer};
use crate::modify::Modify;

const CHUNK_BITS: u32 = 20;

/// What a read answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadKind {
    /// The value (GET).
    Value,
    /// Whether the key exists (EXISTS).
    Exists,
    /// Its deadline (`Op::Deadline`), from the index alone.
    Deadline,
}

struct ReadOp {
    id: RequestId,
    key: Vec<u8>,
    /// For a read-modify-write: what to apply once the value is read.
    then: Option<Box<Modify>>,
    pointer: ValuePointer,
    /// Bytes of whole blocks covering the record.
    data: Vec<u8>,
    outstanding: u32,
    error: Option<IoError>,
}

/// A read waiting for a slot: who asked, the key, where its record is, and
/// for a read-modify-write what to apply after.
type Waiting = (RequestId, Vec<u8>, ValuePointer, Option<Box<Modify>>);

pub(crate) struct ReadPath {
    waiting: VecDeque<Waiting>,
    slots: Vec<Option<ReadOp>>,
    free: Vec<usize>,
    chunk_bytes_max: usize,
    /// Read-modify-write reads waiting or in flight.
    modifies: usize,
}

impl ReadPath {
    pub(crate) fn new(config: &EngineConfig, chunk_bytes_max: usize) -> ReadPath {
        let slots = config.reads_in_flight_max.max(1);
        ReadPath {
            waiting: VecDeque::new(),
            slots: (0..slots).map(|_| None).collect(),
            free: (0..slots).rev().collect(),
            chunk_bytes_max,
            modifies: 0,
        }
    }

    pub(crate) fn chunk_bytes_max(&self) -> usize {
        self.chunk_bytes_max
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.waiting.is_empty() || self.free.len() < self.slots.len()
    }

    /// Looks the key up (a key expired at `now_ms` is absent); answers at
    /// once when absent (or for EXISTS and deadlines), or queues the
    /// record read.
    pub(crate) fn start(
        &mut self,
        id: RequestId,
        key: Vec<u8>,
        kind: ReadKind,
        now_ms: u64,
        shards: &BTreeMap<u16, Art>,
        replies: &mut Vec<(RequestId, Reply)>,
    ) {
        let shard = WorkerCore::shard_of(&key);
        let Some(art) = shards.get(&shard) else {
            replies.push((id, Reply::Failed(EngineError::NotOwner { shard })));
            return;
        };
        let pointer = art.get_live(&key, now_ms);
        match (pointer, kind) {
            (found, ReadKind::Exists) => replies.push((id, Reply::Exists(found.is_some()))),
            (None, ReadKind::Deadline) => replies.push((id, Reply::Integer(-2))),
            (Some(_), ReadKind::Deadline) => {
                let deadline = art
                    .deadline(&key)
                    .map_or(-1, |d| d.min(i64::MAX as u64) as i64);
                replies.push((id, Reply::Integer(deadline)));
            }
            (None, ReadKind::Value) => replies.push((id, Reply::Value(None))),
            (Some(pointer), ReadKind::Value) => self.waiting.push_back((id, key, pointer, None)),
        }
    }

    /// Reads the value of `key` at `pointer` for a read-modify-write;
    /// `modify` is applied once it is known.
    pub(crate) fn start_modify(
        &mut self,
        id: RequestId,
        key: Vec<u8>,
        modify: Box<Modify>,
        pointer: ValuePointer,
    ) {
        self.modifies += 1;
        self.waiting.push_back((id, key, pointer, Some(modify)));
    }

    /// Whether a read-modify-write of `key` (or naming it as its other
    /// key, a rename's target) is reading its value: requests of the key
    /// wait for it.
    pub(crate) fn modify_pending(&self, key: &[u8]) -> bool {
        let names = |k: &[u8], then: &Option<Box<Modify>>| {
            then.as_ref()
                .is_some_and(|m| k == key || m.other_key() == Some(key))
        };
        self.modifies > 0
            && (self.waiting.iter().any(|(_, k, _, then)| names(k, then))
                || self
                    .slots
                    .iter()
                    .flatten()
                    .any(|op| names(&op.key, &op.then)))
    }

    /// Whether a read-modify-write of a key of `shard` is reading its value
    /// (its write comes next).
    pub(crate) fn modify_touches_shard(&self, shard: u16) -> bool {
        self.modifies > 0
            && (self
                .waiting
                .iter()
                .any(|(_, k, _, then)| then.is_some() && WorkerCore::shard_of(k) == shard)
                || self
                    .slots
                    .iter()
                    .flatten()
                    .any(|op| op.then.is_some() && WorkerCore::shard_of(&op.key) == shard))
    }

    /// Starts waiting reads while slots and buffers last.
    pub(crate) fn submit_waiting(core: &mut WorkerCore) -> bool {
        let layout = core.shared.layout;
        let lba_bytes = layout.lba_bytes as usize;
        let mut progressed = false;
        while !core.read.waiting.is_empty() {
            let Some(&slot) = core.read.free.last() else {
                break;
            };
            let Some(&(_, _, pointer, _)) = core.read.waiting.front() else {
                break;
            };
            let start = pointer.offset as usize / lba_bytes * lba_bytes;
            let end = layout.pad(pointer.offset as usize + pointer.length as usize);
            let bytes = end - start;
            let chunk_max = core.read.chunk_bytes_max;
            // Take every buffer first, so a read is submitted whole or not yet.
            let mut bufs = Vec::with_capacity(bytes.div_ceil(chunk_max));
            let mut at = 0;
            while at < bytes {
                let len = chunk_max.min(bytes - at);
                match core.namespace.buffers().alloc(len) {
                    Some(buf) => bufs.push(buf),
                    None => break,
                }
                at += len;
            }
            if at < bytes {
                break;
            }
            let Some((id, key, pointer, then)) = core.read.waiting.pop_front() else {
                break;
            };
            core.read.free.pop();
            let first_lba = layout.segment_lba(pointer.segment) + (start / lba_bytes) as u64;
            let chunks = bufs.len() as u32;
            core.read.slots[slot] = Some(ReadOp {
                id,
                key,
                then,
                pointer,
                data: vec![0u8; bytes],
                outstanding: chunks,
                error: None,
            });
            for (chunk, buf) in bufs.into_iter().enumerate() {
                let lba = first_lba + (chunk * chunk_max / lba_bytes) as u64;
                let payload = ((slot as u64) << CHUNK_BITS) | chunk as u64;
                core.submit(token(TAG_READ, payload), Command::Read { lba, buf });
            }
            core.shared
                .stats
                .bytes_read
                .fetch_add(bytes as u64, Ordering::Relaxed);
            progressed = true;
        }
        progressed
    }

    pub(crate) fn chunk_done(core: &mut WorkerCore, payload: u64, done: Completion) {
        let slot = (payload >> CHUNK_BITS) as usize;
        let chunk = (payload & ((1 << CHUNK_BITS) - 1)) as usize;
        let chunk_max = core.read.chunk_bytes_max;
        let Some(op) = core.read.slots.get_mut(slot).and_then(Option::as_mut) else {
            panic!("read completion for empty slot {slot}");
        };
        op.outstanding -= 1;
        match (done.result, done.buf) {
            (Ok(()), Some(buf)) => {
                let at = chunk * chunk_max;
                op.data[at..at + buf.len()].copy_from_slice(buf.as_slice());
            }
            (Err(e), _) => {
                op.error.get_or_insert(e);
            }
            (Ok(()), None) => {
                op.error.get_or_insert(IoError::Device { lba: 0, errno: 5 });
            }
        }
        if op.outstanding > 0 {
            return;
        }
        let Some(op) = core.read.slots[slot].take() else {
            return;
        };
        core.read.free.push(slot);
        let reply = Self::finish(core, op.pointer, &op.key, &op.data, op.error);
        if let Some(modify) = op.then {
            core.read.modifies -= 1;
            // A read-modify-write: the value is known; the modification
            // goes on. The index cannot have moved under it except by GC
            // (writes of the key waited), so a moved record is simply read
            // again.
            let now = core.now_us;
            match reply {
                Some(Reply::Value(current)) => core.modified(op.id, op.key, *modify, current, now),
                Some(failed) => core.replies.push((op.id, failed)),
                None => core.accept(op.id, super::Op::Modify(op.key, modify), now),
            }
            return;
        }
        let Some(mut reply) = reply else {
            // The index moved on while the record was read (GC relocated it
            // and the segment was reused): ask again, as a new get.
            let now = core.now_us;
            core.accept(op.id, super::Op::Get(op.key), now);
            return;
        };
        if let Reply::Value(Some(value)) = &reply {
            core.cache_fill(&op.key, op.pointer, value);
        }
        // The clock may have passed the key's deadline during the read: an
        // expired key is never served.
        if matches!(reply, Reply::Value(Some(_))) && !core.live(&op.key) {
            reply = Reply::Value(None);
        }
        core.shared.stats.gets.fetch_add(1, Ordering::Relaxed);
        core.replies.push((op.id, reply));
    }

    fn finish(
        core: &mut WorkerCore,
        pointer: ValuePointer,
        key: &[u8],
        data: &[u8],
        error: Option<IoError>,
    ) -> Option<Reply> {
        let location = Location {
            segment: pointer.segment,
            offset: pointer.offset,
        };
        match error {
            Some(IoError::Integrity { lba }) => {
                return Some(Reply::Failed(core.corruption(
                    location,
                    format!("device reported a protection-information error at lba {lba}"),
                )))
            }
            Some(e) => return Some(Reply::Failed(WorkerCore::io_error(e))),
            None => {}
        }
        let lba_bytes = core.shared.layout.lba_bytes as usize;
        let in_block = pointer.offset as usize % lba_bytes;
        let record_end = in_block + pointer.length as usize;
        let verdict = match decode_record(&data[in_block..record_end], core.shared.seed) {
            Err(e) => Err(e.to_string()),
            Ok((record, len)) => {
                if len != pointer.length as usize {
                    Err(format!(
                        "record length {len}, index says {}",
                        pointer.length
                    ))
                } else if record.seq as u32 != pointer.sequence_low
                    || record.segment != pointer.segment
                {
                    Err(format!(
                        "stale or misdirected record (seq {} segment {}), index expects seq low {} segment {}",
                        record.seq, record.segment, pointer.sequence_low, pointer.segment
                    ))
                } else if record.key != key {
                    Err("record holds a different key".to_string())
                } else if record.kind != RecordKind::Put {
                    Err("index points at a delete record".to_string())
                } else if record.expire_at_ms.is_some_and(|at| core.clock_ms > at) {
                    // Expired while it was read, and perhaps reclaimed
                    // meanwhile, so that the index no longer tells: the
                    // record's own deadline decides. Never served.
                    Ok(None)
                } else {
                    Ok(Some(record.value.to_vec()))
                }
            }
        };
        match verdict {
            Ok(value) => Some(Reply::Value(value)),
            Err(_) if Self::moved(core, key, pointer) => None,
            Err(detail) => Some(Reply::Failed(core.corruption(location, detail))),
        }
    }

    /// Whether the index no longer points at `pointer` for `key`.
    fn moved(core: &WorkerCore, key: &[u8], pointer: ValuePointer) -> bool {
        core.shards
            .get(&WorkerCore::shard_of(key))
            .is_some_and(|art| art.get(key) != Some(pointer))
    }
}
