//! Faults the simulator injects beyond the namespace's random rates: faults
//! at rest placed at known LBAs between epochs, and a power cut in the
//! middle of an open.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nvme::sim::{FaultConfig, SimNamespace};
use nvme::{
    BufferPool, Command, Completion, Geometry, IoError, Namespace, OpenError, QueuePair,
    RefuseReason, Refused,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::disk::Survey;

/// Where a fault at rest is placed. The engine's duty differs by place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Site {
    /// One superblock copy: the other is in force; nothing may be lost.
    Superblock,
    /// One checkpoint root slot: the other slot (or a full replay) is
    /// used; nothing may be lost.
    Root,
    /// A block of a checkpoint body a valid root names: as for a root.
    CheckpointBody,
    /// A log segment's header: its records may be lost, and then the loss
    /// must be reported.
    SegmentHeader,
    /// A frame of a segment its stream has left (sealed or collected).
    SealedFrame,
    /// The last valid frame of a stream's newest segment: acknowledged
    /// data at the tail. Reported, never cut as if torn.
    TailFrame,
    /// A free segment or the space past a tail: nothing may change.
    Free,
}

impl Site {
    pub const ALL: [Site; 7] = [
        Site::Superblock,
        Site::Root,
        Site::CheckpointBody,
        Site::SegmentHeader,
        Site::SealedFrame,
        Site::TailFrame,
        Site::Free,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Site::Superblock => "superblock",
            Site::Root => "checkpoint_root",
            Site::CheckpointBody => "checkpoint_body",
            Site::SegmentHeader => "segment_header",
            Site::SealedFrame => "sealed_frame",
            Site::TailFrame => "tail_frame",
            Site::Free => "free_space",
        }
    }
}

/// A bit flipped at rest, or a latent sector error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    BitFlip,
    Latent,
}

/// A fault placed at rest, as the oracle knows it.
#[derive(Clone, Debug)]
pub struct Placed {
    pub site: Site,
    pub damage: Damage,
    pub lba: u64,
    /// Keys whose records the damaged block holds (or the whole segment's,
    /// for a header).
    pub keys: BTreeSet<Vec<u8>>,
    /// The blocks the fault damages (its frame), first and count.
    pub extent: (u64, u64),
    /// The block as the flip left it: once the block differs, it was
    /// rewritten and the flip is gone.
    pub flipped_block: Option<Vec<u8>>,
}

/// A fault the oracle knows the place of: the blocks it damages and the
/// keys a loss there could take.
#[derive(Clone, Debug)]
pub struct Located {
    pub lba: u64,
    pub extent: (u64, u64),
    pub keys: BTreeSet<Vec<u8>>,
}

/// Chooses an LBA of `site` on the durable image, if the image has one.
pub fn choose_lba(survey: &Survey, site: Site, rng: &mut ChaCha8Rng) -> Option<u64> {
    let pick = |rng: &mut ChaCha8Rng, n: usize| (n > 0).then(|| rng.random_range(0..n));
    match site {
        Site::Superblock => Some(rng.random_range(0..2)),
        Site::Root => {
            let i = pick(rng, survey.roots.len())?;
            Some(survey.roots[i])
        }
        Site::CheckpointBody => {
            let segments: Vec<u32> = survey.checkpoint_segments.iter().copied().collect();
            let i = pick(rng, segments.len())?;
            // The first body block after the segment's header.
            Some(survey.segment_lba(segments[i]) + 1)
        }
        Site::SegmentHeader => {
            let i = pick(rng, survey.logs.len())?;
            Some(survey.segment_lba(survey.logs[i].segment))
        }
        Site::SealedFrame | Site::TailFrame => {
            let tail = site == Site::TailFrame;
            let frames: Vec<(u64, u64)> = survey
                .logs
                .iter()
                .filter(|l| survey.is_newest(l) == tail)
                .flat_map(|l| {
                    let n = l.frames.len();
                    l.frames
                        .iter()
                        .enumerate()
                        .filter(move |(i, f)| !f.keys.is_empty() && (!tail || i + 1 == n))
                        .map(|(_, f)| (f.first_lba, f.blocks))
                })
                .collect();
            let i = pick(rng, frames.len())?;
            let (first, blocks) = frames[i];
            Some(first + rng.random_range(0..blocks))
        }
        Site::Free => {
            // A free segment, or the block past a stream's tail.
            let mut places: Vec<u64> = survey
                .free
                .iter()
                .map(|&s| survey.segment_lba(s) + rng.random_range(0..survey.segment_lbas))
                .collect();
            for log in survey.logs.iter().filter(|l| survey.is_newest(l)) {
                let end = log
                    .frames
                    .last()
                    .map_or(survey.segment_lba(log.segment) + 1, |f| {
                        f.first_lba + f.blocks
                    });
                // The last block is the seal's: still past the tail.
                if end < survey.segment_lba(log.segment) + survey.segment_lbas {
                    places.push(end);
                }
            }
            let i = pick(rng, places.len())?;
            Some(places[i])
        }
    }
}

/// Places `damage` at `lba`.
pub fn place(
    namespace: &SimNamespace,
    damage: Damage,
    lba: u64,
    rng: &mut ChaCha8Rng,
) -> Option<Vec<u8>> {
    match damage {
        Damage::BitFlip => {
            let bits = namespace.read_durable(lba).len() as u32 * 8;
            // Superblocks and roots use their first bytes; elsewhere any bit.
            let bit = if lba < 4 {
                rng.random_range(0..96 * 8)
            } else {
                rng.random_range(0..bits)
            };
            namespace.flip_bit_at_rest(lba, bit);
            if std::env::var("VELTRIX_SIM_SEED").is_ok() {
                eprintln!("flipped bit {bit} (byte {}) of LBA {lba}", bit / 8);
            }
            Some(namespace.read_durable(lba))
        }
        Damage::Latent => {
            namespace.add_latent_error(lba);
            None
        }
    }
}

/// Faults drawn at random while an epoch runs.
pub fn epoch_faults(rng: &mut ChaCha8Rng, enabled: &FaultClasses) -> FaultConfig {
    FaultConfig {
        read_bitflip: 0.002,
        latent_sector: if enabled.random_latent_sector {
            0.002
        } else {
            0.0
        },
        misdirected_write: if enabled.misdirected_write {
            0.002
        } else {
            0.0
        },
        transient_error: 0.005,
        flush_error: 0.01,
        latency_ticks_max: rng.random_range(0..20),
    }
}

/// Faults while an open runs: its writes and flushes may fail.
pub fn open_faults(rng: &mut ChaCha8Rng) -> FaultConfig {
    FaultConfig {
        transient_error: [0.0, 0.01, 0.05][rng.random_range(0..3)],
        flush_error: [0.05, 0.2, 0.5][rng.random_range(0..3)],
        latency_ticks_max: rng.random_range(0..5),
        ..FaultConfig::default()
    }
}

/// Which fault classes a run injects. A class the engine is known to
/// mishandle is turned off in the main exploration (see `simulator.rs`).
#[derive(Clone, Debug)]
pub struct FaultClasses {
    pub random_latent_sector: bool,
    pub misdirected_write: bool,
    /// At-rest sites that may be chosen.
    pub sites: Vec<Site>,
    /// At-rest faults never placed (a site with a kind of damage).
    pub excluded: Vec<(Site, Damage)>,
    pub open_faults: bool,
    pub open_power_cuts: bool,
    /// Place faults in checkpoint roots and bodies after a batch may have
    /// failed in the run (a recovery then falls back to an older checkpoint
    /// or a full replay).
    pub checkpoint_faults_after_failed_batch: bool,
}

/// A namespace that forwards to a [`SimNamespace`] until a power cut: after
/// `budget` more commands, every command fails at once and reaches nothing.
/// The caller then crashes the inner namespace, which draws a crash state
/// from what the cut left uncovered.
pub struct CutNamespace {
    inner: Arc<SimNamespace>,
    budget: Arc<AtomicU64>,
}

impl CutNamespace {
    pub fn new(inner: Arc<SimNamespace>, commands: u64) -> CutNamespace {
        CutNamespace {
            inner,
            budget: Arc::new(AtomicU64::new(commands)),
        }
    }

    /// Whether the power was cut.
    pub fn cut(&self) -> bool {
        self.budget.load(Ordering::Relaxed) == 0
    }
}

impl Namespace for CutNamespace {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }

    fn buffers(&self) -> &Arc<BufferPool> {
        self.inner.buffers()
    }

    fn queue_pair(&self, depth: u32) -> Result<Box<dyn QueuePair>, OpenError> {
        Ok(Box::new(CutQueuePair {
            inner: self.inner.queue_pair(depth)?,
            budget: Arc::clone(&self.budget),
            failed: VecDeque::new(),
        }))
    }

    fn describe(&self) -> String {
        format!("power cut over {}", self.inner.describe())
    }
}

struct CutQueuePair {
    inner: Box<dyn QueuePair>,
    budget: Arc<AtomicU64>,
    failed: VecDeque<Completion>,
}

impl QueuePair for CutQueuePair {
    fn depth(&self) -> u32 {
        self.inner.depth()
    }

    fn in_flight(&self) -> u32 {
        self.inner.in_flight() + self.failed.len() as u32
    }

    fn submit(&mut self, token: u64, command: Command) -> Result<(), Refused> {
        if self.in_flight() >= self.depth() {
            return Err(Refused {
                reason: RefuseReason::QueueFull,
                command,
            });
        }
        let left = self.budget.load(Ordering::Relaxed);
        if left > 0 {
            self.budget.store(left - 1, Ordering::Relaxed);
            return self.inner.submit(token, command);
        }
        let (lba, buf) = match command {
            Command::Read { lba, buf } | Command::Write { lba, buf, .. } => (lba, Some(buf)),
            Command::WriteZeroes { lba, .. } | Command::Deallocate { lba, .. } => (lba, None),
            Command::Flush => (0, None),
        };
        self.failed.push_back(Completion {
            token,
            result: Err(IoError::Device { lba, errno: 5 }),
            buf,
        });
        Ok(())
    }

    fn poll(&mut self) -> Option<Completion> {
        self.failed.pop_front().or_else(|| self.inner.poll())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Option<Completion> {
        self.failed.pop_front().or_else(|| self.inner.wait(timeout))
    }
}
