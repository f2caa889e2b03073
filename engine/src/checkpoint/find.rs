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
    let mut trouble = Trouble::default();
    let slots = read_slots(namespace, queue, layout, seed, &mut trouble)?;
    let loaded = load_newest(namespace, queue, layout, seed, &slots, &mut trouble);
    let written = slots.iter().filter(|s| **s != Slot::Empty).count();
    if loaded.is_none() && written == 2 {
        return Err(refusal(namespace, queue, &slots, trouble));
    }
    Ok(Found { slots, loaded })
}

/// What kept the checkpoints from loading, gathered as they are read: it
/// decides whether a store with no loadable checkpoint is damaged or its
/// device is failing.
#[derive(Default)]
struct Trouble {
    /// The first read that failed. Every read here is retried, so a
    /// transient error never makes a checkpoint look corrupt; what stays
    /// unreadable is named as such.
    io: Option<nvme::IoError>,
    /// Why each body tried could not be loaded, newest first.
    failures: Vec<String>,
}

/// Reads and classifies both root slots.
fn read_slots(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    seed: u32,
    trouble: &mut Trouble,
) -> Result<[Slot; 2], OpenError> {
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
        if !unreadable.is_empty() {
            trouble
                .io
                .get_or_insert(nvme::IoError::Device { lba, errno: 5 });
            *slot = Slot::Corrupt(DecodeError::Invalid {
                field: "unreadable root block",
                value: lba,
            });
            continue;
        }
        *slot = decode_root(&block, seed, layout);
    }
    Ok(slots)
}

/// What a root slot's block holds: no root magic is a slot never written;
/// a root naming a segment outside the store is as corrupt as one that
/// fails its checksum.
fn decode_root(block: &[u8], seed: u32, layout: &Layout) -> Slot {
    match Root::decode(block, seed) {
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
}

/// Loads the newest valid root's body that verifies, trying the older one
/// when the newer cannot be loaded.
fn load_newest(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    seed: u32,
    slots: &[Slot; 2],
    trouble: &mut Trouble,
) -> Option<Loaded> {
    let mut candidates: Vec<&Root> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Valid(root) => Some(root),
            _ => None,
        })
        .collect();
    candidates.sort_by_key(|r| std::cmp::Reverse(r.generation));
    for root in candidates {
        match read_body(namespace, queue, layout, seed, root) {
            Ok(body) => {
                return Some(Loaded {
                    root: root.clone(),
                    body,
                })
            }
            Err(BodyError::Io(e)) => {
                tracing::error!(
                    generation = root.generation,
                    "index checkpoint body cannot be read: {e}; trying the other slot"
                );
                trouble
                    .failures
                    .push(format!("checkpoint {}: {e}", root.generation));
                trouble.io.get_or_insert(e);
            }
            Err(BodyError::Invalid(why)) => {
                tracing::error!(
                    generation = root.generation,
                    "index checkpoint unusable: {why}; trying the other slot"
                );
                trouble
                    .failures
                    .push(format!("checkpoint {}: {why}", root.generation));
            }
        }
    }
    None
}

/// Why an open fails when both slots were written and neither checkpoint
/// loads: an I/O error if the device answers nothing, else corruption.
fn refusal(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    slots: &[Slot; 2],
    mut trouble: Trouble,
) -> OpenError {
    match trouble.io {
        // A checkpoint could not be read and the device answers nothing at
        // all (it reads no superblock either: a failing or vanished
        // device, or a power cut in the middle of the open). That is an
        // I/O failure, not corruption, even when the other checkpoint is
        // corrupt: the open fails with it, and a later open may read the
        // unread one. Refusing instead would send the operator to discard
        // checkpoints that may be whole.
        Some(e) if !device_answers(namespace, queue) => {
            tracing::error!(
                "no index checkpoint could be read and the device answers no reads ({})",
                trouble.failures.join("; ")
            );
            return OpenError::Io(e);
        }
        // The device answers, but these blocks stay unreadable after
        // retries: damaged media, reported as such.
        Some(e) => trouble.failures.push(format!(
            "the device could not read a checkpoint block ({e})"
        )),
        None => {}
    }
    let describe = |s: &Slot| match s {
        Slot::Corrupt(e) => format!("root corrupt ({e})"),
        Slot::Valid(r) => format!("checkpoint {} unreadable", r.generation),
        Slot::Empty => "empty".to_string(),
    };
    OpenError::CheckpointCorrupt(format!(
        "slot A: {}; slot B: {}; {}",
        describe(&slots[0]),
        describe(&slots[1]),
        trouble.failures.join("; ")
    ))
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
) -> Result<Body, BodyError> {
    let chunk = chunk_bytes(layout);
    if root.body_bytes > (root.segments.len() * chunk) as u64 {
        return Err(BodyError::Invalid(format!(
            "body of {} bytes does not fit its {} segments",
            root.body_bytes,
            root.segments.len()
        )));
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
        blocking::read_retrying(
            namespace,
            queue,
            layout.segment_lba(segment),
            bytes,
            &mut data,
        )
        .map_err(|e| BodyError::Io(e.into()))?;
        match SegmentHeader::decode_kind(&data, KIND_CHECKPOINT) {
            Ok(h) if h.segment == segment && h.generation == root.generation => {}
            Ok(_) => {
                return Err(BodyError::Invalid(format!(
                    "segment {segment} (part {i}) belongs elsewhere"
                )))
            }
            Err(e) => {
                return Err(BodyError::Invalid(format!(
                    "segment {segment} (part {i}) header: {e}"
                )))
            }
        }
        body.extend_from_slice(&data[lba_bytes..lba_bytes + take]);
    }
    let crc = crc32c::crc32c_append(seed, &body);
    if crc != root.body_crc {
        return Err(BodyError::Invalid(format!(
            "body checksum mismatch: stored {:#010x}, computed {crc:#010x}",
            root.body_crc
        )));
    }
    decode_body(&body, root.version).map_err(|e| BodyError::Invalid(format!("body: {e}")))
}

/// Whether the device reads anything: either superblock copy.
fn device_answers(namespace: &dyn Namespace, queue: &mut dyn QueuePair) -> bool {
    let lba_bytes = namespace.geometry().lba_bytes as usize;
    crate::layout::SUPERBLOCK_LBAS.iter().any(|&lba| {
        blocking::read_retrying(namespace, queue, lba, lba_bytes, &mut Vec::new()).is_ok()
    })
}

/// Why a checkpoint body could not be loaded.
enum BodyError {
    /// The device could not read it: nothing is known about its contents.
    Io(nvme::IoError),
    /// It was read and is not a valid body for its root.
    Invalid(String),
}

/// Body bytes per checkpoint segment: all but its header block.
pub(super) fn chunk_bytes(layout: &Layout) -> usize {
    (layout.segment_bytes - u64::from(layout.lba_bytes)) as usize
}
