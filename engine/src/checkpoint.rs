//! Index checkpoints: a copy of the whole index on the namespace, so that
//! an open replays only the log written after it.
//!
//! A checkpoint is taken in three phases:
//!
//! 1. **Collect.** Every worker copies the shards it owns, a few per turn of
//!    its loop, each with a *watermark*: every record of the shard at or
//!    below it is reflected in the copy (the worker's last applied sequence
//!    number: one before its batch in flight, or the engine's last issued
//!    one when it has none). Shards that move meanwhile are copied by
//!    whoever owns them when their turn comes.
//! 2. **Write the body** (every shard's section, then the segment table)
//!    into free segments, each behind a header of kind checkpoint, and
//!    flush.
//! 3. **Write the root** into slot `generation % 2` of segment 0 (blocks 2
//!    and 3) and flush. Only then does the checkpoint count: GC honours it,
//!    and the segments of the checkpoint that slot held before are freed.
//!
//! A crash before the root is durable leaves the other slot in force. See
//! `docs/format/checkpoint.md` for the bytes and the rules recovery and GC
//! follow.
//!
//! # A failed flush
//!
//! No flush is retried (`blocking::flush`), and a flush counts as proof only
//! while no flush on the namespace has failed since the engine opened
//! (`Shared::flush_failed`, which every path that flushes sets): a
//! flush is one command for the whole namespace, so a worker's failed flush
//! may have dropped this checkpoint's writes, and this flush's own success
//! would prove nothing about them.
//!
//! - The body's flush fails: the checkpoint does not count (`fail`, counted
//!   in `checkpoint_failures_total`), and its segments go back to the free
//!   list. No checkpoint is taken again until the next open (the workers'
//!   writes are fenced as well); that open's first checkpoint takes segments
//!   afresh and writes a whole body, so no body part whose flush failed is
//!   ever relied on.
//! - The root's flush fails (or its write): the slot it was written to, slot
//!   `g % 2` for generation `g`, now holds the new root, the old one, or a
//!   torn block, and nobody can tell which until an open reads it back. So
//!   the checkpointer fences (`fence`): nothing is published, GC keeps
//!   honouring both slots as they were, the segments of the old root in that
//!   slot stay reserved, and no further checkpoint is taken until the next
//!   open. That last rule is what keeps the other slot, holding `g - 1`, safe:
//!   the next checkpoint would be `g + 1` (had `g` been counted) and would
//!   overwrite slot `(g + 1) % 2`, the one holding `g - 1`, while `g`'s slot
//!   may hold nothing usable; a crash tearing that write would leave no
//!   usable root at all. Had the failed root flush been retried and counted,
//!   exactly that could happen. After the fence, the next open reads both
//!   slots back and takes the newest whose body verifies, and its first
//!   checkpoint goes into the slot that does not hold the one it loaded
//!   ([`Found::next_generation`]), even when the other slot holds a newer
//!   root that could not be loaded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nvme::{Namespace, QueuePair};

use crate::blocking;
use crate::error::OpenError;
use crate::format::checkpoint::{
    begin_body, decode_body, encode_table, Body, Root, TableEntry, KIND_CHECKPOINT, ROOT_LBAS,
};
use crate::format::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::format::DecodeError;
use crate::layout::Layout;
use crate::shard::SHARD_COUNT;
use crate::store::Shared;

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
    pub collection: Mutex<Collection>,
    /// What each root slot holds durably: GC keeps what recovery from
    /// either would need.
    pub bases: Mutex<[Base; 2]>,
}

impl Checkpoints {
    pub(crate) fn new(bases: [Base; 2]) -> Checkpoints {
        Checkpoints {
            collecting: AtomicBool::new(false),
            collection: Mutex::new(Collection::default()),
            bases: Mutex::new(bases),
        }
    }

    /// Whether a delete record is still needed by either slot's recovery.
    pub(crate) fn needs_delete(&self, seq: u64, min_seq_elsewhere: u64) -> bool {
        self.bases.lock().map_or(true, |bases| {
            bases.iter().any(|b| b.needs_delete(seq, min_seq_elsewhere))
        })
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

/// What a root slot was found to hold at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Never written (no root magic).
    Empty,
    /// A root that fails its checks: a torn write, or damage.
    Corrupt(DecodeError),
    Valid(Root),
}

/// The checkpoint recovery starts from.
pub(crate) struct Loaded {
    pub root: Root,
    pub body: Body,
}

/// Both root slots, and the newest checkpoint whose body verifies.
pub(crate) struct Found {
    pub slots: [Slot; 2],
    pub loaded: Option<Loaded>,
}

impl Found {
    /// What GC must honour at open, slot by slot.
    pub(crate) fn bases(&self) -> [Base; 2] {
        let base = |slot: &Slot| match slot {
            Slot::Valid(root) => Base::Watermark(root.watermark_min),
            _ => Base::Empty,
        };
        [base(&self.slots[0]), base(&self.slots[1])]
    }

    /// The segments each slot's checkpoint occupies.
    pub(crate) fn segments(&self) -> [Vec<u32>; 2] {
        let of = |slot: &Slot| match slot {
            Slot::Valid(root) => root.segments.clone(),
            _ => Vec::new(),
        };
        [of(&self.slots[0]), of(&self.slots[1])]
    }

    /// The generation the next checkpoint takes: one past the checkpoint
    /// recovery loaded, so that it is written into the other slot, never over
    /// the one in force; with none loaded, one past the newest valid root.
    /// A newer root whose body did not verify is overwritten first (its
    /// generation is taken again, for the same slot), and its segments stay
    /// reserved until that happens.
    pub(crate) fn next_generation(&self) -> u64 {
        if let Some(loaded) = &self.loaded {
            return loaded.root.generation + 1;
        }
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Valid(root) => Some(root.generation),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            + 1
    }
}

/// Reads both root slots and loads the newest checkpoint whose body
/// verifies. Refuses the store when checkpoints were written to both slots
/// and neither can be loaded: recovery would then have to replay a log that
/// GC has already trimmed behind them.
pub(crate) fn find(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    seed: u32,
) -> Result<Found, OpenError> {
    let lba_bytes = layout.lba_bytes as usize;
    let mut slots = [Slot::Empty, Slot::Empty];
    let mut block = Vec::with_capacity(lba_bytes);
    for (slot, &lba) in slots.iter_mut().zip(ROOT_LBAS.iter()) {
        let mut unreadable = Vec::new();
        blocking::read_tolerant(
            namespace,
            queue,
            lba,
            lba_bytes,
            &mut block,
            &mut unreadable,
        )
        .map_err(nvme::IoError::from)?;
        *slot = if !unreadable.is_empty() {
            Slot::Corrupt(DecodeError::Invalid {
                field: "unreadable root block",
                value: lba,
            })
        } else {
            match Root::decode(&block, seed) {
                Ok(root)
                    if root
                        .segments
                        .iter()
                        .all(|&s| s > 0 && s < layout.segment_count) =>
                {
                    Slot::Valid(root)
                }
                Ok(root) => Slot::Corrupt(DecodeError::Invalid {
                    field: "checkpoint segment",
                    value: root.segments.iter().copied().max().map_or(0, u64::from),
                }),
                Err(DecodeError::BadMagic { .. }) => Slot::Empty,
                Err(e) => Slot::Corrupt(e),
            }
        };
    }
    let mut candidates: Vec<&Root> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Valid(root) => Some(root),
            _ => None,
        })
        .collect();
    candidates.sort_by_key(|r| std::cmp::Reverse(r.generation));
    let mut failures = Vec::new();
    let mut loaded = None;
    for root in candidates {
        match read_body(namespace, queue, layout, seed, root) {
            Ok(body) => {
                loaded = Some(Loaded {
                    root: root.clone(),
                    body,
                });
                break;
            }
            Err(why) => {
                tracing::error!(
                    generation = root.generation,
                    "index checkpoint unusable: {why}; trying the other slot"
                );
                failures.push(format!("checkpoint {}: {why}", root.generation));
            }
        }
    }
    let written = slots.iter().filter(|s| **s != Slot::Empty).count();
    if loaded.is_none() && written == 2 {
        let describe = |s: &Slot| match s {
            Slot::Corrupt(e) => format!("root corrupt ({e})"),
            Slot::Valid(r) => format!("checkpoint {} unreadable", r.generation),
            Slot::Empty => "empty".to_string(),
        };
        return Err(OpenError::CheckpointCorrupt(format!(
            "slot A: {}; slot B: {}; {}",
            describe(&slots[0]),
            describe(&slots[1]),
            failures.join("; ")
        )));
    }
    Ok(Found { slots, loaded })
}

/// Zeroes both root slots durably: the store then opens with a full replay
/// (`EngineConfig::discard_checkpoints`).
pub(crate) fn discard(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
) -> Result<(), OpenError> {
    tracing::warn!(
        "discarding both index checkpoints: the whole log is replayed, and keys whose \
         delete records GC already dropped may come back"
    );
    let zeroes = vec![0u8; layout.lba_bytes as usize * ROOT_LBAS.len()];
    blocking::write_durable(namespace, queue, ROOT_LBAS[0], &zeroes)
        .map_err(nvme::IoError::from)?;
    Ok(())
}

fn read_body(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    seed: u32,
    root: &Root,
) -> Result<Body, String> {
    let chunk = chunk_bytes(layout);
    if root.body_bytes > (root.segments.len() * chunk) as u64 {
        return Err(format!(
            "body of {} bytes does not fit its {} segments",
            root.body_bytes,
            root.segments.len()
        ));
    }
    let mut body = Vec::with_capacity(root.body_bytes as usize);
    let mut data = Vec::new();
    let lba_bytes = layout.lba_bytes as usize;
    for (i, &segment) in root.segments.iter().enumerate() {
        let remaining = root.body_bytes as usize - body.len();
        if remaining == 0 {
            break;
        }
        let take = remaining.min(chunk);
        let bytes = lba_bytes + layout.pad(take);
        blocking::read(
            namespace,
            queue,
            layout.segment_lba(segment),
            bytes,
            &mut data,
        )
        .map_err(|e| format!("reading segment {segment}: {:?}", nvme::IoError::from(e)))?;
        match SegmentHeader::decode_kind(&data, KIND_CHECKPOINT) {
            Ok(h) if h.segment == segment && h.generation == root.generation => {}
            Ok(_) => return Err(format!("segment {segment} (part {i}) belongs elsewhere")),
            Err(e) => return Err(format!("segment {segment} (part {i}) header: {e}")),
        }
        body.extend_from_slice(&data[lba_bytes..lba_bytes + take]);
    }
    let crc = crc32c::crc32c_append(seed, &body);
    if crc != root.body_crc {
        return Err(format!(
            "body checksum mismatch: stored {:#010x}, computed {crc:#010x}",
            root.body_crc
        ));
    }
    decode_body(&body).map_err(|e| format!("body: {e}"))
}

/// Body bytes per checkpoint segment: all but its header block.
fn chunk_bytes(layout: &Layout) -> usize {
    (layout.segment_bytes - u64::from(layout.lba_bytes)) as usize
}

#[derive(Debug)]
enum Phase {
    Idle,
    Collecting,
    /// Writing the body: the part to write next.
    Body {
        root: Root,
        body: Vec<u8>,
        next: usize,
    },
    FlushBody {
        root: Root,
    },
    WriteRoot {
        root: Root,
    },
    FlushRoot {
        root: Root,
    },
}

/// Takes checkpoints: a state machine over its own queue pair, stepped by
/// a thread of the runtime or by the simulator. Each step does at most one
/// phase's blocking I/O, so that a simulated crash can land between any two.
pub struct Checkpointer {
    shared: Arc<Shared>,
    namespace: Arc<dyn Namespace>,
    queue: Box<dyn QueuePair>,
    phase: Phase,
    /// Generation of the next checkpoint.
    generation: u64,
    /// A root write failed: what the slot holds is unknown, so no more
    /// checkpoints until the next open.
    fenced: bool,
}

impl Checkpointer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        namespace: Arc<dyn Namespace>,
        queue: Box<dyn QueuePair>,
        generation: u64,
    ) -> Checkpointer {
        Checkpointer {
            shared,
            namespace,
            queue,
            phase: Phase::Idle,
            generation,
            fenced: false,
        }
    }

    /// Starts a checkpoint unless one is being taken. Returns whether one
    /// started.
    pub fn request(&mut self) -> bool {
        if !matches!(self.phase, Phase::Idle) || self.fenced {
            return false;
        }
        if self.flush_failed() {
            // Nothing attempted, so nothing counted as a failure: no flush
            // could prove a checkpoint now, and the workers are fenced too.
            tracing::warn!("no index checkpoints until restart: a flush failed since open");
            self.fenced = true;
            return false;
        }
        let mut collection = self
            .shared
            .checkpoints
            .collection
            .lock()
            .expect("the checkpoint collection's lock is poisoned");
        collection.sections = (0..SHARD_COUNT).map(|_| None).collect();
        collection.remaining = usize::from(SHARD_COUNT);
        drop(collection);
        self.shared
            .checkpoints
            .collecting
            .store(true, Ordering::Release);
        self.phase = Phase::Collecting;
        true
    }

    /// Whether a checkpoint is being taken.
    pub fn in_progress(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Whether a checkpoint is waiting for the workers to copy their shards.
    pub fn collecting(&self) -> bool {
        matches!(self.phase, Phase::Collecting)
    }

    /// Does the next phase's work. Returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        match phase {
            Phase::Idle => false,
            Phase::Collecting => {
                if self.shared.checkpoints.collecting.load(Ordering::Acquire) {
                    self.phase = Phase::Collecting;
                    return false;
                }
                match self.assemble() {
                    Ok((root, body)) => {
                        self.phase = Phase::Body {
                            root,
                            body,
                            next: 0,
                        }
                    }
                    Err(why) => self.fail(&why, None),
                }
                true
            }
            Phase::Body { root, body, next } => {
                match self.write_part(&root, &body, next) {
                    Ok(()) if next + 1 < root.segments.len() => {
                        self.phase = Phase::Body {
                            root,
                            body,
                            next: next + 1,
                        }
                    }
                    Ok(()) => self.phase = Phase::FlushBody { root },
                    Err(why) => self.fail(&why, Some(&root)),
                }
                true
            }
            Phase::FlushBody { root } => {
                match self.flush() {
                    Ok(()) => self.phase = Phase::WriteRoot { root },
                    Err(why) => self.fail(&format!("body {why}"), Some(&root)),
                }
                true
            }
            Phase::WriteRoot { root } => {
                let mut block = vec![0u8; self.shared.layout.lba_bytes as usize];
                root.encode(&mut block, self.shared.seed);
                let lba = ROOT_LBAS[(root.generation % 2) as usize];
                match blocking::write(self.namespace.as_ref(), self.queue.as_mut(), lba, &block) {
                    Ok(()) => self.phase = Phase::FlushRoot { root },
                    Err(e) => self.fence(&format!("root write: {:?}", nvme::IoError::from(e))),
                }
                true
            }
            Phase::FlushRoot { root } => {
                match self.flush() {
                    Ok(()) => self.publish(root),
                    Err(why) => self.fence(&format!("root {why}")),
                }
                true
            }
        }
    }

    /// One flush, never retried, that counts as proof of every write this
    /// checkpoint made only if no flush on the namespace has failed since
    /// open (see the module doc). A failure of its own is counted where the
    /// other paths look.
    fn flush(&mut self) -> Result<(), String> {
        if let Err(e) = blocking::flush(self.queue.as_mut()) {
            self.shared.flush_failure();
            return Err(format!("flush: {:?}", nvme::IoError::from(e)));
        }
        if self.flush_failed() {
            return Err("flush proves nothing: another flush failed since open".to_string());
        }
        Ok(())
    }

    /// Whether a flush on the namespace failed since open (any path's).
    fn flush_failed(&self) -> bool {
        self.shared.any_flush_failed()
    }

    /// Builds the body from the collected sections and the segment table,
    /// and takes segments for it.
    fn assemble(&mut self) -> Result<(Root, Vec<u8>), String> {
        let sections = {
            let mut collection = self
                .shared
                .checkpoints
                .collection
                .lock()
                .expect("the checkpoint collection's lock is poisoned");
            std::mem::take(&mut collection.sections)
        };
        let mut body = Vec::new();
        begin_body(&mut body);
        let mut watermark_min = u64::MAX;
        for section in sections {
            let (watermark, bytes) = section.ok_or("a shard was not copied")?;
            watermark_min = watermark_min.min(watermark);
            body.extend_from_slice(&bytes);
        }
        let layout = self.shared.layout;
        let mut segments = self.shared.segments();
        // Taken after every shard's copy: a segment not listed here was
        // opened later, and recovery reads it.
        let next_seq = self.shared.next_seq.load(Ordering::Acquire);
        let mut newest: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
        for info in segments.used.values() {
            newest.entry(info.stream).or_default().push(info.generation);
        }
        for generations in newest.values_mut() {
            generations.sort_unstable_by(|a, b| b.cmp(a));
            generations.truncate(2);
        }
        let table: Vec<TableEntry> = segments
            .used
            .iter()
            .map(|(&segment, info)| TableEntry {
                segment,
                stream: info.stream,
                generation: info.generation,
                min_seq: info.min_seq,
                last_seq: info.last_seq,
                sealed: info.sealed,
                closed: !newest
                    .get(&info.stream)
                    .is_some_and(|g| g.contains(&info.generation)),
            })
            .collect();
        encode_table(&mut body, &table);
        let parts = body.len().div_ceil(chunk_bytes(&layout)).max(1);
        if parts > Root::segments_max(layout.lba_bytes as usize) {
            return Err(format!(
                "the checkpoint needs {parts} segments, more than a root can list"
            ));
        }
        let taken = segments
            .allocate_checkpoint(parts)
            .ok_or_else(|| format!("no {parts} free segments for the checkpoint"))?;
        drop(segments);
        let root = Root {
            generation: self.generation,
            body_bytes: body.len() as u64,
            body_crc: crc32c::crc32c_append(self.shared.seed, &body),
            watermark_min: if watermark_min == u64::MAX {
                0
            } else {
                watermark_min
            },
            next_seq,
            segments: taken,
        };
        Ok((root, body))
    }

    fn write_part(&mut self, root: &Root, body: &[u8], part: usize) -> Result<(), String> {
        let layout = self.shared.layout;
        let lba_bytes = layout.lba_bytes as usize;
        let chunk = chunk_bytes(&layout);
        let segment = root.segments[part];
        let from = (part * chunk).min(body.len());
        let to = ((part + 1) * chunk).min(body.len());
        let mut data = vec![0u8; lba_bytes + layout.pad(to - from)];
        SegmentHeader {
            kind: KIND_CHECKPOINT,
            uuid: self.shared.uuid,
            generation: root.generation,
            segment,
            stream: u16::MAX,
            prev_seq: part as u64,
            key_id: 0,
        }
        .encode(&mut data[..SEGMENT_HEADER_BYTES]);
        data[lba_bytes..lba_bytes + (to - from)].copy_from_slice(&body[from..to]);
        blocking::write(
            self.namespace.as_ref(),
            self.queue.as_mut(),
            layout.segment_lba(segment),
            &data,
        )
        .map_err(|e| format!("writing segment {segment}: {:?}", nvme::IoError::from(e)))
    }

    /// The root is durable: GC honours the new checkpoint, and the segments
    /// of the one it replaced are free.
    fn publish(&mut self, root: Root) {
        let slot = (root.generation % 2) as usize;
        // Durable bookkeeping: skipping it on a poisoned lock would leave GC
        // honouring a root that is gone.
        self.shared
            .checkpoints
            .bases
            .lock()
            .expect("lock is poisoned")[slot] = Base::Watermark(root.watermark_min);
        self.shared
            .segments()
            .install_checkpoint(slot, root.segments.clone());
        let stats = &self.shared.stats;
        stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        stats
            .checkpoint_bytes
            .fetch_add(root.body_bytes, Ordering::Relaxed);
        stats
            .checkpoint_next_seq
            .store(root.next_seq, Ordering::Relaxed);
        tracing::info!(
            generation = root.generation,
            bytes = root.body_bytes,
            segments = root.segments.len(),
            watermark = root.watermark_min,
            "index checkpoint durable"
        );
        self.generation += 1;
    }

    /// Gives up on this checkpoint before its root was written: its
    /// segments go back (nothing refers to them).
    fn fail(&mut self, why: &str, root: Option<&Root>) {
        tracing::error!(
            generation = self.generation,
            "index checkpoint failed: {why}"
        );
        self.shared
            .stats
            .checkpoint_failures
            .fetch_add(1, Ordering::Relaxed);
        self.shared
            .checkpoints
            .collecting
            .store(false, Ordering::Release);
        if let Some(root) = root {
            self.shared.segments().abandon_checkpoint(&root.segments);
        }
    }

    /// A root write or flush failed (or proves nothing): the slot may hold
    /// the old root, the new one, or neither. Its segments stay reserved, GC
    /// keeps honouring the old root, and no checkpoint is taken (none would
    /// overwrite the other slot) until the next open sorts it out.
    fn fence(&mut self, why: &str) {
        tracing::error!(
            generation = self.generation,
            "index checkpoint root not durable: {why}; no more checkpoints until restart"
        );
        self.shared
            .stats
            .checkpoint_failures
            .fetch_add(1, Ordering::Relaxed);
        self.fenced = true;
    }
}
