//! The simulated namespace's durable image, read with the engine's own
//! format decoders (never through the engine): where the superblocks, the
//! checkpoint roots and bodies, each log segment and each frame are, and
//! which keys each frame holds. The simulator uses it to place faults at
//! known places and to know which keys each fault could touch.

use std::collections::BTreeSet;

use engine::format::checkpoint::{Root, KIND_CHECKPOINT, ROOT_LBAS};
use engine::format::record::{decode_record, verify_frame, FRAME_HEADER_BYTES};
use engine::format::segment::SegmentHeader;
use engine::format::store_seed;
use engine::format::superblock::Superblock;
use engine::layout::SUPERBLOCK_LBAS;
use nvme::sim::SimNamespace;

/// One valid frame of a log segment.
#[derive(Clone, Debug)]
pub struct Frame {
    pub first_lba: u64,
    pub blocks: u64,
    /// Keys of its records (empty for a seal).
    pub keys: BTreeSet<Vec<u8>>,
}

/// A segment with a valid log header.
#[derive(Clone, Debug)]
pub struct LogSegment {
    pub segment: u32,
    pub stream: u16,
    pub generation: u64,
    /// Its valid frames, in order (past invalid positions too).
    pub frames: Vec<Frame>,
}

impl LogSegment {
    pub fn keys(&self) -> BTreeSet<Vec<u8>> {
        self.frames.iter().flat_map(|f| f.keys.clone()).collect()
    }
}

/// What the durable image holds.
pub struct Survey {
    pub segment_lbas: u64,
    /// Log segments, by segment number.
    pub logs: Vec<LogSegment>,
    /// Segments holding the body of a checkpoint that a valid root names.
    pub checkpoint_segments: BTreeSet<u32>,
    /// Root slots holding a valid root.
    pub roots: Vec<u64>,
    /// Data segments with neither a log nor a checkpoint header.
    pub free: Vec<u32>,
}

impl Survey {
    /// Reads the durable image. `None` when neither superblock decodes.
    pub fn read(namespace: &SimNamespace) -> Option<Survey> {
        let sb = SUPERBLOCK_LBAS
            .iter()
            .find_map(|&lba| Superblock::decode(&namespace.read_durable(lba)).ok())?;
        let seed = store_seed(&sb.uuid);
        let lba_bytes = u64::from(sb.lba_bytes);
        let segment_lbas = sb.segment_bytes / lba_bytes;
        let mut survey = Survey {
            segment_lbas,
            logs: Vec::new(),
            checkpoint_segments: BTreeSet::new(),
            roots: Vec::new(),
            free: Vec::new(),
        };
        for lba in ROOT_LBAS {
            if let Ok(root) = Root::decode(&namespace.read_durable(lba), seed) {
                survey.roots.push(lba);
                survey.checkpoint_segments.extend(root.segments);
            }
        }
        for segment in 1..sb.segment_count {
            let first = u64::from(segment) * segment_lbas;
            let block = namespace.read_durable(first);
            match SegmentHeader::decode(&block) {
                Ok(h) if h.uuid == sb.uuid && h.segment == segment => {
                    let frames = frames_of(namespace, first, segment_lbas, &h, seed);
                    survey.logs.push(LogSegment {
                        segment,
                        stream: h.stream,
                        generation: h.generation,
                        frames,
                    });
                }
                _ if SegmentHeader::decode_kind(&block, KIND_CHECKPOINT).is_ok() => {}
                _ => survey.free.push(segment),
            }
        }
        Some(survey)
    }

    pub fn segment_lba(&self, segment: u32) -> u64 {
        u64::from(segment) * self.segment_lbas
    }

    /// The segment an LBA lies in.
    pub fn segment_of(&self, lba: u64) -> u32 {
        (lba / self.segment_lbas) as u32
    }

    /// The newest segment of each stream: the one holding its tail.
    pub fn is_newest(&self, log: &LogSegment) -> bool {
        !self
            .logs
            .iter()
            .any(|l| l.stream == log.stream && l.generation > log.generation)
    }

    /// The blocks a fault at `lba` damages as the engine reads them: the
    /// frame covering it, or the block alone.
    pub fn extent_at(&self, lba: u64) -> (u64, u64) {
        let segment = self.segment_of(lba);
        self.logs
            .iter()
            .find(|l| l.segment == segment)
            .and_then(|log| {
                log.frames
                    .iter()
                    .find(|f| (f.first_lba..f.first_lba + f.blocks).contains(&lba))
            })
            .map_or((lba, 1), |f| (f.first_lba, f.blocks))
    }

    /// Whether `lba` lies in the last valid frame of a stream's newest
    /// segment (the tail a torn write would have left).
    pub fn in_tail_frame(&self, lba: u64) -> bool {
        let segment = self.segment_of(lba);
        self.logs.iter().any(|log| {
            log.segment == segment
                && self.is_newest(log)
                && log
                    .frames
                    .last()
                    .is_some_and(|f| (f.first_lba..f.first_lba + f.blocks).contains(&lba))
        })
    }

    /// Keys a fault at `lba` could make the engine lose: every key of the
    /// segment for its header block, the keys of the frame covering it, or
    /// none (superblocks, roots, checkpoint bodies, free space: recovery
    /// must not lose a key for those).
    pub fn keys_at(&self, lba: u64) -> BTreeSet<Vec<u8>> {
        let segment = self.segment_of(lba);
        let Some(log) = self.logs.iter().find(|l| l.segment == segment) else {
            return BTreeSet::new();
        };
        if lba == self.segment_lba(segment) {
            return log.keys();
        }
        log.frames
            .iter()
            .find(|f| (f.first_lba..f.first_lba + f.blocks).contains(&lba))
            .map(|f| f.keys.clone())
            .unwrap_or_default()
    }
}

/// Walks a segment's frames from the first block after the header, while
/// they verify and their identity matches where they are.
fn frames_of(
    namespace: &SimNamespace,
    first_lba: u64,
    segment_lbas: u64,
    header: &SegmentHeader,
    seed: u32,
) -> Vec<Frame> {
    let lba_bytes = namespace.read_durable(first_lba).len();
    let mut bytes = Vec::with_capacity(segment_lbas as usize * lba_bytes);
    for lba in first_lba..first_lba + segment_lbas {
        bytes.extend_from_slice(&namespace.read_durable(lba));
    }
    let mut frames = Vec::new();
    let mut offset = lba_bytes;
    // Past an invalid position, look for the next valid frame block by
    // block, as recovery does: frames after damage still count.
    while offset + FRAME_HEADER_BYTES <= bytes.len() {
        let frame = match verify_frame(&bytes[offset..], seed) {
            Ok(frame)
                if frame.segment == header.segment
                    && frame.offset as usize == offset
                    && frame.segment_generation == header.generation =>
            {
                frame
            }
            _ => {
                offset += lba_bytes;
                continue;
            }
        };
        let mut keys = BTreeSet::new();
        let mut at = offset + FRAME_HEADER_BYTES;
        for _ in 0..frame.record_count {
            let Ok((record, len)) = decode_record(&bytes[at..], seed) else {
                break;
            };
            keys.insert(record.key.to_vec());
            at += len;
        }
        let blocks = (frame.frame_bytes as usize).div_ceil(lba_bytes);
        frames.push(Frame {
            first_lba: first_lba + (offset / lba_bytes) as u64,
            blocks: blocks as u64,
            keys,
        });
        offset += blocks * lba_bytes;
    }
    frames
}

/// The log segment headers of this store on the durable image, each in its
/// own place: (segment, generation, stream, prev_seq).
pub fn durable_log_headers(namespace: &SimNamespace) -> Vec<(u32, u64, u16, u64)> {
    let Some(sb) = [0u64, 1]
        .iter()
        .find_map(|&lba| Superblock::decode(&namespace.read_durable(lba)).ok())
    else {
        return Vec::new();
    };
    let segment_lbas = sb.segment_bytes / u64::from(sb.lba_bytes);
    (1..sb.segment_count)
        .filter_map(|segment| {
            let block = namespace.read_durable(u64::from(segment) * segment_lbas);
            match SegmentHeader::decode(&block) {
                Ok(h) if h.uuid == sb.uuid && h.segment == segment => {
                    Some((segment, h.generation, h.stream, h.prev_seq))
                }
                _ => None,
            }
        })
        .collect()
}
