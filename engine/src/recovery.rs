//! Recovery: rebuild the index by replaying every log stream.
//!
//! 1. Read the header block of every segment. Headers with this store's
//!    UUID belong to a stream; order each stream's segments by generation.
//! 2. Scan each stream's frames in order. A frame is valid when its crc
//!    holds and its identity (segment, generation, offset) matches where it
//!    was read, and its sequence numbers follow the previous frame's.
//! 3. At the first invalid frame, look ahead through the rest of the stream
//!    for any later valid frame. None: this is the torn tail of the last
//!    group commit, which was never acknowledged; cut it. Some: this is
//!    corruption in the middle of the log. Report the damaged range, never
//!    truncate past it, and carry on from the next valid frame.
//! 4. Apply every record in global sequence order, so a shard that moved
//!    between workers (and so between streams) replays correctly.
//!
//! With an index checkpoint, the index starts from it; segments it covers
//! whole are not read, and only records above their shard's watermark are
//! applied (`docs/format/checkpoint.md`).

use std::collections::{BTreeMap, BTreeSet};

use nvme::{Namespace, QueuePair};

use crate::blocking;
use crate::checkpoint::Loaded;
use crate::error::{Location, OpenError};
use crate::format::checkpoint::TableEntry;
use crate::format::record::{frame_records, verify_frame, FrameHeader, RecordKind};
use crate::format::segment::SegmentHeader;
use crate::index::{Art, ValuePointer};
use crate::layout::Layout;
use crate::segments::SegmentInfo;
use crate::shard::{shard, SHARD_COUNT};

/// Where a stream appends next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    pub segment: u32,
    pub generation: u64,
    /// Byte offset of the next frame within the segment.
    pub offset: u32,
    /// Sequence number of the stream's last durable record.
    pub last_seq: u64,
}

/// A range of a log that failed verification and was followed by valid
/// frames: acknowledged data may have been lost there, and it was reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The stream (worker) whose log holds the range; `u16::MAX` when the
    /// segment header itself was unreadable, so the stream is unknown.
    pub stream: u16,
    /// First bad byte.
    pub start: Location,
    /// First good byte after it.
    pub end: Location,
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
}

struct Update {
    seq: u64,
    key: Vec<u8>,
    pointer: Option<ValuePointer>,
}

pub(crate) fn recover(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    uuid: &[u8; 16],
    superblock_generation: u64,
    checkpoint: Option<Loaded>,
) -> Result<Recovered, OpenError> {
    let lba_bytes = layout.lba_bytes as usize;
    // 1. Segment headers.
    let mut streams: BTreeMap<u16, Vec<SegmentHeader>> = BTreeMap::new();
    let mut recovered_unreadable: Vec<Location> = Vec::new();
    let mut next_generation = superblock_generation + 1;
    let mut block = Vec::with_capacity(lba_bytes);
    for segment in 1..layout.segment_count {
        let mut unreadable = Vec::new();
        blocking::read_tolerant(
            namespace,
            queue,
            layout.segment_lba(segment),
            lba_bytes,
            &mut block,
            &mut unreadable,
        )
        .map_err(nvme::IoError::from)?;
        if !unreadable.is_empty() {
            tracing::error!(
                segment,
                "segment header unreadable: the segment is skipped and reported"
            );
            recovered_unreadable.push(Location { segment, offset: 0 });
            continue;
        }
        let Ok(header) = SegmentHeader::decode(&block) else {
            continue;
        };
        if header.uuid != *uuid || header.segment != segment {
            continue;
        }
        next_generation = next_generation.max(header.generation + 1);
        streams.entry(header.stream).or_default().push(header);
    }
    // With a checkpoint, the index starts from it, and only records above
    // each shard's watermark are replayed on top.
    let (index, watermarks, closed, next_seq) = match checkpoint {
        Some(Loaded { root, body }) => {
            let closed: BTreeMap<u32, TableEntry> = body
                .table
                .iter()
                .filter(|e| e.closed && e.last_seq <= root.watermark_min)
                .map(|e| (e.segment, *e))
                .collect();
            (body.index, body.watermarks, closed, root.next_seq.max(1))
        }
        None => (
            (0..SHARD_COUNT).map(|_| Art::new()).collect(),
            vec![0; usize::from(SHARD_COUNT)],
            BTreeMap::new(),
            1,
        ),
    };
    let mut recovered = Recovered {
        index,
        tails: BTreeMap::new(),
        used_segments: BTreeSet::new(),
        segments: BTreeMap::new(),
        next_seq,
        skipped: 0,
        next_generation,
        damage: recovered_unreadable
            .iter()
            .map(|&start| Damage {
                stream: u16::MAX,
                start,
                end: Location {
                    segment: start.segment,
                    offset: layout.lba_bytes,
                },
            })
            .collect(),
        frames: 0,
        records: 0,
        erase: Vec::new(),
        orphans: Vec::new(),
    };
    let seed = crate::format::store_seed(uuid);
    let mut updates: Vec<Update> = Vec::new();
    let mut data = Vec::new();
    for (stream, headers) in streams.iter_mut() {
        headers.sort_by_key(|h| h.generation);
        // Segments the checkpoint covers whole (closed, every record at or
        // below the lowest watermark) are not read: they form a prefix of
        // the stream, and what the engine needs of them is in the table.
        let mut last_seq = 0u64;
        let covered = headers
            .iter()
            .take_while(|h| {
                closed
                    .get(&h.segment)
                    .is_some_and(|e| e.generation == h.generation && e.stream == h.stream)
            })
            .count();
        let mut last_covered = None;
        for h in headers.drain(..covered) {
            last_covered = Some(h);
            let Some(e) = closed.get(&h.segment) else {
                continue;
            };
            last_seq = last_seq.max(e.last_seq);
            recovered.used_segments.insert(h.segment);
            recovered.segments.insert(
                h.segment,
                SegmentInfo {
                    stream: *stream,
                    generation: h.generation,
                    min_seq: e.min_seq,
                    last_seq: e.last_seq,
                    sealed: e.sealed,
                    retry_after_seq: 0,
                },
            );
            recovered.skipped += 1;
        }
        // Read every segment of the stream up front: recovery is sequential
        // and bounded by the namespace's size.
        let mut contents: Vec<Vec<u8>> = Vec::with_capacity(headers.len());
        for header in headers.iter() {
            let mut unreadable = Vec::new();
            blocking::read_tolerant(
                namespace,
                queue,
                layout.segment_lba(header.segment),
                layout.segment_bytes as usize,
                &mut data,
                &mut unreadable,
            )
            .map_err(nvme::IoError::from)?;
            for lba in unreadable {
                let offset = ((lba - layout.segment_lba(header.segment))
                    * u64::from(layout.lba_bytes)) as u32;
                tracing::error!(
                    segment = header.segment,
                    offset,
                    "unreadable block during recovery; reported as damage"
                );
                recovered.damage.push(Damage {
                    stream: *stream,
                    start: Location {
                        segment: header.segment,
                        offset,
                    },
                    end: Location {
                        segment: header.segment,
                        offset: offset + layout.lba_bytes,
                    },
                });
            }
            contents.push(std::mem::take(&mut data));
            recovered.used_segments.insert(header.segment);
            recovered.segments.insert(
                header.segment,
                SegmentInfo {
                    stream: *stream,
                    generation: header.generation,
                    min_seq: u64::MAX,
                    last_seq: header.prev_seq,
                    sealed: false,
                    retry_after_seq: 0,
                },
            );
        }
        let mut position = (0usize, lba_bytes);
        let mut damage_start: Option<(usize, usize)> = None;
        // Whether the last valid frame of the segment being walked is a seal.
        let mut sealed = (usize::MAX, false);
        loop {
            let (s, offset) = position;
            if s >= headers.len() {
                break;
            }
            let found = valid_frame_at(
                &contents[s],
                headers[s].segment,
                headers[s].generation,
                offset,
                last_seq,
                seed,
            );
            match found {
                Some(frame) => {
                    let frame_bytes = frame.frame_bytes as usize;
                    sealed = (s, frame.record_count == 0);
                    if let Some(info) = recovered.segments.get_mut(&headers[s].segment) {
                        info.sealed = frame.record_count == 0;
                        if frame.record_count > 0 {
                            info.min_seq = info.min_seq.min(frame.first_seq);
                            info.last_seq = frame.first_seq + u64::from(frame.record_count) - 1;
                        }
                    }
                    if let Some((ds, doff)) = damage_start.take() {
                        recovered.damage.push(Damage {
                            stream: *stream,
                            start: location(&headers[ds], doff),
                            end: location(&headers[s], offset),
                        });
                        tracing::error!(
                            stream,
                            "corrupt log range from {} to {}: reported, not truncated",
                            location(&headers[ds], doff),
                            location(&headers[s], offset)
                        );
                    }
                    let frame = &contents[s][offset..offset + frame_bytes];
                    recovered.frames += 1;
                    for item in frame_records(frame, seed) {
                        let Ok((at, record)) = item else { break };
                        last_seq = record.seq;
                        if record.seq <= watermarks[usize::from(shard(record.key))] {
                            continue;
                        }
                        let pointer = (record.kind == RecordKind::Put).then(|| {
                            ValuePointer::to_record(headers[s].segment, offset + at, &record)
                        });
                        updates.push(Update {
                            seq: record.seq,
                            key: record.key.to_vec(),
                            pointer,
                        });
                        recovered.records += 1;
                    }
                    position = (s, offset + layout.pad(frame_bytes));
                }
                None => {
                    let next = next_valid(
                        &contents,
                        headers,
                        (s, offset + lba_bytes),
                        last_seq,
                        lba_bytes,
                        seed,
                    );
                    // A frame that did not fit went to the next segment,
                    // whose header names the last sequence before it: that
                    // is a clean switch, not damage.
                    // So is a gap after a sealed segment: GC collected the
                    // segments between.
                    let clean_switch = |(s2, off2): (usize, usize)| {
                        s2 == s + 1
                            && off2 == lba_bytes
                            && (headers[s2].prev_seq == last_seq || sealed == (s, true))
                    };
                    match next {
                        Some(next) if damage_start.is_none() && clean_switch(next) => {
                            position = next;
                        }
                        Some(next) => {
                            if damage_start.is_none() {
                                // Open erases torn tails, so an invalid frame
                                // followed by valid ones was flushed and
                                // acknowledged: salvage what it still holds.
                                last_seq = salvage(
                                    &contents[s],
                                    &headers[s],
                                    offset,
                                    last_seq,
                                    seed,
                                    &mut updates,
                                );
                                updates.retain(|u| u.seq > watermarks[usize::from(shard(&u.key))]);
                            }
                            damage_start.get_or_insert((s, offset));
                            position = next;
                        }
                        None => {
                            // The torn tail of the last, unacknowledged group
                            // commit: append from here, after erasing what is
                            // left of it and any segment opened for it.
                            recovered.tails.insert(
                                *stream,
                                Tail {
                                    segment: headers[s].segment,
                                    generation: headers[s].generation,
                                    offset: offset as u32,
                                    last_seq,
                                },
                            );
                            if offset < layout.segment_bytes as usize {
                                recovered.erase.push((headers[s].segment, offset as u32));
                            }
                            for orphan in &headers[s + 1..] {
                                recovered.orphans.push(orphan.segment);
                                recovered.used_segments.remove(&orphan.segment);
                                recovered.segments.remove(&orphan.segment);
                            }
                            break;
                        }
                    }
                }
            }
        }
        if !recovered.tails.contains_key(stream) {
            if let Some(last) = headers.last().or(last_covered.as_ref()) {
                recovered.tails.insert(
                    *stream,
                    Tail {
                        segment: last.segment,
                        generation: last.generation,
                        offset: layout.segment_bytes as u32,
                        last_seq,
                    },
                );
            }
        }
        recovered.next_seq = recovered.next_seq.max(last_seq + 1);
    }
    // GC never collects a segment with reported damage: the report stays
    // true at every later open.
    for damage in &recovered.damage {
        for segment in [damage.start.segment, damage.end.segment] {
            if let Some(info) = recovered.segments.get_mut(&segment) {
                info.retry_after_seq = u64::MAX;
            }
        }
    }
    updates.sort_by_key(|u| u.seq);
    for update in updates {
        let art = &mut recovered.index[usize::from(shard(&update.key))];
        match update.pointer {
            Some(pointer) => {
                art.insert(&update.key, pointer);
            }
            None => {
                art.remove(&update.key);
            }
        }
    }
    Ok(recovered)
}

/// Recovers what it can from a damaged frame in the middle of a log: every
/// record whose own crc holds is indexed as usual, and a record whose header
/// still parses but whose crc fails is indexed too, pointing at the damage,
/// so that reading its key reports corruption instead of "not found".
/// Stops at the first record whose header is unusable. Returns the last
/// sequence number seen.
fn salvage(
    segment: &[u8],
    header: &SegmentHeader,
    offset: usize,
    mut last_seq: u64,
    seed: u32,
    updates: &mut Vec<Update>,
) -> u64 {
    use crate::format::record::{
        decode_frame_header, decode_record, record_bytes, FRAME_HEADER_BYTES, RECORD_HEADER_BYTES,
    };
    let Ok(frame) = decode_frame_header(&segment[offset..]) else {
        return last_seq;
    };
    let identity_ok = frame.segment == header.segment
        && frame.segment_generation == header.generation
        && frame.offset as usize == offset
        && frame.first_seq > last_seq;
    let end = offset.saturating_add(frame.frame_bytes as usize);
    if !identity_ok || end > segment.len() {
        return last_seq;
    }
    let mut at = offset + FRAME_HEADER_BYTES;
    for i in 0..u64::from(frame.record_count) {
        if at + RECORD_HEADER_BYTES > end {
            break;
        }
        let seq = frame.first_seq + i;
        let bytes = &segment[at..end];
        let (key, len, pointer) = match decode_record(bytes, seed) {
            Ok((record, len)) => {
                let pointer = (record.kind == RecordKind::Put).then_some(ValuePointer {
                    segment: header.segment,
                    offset: at as u32,
                    length: len as u32,
                    sequence_low: seq as u32,
                });
                (record.key.to_vec(), len, pointer)
            }
            Err(_) => {
                let key_len = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
                let value_len =
                    u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
                let len = record_bytes(key_len, value_len);
                if key_len == 0 || len > bytes.len() {
                    break;
                }
                let pointer = ValuePointer {
                    segment: header.segment,
                    offset: at as u32,
                    length: len as u32,
                    sequence_low: seq as u32,
                };
                (
                    bytes[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + key_len].to_vec(),
                    len,
                    Some(pointer),
                )
            }
        };
        updates.push(Update { seq, key, pointer });
        last_seq = seq;
        at += len;
    }
    last_seq
}

fn location(header: &SegmentHeader, offset: usize) -> Location {
    Location {
        segment: header.segment,
        offset: offset as u32,
    }
}

/// The header of the valid frame at `offset` of a segment's bytes, if there
/// is one that belongs exactly there and follows `last_seq`. A frame with no
/// records is a seal: the stream left the segment there.
pub(crate) fn valid_frame_at(
    data: &[u8],
    segment: u32,
    generation: u64,
    offset: usize,
    last_seq: u64,
    seed: u32,
) -> Option<FrameHeader> {
    if offset >= data.len() {
        return None;
    }
    let frame = verify_frame(&data[offset..], seed).ok()?;
    let identity_ok = frame.segment == segment
        && frame.segment_generation == generation
        && frame.offset as usize == offset
        && frame.first_seq > last_seq;
    identity_ok.then_some(frame)
}

/// The next position at or after `from` that holds a valid frame.
fn next_valid(
    contents: &[Vec<u8>],
    headers: &[SegmentHeader],
    from: (usize, usize),
    last_seq: u64,
    lba_bytes: usize,
    seed: u32,
) -> Option<(usize, usize)> {
    let (mut s, mut offset) = from;
    while s < contents.len() {
        while offset < contents[s].len() {
            if valid_frame_at(
                &contents[s],
                headers[s].segment,
                headers[s].generation,
                offset,
                last_seq,
                seed,
            )
            .is_some()
            {
                return Some((s, offset));
            }
            offset += lba_bytes;
        }
        s += 1;
        offset = lba_bytes;
    }
    None
}
