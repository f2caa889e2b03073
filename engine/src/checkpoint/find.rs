//! Finding the checkpoint an open starts from: both root slots, and the
//! newest body that verifies.

use nvme::{Namespace, QueuePair};

use crate::blocking;
use crate::error::OpenError;
use crate::format::checkpoint::{decode_body, Body, Root, KIND_CHECKPOINT, ROOT_LBAS};
use crate::format::segment::SegmentHeader;
use crate::format::DecodeError;
use crate::layout::Layout;
use crate::store::checkpoints::Base;

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
pub(super) fn chunk_bytes(layout: &Layout) -> usize {
    (layout.segment_bytes - u64::from(layout.lba_bytes)) as usize
}
