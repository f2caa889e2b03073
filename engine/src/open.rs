//! Opening a store: read the superblock, find the index checkpoint, recover
//! every log stream, erase torn tails, claim this open's generations, and
//! build the workers' state machines and what they share.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use nvme::Namespace;

use crate::recovery::{Damage, TornTail};
use crate::{blocking, checkpoint, format, index, layout, recovery, shard, stats, store};
use crate::{Checkpointer, EngineConfig, Layout, OpenError, WorkerCore};

/// What open found on the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Log frames replayed.
    pub frames: u64,
    /// Records replayed.
    pub records: u64,
    /// Keys in the index afterwards.
    pub keys: u64,
    /// Heap bytes the index holds afterwards (every shard's tree).
    pub index_bytes: u64,
    /// Corrupt ranges found in the middle of a log.
    pub damage: Vec<Damage>,
    /// Log ends cut: the remains of a group commit in flight at the crash,
    /// or a damaged last acknowledged frame (see [`TornTail`]).
    pub torn_tails: Vec<TornTail>,
    /// The store's layout.
    pub layout: Layout,
    /// The index checkpoint recovery started from (its generation), if any.
    pub checkpoint: Option<u64>,
    /// Log segments the checkpoint covered, so not read.
    pub segments_skipped: u64,
}

/// Workers recovered from a namespace, ready to be driven.
pub struct Opened {
    /// One per worker; worker `i` owns the shards `s` with `s % workers == i`.
    pub cores: Vec<WorkerCore>,
    /// What recovery found.
    pub report: RecoveryReport,
    pub(crate) shared: Arc<store::Shared>,
    /// Takes index checkpoints (stepped by its driver, like the workers).
    pub checkpointer: Checkpointer,
}

impl Opened {
    /// The engine-wide counters.
    pub fn stats(&self) -> &stats::Stats {
        &self.shared.stats
    }

    /// How the namespace's segments are used.
    pub fn space(&self) -> store::Space {
        self.shared.space()
    }
}

/// Reads the superblock, recovers every log stream, and builds `workers`
/// worker state machines (each with its own queue pair).
pub fn open_workers(
    namespace: Arc<dyn Namespace>,
    config: &EngineConfig,
    workers: usize,
) -> Result<Opened, OpenError> {
    check_config(config, workers)?;
    let mut queue = namespace.queue_pair(8)?;
    let sb = layout::read_superblock(namespace.as_ref(), queue.as_mut())?;
    let layout = layout::layout_of(namespace.as_ref(), &sb)?;
    check_record_fits(config, &layout)?;
    let seed = format::store_seed(&sb.uuid);
    if config.discard_checkpoints {
        checkpoint::discard(namespace.as_ref(), queue.as_mut(), &layout)?;
    }
    let found = checkpoint::find(namespace.as_ref(), queue.as_mut(), &layout, seed)?;
    let bases = found.bases();
    let mut checkpoint_segments = found.segments();
    keep_loaded_checkpoint_segments(&found, &mut checkpoint_segments);
    let checkpoint_generation = found.next_generation();
    let loaded_generation = found.loaded.as_ref().map(|l| l.root.generation);
    let recovered = recovery::recover(
        namespace.as_ref(),
        queue.as_mut(),
        &layout,
        &sb.uuid,
        sb.generation,
        found.loaded,
    )?;
    erase_torn_tails(namespace.as_ref(), queue.as_mut(), &layout, &recovered)?;
    // Claim this open's range of segment generations before using any.
    let sb = layout::advance_superblock(
        namespace.as_ref(),
        queue.as_mut(),
        recovered.next_generation + layout::GENERATIONS_PER_OPEN,
    )?;
    debug_assert!(sb.generation > recovered.next_generation);
    drop(queue);
    forget_roots_naming_logs(&mut checkpoint_segments, &recovered);
    let free = free_segments(&layout, &recovered, &checkpoint_segments);
    let live = store::segments::LiveBytes::new(layout.segment_count);
    for art in &recovered.index {
        art.for_each(|_, pointer| live.add(pointer.segment, pointer.length));
    }
    let reserve = store::segments::reserve(workers);
    warn_if_below_reserve(free.len(), reserve, workers);
    let gc_free_target = (2 * reserve).max(layout.segment_count as usize / 8);
    let shared = Arc::new(store::Shared {
        layout,
        uuid: sb.uuid,
        seed,
        config: config.clone(),
        workers: workers as u16,
        next_seq: AtomicU64::new(recovered.next_seq),
        segments: Mutex::new(store::segments::SegmentAllocator {
            free,
            used: recovered.segments.clone(),
            next_generation: recovered.next_generation,
            reserve,
            checkpoint: checkpoint_segments,
            checkpoint_pending: Vec::new(),
        }),
        live,
        shard_keys: recovered
            .index
            .iter()
            .map(|art| AtomicU64::new(art.len() as u64))
            .collect(),
        gc_storms: AtomicU64::new(0),
        gc_free_target,
        checkpoints: store::checkpoints::Checkpoints::new(bases),
        checkpoint_events: store::Signal::default(),
        checkpoint_due_seq: AtomicU64::new(u64::MAX),
        flush_failed: std::sync::atomic::AtomicBool::new(false),
        stats: Arc::new(stats::Stats::default()),
    });
    let report = recovery_report(&recovered, layout, loaded_generation);
    shared
        .stats
        .keys
        .store(report.keys, std::sync::atomic::Ordering::Relaxed);
    let expiring: usize = recovered.index.iter().map(|art| art.expiring_len()).sum();
    shared
        .stats
        .expiring_keys
        .store(expiring as u64, std::sync::atomic::Ordering::Relaxed);
    let cores = build_cores(&namespace, config, workers, &shared, recovered)?;
    let checkpointer = Checkpointer::new(
        Arc::clone(&shared),
        Arc::clone(&namespace),
        namespace.queue_pair(8)?,
        checkpoint_generation,
    );
    Ok(Opened {
        cores,
        report,
        shared,
        checkpointer,
    })
}

/// Refuses a worker count or key size the engine cannot serve.
fn check_config(config: &EngineConfig, workers: usize) -> Result<(), OpenError> {
    if workers == 0 || workers > usize::from(shard::SHARD_COUNT) {
        return Err(OpenError::Config(format!(
            "workers {workers} outside 1..=1024"
        )));
    }
    if config.key_bytes_max == 0 || config.key_bytes_max > index::KEY_BYTES_MAX {
        return Err(OpenError::Config(format!(
            "key_bytes_max {} outside 1..={}",
            config.key_bytes_max,
            index::KEY_BYTES_MAX
        )));
    }
    Ok(())
}

/// Refuses a configuration whose largest record does not fit a segment.
fn check_record_fits(config: &EngineConfig, layout: &Layout) -> Result<(), OpenError> {
    let record_max =
        format::record::record_bytes_expiring(config.key_bytes_max, config.value_bytes_max, true)
            + format::record::FRAME_HEADER_BYTES;
    if record_max > layout.frame_bytes_max() {
        return Err(OpenError::Config(format!(
            "the largest record ({record_max} bytes) does not fit a {}-byte segment",
            layout.segment_bytes
        )));
    }
    Ok(())
}

/// Drops, from the other slot's list, the segments of the loaded checkpoint.
fn keep_loaded_checkpoint_segments(
    found: &checkpoint::Found,
    checkpoint_segments: &mut [Vec<u32>; 2],
) {
    // The loaded checkpoint's body verified, so its segments are its own; a
    // root in the other slot that names one of them is stale (its slot kept
    // an old root, e.g. after a misdirected root write, whose segments were
    // freed and reused). Replacing that root must not free them.
    if let Some(loaded) = &found.loaded {
        let slot = (loaded.root.generation % 2) as usize;
        let own = loaded.root.segments.clone();
        checkpoint_segments[1 - slot].retain(|s| !own.contains(s));
    }
}

/// Forgets, in both root slots' lists, the segments that hold a log.
fn forget_roots_naming_logs(
    checkpoint_segments: &mut [Vec<u32>; 2],
    recovered: &recovery::Recovered,
) {
    // A root that names a segment holding a log is stale (its slot kept an
    // old root whose body segments were freed and reused, e.g. after a
    // misdirected root write); its body cannot verify, and the segment is
    // the log's. Forget it, or replacing that root would free a segment in
    // use.
    for slot in checkpoint_segments.iter_mut() {
        slot.retain(|s| {
            let logged = recovered.used_segments.contains(s);
            if logged {
                tracing::warn!(
                    segment = s,
                    "a checkpoint root names a segment that holds a log: the root is stale"
                );
            }
            !logged
        });
    }
}

/// The segments no log, checkpoint or unreadable header holds.
fn free_segments(
    layout: &Layout,
    recovered: &recovery::Recovered,
    checkpoint_segments: &[Vec<u32>; 2],
) -> std::collections::BTreeSet<u32> {
    // A segment whose header could not be read may hold acknowledged data:
    // it is neither used nor free until an open can read it.
    let unreadable: std::collections::BTreeSet<u32> = recovered
        .damage
        .iter()
        .filter(|d| d.stream == u16::MAX)
        .map(|d| d.start.segment)
        .collect();
    (1..layout.segment_count)
        .filter(|s| {
            !recovered.used_segments.contains(s)
                && !unreadable.contains(s)
                && !checkpoint_segments.iter().any(|c| c.contains(s))
        })
        .collect()
}

/// Warns when an open starts below the GC reserve (a store filled under
/// fewer workers).
fn warn_if_below_reserve(free: usize, reserve: usize, workers: usize) {
    if free < reserve {
        // A store filled under fewer workers (or one whose deletes and GC
        // used the reserve before a restart): user writes stay refused
        // until deletes and GC bring free segments above this open's
        // reserve. That is the policy: the reserve is what lets deletes
        // and GC go on in every worker's stream on a full store, and it is
        // not lowered to make room for writes (`docs/gc.md`).
        tracing::warn!(
            free = free,
            reserve,
            workers,
            "fewer segments are free than the GC reserve for {workers} workers: user writes \
             fail with OutOfSpace until deletes and GC free {} more (a store filled under \
             fewer workers needs 2 more per added worker); deletes and reads work",
            reserve + 1 - free
        );
        if free < workers + store::segments::DELETE_FLOOR_MAX {
            tracing::warn!(
                free = free,
                workers,
                "too few free segments for every worker to take one for deletes: a delete on \
                 a worker whose log segment is full waits for GC or fails with OutOfSpace \
                 until GC frees room; reopen with at most {} workers to delete first",
                free.saturating_sub(store::segments::DELETE_FLOOR_MAX)
                    .max(1)
            );
        }
    }
}

/// What recovery found, for the caller.
fn recovery_report(
    recovered: &recovery::Recovered,
    layout: Layout,
    loaded_generation: Option<u64>,
) -> RecoveryReport {
    RecoveryReport {
        frames: recovered.frames,
        records: recovered.records,
        keys: recovered.index.iter().map(|a| a.len() as u64).sum(),
        index_bytes: recovered
            .index
            .iter()
            .map(|a| a.memory_bytes() as u64)
            .sum(),
        damage: recovered.damage.clone(),
        torn_tails: recovered.torn_tails.clone(),
        layout,
        checkpoint: loaded_generation,
        segments_skipped: recovered.skipped,
    }
}

/// One `WorkerCore` per worker, each with its shards of the recovered index.
fn build_cores(
    namespace: &Arc<dyn Namespace>,
    config: &EngineConfig,
    workers: usize,
    shared: &Arc<store::Shared>,
    recovered: recovery::Recovered,
) -> Result<Vec<WorkerCore>, OpenError> {
    let mut per_worker: Vec<BTreeMap<u16, index::Art>> =
        (0..workers).map(|_| BTreeMap::new()).collect();
    for (shard_id, art) in recovered.index.into_iter().enumerate() {
        per_worker[shard_id % workers].insert(shard_id as u16, art);
    }
    let mut cores = Vec::with_capacity(workers);
    for (id, shards) in per_worker.into_iter().enumerate() {
        let queue = namespace.queue_pair(config.queue_depth)?;
        let tail = recovered.tails.get(&(id as u16)).copied();
        cores.push(WorkerCore::new(
            id as u16,
            Arc::clone(shared),
            Arc::clone(namespace),
            queue,
            shards,
            tail,
            config.cache_bytes / workers,
        ));
    }
    Ok(cores)
}

/// Zeroes what recovery found past each stream's tail (the remains of an
/// unacknowledged group commit) and the headers of segments opened for it,
/// durably, before any new write. Without this, a later frame written after
/// a segment switch would make those remains look like damage in the middle
/// of the log.
///
/// A failed flush fails the open: any of the zeroes may have been lost, and
/// no later flush would prove them durable. That is safe to leave to the next
/// open, because the erase is idempotent and comes before anything else this
/// open writes: the superblock has not advanced and no segment was taken, so
/// the next open recovers the same acknowledged log, finds whatever remains
/// the lost zeroes left (it reads back what is durable), and erases them again.
fn erase_torn_tails(
    namespace: &dyn Namespace,
    queue: &mut dyn nvme::QueuePair,
    layout: &Layout,
    recovered: &recovery::Recovered,
) -> Result<(), OpenError> {
    let lba_bytes = u64::from(layout.lba_bytes);
    let segment_lbas = layout.segment_bytes / lba_bytes;
    let mut ranges: Vec<(u64, u32)> = Vec::new();
    for &(segment, offset) in &recovered.erase {
        let first = u64::from(offset) / lba_bytes;
        ranges.push((
            layout.segment_lba(segment) + first,
            (segment_lbas - first) as u32,
        ));
    }
    // An orphan's header and first body block: a free segment has zeroes
    // in both (as GC leaves the segments it frees), so a frame found there
    // with no header means a lost header (`recovery::headerless_segment`).
    for &segment in &recovered.orphans {
        ranges.push((layout.segment_lba(segment), 2));
    }
    if ranges.is_empty() {
        return Ok(());
    }
    for (lba, lbas) in ranges {
        blocking::zero(namespace, queue, lba, lbas).map_err(nvme::IoError::from)?;
    }
    blocking::flush(queue).map_err(|e| {
        let error = nvme::IoError::from(e);
        tracing::error!(
            "erasing the torn log tails: flush failed: {error}; the open fails, and the next \
             one erases again whatever is left"
        );
        OpenError::Io(error)
    })
}
