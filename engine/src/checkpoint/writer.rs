//! The [`Checkpointer`]: takes a checkpoint one phase per step.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nvme::{Namespace, QueuePair};

use super::find::chunk_bytes;
use crate::blocking;
use crate::format::checkpoint::{
    begin_body, encode_table, Root, TableEntry, KIND_CHECKPOINT, ROOT_LBAS,
};
use crate::format::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::shard::SHARD_COUNT;
use crate::store::checkpoints::Base;
use crate::store::Shared;

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
        if self.shared.any_flush_failed() {
            // Nothing attempted, so nothing counted as a failure: no flush
            // could prove a checkpoint now, and the workers are fenced too.
            tracing::warn!("no index checkpoints until restart: a flush failed since open");
            self.fenced = true;
            return false;
        }
        let mut collection = self.shared.checkpoints.collection();
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
        if self.shared.any_flush_failed() {
            return Err("flush proves nothing: another flush failed since open".to_string());
        }
        Ok(())
    }

    /// Builds the body from the collected sections and the segment table,
    /// and takes segments for it.
    fn assemble(&mut self) -> Result<(Root, Vec<u8>), String> {
        let sections = {
            let mut collection = self.shared.checkpoints.collection();
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
            version: crate::format::checkpoint::CHECKPOINT_VERSION,
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
        self.shared.checkpoints.bases()[slot] = Base::Watermark(root.watermark_min);
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
        self.count_failure(&format!("index checkpoint failed: {why}"));
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
        self.count_failure(&format!(
            "index checkpoint root not durable: {why}; no more checkpoints until restart"
        ));
        self.fenced = true;
    }

    /// Logs and counts a checkpoint that did not become durable.
    fn count_failure(&self, message: &str) {
        tracing::error!(generation = self.generation, "{message}");
        self.shared
            .stats
            .checkpoint_failures
            .fetch_add(1, Ordering::Relaxed);
    }
}
