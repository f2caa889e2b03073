//! Offline verification of a namespace (`veltrix inspect`): read both
//! superblock copies, every segment header, and every frame and record of
//! every log stream, verify every checksum, and report what is there and
//! where anything is wrong.
//!
//! It decodes with the same functions open and recovery use
//! (`layout::read_superblock`, `SegmentHeader::decode`, `verify_frame`,
//! `decode_record`) and judges a stream the way recovery does: frames must
//! sit exactly where their header says, in sequence order; an invalid frame
//! followed by a valid one later in the stream is damage in the middle of
//! the log; an invalid frame with nothing valid after it is a torn tail,
//! which the next open erases (it was never acknowledged, unless the damage
//! hit the very last acknowledged commit; the report says so).
//!
//! It never writes, and reads one segment at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nvme::{Namespace, QueuePair};

use crate::blocking;
use crate::checkpoint;
use crate::error::{Location, OpenError};
use crate::format::record::{frame_records, FrameHeader, RecordKind};
use crate::format::segment::SegmentHeader;
use crate::format::store_seed;
use crate::format::superblock::Superblock;
use crate::layout::{self, Layout};
use crate::log::frame::Invalid;
use crate::log::read::{read_header, read_segment, HeaderSlot};
use crate::log::walk::{Gap, SegmentRef};
use crate::log::{Event, StreamWalk};

/// What kind of structure failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A superblock copy fails verification (the store opens from the other).
    Superblock,
    /// A segment header is damaged, or not where it says it is.
    SegmentHeader,
    /// A frame fails verification in the middle of a log.
    Frame,
    /// A record fails its own checksum in the middle of a log.
    Record,
    /// A block the device could not read.
    Unreadable,
    /// An invalid frame at the end of a log, with nothing valid after it:
    /// the torn remains of an unacknowledged group commit, which the next
    /// open erases. Not counted as corruption.
    TornTail,
    /// An index checkpoint whose root verifies but whose body does not, or
    /// both checkpoints unusable.
    Checkpoint,
    /// A checkpoint root slot that fails verification: a root write cut
    /// short by a crash, which the next checkpoint overwrites, or damage.
    /// The store opens from the other slot, so not counted as corruption.
    CheckpointRoot,
}

impl ProblemKind {
    /// Whether this kind is damage, rather than the expected remains of a
    /// crash.
    pub fn is_corruption(self) -> bool {
        !matches!(self, ProblemKind::TornTail | ProblemKind::CheckpointRoot)
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::Superblock => "superblock",
            ProblemKind::SegmentHeader => "segment header",
            ProblemKind::Frame => "frame",
            ProblemKind::Record => "record",
            ProblemKind::Unreadable => "unreadable block",
            ProblemKind::TornTail => "torn tail",
            ProblemKind::Checkpoint => "index checkpoint",
            ProblemKind::CheckpointRoot => "checkpoint root",
        }
    }
}

/// One thing found wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What failed.
    pub kind: ProblemKind,
    /// Segment and byte offset within it.
    pub location: Location,
    /// The namespace block holding the first bad byte.
    pub lba: u64,
    /// The log stream, when known.
    pub stream: Option<u16>,
    /// What failed, for people.
    pub detail: String,
}

/// What `inspect` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectReport {
    /// The store's geometry.
    pub layout: Layout,
    /// The store's UUID.
    pub uuid: [u8; 16],
    /// Superblock copies that verify (0..=2).
    pub superblocks_valid: u8,
    /// Segments holding a log of this store.
    pub segments_used: u32,
    /// Segments not in use (zero header, or another store's leftovers).
    pub segments_free: u32,
    /// Segments holding index checkpoints.
    pub segments_checkpoint: u32,
    /// The index checkpoint an open would start from (its generation).
    pub checkpoint: Option<u64>,
    /// Log streams (one per worker that ever wrote).
    pub streams: u32,
    /// Valid frames.
    pub frames: u64,
    /// Records in valid frames.
    pub records: u64,
    /// Of which puts.
    pub puts: u64,
    /// Of which deletes.
    pub deletes: u64,
    /// Keys whose latest record is a put.
    pub live_keys: u64,
    /// Key and value bytes of those latest puts.
    pub live_bytes: u64,
    /// Bytes of valid frames (before padding).
    pub log_bytes: u64,
    /// Everything wrong, in namespace order per stream.
    pub problems: Vec<Problem>,
}

impl InspectReport {
    /// Whether anything other than a torn tail (or a torn checkpoint root)
    /// failed verification.
    pub fn corrupt(&self) -> bool {
        self.problems.iter().any(|p| p.kind.is_corruption())
    }
}

/// Walks and verifies the whole store on `namespace`. `progress` is called
/// with (segments done, segments in all) as the walk goes. Fails only when
/// there is no store to walk (no valid superblock, geometry mismatch) or
/// the device refuses I/O; damage is reported in the result.
pub fn inspect(
    namespace: &dyn Namespace,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<InspectReport, OpenError> {
    let mut queue = namespace.queue_pair(8)?;
    let sb = layout::read_superblock(namespace, queue.as_mut())?;
    let layout = layout::layout_of(namespace, &sb)?;
    let mut inspector = Inspector {
        namespace,
        queue,
        layout,
        uuid: sb.uuid,
        seed: store_seed(&sb.uuid),
        block: Vec::new(),
        report: InspectReport::empty(layout, sb.uuid),
    };
    inspector.check_superblocks()?;
    let mut start = inspector.check_checkpoints()?;
    let mut streams = inspector.classify_segments(&start.checkpoint_segments, progress)?;
    inspector.report.streams = streams.len() as u32;
    // Every stream's frames, in generation order, one segment at a time,
    // through the walker recovery uses.
    let mut done = 0u32;
    for (stream, headers) in streams.iter_mut() {
        headers.sort_by_key(|h| h.generation);
        inspector.walk_stream(*stream, headers, &mut start, &mut done, progress)?;
    }
    let mut report = inspector.report;
    for (key, (_, value_bytes)) in &start.keys {
        if let Some(value_bytes) = value_bytes {
            report.live_keys += 1;
            report.live_bytes += key.len() as u64 + value_bytes;
        }
    }
    progress(report.layout.segment_count, report.layout.segment_count);
    Ok(report)
}

impl InspectReport {
    /// A report of `layout` and `uuid` with nothing counted yet.
    fn empty(layout: Layout, uuid: [u8; 16]) -> InspectReport {
        InspectReport {
            layout,
            uuid,
            superblocks_valid: 0,
            segments_used: 0,
            segments_free: 0,
            segments_checkpoint: 0,
            checkpoint: None,
            streams: 0,
            frames: 0,
            records: 0,
            puts: 0,
            deletes: 0,
            live_keys: 0,
            live_bytes: 0,
            log_bytes: 0,
            problems: Vec::new(),
        }
    }
}

/// The keys' latest state: (sequence number, value bytes or None for a
/// delete).
type Keys = HashMap<Vec<u8>, (u64, Option<u64>)>;

/// What the walk of the logs starts from: the checkpoint an open loads, as
/// in recovery. Per shard, the log counts only above the shard's watermark
/// (GC may have freed a delete the checkpoint already reflects).
#[derive(Default)]
struct Start {
    /// The keys' latest state: the loaded checkpoint's, and then the
    /// walk's.
    keys: Keys,
    /// Per shard, the loaded checkpoint's watermark (none without one).
    watermarks: Vec<u64>,
    /// The segments either valid root names.
    checkpoint_segments: BTreeSet<u32>,
}

/// One inspection: the device, what it has read so far and what it found.
struct Inspector<'a> {
    namespace: &'a dyn Namespace,
    queue: Box<dyn QueuePair>,
    layout: Layout,
    uuid: [u8; 16],
    seed: u32,
    /// The read buffer, reused: one segment in memory at a time.
    block: Vec<u8>,
    report: InspectReport,
}

impl Inspector<'_> {
    /// Both superblock copies must verify.
    fn check_superblocks(&mut self) -> Result<(), OpenError> {
        let lba_bytes = self.layout.lba_bytes as usize;
        let mut unreadable = Vec::new();
        blocking::read_tolerant(
            self.namespace,
            self.queue.as_mut(),
            0,
            lba_bytes * 2,
            &mut self.block,
            &mut unreadable,
        )
        .map_err(io)?;
        for (copy, &lba) in layout::SUPERBLOCK_LBAS.iter().enumerate() {
            let bytes = &self.block[copy * lba_bytes..(copy + 1) * lba_bytes];
            let at = |kind, detail: String| Problem {
                kind,
                location: Location {
                    segment: 0,
                    offset: (copy * lba_bytes) as u32,
                },
                lba,
                stream: None,
                detail,
            };
            match Superblock::decode(bytes) {
                _ if unreadable.contains(&lba) => self.report.problems.push(at(
                    ProblemKind::Unreadable,
                    format!("superblock copy {} cannot be read", copy_name(copy)),
                )),
                Ok(_) => self.report.superblocks_valid += 1,
                Err(e) => self.report.problems.push(at(
                    ProblemKind::Superblock,
                    format!("superblock copy {}: {e}", copy_name(copy)),
                )),
            }
        }
        Ok(())
    }

    /// Index checkpoints: both roots, and the body recovery would load,
    /// which the walk of the logs starts from.
    fn check_checkpoints(&mut self) -> Result<Start, OpenError> {
        let mut start = Start::default();
        let found =
            match checkpoint::find(self.namespace, self.queue.as_mut(), &self.layout, self.seed) {
                Ok(found) => found,
                Err(OpenError::CheckpointCorrupt(why)) => {
                    let problem = self.root_problem(0, ProblemKind::Checkpoint, why);
                    self.report.problems.push(problem);
                    return Ok(start);
                }
                Err(e) => return Err(e),
            };
        self.report.checkpoint = found.loaded.as_ref().map(|l| l.root.generation);
        if let Some(loaded) = &found.loaded {
            for (index, &watermark) in loaded.body.index.iter().zip(&loaded.body.watermarks) {
                index.for_each(|key, pointer| {
                    let expires = index.deadline(key).is_some();
                    let record =
                        crate::format::record::record_bytes_expiring(key.len(), 0, expires);
                    let value = (pointer.length as usize).saturating_sub(record);
                    start
                        .keys
                        .insert(key.to_vec(), (watermark, Some(value as u64)));
                });
            }
            start.watermarks.clone_from(&loaded.body.watermarks);
        }
        for (slot, state) in found.slots.iter().enumerate() {
            if let checkpoint::Slot::Valid(root) = state {
                start
                    .checkpoint_segments
                    .extend(root.segments.iter().copied());
            }
            if let Some(problem) = self.slot_problem(slot, state) {
                self.report.problems.push(problem);
            }
        }
        Ok(start)
    }

    /// What is wrong with root slot `slot`, given the checkpoint an open
    /// loads: a root that fails its checks, or a valid root newer than the
    /// loaded checkpoint (its body does not verify).
    fn slot_problem(&self, slot: usize, state: &checkpoint::Slot) -> Option<Problem> {
        match state {
            checkpoint::Slot::Valid(root) => {
                if self.report.checkpoint.is_some_and(|g| g >= root.generation) {
                    return None;
                }
                let fallback = self.report.checkpoint.map_or_else(
                    || "a replay of the whole log".to_string(),
                    |g| format!("checkpoint {g}"),
                );
                Some(self.root_problem(
                    slot,
                    ProblemKind::Checkpoint,
                    format!(
                        "checkpoint {} does not verify; an open falls back to {fallback}",
                        root.generation
                    ),
                ))
            }
            checkpoint::Slot::Corrupt(e) => Some(self.root_problem(
                slot,
                ProblemKind::CheckpointRoot,
                format!("checkpoint root slot {}: {e}", copy_name(slot)),
            )),
            checkpoint::Slot::Empty => None,
        }
    }

    fn root_problem(&self, slot: usize, kind: ProblemKind, detail: String) -> Problem {
        let lba = crate::format::checkpoint::ROOT_LBAS[slot];
        Problem {
            kind,
            location: Location {
                segment: 0,
                offset: (lba as usize * self.layout.lba_bytes as usize) as u32,
            },
            lba,
            stream: None,
            detail,
        }
    }

    /// Reads every segment header and counts each segment as free,
    /// checkpoint or damaged; returns the log segments, by stream.
    fn classify_segments(
        &mut self,
        checkpoint_segments: &BTreeSet<u32>,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<BTreeMap<u16, Vec<SegmentHeader>>, OpenError> {
        let total = self.layout.segment_count;
        let mut streams: BTreeMap<u16, Vec<SegmentHeader>> = BTreeMap::new();
        for segment in 1..total {
            let slot = read_header(
                self.namespace,
                self.queue.as_mut(),
                &self.layout,
                &self.uuid,
                segment,
                &mut self.block,
            )
            .map_err(io)?;
            let at = |detail: String, kind| Problem {
                kind,
                location: Location { segment, offset: 0 },
                lba: self.layout.segment_lba(segment),
                stream: None,
                detail,
            };
            let report = &mut self.report;
            match slot {
                HeaderSlot::Log(h) => streams.entry(h.stream).or_default().push(h),
                // Part of a checkpoint body; one no root names is a leftover.
                HeaderSlot::Checkpoint(_) if checkpoint_segments.contains(&segment) => {
                    report.segments_checkpoint += 1
                }
                HeaderSlot::Checkpoint(_) | HeaderSlot::Foreign | HeaderSlot::Blank => {
                    report.segments_free += 1
                }
                HeaderSlot::Unreadable => report.problems.push(at(
                    "segment header cannot be read".into(),
                    ProblemKind::Unreadable,
                )),
                HeaderSlot::Misplaced(h) => report.problems.push(at(
                    format!("header of segment {} found in segment {segment}", h.segment),
                    ProblemKind::SegmentHeader,
                )),
                HeaderSlot::Damaged(e) => report.problems.push(at(
                    format!("segment header: {e}"),
                    ProblemKind::SegmentHeader,
                )),
            }
            if segment % 64 == 0 {
                progress(segment, total);
            }
        }
        Ok(streams)
    }

    /// Walks one stream's segments (`headers`, in generation order),
    /// counting its frames and records into the report and `start.keys`;
    /// `done` counts the log segments walked so far, for `progress`.
    fn walk_stream(
        &mut self,
        stream: u16,
        headers: &[SegmentHeader],
        start: &mut Start,
        done: &mut u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<(), OpenError> {
        let total = self.layout.segment_count;
        let mut walk = StreamWalk::new(self.layout, self.seed, 0);
        let mut tally = Tally {
            stream,
            layout: self.layout,
            seed: self.seed,
            report: &mut self.report,
            keys: &mut start.keys,
            watermarks: &start.watermarks,
        };
        for header in headers {
            tally.report.segments_used += 1;
            let unreadable = read_segment(
                self.namespace,
                self.queue.as_mut(),
                &self.layout,
                header.segment,
                &mut self.block,
            )
            .map_err(io)?;
            tally.unreadable_blocks(header.segment, &unreadable);
            walk.segment(
                SegmentRef::from(header),
                &self.block,
                &unreadable,
                &mut |event| match event {
                    Event::Frame { header, bytes, .. } => tally.frame(&header, bytes),
                    Event::Damage(gap) => {
                        let problems = tally.describe(&gap);
                        tally.report.problems.extend(problems);
                    }
                },
            );
            *done += 1;
            progress(total.min(*done + tally.report.segments_free), total);
        }
        let end = walk.finish();
        // Zeroes or an earlier use's leftovers after the last frame are the
        // log's normal end; anything else there is what recovery cuts and
        // reports as a torn tail.
        if let Some(torn) = end.torn.filter(|_| end.torn_written) {
            let problems = tally.describe_torn_tail(&torn);
            tally.report.problems.extend(problems);
        }
        Ok(())
    }
}

fn io(e: blocking::BlockingError) -> OpenError {
    OpenError::Io(nvme::IoError::from(e))
}

fn copy_name(copy: usize) -> &'static str {
    if copy == 0 {
        "A"
    } else {
        "B"
    }
}

/// Counts one stream's frames and records, and describes its damage.
struct Tally<'a> {
    stream: u16,
    layout: Layout,
    seed: u32,
    report: &'a mut InspectReport,
    keys: &'a mut Keys,
    /// Per shard, the loaded checkpoint's watermark.
    watermarks: &'a [u64],
}

impl Tally<'_> {
    fn problem(&self, kind: ProblemKind, segment: u32, offset: usize, detail: String) -> Problem {
        Problem {
            kind,
            location: Location {
                segment,
                offset: offset as u32,
            },
            lba: self.layout.segment_lba(segment)
                + (offset / self.layout.lba_bytes as usize) as u64,
            stream: Some(self.stream),
            detail,
        }
    }

    /// Reports each block of `segment` the device could not read (at
    /// byte `offsets`).
    fn unreadable_blocks(&mut self, segment: u32, offsets: &[u32]) {
        for &offset in offsets {
            let problem = self.problem(
                ProblemKind::Unreadable,
                segment,
                offset as usize,
                "block cannot be read".into(),
            );
            self.report.problems.push(problem);
        }
    }

    fn frame(&mut self, header: &FrameHeader, bytes: &[u8]) {
        self.report.frames += 1;
        self.report.log_bytes += u64::from(header.frame_bytes);
        for item in frame_records(bytes, self.seed) {
            let Ok((_, record)) = item else { break };
            self.report.records += 1;
            let value = match record.kind {
                RecordKind::Put => {
                    self.report.puts += 1;
                    Some(record.value.len() as u64)
                }
                RecordKind::Delete => {
                    self.report.deletes += 1;
                    None
                }
            };
            let shard = usize::from(crate::shard::shard(record.key));
            if self.watermarks.get(shard).is_some_and(|&w| record.seq <= w) {
                // The loaded checkpoint already reflects it.
                continue;
            }
            let entry = self.keys.entry(record.key.to_vec()).or_insert((0, None));
            if record.seq >= entry.0 {
                *entry = (record.seq, value);
            }
        }
    }

    /// The problems of an invalid stretch at the end of the log that holds
    /// something written: what recovery cuts and reports as a torn tail.
    fn describe_torn_tail(&self, torn: &Gap) -> Vec<Problem> {
        let mut problems = self.describe(torn);
        for p in &mut problems {
            p.kind = ProblemKind::TornTail;
            p.detail = format!(
                "{} (at the end of the log: the torn remains of an unacknowledged group commit, cut and reported at the next open; if it was acknowledged, the medium damaged it)",
                p.detail
            );
        }
        problems
    }

    /// What is wrong where an invalid stretch starts: zeroes (a lost write,
    /// since valid frames follow), a header that does not belong there, or
    /// a damaged frame, down to the records that fail their own checksums.
    fn describe(&self, gap: &Gap) -> Vec<Problem> {
        let (segment, offset) = (gap.start.segment, gap.start.offset as usize);
        let frame_problem =
            |detail: String| self.problem(ProblemKind::Frame, segment, offset, detail);
        let frame = match &gap.first {
            Invalid::Zeroes => {
                return vec![frame_problem(
                    "zeroed blocks where the log continues (a lost write)".into(),
                )]
            }
            Invalid::NoHeader(e) => {
                return vec![frame_problem(format!("no valid frame header: {e}"))]
            }
            Invalid::Unreadable => return vec![frame_problem("the block cannot be read".into())],
            Invalid::Misplaced(frame) | Invalid::Earlier(frame) => {
                return vec![frame_problem(format!(
                "frame header names segment {} generation {} offset {} ({} bytes): not this place",
                frame.segment, frame.segment_generation, frame.offset, frame.frame_bytes
            ))]
            }
            Invalid::Damaged(frame) => frame,
        };
        let mut problems: Vec<Problem> = frame
            .records
            .iter()
            .enumerate()
            .filter_map(|(i, record)| {
                let e = record.verified.as_ref().err()?;
                let key = &record.key[..record.key.len().min(64)];
                Some(self.problem(
                    ProblemKind::Record,
                    segment,
                    record.at,
                    format!(
                        "record {i} (seq {}, key {:?}): {e}",
                        record.seq,
                        String::from_utf8_lossy(key)
                    ),
                ))
            })
            .collect();
        if problems.is_empty() {
            problems.push(frame_problem(
                "frame checksum fails (its header or padding is damaged; its records verify)"
                    .into(),
            ));
        }
        problems
    }
}
