//! Garbage collection of log segments.
//!
//! The log is also the value log, so an overwritten or deleted key leaves
//! its old record behind as garbage. Each worker collects segments of its
//! own stream, one victim at a time:
//!
//! 1. **Choose** by cost-benefit, as in LFS: garbage ratio against age,
//!    `(1 - u) × age / (1 + u)`, with `u` the live fraction and age the
//!    sequence numbers written since the segment's last record. Never a
//!    stream's newest segment (it is being appended to), never a segment
//!    whose predecessor in the stream is unsealed (recovery must see where
//!    the stream resumes), never a segment with reported damage.
//! 2. **Read** the victim in chunks, under the I/O budget.
//! 3. **Relocate** what is live, through the commit path like any write, so
//!    that it is ordered with the worker's own writes: a put is rewritten
//!    only if the index still points at it; a delete only if the key is
//!    still absent and some other segment may hold an older record of it.
//! 4. **Free**: once every relocation is durable and the index points at
//!    nothing in the victim (`live` is zero, which also covers shards that
//!    moved to other workers), zero its header, flush, zero its first body
//!    block, flush, and return it to the free list. The header goes first:
//!    a victim whose header survived a crash must still read as a whole log
//!    (a zeroed first frame under a header would be reported as a lost
//!    write). The first body block goes next, so that recovery can tell a
//!    free segment from a log segment whose header was lost: a frame there
//!    with no header is reported (`recovery::headerless_segment`).
//!
//! A crash anywhere leaves either the victim (whose records recovery
//! replays under the relocated copies' newer sequence numbers) or the
//! copies, and never frees what is referenced. See `docs/gc.md`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use nvme::{Command, Completion, IoError};

use super::commit::{GcDone, WriteKind};
use super::{token, BatchOp, WorkerCore, TAG_GC_ERASE, TAG_GC_FLUSH, TAG_GC_READ};
use crate::error::Location;
use crate::format::record::{frame_records, Record, RecordKind};
use crate::index::ValuePointer;
use crate::log::walk::{End, SegmentRef};
use crate::log::{Event, StreamWalk};
use crate::store::segments::SegmentInfo;

/// After finding nothing worth collecting, GC looks again only once this
/// many more sequence numbers are written (or a storm is asked for).
const IDLE_SEQS: u64 = 256;

/// Sequence numbers to wait before retrying a victim GC had to give up on.
const RETRY_AFTER_BLOCKED: u64 = 1 << 16;

/// A victim's live bytes may be at most this share of its capacity.
const GARBAGE_LIVE_MAX: f64 = 0.875;

/// GC reads at most this many chunks of a victim at once (one while
/// foreground requests wait).
const READS_IN_FLIGHT_MAX: u32 = 2;
/// GC reads a victim in chunks of at most this many bytes, so that a get
/// queued behind one waits for a short read, not a megabyte.
const READ_CHUNK_BYTES_MAX: usize = 128 << 10;
/// Foreground requests must have been absent this long before GC ignores
/// its share of the I/O.
const FOREGROUND_IDLE_US: u64 = 2_000;

#[derive(Debug)]
enum State {
    Idle,
    Reading {
        victim: u32,
        info: SegmentInfo,
        data: Vec<u8>,
        submitted: usize,
        outstanding: u32,
        failed: bool,
    },
    Relocating {
        victim: u32,
        /// Requests handed to the commit path and not finished yet.
        outstanding: u64,
        /// Whether any of them failed.
        failed: bool,
        /// Room the relocated records took in the stream so far.
        room_used: u64,
    },
    /// The victim's `block` is to be zeroed next (retried each step until a
    /// buffer is free).
    ToErase {
        victim: u32,
        block: u32,
    },
    /// Zeroing one block of the victim: its header (0), then, once that is
    /// durable, its first body block (1).
    Erasing {
        victim: u32,
        block: u32,
    },
    Flushing {
        victim: u32,
        block: u32,
    },
}

/// What walking a victim found (`GcPath::scan_victim`).
struct Scan {
    /// What is live in it, to go through the commit path, in log order.
    requests: Vec<(BatchOp, WriteKind)>,
    /// Whether it holds a delete of a shard another worker owns now that
    /// may still be needed.
    foreign_delete: bool,
    /// Bytes of this worker's records the index still points at: the rest
    /// of the victim's live bytes are records of shards another worker owns
    /// now.
    own_live: u64,
    /// Where the first damage is, if any.
    damage: Option<Location>,
}

pub(crate) struct GcPath {
    state: State,
    /// Storms requested engine-wide that this worker has started.
    storms_seen: u64,
    /// Victims of the storm in progress.
    storm: BTreeSet<u32>,
    /// Percent of this worker's I/O bytes GC may use while foreground
    /// requests wait.
    share: u64,
    /// Bytes GC has read, erased and had rewritten: its share of
    /// `WorkerCore::io_bytes`.
    gc_bytes: u64,
    /// After finding no victim, GC looks again only once the store has
    /// written past this sequence number (or a storm is requested).
    idle_until_seq: u64,
    /// When a foreground request was last seen waiting.
    foreground_seen_us: u64,
    /// The last answer to "is free space low", and the sequence number it
    /// was given at.
    space_low_at: Option<(u64, bool)>,
}

impl GcPath {
    pub(crate) fn new(share_percent: u8) -> GcPath {
        GcPath {
            state: State::Idle,
            storms_seen: 0,
            storm: BTreeSet::new(),
            share: u64::from(share_percent.clamp(1, 100)),
            gc_bytes: 0,
            idle_until_seq: 0,
            foreground_seen_us: 0,
            space_low_at: None,
        }
    }

    /// The commit path's word on GC's requests: relocations written,
    /// superseded or failed.
    pub(crate) fn relocations_done(&mut self, done: GcDone) {
        self.gc_bytes += done.relocated_bytes;
        if let State::Relocating { room_used, .. } = &mut self.state {
            *room_used += done.room_bytes;
        }
        if done.finished == 0 {
            return;
        }
        let State::Relocating {
            outstanding,
            failed,
            ..
        } = &mut self.state
        else {
            panic!("GC requests finished while GC relocates nothing: {done:?}");
        };
        assert!(
            done.finished <= *outstanding,
            "more GC requests finished ({}) than were outstanding ({outstanding})",
            done.finished
        );
        *outstanding -= done.finished;
        *failed |= done.failed > 0;
    }

    pub(crate) fn has_work(&self) -> bool {
        !matches!(self.state, State::Idle) || !self.storm.is_empty()
    }

    /// Whether GC is collecting, or has not yet looked for a victim since
    /// the store last wrote: writes that found no room may wait for it.
    pub(crate) fn may_make_room(&self, next_seq: u64) -> bool {
        self.has_work() || next_seq >= self.idle_until_seq
    }

    /// Whether GC may spend more I/O now: always when no foreground request
    /// waits or free space is urgent (under half of GC's target: writes
    /// would soon fail), otherwise while its bytes stay within its share.
    fn within_budget(core: &WorkerCore) -> bool {
        let gc = &core.gc;
        let foreground = core.io_bytes.saturating_sub(gc.gc_bytes);
        Self::foreground_idle(core)
            || gc.gc_bytes * (100 - gc.share.min(99)) <= foreground * gc.share
            || core.space_urgent()
    }

    /// Whether no foreground request has waited for a while. Closed-loop
    /// clients leave the worker idle for microseconds between requests;
    /// those gaps are not idleness.
    fn foreground_idle(core: &WorkerCore) -> bool {
        core.now_us.saturating_sub(core.gc.foreground_seen_us) >= FOREGROUND_IDLE_US
    }

    /// Advances GC: starts a victim when one is due, reads it under the
    /// budget, and frees it once its relocations are durable.
    pub(crate) fn drive(core: &mut WorkerCore) -> bool {
        if core.foreground_busy() {
            core.gc.foreground_seen_us = core.now_us;
        }
        match core.gc.state {
            State::Idle => Self::maybe_choose(core),
            State::Reading { .. } => Self::submit_reads(core),
            State::Relocating {
                victim,
                outstanding,
                failed,
                room_used,
            } => {
                if outstanding > 0 {
                    return false;
                }
                if failed {
                    Self::give_up(core, victim, "a relocation failed", 1);
                    return true;
                }
                let live = core.shared.live.get(victim);
                if live > 0 {
                    // Live records of shards this worker no longer owns
                    // (its own are relocated): the victim is tried again
                    // once they are all deleted or overwritten.
                    Self::blocked_until_empty(
                        core,
                        victim,
                        "live records of shards owned by other workers remain",
                    );
                    return true;
                }
                Self::weigh(core, victim, room_used);
                Self::erase(core, victim, 0);
                true
            }
            State::ToErase { victim, block } => {
                Self::erase(core, victim, block);
                true
            }
            State::Erasing { .. } | State::Flushing { .. } => false,
        }
    }

    /// Weighs a collected victim: freeing it gives back a segment's room,
    /// and relocating its records took `room_used`. When that is no less, GC
    /// is only moving records around (their garbage was padding the copies
    /// need again, or the room at segment ends is lost as fast as it is
    /// won): it stops, its storm too, until the store has written more, as
    /// when it finds nothing worth collecting. Writes waiting for the room
    /// it would make then fail with `OutOfSpace` instead of waiting for
    /// ever.
    fn weigh(core: &mut WorkerCore, victim: u32, room_used: u64) {
        let room = core.shared.layout.frame_bytes_max() as u64;
        if room_used < room {
            return;
        }
        tracing::debug!(
            worker = core.id,
            victim,
            room_used,
            "GC freed no room collecting a victim; it stops until more is written"
        );
        core.gc.storm.clear();
        let next_seq = core.shared.next_seq.load(Ordering::Relaxed);
        core.gc.idle_until_seq = next_seq + IDLE_SEQS;
    }

    /// Gives up on a victim that holds records of shards another worker
    /// owns, counted; it is tried again after a while (the shards may move
    /// back, or their records be superseded).
    fn blocked(core: &mut WorkerCore, victim: u32, why: &str) {
        core.shared
            .stats
            .gc_victims_blocked
            .fetch_add(1, Ordering::Relaxed);
        Self::give_up(core, victim, why, RETRY_AFTER_BLOCKED);
    }

    /// [`GcPath::blocked`], for live records of other workers' shards: the
    /// victim is also a candidate again as soon as nothing in it is live
    /// (freeing it then moves nothing).
    fn blocked_until_empty(core: &mut WorkerCore, victim: u32, why: &str) {
        Self::blocked(core, victim, why);
        if let Some(info) = core.shared.segments().used.get_mut(&victim) {
            info.retry_when_empty = true;
        }
    }

    /// Leaves `victim` in use and makes it a candidate again after
    /// `retry_after` more sequence numbers.
    fn give_up(core: &mut WorkerCore, victim: u32, why: &str, retry_after: u64) {
        tracing::debug!(worker = core.id, victim, "GC gave up on a victim: {why}");
        let next_seq = core.shared.next_seq.load(Ordering::Relaxed);
        if let Some(info) = core.shared.segments().used.get_mut(&victim) {
            info.retry_after_seq = next_seq.saturating_add(retry_after);
            info.retry_when_empty = false;
        }
        core.gc.storm.remove(&victim);
        core.gc.state = State::Idle;
    }

    fn maybe_choose(core: &mut WorkerCore) -> bool {
        if core.commit.fenced() {
            return false;
        }
        let requested = core.shared.gc_storms.load(Ordering::Acquire);
        let new_storm = requested > core.gc.storms_seen;
        core.gc.storms_seen = requested;
        let next_seq = core.shared.next_seq.load(Ordering::Relaxed);
        if !new_storm && core.gc.storm.is_empty() && !Self::space_low(core, next_seq) {
            return false;
        }
        // Idle after finding nothing worth collecting, until the store has
        // written more; never with a storm's victims still to collect
        // (writes may be waiting for the room they make, and would then
        // wait for GC while GC waited for writes).
        if !new_storm && core.gc.storm.is_empty() && next_seq < core.gc.idle_until_seq {
            return false;
        }
        if !Self::within_budget(core) {
            return false;
        }
        let Some((victim, info, storm)) = Self::choose(core, new_storm) else {
            // Nothing worth collecting: look again after more writes.
            core.gc.storm.clear();
            core.gc.idle_until_seq = next_seq + IDLE_SEQS;
            return false;
        };
        if let Some(list) = storm {
            core.gc.storm = list;
        }
        core.gc.storm.remove(&victim);
        core.shared.stats.gc_runs.fetch_add(1, Ordering::Relaxed);
        core.gc.state = State::Reading {
            victim,
            info,
            data: vec![0u8; core.shared.layout.segment_bytes as usize],
            submitted: core.shared.layout.lba_bytes as usize,
            outstanding: 0,
            failed: false,
        };
        Self::submit_reads(core);
        true
    }

    /// Whether free space is below GC's target. The segment table (a lock
    /// every worker shares) is asked only when the store has written since
    /// the last answer: free segments shrink only when a batch opens a
    /// segment, which takes sequence numbers. A freed segment forgets the
    /// answer.
    fn space_low(core: &mut WorkerCore, next_seq: u64) -> bool {
        match core.gc.space_low_at {
            Some((seq, low)) if seq == next_seq => low,
            _ => {
                let low = core.space_low();
                core.gc.space_low_at = Some((next_seq, low));
                low
            }
        }
    }

    /// The best victim among this worker's segments, by cost-benefit. On a
    /// new storm, also every segment with any garbage (the storm's list).
    #[allow(clippy::type_complexity)]
    fn choose(
        core: &WorkerCore,
        new_storm: bool,
    ) -> Option<(u32, SegmentInfo, Option<BTreeSet<u32>>)> {
        let layout = core.shared.layout;
        let capacity = layout.frame_bytes_max() as f64;
        let workers = core.shared.workers.max(1);
        let next_seq = core.shared.next_seq.load(Ordering::Relaxed);
        let segments = core.shared.segments();
        // Streams in generation order, to find tails and predecessors in
        // one pass.
        let mut ordered: Vec<(u32, SegmentInfo)> =
            segments.used.iter().map(|(&s, &i)| (s, i)).collect();
        ordered.sort_by_key(|(_, i)| (i.stream, i.generation));
        let mut candidates: Vec<(u32, SegmentInfo, f64)> = Vec::new();
        for (at, &(segment, info)) in ordered.iter().enumerate() {
            if info.stream % workers != core.id {
                continue;
            }
            let is_tail = ordered
                .get(at + 1)
                .is_none_or(|(_, next)| next.stream != info.stream);
            let predecessor_sealed = at
                .checked_sub(1)
                .and_then(|p| ordered.get(p))
                .filter(|(_, prev)| prev.stream == info.stream)
                .is_none_or(|(_, prev)| prev.sealed);
            let live_bytes = core.shared.live.get(segment);
            let waits =
                info.retry_after_seq > next_seq && !(info.retry_when_empty && live_bytes == 0);
            // The segment this worker's stream just left is not collected
            // before its seal is durable: the seal is written into it.
            let sealing = core.commit.sealing() == Some(segment);
            if is_tail || sealing || !predecessor_sealed || waits {
                continue;
            }
            // Only segments worth the copy: at least an eighth garbage
            // (padding of small frames alone does not qualify).
            let u = (live_bytes as f64 / capacity).min(1.0);
            if u > GARBAGE_LIVE_MAX {
                continue;
            }
            let age = next_seq.saturating_sub(info.last_seq).max(1) as f64;
            candidates.push((segment, info, (1.0 - u) * age / (1.0 + u)));
        }
        drop(segments);
        let storm = new_storm.then(|| candidates.iter().map(|c| c.0).collect::<BTreeSet<u32>>());
        let in_storm = |s: u32| match &storm {
            Some(list) => list.contains(&s),
            None => core.gc.storm.is_empty() || core.gc.storm.contains(&s),
        };
        candidates
            .into_iter()
            .filter(|&(s, _, _)| in_storm(s))
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(s, info, _)| (s, info, storm))
    }

    fn submit_reads(core: &mut WorkerCore) -> bool {
        let layout = core.shared.layout;
        let lba_bytes = layout.lba_bytes as usize;
        let chunk_max = core.read.chunk_bytes_max().min(READ_CHUNK_BYTES_MAX);
        let mut progressed = false;
        loop {
            let State::Reading {
                victim,
                submitted,
                outstanding,
                ..
            } = &core.gc.state
            else {
                return progressed;
            };
            let (victim, at, outstanding) = (*victim, *submitted, *outstanding);
            let end = layout.segment_bytes as usize;
            let in_flight_max = if Self::foreground_idle(core) {
                READS_IN_FLIGHT_MAX
            } else {
                1
            };
            if at >= end || outstanding >= in_flight_max || !Self::within_budget(core) {
                return progressed;
            }
            let len = chunk_max.min(end - at);
            let Some(buf) = core.namespace.buffers().alloc(len) else {
                return progressed;
            };
            let lba = layout.segment_lba(victim) + (at / lba_bytes) as u64;
            if let State::Reading {
                submitted,
                outstanding,
                ..
            } = &mut core.gc.state
            {
                *submitted += len;
                *outstanding += 1;
            }
            core.gc.gc_bytes += len as u64;
            core.shared
                .stats
                .gc_bytes_read
                .fetch_add(len as u64, Ordering::Relaxed);
            core.submit(
                token(TAG_GC_READ, (at / lba_bytes) as u64),
                Command::Read { lba, buf },
            );
            progressed = true;
        }
    }

    pub(crate) fn read_done(core: &mut WorkerCore, block: u64, done: Completion) {
        let lba_bytes = core.shared.layout.lba_bytes as usize;
        let State::Reading {
            data,
            outstanding,
            failed,
            submitted,
            ..
        } = &mut core.gc.state
        else {
            panic!("GC read completion outside a GC read");
        };
        *outstanding -= 1;
        match (done.result, done.buf) {
            (Ok(()), Some(buf)) => {
                let at = block as usize * lba_bytes;
                data[at..at + buf.len()].copy_from_slice(buf.as_slice());
            }
            _ => *failed = true,
        }
        if *outstanding > 0 || *submitted < data.len() {
            return;
        }
        let State::Reading {
            victim,
            info,
            data,
            failed,
            ..
        } = std::mem::replace(&mut core.gc.state, State::Idle)
        else {
            return;
        };
        if failed {
            Self::give_up(core, victim, "reading it failed", RETRY_AFTER_BLOCKED);
            return;
        }
        Self::relocate(core, victim, info, &data);
    }

    /// Walks the victim's frames and queues what is live for relocation.
    fn relocate(core: &mut WorkerCore, victim: u32, info: SegmentInfo, data: &[u8]) {
        let (scan, end) = Self::scan_victim(core, victim, info, data);
        if !Self::collectable(core, victim, &info, &scan, &end) {
            return;
        }
        let now_us = core.now_us;
        // One victim at a time: no other GC request is pending.
        core.gc.state = State::Relocating {
            victim,
            outstanding: scan.requests.len() as u64,
            failed: false,
            room_used: 0,
        };
        for (op, kind) in scan.requests {
            core.commit.enqueue_gc(op, kind, now_us);
        }
    }

    /// Walks the victim, read whole into `data`: what of it is live, and
    /// where the walk ended.
    fn scan_victim(core: &WorkerCore, victim: u32, info: SegmentInfo, data: &[u8]) -> (Scan, End) {
        let layout = core.shared.layout;
        let seed = core.shared.seed;
        let min_seq_elsewhere = core.shared.segments().min_seq_except(victim);
        let mut scan = Scan {
            requests: Vec::new(),
            foreign_delete: false,
            own_live: 0,
            damage: None,
        };
        // The one log walker, over this one segment: the same rules as
        // recovery for what is a valid frame and what is damage.
        let mut walk = StreamWalk::new(layout, seed, 0);
        let segment = SegmentRef {
            segment: victim,
            generation: info.generation,
            prev_seq: 0,
        };
        // A victim that could not be read whole was given up on: no block
        // here is unreadable.
        walk.segment(segment, data, &[], &mut |event| {
            let (offset, bytes) = match event {
                Event::Frame { offset, bytes, .. } => (offset, bytes),
                Event::Damage(gap) => {
                    scan.damage.get_or_insert(gap.start);
                    return;
                }
            };
            Self::scan_frame(core, victim, min_seq_elsewhere, offset, bytes, &mut scan);
        });
        let end = walk.finish();
        (scan, end)
    }

    /// Adds to `scan` what of one valid frame of the victim (at `offset`)
    /// must be relocated.
    fn scan_frame(
        core: &WorkerCore,
        victim: u32,
        min_seq_elsewhere: u64,
        offset: usize,
        bytes: &[u8],
        scan: &mut Scan,
    ) {
        let checkpoints = &core.shared.checkpoints;
        for item in frame_records(bytes, core.shared.seed) {
            let Ok((at, record)) = item else { break };
            let shard = WorkerCore::shard_of(record.key);
            let Some(art) = core.shards.get(&shard) else {
                // Another worker's shard now. Its live puts keep `live`
                // above zero, which stops the free; its deletes cannot
                // be checked here.
                scan.foreign_delete |= record.kind == RecordKind::Delete
                    && checkpoints.needs_delete(record.seq, min_seq_elsewhere);
                continue;
            };
            let current = art.get(record.key);
            match record.kind {
                RecordKind::Put => {
                    let pointer = ValuePointer::to_record(victim, offset + at, &record);
                    if current == Some(pointer) {
                        scan.own_live += u64::from(pointer.length);
                        scan.requests
                            .push(Self::move_or_reclaim(core, art, &record, pointer));
                    }
                }
                // A delete must outlive every older record of its key
                // that recovery may see. Which segments hold one is not
                // tracked, so it is kept while any other segment may
                // hold older records at all, or while a checkpoint
                // recovery may start from is older than it.
                RecordKind::Delete => {
                    if current.is_none() && checkpoints.needs_delete(record.seq, min_seq_elsewhere)
                    {
                        scan.requests.push((
                            BatchOp::Delete(record.key.to_vec()),
                            WriteKind::RelocateDelete,
                        ));
                    }
                }
            }
        }
    }

    /// What GC does with a live put of its victim: relocates it (with its
    /// deadline), or, when the key has expired, writes a delete in its
    /// place. The delete is needed, not merely the record dropped: an
    /// older put of the key elsewhere would otherwise come back at
    /// recovery.
    fn move_or_reclaim(
        core: &WorkerCore,
        art: &crate::index::Art,
        record: &Record<'_>,
        pointer: ValuePointer,
    ) -> (BatchOp, WriteKind) {
        let key = record.key.to_vec();
        if art.expired(record.key, core.clock_ms) {
            let kind = WriteKind::Reclaim {
                pointer,
                by_gc: true,
            };
            return (BatchOp::Delete(key), kind);
        }
        let value = record.value.to_vec();
        let op = BatchOp::put(key, value, record.expire_at_ms);
        (op, WriteKind::Relocate(pointer))
    }

    /// Whether the scanned victim can be collected now; if not, gives up on
    /// it (for a while, or until nothing in it is live) and says why.
    fn collectable(
        core: &mut WorkerCore,
        victim: u32,
        info: &SegmentInfo,
        scan: &Scan,
        end: &End,
    ) -> bool {
        // The walk must reach the last record the segment is known to hold,
        // with no damage on the way: otherwise the read or the media is
        // damaged, and what was not seen cannot be relocated.
        if scan.damage.is_some() || end.last_seq < info.last_seq {
            core.shared
                .stats
                .gc_victims_damaged
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                worker = core.id,
                victim,
                at = ?scan.damage.or(end.torn.as_ref().map(|t| t.start)),
                "GC found damage in a segment; it is kept and not collected"
            );
            // A read fault may pass; media damage stays and is found again.
            Self::give_up(core, victim, "damaged", 1 << 20);
            return false;
        }
        if scan.foreign_delete {
            Self::blocked(
                core,
                victim,
                "delete records of shards owned by other workers",
            );
            return false;
        }
        // Live records of shards that moved to another worker (a store
        // reopened with another worker count, or a shard move) cannot be
        // relocated from here, so the victim cannot be freed: relocating
        // this worker's records out of it would only take room (on a full
        // store, the reserve's). Tried again once nothing in it is live.
        if core.shared.live.get(victim) > scan.own_live {
            Self::blocked_until_empty(
                core,
                victim,
                "live records of shards owned by other workers",
            );
            return false;
        }
        true
    }

    /// Zeroes `block` (0: the header, 1: the first body block) of the
    /// victim.
    fn erase(core: &mut WorkerCore, victim: u32, block: u32) {
        let layout = core.shared.layout;
        core.gc.state = State::ToErase { victim, block };
        let Some(mut buf) = core.namespace.buffers().alloc(layout.lba_bytes as usize) else {
            // Try again on the next step.
            return;
        };
        buf.as_mut_slice().fill(0);
        core.gc.state = State::Erasing { victim, block };
        core.gc.gc_bytes += buf.len() as u64;
        core.submit(
            token(TAG_GC_ERASE, 0),
            Command::Write {
                lba: layout.segment_lba(victim) + u64::from(block),
                buf,
                fua: false,
            },
        );
    }

    pub(crate) fn erase_done(core: &mut WorkerCore, result: Result<(), IoError>) {
        let State::Erasing { victim, block } = core.gc.state else {
            panic!("GC erase completion outside an erase");
        };
        if let Err(e) = result {
            Self::give_up(
                core,
                victim,
                &format!("erasing block {block} of it failed: {e}"),
                1 << 16,
            );
            return;
        }
        core.gc.state = State::Flushing { victim, block };
        core.submit(token(TAG_GC_FLUSH, 0), Command::Flush);
    }

    pub(crate) fn flush_done(core: &mut WorkerCore, result: Result<(), IoError>) {
        let State::Flushing { victim, block } = core.gc.state else {
            panic!("GC flush completion outside a GC flush");
        };
        // A flush that failed on another path proves this one worthless too
        // (`Shared::flush_failed`).
        let result = match result {
            Ok(()) if core.shared.any_flush_failed() => {
                // EIO, as the commit path reports it.
                Err(IoError::Flush { errno: 5 })
            }
            Err(error) => {
                core.shared.flush_failure();
                Err(error)
            }
            ok => ok,
        };
        if let Err(error) = result {
            // As in the commit path: after a failed flush nothing written
            // since the last good one is known durable. Fence.
            tracing::error!(worker = core.id, "GC flush failed: {error}");
            core.fence(error);
            Self::give_up(core, victim, "flush failed", u64::MAX);
            return;
        }
        if block == 0 {
            Self::erase(core, victim, 1);
            return;
        }
        core.shared.segments().release(victim);
        core.gc.space_low_at = None;
        core.shared
            .stats
            .gc_segments_freed
            .fetch_add(1, Ordering::Relaxed);
        core.gc.state = State::Idle;
    }
}
