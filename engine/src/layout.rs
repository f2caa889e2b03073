//! Where things live on the namespace: the superblock copies and the
//! segments. Formatting, and reading the superblock at open.

use nvme::{Command, Namespace, QueuePair};

use crate::blocking;
use crate::config::FormatOptions;
use crate::error::OpenError;
use crate::format::checkpoint::ROOT_LBAS;
use crate::format::superblock::{Superblock, FORMAT_VERSION};
use crate::format::DecodeError;

/// Superblock copy A is block 0, copy B is block 1; segment 0 holds them and
/// is otherwise reserved (for index checkpoints).
pub const SUPERBLOCK_LBAS: [u64; 2] = [0, 1];
/// Smallest segment, in blocks.
pub const SEGMENT_LBAS_MIN: u64 = 16;

/// The geometry of a formatted namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Block size.
    pub lba_bytes: u32,
    /// Segment size.
    pub segment_bytes: u64,
    /// Segment count, including the reserved segment 0.
    pub segment_count: u32,
}

impl Layout {
    /// First block of a segment.
    pub fn segment_lba(&self, segment: u32) -> u64 {
        u64::from(segment) * self.segment_bytes / u64::from(self.lba_bytes)
    }

    /// Largest frame a segment can take: the first block is the header,
    /// and the last is kept for the seal that closes the segment.
    pub fn frame_bytes_max(&self) -> usize {
        (self.segment_bytes - 2 * u64::from(self.lba_bytes)) as usize
    }

    /// Rounds up to whole blocks.
    pub fn pad(&self, bytes: usize) -> usize {
        bytes.div_ceil(self.lba_bytes as usize) * self.lba_bytes as usize
    }
}

fn hex(uuid: &[u8; 16]) -> String {
    uuid.iter().map(|b| format!("{b:02x}")).collect()
}

/// Segment generations one open may use: each open persists a superblock
/// generation this far ahead before allocating any segment, so that no
/// later life reuses a generation this one may have written (a reused
/// generation would make a stale frame in a reused segment valid again).
pub const GENERATIONS_PER_OPEN: u64 = 1 << 40;

/// Reads both superblock copies. Returns the newest valid copy, or why none
/// is usable.
pub(crate) fn read_superblock(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
) -> Result<Superblock, OpenError> {
    read_superblock_copy(namespace, queue).map(|(sb, _)| sb)
}

/// Durably writes `sb` with `generation` into the copy that is not in force,
/// so that a torn write leaves the current copy.
pub(crate) fn advance_superblock(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    generation: u64,
) -> Result<Superblock, OpenError> {
    let (mut sb, in_force) = read_superblock_copy(namespace, queue)?;
    let upgrading = sb.version < FORMAT_VERSION;
    sb.generation = generation;
    // From this open on, records of the current format may be written.
    sb.version = FORMAT_VERSION;
    let lba_bytes = namespace.geometry().lba_bytes as usize;
    let mut block = vec![0u8; lba_bytes];
    sb.encode(&mut block);
    blocking::write_durable(namespace, queue, SUPERBLOCK_LBAS[1 - in_force], &block)
        .map_err(nvme::IoError::from)?;
    if upgrading {
        // An older build opens from the copy it can read when the other is
        // newer (builds up to format version 2 did), so a copy of the old
        // version must not stay behind: rewrite it too, only after the new
        // copy is durable. A power cut before this leaves the old copy, and
        // the next open by this build replaces it (it is then the copy not
        // in force).
        blocking::write_durable(namespace, queue, SUPERBLOCK_LBAS[in_force], &block)
            .map_err(nvme::IoError::from)?;
        tracing::info!(
            "store format raised to version {FORMAT_VERSION}: builds that read only older \
             formats now refuse it"
        );
    }
    Ok(sb)
}

/// The newest valid copy and which copy it is (0: A, 1: B).
fn read_superblock_copy(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
) -> Result<(Superblock, usize), OpenError> {
    // Each copy on its own: a block the device cannot read in one copy must
    // not hide the other.
    let first = read_one_copy(namespace, queue, SUPERBLOCK_LBAS[0]);
    let second = read_one_copy(namespace, queue, SUPERBLOCK_LBAS[1]);
    let (first, second) = match (first, second) {
        (Ok(first), Ok(second)) => (first, second),
        (Ok(Ok(a)), Err(e)) => {
            tracing::error!("superblock copy B cannot be read ({e}); opening from copy A");
            return Ok((a, 0));
        }
        (Err(e), Ok(Ok(b))) => {
            tracing::error!("superblock copy A cannot be read ({e}); opening from copy B");
            return Ok((b, 1));
        }
        (Err(e), _) | (_, Err(e)) => return Err(OpenError::Io(e)),
    };
    match (first, second) {
        // A copy of a newer format refuses the store even when the other
        // copy is one this build reads: that copy is older than the newer
        // build's claim, and the log may hold records this build would
        // misread.
        (Err(DecodeError::NewerVersion { found, supported }), _)
        | (_, Err(DecodeError::NewerVersion { found, supported })) => {
            Err(OpenError::NewerVersion { found, supported })
        }
        (Ok(a), Ok(b)) => Ok(if b.generation > a.generation {
            (b, 1)
        } else {
            (a, 0)
        }),
        (Ok(a), Err(_)) => Ok((a, 0)),
        (Err(_), Ok(b)) => Ok((b, 1)),
        (Err(DecodeError::BadMagic { .. }), Err(DecodeError::BadMagic { .. })) => {
            Err(OpenError::NotFormatted)
        }
        (Err(first), Err(second)) => Err(OpenError::SuperblockCorrupt { first, second }),
    }
}

/// Reads and decodes one superblock copy, retrying a failed read a few
/// times (a transient error passes; a latent sector error does not).
fn read_one_copy(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    lba: u64,
) -> Result<Result<Superblock, DecodeError>, nvme::IoError> {
    let lba_bytes = namespace.geometry().lba_bytes as usize;
    let mut bytes = Vec::new();
    blocking::read_retrying(namespace, queue, lba, lba_bytes, &mut bytes)?;
    Ok(Superblock::decode(&bytes))
}

/// Checks the superblock against the namespace it was read from.
pub(crate) fn layout_of(namespace: &dyn Namespace, sb: &Superblock) -> Result<Layout, OpenError> {
    let geometry = namespace.geometry();
    if sb.lba_bytes != geometry.lba_bytes {
        return Err(OpenError::GeometryMismatch(format!(
            "formatted with {}-byte blocks, namespace has {}",
            sb.lba_bytes, geometry.lba_bytes
        )));
    }
    let needed = sb.segment_bytes * u64::from(sb.segment_count);
    if needed > geometry.capacity_bytes() {
        return Err(OpenError::GeometryMismatch(format!(
            "store needs {needed} bytes, namespace has {}",
            geometry.capacity_bytes()
        )));
    }
    Ok(Layout {
        lba_bytes: sb.lba_bytes,
        segment_bytes: sb.segment_bytes,
        segment_count: sb.segment_count,
    })
}

/// Formats a namespace: refuses an existing store unless forced, clears
/// every segment header, and writes both superblock copies durably.
pub fn format(namespace: &dyn Namespace, options: &FormatOptions) -> Result<Layout, OpenError> {
    let geometry = namespace.geometry();
    let lba_bytes = u64::from(geometry.lba_bytes);
    if !options.segment_bytes.is_multiple_of(lba_bytes)
        || options.segment_bytes < SEGMENT_LBAS_MIN * lba_bytes
    {
        return Err(OpenError::Config(format!(
            "segment_bytes {} must be a multiple of the {lba_bytes}-byte block and at least {} blocks",
            options.segment_bytes, SEGMENT_LBAS_MIN
        )));
    }
    let segment_count = geometry.capacity_bytes() / options.segment_bytes;
    if segment_count < 2 {
        return Err(OpenError::Config(format!(
            "namespace of {} bytes holds fewer than two {}-byte segments",
            geometry.capacity_bytes(),
            options.segment_bytes
        )));
    }
    let segment_count = u32::try_from(segment_count)
        .map_err(|_| OpenError::Config("too many segments; use larger segments".into()))?;
    let mut queue = namespace.queue_pair(8)?;
    if !options.force {
        match read_superblock(namespace, queue.as_mut()) {
            Ok(sb) => {
                return Err(OpenError::AlreadyFormatted {
                    uuid: hex(&sb.uuid),
                })
            }
            Err(OpenError::NewerVersion { .. }) => {
                return Err(OpenError::AlreadyFormatted {
                    uuid: "unknown (newer format)".into(),
                })
            }
            Err(_) => {}
        }
    }
    let layout = Layout {
        lba_bytes: geometry.lba_bytes,
        segment_bytes: options.segment_bytes,
        segment_count,
    };
    // Forget every segment of a previous store: a header that survived would
    // carry the old UUID and be ignored anyway, but zeroes are unambiguous.
    for segment in 1..segment_count {
        let lba = layout.segment_lba(segment);
        queue
            .submit(u64::from(segment), Command::WriteZeroes { lba, lbas: 1 })
            .map_err(|r| OpenError::Config(format!("write-zeroes refused: {:?}", r.reason)))?;
        while let Some(done) = queue.wait(None) {
            done.result?;
            if queue.in_flight() == 0 {
                break;
            }
        }
    }
    let sb = Superblock {
        version: FORMAT_VERSION,
        uuid: options.uuid,
        generation: 1,
        lba_bytes: geometry.lba_bytes,
        segment_bytes: options.segment_bytes,
        segment_count,
        shard_count: crate::shard::SHARD_COUNT,
        lba_count: geometry.lba_count,
    };
    let lba_bytes = geometry.lba_bytes as usize;
    // Both checkpoint root slots zeroed (a root of an earlier store must not
    // look like a damaged one of ours), durably with the headers above,
    // before any superblock is written: a superblock that reached the medium
    // while what it relies on did not would be a store that is not one. A
    // failed flush fails the format; it is never retried, and no superblock
    // of the new store was written.
    let roots = vec![0u8; lba_bytes * ROOT_LBAS.len()];
    blocking::write_durable(namespace, queue.as_mut(), ROOT_LBAS[0], &roots)
        .map_err(nvme::IoError::from)?;
    // Then both superblock copies. If this flush fails, each copy may be
    // new, old or torn: a copy that decodes describes the new store, whole;
    // without one, format has to be run again.
    let mut blocks = vec![0u8; lba_bytes * SUPERBLOCK_LBAS.len()];
    for (copy, block) in blocks.chunks_mut(lba_bytes).enumerate() {
        assert_eq!(
            SUPERBLOCK_LBAS[copy], copy as u64,
            "the copies are blocks 0 and 1"
        );
        sb.encode(block);
    }
    blocking::write_durable(namespace, queue.as_mut(), SUPERBLOCK_LBAS[0], &blocks)
        .map_err(nvme::IoError::from)?;
    Ok(layout)
}
