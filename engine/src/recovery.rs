//! Recovery: rebuild the index by replaying every log stream.
//!
//! 1. Read the header block of every segment. Headers with this store's
//!    UUID belong to a stream; order each stream's segments by generation.
//!    A header that is neither zeroes nor valid is damage: the segment is
//!    reported and kept out of use.
//! 2. Walk each stream, a segment at a time, with the one log walker
//!    (`log::StreamWalk`, which says what a valid frame, a clean segment
//!    switch, a torn tail and damage are). Damage in the middle of a log is
//!    reported, with the keys of the records found in it, never truncated;
//!    what a damaged frame still holds is salvaged. The torn tail of the
//!    last, never acknowledged group commit is cut.
//! 3. Apply every record in global sequence order, so a shard that moved
//!    between workers (and so between streams) replays correctly.
//!
//! With an index checkpoint, the index starts from it; segments it covers
//! whole are not read, and only records above their shard's watermark are
//! applied (`docs/format/checkpoint.md`).

use std::collections::{BTreeMap, BTreeSet};

use nvme::{Namespace, QueuePair};

use crate::checkpoint::Loaded;
use crate::error::{Location, OpenError};
use crate::format::checkpoint::TableEntry;
use crate::format::record::{frame_records, FrameHeader, RecordKind};
use crate::format::segment::SegmentHeader;
use crate::index::{Art, ValuePointer};
use crate::layout::Layout;
use crate::log::frame::Invalid;
use crate::log::read::{read_segment, read_start, HeaderSlot};
use crate::log::walk::{End, Gap, SegmentRef};
use crate::log::{Event, StreamWalk, Tail};
use crate::shard::{shard, SHARD_COUNT};
use crate::store::segments::SegmentInfo;

/// A range of a log that failed verification and was followed by valid
/// frames, or a segment whose header is unreadable or damaged: acknowledged
/// data may have been lost there, and it was reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The stream (worker) whose log holds the range; `u16::MAX` when the
    /// segment header itself was unreadable or damaged, so the stream is
    /// unknown.
    pub stream: u16,
    /// First bad byte.
    pub start: Location,
    /// First good byte after it.
    pub end: Location,
    /// Keys of the records found in the range (a record whose own crc
    /// fails is indexed pointing at the damage, so reading it reports
    /// corruption; one whose crc holds is recovered).
    pub keys: Vec<Vec<u8>>,
    /// Whether `keys` names every record the range held. When `false`,
    /// records of keys not named may have been lost here too.
    pub complete: bool,
}

/// The end of a log that recovery cut (or a segment of frames with no
/// header, `stream == u16::MAX`): something written in the segment's
/// current use, where no valid frame follows. It is the remains of the group
/// commit in flight at a crash (never acknowledged), or the last acknowledged
/// frame, damaged since (bit rot, a misdirected write, a torn rewrite): with
/// one copy and nothing written after it, the two cannot be told apart. So
/// recovery cuts it (the stream appends there; open erases it) and reports
/// it with the keys it can still name, never silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The stream (worker) whose log ends there; `u16::MAX` for a segment
    /// of frames with no header (no stream can be named).
    pub stream: u16,
    /// Where the log now ends: the first byte cut.
    pub at: Location,
    /// Keys of the records found in the cut frame (none when its header
    /// cannot be read).
    pub keys: Vec<Vec<u8>>,
    /// Whether `keys` names every record the cut frame held.
    pub complete: bool,
    /// What was found there, for the log and the operator.
    pub found: String,
}

/// What recovery found.
pub(crate) struct Recovered {
    pub index: Vec<Art>,
    pub tails: BTreeMap<u16, Tail>,
    pub used_segments: BTreeSet<u32>,
    /// What each used segment holds, for GC.
    pub segments: BTreeMap<u32, SegmentInfo>,
    pub next_seq: u64,
    pub next_generation: u64,
    /// Segments the checkpoint covered, so not read.
    pub skipped: u64,
    pub damage: Vec<Damage>,
    pub frames: u64,
    pub records: u64,
    /// Byte ranges past each stream's tail that may hold the torn remains of
    /// an unacknowledged group commit: (segment, from offset). Open zeroes
    /// them before any new write, so that no later recovery can mistake
    /// them for damage in the middle of the log.
    pub erase: Vec<(u32, u32)>,
    /// Segments opened after a stream's tail whose frames never became
    /// durable: their headers are zeroed and they go back to the free list.
    pub orphans: Vec<u32>,
    /// Ends of logs cut because something written sits there.
    pub torn_tails: Vec<TornTail>,
}

struct Update {
    seq: u64,
    key: Vec<u8>,
    pointer: Option<ValuePointer>,
    /// A put's deadline: the index must know it, or an expired key would
    /// be served after a restart.
    deadline: Option<u64>,
}

/// Where replay starts: an index checkpoint, or nothing.
struct Start {
    index: Vec<Art>,
    /// Per shard: records at or below it are in `index` already.
    watermarks: Vec<u64>,
    /// Segments the checkpoint covers whole (closed, every record at or
    /// below the lowest watermark).
    closed: BTreeMap<u32, TableEntry>,
    next_seq: u64,
}

impl Start {
    fn new(checkpoint: Option<Loaded>) -> Start {
        match checkpoint {
            Some(Loaded { root, body }) => Start {
                closed: body
                    .table
                    .iter()
                    .filter(|e| e.closed && e.last_seq <= root.watermark_min)
                    .map(|e| (e.segment, *e))
                    .collect(),
                index: body.index,
                watermarks: body.watermarks,
                next_seq: root.next_seq.max(1),
            },
            None => Start {
                index: (0..SHARD_COUNT).map(|_| Art::new()).collect(),
                watermarks: vec![0; usize::from(SHARD_COUNT)],
                closed: BTreeMap::new(),
                next_seq: 1,
            },
        }
    }

    /// Whether the checkpoint already holds the record `seq` of `key`.
    fn covers(&self, seq: u64, key: &[u8]) -> bool {
        seq <= self.watermarks[usize::from(shard(key))]
    }
}

/// The segment headers of the namespace, by stream in generation order, and
/// the segments whose headers could not be trusted.
struct Headers {
    streams: BTreeMap<u16, Vec<SegmentHeader>>,
    damage: Vec<Damage>,
    next_generation: u64,
    /// Segments with no usable log header whose first body block holds a
    /// frame header of theirs, that frame header, and whether the header
    /// block is damaged or unreadable (else it is blank, foreign or
    /// another segment's).
    headerless: Vec<(u32, FrameHeader, bool)>,
}

fn read_headers(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    uuid: &[u8; 16],
    superblock_generation: u64,
) -> Result<Headers, OpenError> {
    let mut headers = Headers {
        streams: BTreeMap::new(),
        damage: Vec::new(),
        next_generation: superblock_generation + 1,
        headerless: Vec::new(),
    };
    let mut block = Vec::with_capacity(2 * layout.lba_bytes as usize);
    for segment in 1..layout.segment_count {
        let (slot, first_frame) = read_start(namespace, queue, layout, uuid, segment, &mut block)
            .map_err(nvme::IoError::from)?;
        let header_damaged = match slot {
            HeaderSlot::Log(header) => {
                headers.next_generation = headers.next_generation.max(header.generation + 1);
                headers
                    .streams
                    .entry(header.stream)
                    .or_default()
                    .push(header);
                continue;
            }
            HeaderSlot::Checkpoint(_) => continue,
            HeaderSlot::Unreadable | HeaderSlot::Damaged(_) => {
                tracing::error!(
                    segment,
                    "segment header unreadable or damaged ({slot:?}): the segment is kept out of use and reported"
                );
                // Its keys are named once the index is built.
                headers.damage.push(Damage {
                    stream: u16::MAX,
                    start: Location { segment, offset: 0 },
                    end: Location {
                        segment,
                        offset: layout.lba_bytes,
                    },
                    keys: Vec::new(),
                    complete: false,
                });
                true
            }
            HeaderSlot::Misplaced(_) | HeaderSlot::Foreign | HeaderSlot::Blank => false,
        };
        if let Some(first) = first_frame {
            // Its generation was used: never hand it out again (the
            // superblock's claim may be an older copy's).
            headers.next_generation = headers.next_generation.max(first.segment_generation + 1);
            headers.headerless.push((segment, first, header_damaged));
        }
    }
    for stream in headers.streams.values_mut() {
        stream.sort_by_key(|h| h.generation);
    }
    Ok(headers)
}

pub(crate) fn recover(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    uuid: &[u8; 16],
    superblock_generation: u64,
    checkpoint: Option<Loaded>,
) -> Result<Recovered, OpenError> {
    let headers = read_headers(namespace, queue, layout, uuid, superblock_generation)?;
    let mut start = Start::new(checkpoint);
    let mut recovered = Recovered {
        index: Vec::new(),
        tails: BTreeMap::new(),
        used_segments: BTreeSet::new(),
        segments: BTreeMap::new(),
        next_seq: start.next_seq,
        skipped: 0,
        next_generation: headers.next_generation,
        damage: headers.damage,
        frames: 0,
        records: 0,
        erase: Vec::new(),
        orphans: Vec::new(),
        torn_tails: Vec::new(),
    };
    let seed = crate::format::store_seed(uuid);
    let mut updates: Vec<Update> = Vec::new();
    for (&stream, stream_headers) in &headers.streams {
        let mut replay = StreamReplay {
            stream,
            layout,
            seed,
            start: &start,
            recovered: &mut recovered,
            updates: &mut updates,
        };
        replay.run(namespace, queue, stream_headers)?;
    }
    let headerless = read_headerless(namespace, queue, layout, seed, &headers.headerless)?;
    keep_damaged_segments(&mut recovered);
    updates.sort_by_key(|u| u.seq);
    let newest: BTreeMap<Vec<u8>, u64> = if headerless.is_empty() {
        BTreeMap::new()
    } else {
        updates.iter().map(|u| (u.key.clone(), u.seq)).collect()
    };
    recovered.index = std::mem::take(&mut start.index);
    apply_updates(&mut recovered.index, updates);
    name_headerless_keys(&mut recovered, headerless, &newest, &start, layout);
    Ok(recovered)
}

/// Reads the segments with no usable log header whose first body block
/// holds a frame header (`Headers::headerless`); returns those worth
/// reporting, each with whether its header block is damaged.
fn read_headerless(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    seed: u32,
    segments: &[(u32, FrameHeader, bool)],
) -> Result<Vec<(Headerless, bool)>, OpenError> {
    let mut headerless = Vec::new();
    for &(segment, first, damaged) in segments {
        let found = headerless_segment(namespace, queue, layout, seed, segment, first)?;
        // A segment whose damaged header is already reported needs no
        // verified frame to be named: what its damaged frames still show
        // counts too.
        if found.frames > 0 || damaged && !found.records.is_empty() {
            headerless.push((found, damaged));
        }
    }
    Ok(headerless)
}

/// Keeps every segment a damage report names out of GC's reach.
fn keep_damaged_segments(recovered: &mut Recovered) {
    // GC never collects a segment with reported damage: the report stays
    // true at every later open.
    for damage in &recovered.damage {
        for segment in [damage.start.segment, damage.end.segment] {
            if let Some(info) = recovered.segments.get_mut(&segment) {
                info.retry_after_seq = u64::MAX;
            }
        }
    }
}

/// Applies the replayed records, in sequence order, to the index.
fn apply_updates(index: &mut [Art], updates: Vec<Update>) {
    for update in updates {
        let art = &mut index[usize::from(shard(&update.key))];
        match update.pointer {
            Some(pointer) => {
                art.insert_expiring(&update.key, pointer, update.deadline);
            }
            None => {
                art.remove(&update.key);
            }
        }
    }
}

/// Names the keys the headerless segments may have lost: in the damage
/// report of a segment whose header is damaged, otherwise as a torn tail.
fn name_headerless_keys(
    recovered: &mut Recovered,
    headerless: Vec<(Headerless, bool)>,
    newest: &BTreeMap<Vec<u8>, u64>,
    start: &Start,
    layout: &Layout,
) {
    for (mut found, damaged_header) in headerless {
        let (segment, complete) = (found.segment, found.complete);
        let records = std::mem::take(&mut found.records);
        let keys = lost_keys(records, newest, start, &recovered.index);
        if damaged_header {
            // Already reported as damage, keys unknown: name them.
            for damage in &mut recovered.damage {
                if damage.stream == u16::MAX && damage.start.segment == segment {
                    damage.keys = keys.clone();
                    damage.complete = complete;
                }
            }
            continue;
        }
        recovered
            .torn_tails
            .extend(report_headerless(found, keys, layout.lba_bytes));
    }
}

/// What a segment with no log header holds (`headerless_segment`).
struct Headerless {
    segment: u32,
    generation: u64,
    frames: u64,
    /// Its records: sequence number, key, and whether it is a put (a
    /// record that fails its own crc counts as one).
    records: Vec<(u64, Vec<u8>, bool)>,
    /// Whether every record was told apart.
    complete: bool,
}

/// Reads a segment with no log header whose first body block holds a frame
/// header of its own: it was written as a log, and its header write was lost
/// or misdirected, or its first commit was in flight at a crash (the frame
/// landed, the header did not), or GC was freeing it at a crash (its header
/// erased, not yet its first block); or its header is damaged.
fn headerless_segment(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    seed: u32,
    segment: u32,
    first: FrameHeader,
) -> Result<Headerless, OpenError> {
    let mut data = Vec::new();
    let unreadable =
        read_segment(namespace, queue, layout, segment, &mut data).map_err(nvme::IoError::from)?;
    let mut walk = StreamWalk::new(*layout, seed, 0);
    let at = SegmentRef {
        segment,
        generation: first.segment_generation,
        prev_seq: 0,
    };
    let mut found = Headerless {
        segment,
        generation: first.segment_generation,
        frames: 0,
        records: Vec::new(),
        complete: unreadable.is_empty(),
    };
    walk.segment(at, &data, &unreadable, &mut |event| match event {
        Event::Frame { header, bytes, .. } => {
            found.frames += u64::from(header.record_count > 0);
            found.records.extend(
                frame_records(bytes, seed)
                    .map_while(Result::ok)
                    .map(|(_, r)| (r.seq, r.key.to_vec(), r.kind == RecordKind::Put)),
            );
        }
        Event::Damage(gap) => {
            found.complete &= gap.whole_frame_named;
            found.records.extend(damaged_records(&gap.first));
        }
    });
    // A damaged frame at the end: its records count too (for a blank header
    // it is a commit in flight; for a damaged one, acknowledged data).
    if let Some(gap) = walk.finish().torn {
        if let Invalid::Damaged(frame) = &gap.first {
            found.complete &= frame.complete;
        }
        found.records.extend(damaged_records(&gap.first));
    }
    Ok(found)
}

/// The keys whose newest record is among `records` (a segment recovery
/// cannot replay): a put that nothing replayed supersedes, or a delete of a
/// key the index still holds.
fn lost_keys(
    records: Vec<(u64, Vec<u8>, bool)>,
    newest: &BTreeMap<Vec<u8>, u64>,
    start: &Start,
    index: &[Art],
) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = records
        .into_iter()
        .filter(|(seq, key, put)| {
            let superseded = newest.get(key).is_some_and(|&n| n > *seq) || start.covers(*seq, key);
            let changes = *put || index[usize::from(shard(key))].get(key).is_some();
            !superseded && changes
        })
        .map(|(_, key, _)| key)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The records a damaged frame still shows, as `Headerless::records` holds
/// them (one whose own crc fails counts as a put).
fn damaged_records(first: &Invalid) -> Vec<(u64, Vec<u8>, bool)> {
    let Invalid::Damaged(frame) = first else {
        return Vec::new();
    };
    frame
        .records
        .iter()
        .map(|r| (r.seq, r.key.clone(), r.verified != Ok(RecordKind::Delete)))
        .collect()
}

/// Reports the keys whose newest record sits in a segment with no header:
/// a put that nothing replayed supersedes, or a delete of a key the index
/// still holds. Those records are not replayed (no stream can be named, and
/// attributing them by guess could bring back a key whose delete GC since
/// collected); the report names what they would have changed. A segment GC
/// was freeing holds only superseded records and reports nothing. The
/// segment stays free: the report repeats at every open until it is reused.
fn report_headerless(found: Headerless, keys: Vec<Vec<u8>>, lba_bytes: u32) -> Option<TornTail> {
    if keys.is_empty() && found.complete {
        tracing::debug!(
            segment = found.segment,
            "segment with frames but no header holds only superseded records (GC was freeing it)"
        );
        return None;
    }
    let what = format!(
        "segment {} holds {} frames of generation {} but no header: its header write was lost \
         or misdirected, or its first commit was in flight at a crash",
        found.segment, found.frames, found.generation
    );
    tracing::warn!(
        segment = found.segment,
        "{what}; not replayed; the newest records of {} keys are there",
        keys.len()
    );
    Some(TornTail {
        stream: u16::MAX,
        at: Location {
            segment: found.segment,
            offset: lba_bytes,
        },
        keys,
        complete: found.complete,
        found: what,
    })
}

/// Replays one stream into the recovery's findings.
struct StreamReplay<'a> {
    stream: u16,
    layout: &'a Layout,
    seed: u32,
    start: &'a Start,
    recovered: &'a mut Recovered,
    updates: &'a mut Vec<Update>,
}

impl StreamReplay<'_> {
    fn run(
        &mut self,
        namespace: &dyn Namespace,
        queue: &mut dyn QueuePair,
        headers: &[SegmentHeader],
    ) -> Result<(), OpenError> {
        // Segments the checkpoint covers whole form a prefix of the stream
        // and are not read: what the engine needs of them is in its table.
        let covered = headers
            .iter()
            .take_while(|h| {
                self.start
                    .closed
                    .get(&h.segment)
                    .is_some_and(|e| e.generation == h.generation && e.stream == h.stream)
            })
            .count();
        let mut last_seq = 0;
        for h in &headers[..covered] {
            let Some(e) = self.start.closed.get(&h.segment) else {
                continue;
            };
            last_seq = last_seq.max(e.last_seq);
            self.use_segment(h, e.min_seq, e.last_seq, e.sealed);
            self.recovered.skipped += 1;
        }
        let mut walk = StreamWalk::new(*self.layout, self.seed, last_seq);
        let mut data = Vec::new();
        for header in &headers[covered..] {
            let unreadable = read_segment(namespace, queue, self.layout, header.segment, &mut data)
                .map_err(nvme::IoError::from)?;
            self.report_unreadable(header.segment, &unreadable);
            self.use_segment(header, u64::MAX, header.prev_seq, false);
            walk.segment(
                SegmentRef::from(header),
                &data,
                &unreadable,
                &mut |event| match event {
                    Event::Frame {
                        segment,
                        offset,
                        header,
                        bytes,
                    } => self.frame(segment, offset, &header, bytes),
                    Event::Damage(gap) => self.damage(gap),
                },
            );
        }
        let end = walk.finish();
        let tail_of_covered = headers[..covered].last().map(|last| Tail {
            segment: last.segment,
            generation: last.generation,
            offset: self.layout.segment_bytes as u32,
            last_seq: end.last_seq,
        });
        self.end(end, tail_of_covered);
        Ok(())
    }

    /// Marks a segment as used by this stream.
    fn use_segment(&mut self, h: &SegmentHeader, min_seq: u64, last_seq: u64, sealed: bool) {
        self.recovered.used_segments.insert(h.segment);
        self.recovered.segments.insert(
            h.segment,
            SegmentInfo {
                stream: self.stream,
                generation: h.generation,
                min_seq,
                last_seq,
                sealed,
                retry_after_seq: 0,
                retry_when_empty: false,
            },
        );
    }

    fn report_unreadable(&mut self, segment: u32, offsets: &[u32]) {
        for &offset in offsets {
            tracing::error!(
                segment,
                offset,
                "unreadable block during recovery; reported as damage"
            );
            self.recovered.damage.push(Damage {
                stream: self.stream,
                start: Location { segment, offset },
                end: Location {
                    segment,
                    offset: offset + self.layout.lba_bytes,
                },
                keys: Vec::new(),
                complete: false,
            });
        }
    }

    fn frame(
        &mut self,
        segment: u32,
        offset: usize,
        header: &crate::format::record::FrameHeader,
        bytes: &[u8],
    ) {
        if let Some(info) = self.recovered.segments.get_mut(&segment) {
            info.sealed = header.record_count == 0;
            if header.record_count > 0 {
                info.min_seq = info.min_seq.min(header.first_seq);
                info.last_seq = header.first_seq + u64::from(header.record_count) - 1;
            }
        }
        self.recovered.frames += 1;
        for item in frame_records(bytes, self.seed) {
            let Ok((at, record)) = item else { break };
            if self.start.covers(record.seq, record.key) {
                continue;
            }
            let pointer = (record.kind == RecordKind::Put)
                .then(|| ValuePointer::to_record(segment, offset + at, &record));
            self.updates.push(Update {
                seq: record.seq,
                key: record.key.to_vec(),
                pointer,
                deadline: record.expire_at_ms,
            });
            self.recovered.records += 1;
        }
    }

    /// Damage in the middle of the log: reported, never truncated. Open
    /// erases torn tails, so an invalid frame followed by valid ones was
    /// flushed and acknowledged: what it still holds is salvaged. A record
    /// whose own crc holds is indexed as usual; one whose header still
    /// parses but whose crc fails is indexed pointing at the damage, so that
    /// reading its key reports corruption instead of "not found".
    fn damage(&mut self, gap: Gap) {
        let end = gap.end.unwrap_or(gap.start);
        tracing::error!(
            stream = self.stream,
            "corrupt log range from {} to {end}: reported, not truncated",
            gap.start
        );
        let mut keys = Vec::new();
        if let Invalid::Damaged(frame) = &gap.first {
            for record in &frame.records {
                keys.push(record.key.clone());
                if !frame.follows || self.start.covers(record.seq, &record.key) {
                    continue;
                }
                let pointer = match record.verified {
                    Ok(RecordKind::Delete) => None,
                    Ok(RecordKind::Put) | Err(_) => Some(ValuePointer {
                        segment: gap.start.segment,
                        offset: record.at as u32,
                        length: record.length as u32,
                        sequence_low: record.seq as u32,
                    }),
                };
                self.updates.push(Update {
                    seq: record.seq,
                    key: record.key.clone(),
                    pointer,
                    deadline: record.expire_at_ms,
                });
            }
        }
        self.recovered.damage.push(Damage {
            stream: self.stream,
            start: gap.start,
            end,
            keys,
            complete: gap.whole_frame_named,
        });
    }

    /// Reports the end of the log this open cuts.
    fn report_torn_tail(&mut self, torn: &Gap) {
        let (keys, complete, found) = match &torn.first {
            Invalid::Damaged(frame) => (
                frame.records.iter().map(|r| r.key.clone()).collect(),
                frame.complete && frame.follows,
                format!(
                    "a frame of {} records (seq {}) that fails verification",
                    frame.header.record_count, frame.header.first_seq
                ),
            ),
            Invalid::Misplaced(h) | Invalid::Earlier(h) => (
                Vec::new(),
                false,
                format!(
                    "a frame header for segment {} generation {} offset {}",
                    h.segment, h.segment_generation, h.offset
                ),
            ),
            Invalid::NoHeader(e) => (Vec::new(), false, format!("no frame header ({e})")),
            Invalid::Unreadable => (Vec::new(), false, "a block that cannot be read".into()),
            Invalid::Zeroes => (Vec::new(), true, "zeroes".into()),
        };
        tracing::warn!(
            stream = self.stream,
            "the log ends at {} in {found}: cut as the remains of a group commit in flight at              the crash; if it was acknowledged, the medium damaged it and these writes are              lost: {} keys found{}",
            torn.start,
            keys.len(),
            if complete { "" } else { " (records may be unnamed)" }
        );
        self.recovered.torn_tails.push(TornTail {
            stream: self.stream,
            at: torn.start,
            keys,
            complete,
            found,
        });
    }

    /// Where the stream resumes. After a torn tail: append from there, after
    /// erasing what is left of it and any segment opened for it.
    fn end(&mut self, end: End, tail_of_covered: Option<Tail>) {
        if let Some(torn) = end.torn.as_ref().filter(|_| end.torn_written) {
            self.report_torn_tail(torn);
        }
        if let Some(torn) = &end.torn {
            // A cut that holds something written (or a block that cannot be
            // read, reported as damage too) keeps its first block: every open reports it again until the stream's next
            // frame or seal overwrites it, so an open that fails after
            // erasing the rest loses no evidence.
            let keep = if end.torn_written {
                self.layout.lba_bytes
            } else {
                0
            };
            let from = torn.start.offset + keep;
            if from < self.layout.segment_bytes as u32 {
                self.recovered.erase.push((torn.start.segment, from));
            }
        }
        for orphan in end.orphans {
            self.recovered.orphans.push(orphan);
            self.recovered.used_segments.remove(&orphan);
            self.recovered.segments.remove(&orphan);
        }
        if let Some(tail) = end.tail.or(tail_of_covered) {
            self.recovered.tails.insert(self.stream, tail);
        }
        self.recovered.next_seq = self.recovered.next_seq.max(end.last_seq + 1);
    }
}
