//! The crash model of `nvme::sim`, checked against an independent model.
//!
//! Random workloads (overlapping writes, FUA writes, write-zeroes,
//! deallocates, flushes; sometimes with latency, transient errors and failing
//! flushes; commands left in flight) run on a small namespace, then many crash
//! states are drawn. For every sector of every crash state:
//!
//! - its content is either its durable content (as of the last successful
//!   flush that covered it, or a later FUA write), or the content some
//!   uncovered write put there (old, new, or torn at sector granularity) —
//!   except an uncovered write that a later FUA write superseded on that LBA;
//! - so where no uncovered write touches a sector, it holds exactly its
//!   durable content.
//!
//! A failed flush settles the writes it should have covered at once: each
//! sector they touch may then durably hold its old content or what any of
//! them put there, and the model checks the sim's choice against that and
//! adopts it. After that those writes are no longer uncovered, so no later
//! flush can make them durable, and reads see exactly what is durable under
//! whatever is still uncovered (checked after every failed flush and at the
//! end of each workload).
//!
//! Every sector of every write carries a unique stamp (write id, LBA,
//! sector), so a sector's content names the write it came from. Across the
//! runs, writes no other write overlaps must be seen kept whole, dropped and
//! torn, and failed flushes must be seen to lose writes and to keep them, or
//! the model would be satisfied trivially.
//!
//! A failure prints its case seed; `VELTRIX_SIM_SEED=<seed>` replays that
//! case alone, printing its operations.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nvme::sim::{FaultConfig, SimConfig, SimNamespace};
use nvme::{Command, Completion, IoError, Namespace, QueuePair};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LBA_BYTES: usize = 512;
const SECTOR_BYTES: usize = 64;
const SECTORS: usize = LBA_BYTES / SECTOR_BYTES;
const LBA_COUNT: u64 = 32;
const WRITE_BLOCKS_MAX: u64 = 4;
const DEPTH: u32 = 4;
const CASES: u64 = 4_000;
const CRASHES_PER_CASE: u64 = 10;

/// Where a sector's content came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Zeroes,
    Write(u32),
}

/// The content `source` puts in sector `sector` of `lba`.
fn sector_content(source: Source, lba: u64, sector: usize) -> [u8; SECTOR_BYTES] {
    let mut bytes = [0u8; SECTOR_BYTES];
    if let Source::Write(id) = source {
        bytes[..4].copy_from_slice(&id.to_le_bytes());
        bytes[4..12].copy_from_slice(&lba.to_le_bytes());
        bytes[12..16].copy_from_slice(&(sector as u32).to_le_bytes());
        for (i, b) in bytes[16..].iter_mut().enumerate() {
            *b = (id as u8) ^ (lba as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ 0x5A;
        }
    }
    bytes
}

/// Names the source of a sector's content, for failure messages.
fn identify(bytes: &[u8], lba: u64, sector: usize) -> String {
    if bytes.iter().all(|&b| b == 0) {
        return "zeroes".into();
    }
    let id = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    if bytes == sector_content(Source::Write(id), lba, sector) {
        format!("write {id}")
    } else {
        format!("garbage {:02x?}", &bytes[..16])
    }
}

/// An uncovered write, as the model sees it.
#[derive(Debug)]
struct ModelWrite {
    source: Source,
    lba: u64,
    blocks: u64,
    seq: u64,
    /// LBAs a later FUA write made durable: this write never lands there.
    superseded: BTreeSet<u64>,
}

impl ModelWrite {
    fn touches(&self, lba: u64) -> bool {
        (self.lba..self.lba + self.blocks).contains(&lba)
    }
}

/// What the crash model allows, maintained from completions alone.
struct Model {
    durable: Vec<[Source; SECTORS]>,
    uncovered: Vec<ModelWrite>,
    executed: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            durable: vec![[Source::Zeroes; SECTORS]; LBA_COUNT as usize],
            uncovered: Vec::new(),
            executed: 0,
        }
    }

    fn write(&mut self, source: Source, lba: u64, blocks: u64, fua: bool) {
        if fua {
            for l in lba..lba + blocks {
                self.durable[l as usize] = [source; SECTORS];
                for write in &mut self.uncovered {
                    if write.touches(l) {
                        write.superseded.insert(l);
                    }
                }
            }
        } else {
            self.uncovered.push(ModelWrite {
                source,
                lba,
                blocks,
                seq: self.executed,
                superseded: BTreeSet::new(),
            });
            self.executed += 1;
        }
    }

    fn flush(&mut self, covers_before: u64) {
        let durable = &mut self.durable;
        self.uncovered.retain(|write| {
            if write.seq >= covers_before {
                return true;
            }
            for l in write.lba..write.lba + write.blocks {
                if !write.superseded.contains(&l) {
                    durable[l as usize] = [write.source; SECTORS];
                }
            }
            false
        });
    }

    /// A flush that should have covered the writes numbered below
    /// `covers_before` failed: each sector they touch may now durably hold its
    /// old content or what any of them put there. Checks the sim's choice
    /// (`durable_now`) against that, adopts it, and drops those writes from
    /// the uncovered ones. Returns how many of them a lone write's sectors
    /// show kept whole and lost whole.
    fn fail_flush(
        &mut self,
        covers_before: u64,
        durable_now: impl Fn(u64) -> Vec<u8>,
    ) -> Result<(u64, u64), String> {
        let split = self.uncovered.partition_point(|w| w.seq < covers_before);
        let settled: Vec<ModelWrite> = self.uncovered.drain(..split).collect();
        let (mut kept, mut lost) = (0, 0);
        let lbas: BTreeSet<u64> = settled
            .iter()
            .flat_map(|w| (w.lba..w.lba + w.blocks).filter(|l| !w.superseded.contains(l)))
            .collect();
        for lba in lbas {
            let block = durable_now(lba);
            for sector in 0..SECTORS {
                let mut allowed = vec![self.durable[lba as usize][sector]];
                allowed.extend(
                    settled
                        .iter()
                        .filter(|w| w.touches(lba) && !w.superseded.contains(&lba))
                        .map(|w| w.source),
                );
                let actual = &block[sector * SECTOR_BYTES..(sector + 1) * SECTOR_BYTES];
                let source = allowed
                    .iter()
                    .copied()
                    .find(|&source| sector_content(source, lba, sector) == actual)
                    .ok_or_else(|| {
                        format!(
                            "after a failed flush, durable lba {lba} sector {sector} holds {}, \
                             allowed only {allowed:?}",
                            identify(actual, lba, sector)
                        )
                    })?;
                self.durable[lba as usize][sector] = source;
            }
        }
        for (i, write) in settled.iter().enumerate() {
            let alone = settled.iter().enumerate().all(|(j, other)| {
                j == i
                    || other.lba + other.blocks <= write.lba
                    || other.lba >= write.lba + write.blocks
            });
            if !alone || !write.superseded.is_empty() || write.source == Source::Zeroes {
                continue;
            }
            let new = (write.lba..write.lba + write.blocks)
                .flat_map(|l| (0..SECTORS).map(move |s| (l, s)))
                .filter(|&(l, s)| self.durable[l as usize][s] == write.source)
                .count();
            match new {
                0 => lost += 1,
                n if n == write.blocks as usize * SECTORS => kept += 1,
                _ => {}
            }
        }
        Ok((kept, lost))
    }

    /// What reads of sector `sector` of `lba` must return now: the newest
    /// uncovered write there that no FUA write superseded, or else the
    /// durable content.
    fn visible(&self, lba: u64, sector: usize) -> Source {
        self.uncovered
            .iter()
            .rev()
            .find(|w| w.touches(lba) && !w.superseded.contains(&lba))
            .map_or(self.durable[lba as usize][sector], |w| w.source)
    }

    /// The sources sector `sector` of `lba` may hold after a crash.
    fn allowed(&self, lba: u64, sector: usize) -> Vec<Source> {
        let mut allowed = vec![self.durable[lba as usize][sector]];
        for write in &self.uncovered {
            if write.touches(lba) && !write.superseded.contains(&lba) {
                allowed.push(write.source);
            }
        }
        allowed
    }
}

/// A submitted command, by token.
#[derive(Debug)]
enum Op {
    Write {
        id: u32,
        lba: u64,
        blocks: u64,
        fua: bool,
    },
    Zeroes {
        lba: u64,
        blocks: u64,
    },
    Flush {
        covers_before: u64,
    },
}

#[derive(Default)]
struct Observed {
    crash_states: u64,
    kept: u64,
    dropped: u64,
    torn: u64,
    sectors_checked: u64,
    sectors_pinned: u64,
    torn_within_block: u64,
    flush_failures: u64,
    /// Lone writes a failed flush settled whole, and lost whole.
    kept_by_failed_flush: u64,
    lost_to_failed_flush: u64,
    in_flight_at_crash: u64,
}

struct Case {
    verbose: bool,
    rng: ChaCha8Rng,
    namespace: Arc<SimNamespace>,
    queue: Box<dyn QueuePair>,
    model: Model,
    ops: BTreeMap<u64, Op>,
    next_token: u64,
    next_write: u32,
}

impl Case {
    fn new(seed: u64, verbose: bool) -> Case {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let faults = FaultConfig {
            latency_ticks_max: if rng.random_bool(0.5) { 0 } else { 6 },
            transient_error: if rng.random_bool(0.2) { 0.1 } else { 0.0 },
            flush_error: if rng.random_bool(0.3) { 0.3 } else { 0.0 },
            ..FaultConfig::default()
        };
        let config = SimConfig {
            lba_bytes: LBA_BYTES as u32,
            sector_bytes: SECTOR_BYTES as u32,
            transfer_bytes_max: (WRITE_BLOCKS_MAX as usize * LBA_BYTES) as u32,
            faults,
            ..SimConfig::new(LBA_COUNT, rng.random())
        };
        let namespace = SimNamespace::new(config);
        let queue = namespace.queue_pair(DEPTH).expect("queue pair");
        Case {
            verbose,
            rng,
            namespace,
            queue,
            model: Model::new(),
            ops: BTreeMap::new(),
            next_token: 0,
            next_write: 1,
        }
    }

    fn note(&self, line: String) {
        if self.verbose {
            eprintln!("  {line}");
        }
    }

    fn submit(&mut self, observed: &mut Observed) {
        if self.queue.in_flight() == DEPTH {
            self.complete_one(true, observed);
        }
        let token = self.next_token;
        self.next_token += 1;
        let roll = self.rng.random_range(0..100);
        let (op, command) = if roll < 72 {
            let blocks = self.rng.random_range(1..=WRITE_BLOCKS_MAX);
            let lba = self.rng.random_range(0..=LBA_COUNT - blocks);
            let fua = roll >= 62;
            let id = self.next_write;
            self.next_write += 1;
            let mut buf = self
                .namespace
                .buffers()
                .alloc(blocks as usize * LBA_BYTES)
                .expect("buffer");
            for (i, chunk) in buf.as_mut_slice().chunks_mut(SECTOR_BYTES).enumerate() {
                let (block, sector) = (i / SECTORS, i % SECTORS);
                chunk.copy_from_slice(&sector_content(
                    Source::Write(id),
                    lba + block as u64,
                    sector,
                ));
            }
            (
                Op::Write {
                    id,
                    lba,
                    blocks,
                    fua,
                },
                Command::Write { lba, buf, fua },
            )
        } else if roll < 80 {
            let blocks = self.rng.random_range(1..=WRITE_BLOCKS_MAX);
            let lba = self.rng.random_range(0..=LBA_COUNT - blocks);
            let deallocate = roll >= 76;
            let lbas = blocks as u32;
            let command = if deallocate {
                Command::Deallocate { lba, lbas }
            } else {
                Command::WriteZeroes { lba, lbas }
            };
            (Op::Zeroes { lba, blocks }, command)
        } else {
            // A flush covers the writes executed before its submission.
            let covers_before = self.model.executed;
            (Op::Flush { covers_before }, Command::Flush)
        };
        self.note(format!("submit #{token} {} {op:?}", command.name()));
        self.queue.submit(token, command).expect("admitted");
        self.ops.insert(token, op);
    }

    fn complete_one(&mut self, block: bool, observed: &mut Observed) {
        let done = if block {
            self.queue.wait(None)
        } else {
            self.queue.poll()
        };
        let Some(Completion { token, result, .. }) = done else {
            return;
        };
        let op = self.ops.remove(&token).expect("known token");
        self.note(format!(
            "complete #{token} {result:?} at tick {}",
            self.namespace.now()
        ));
        match (result, op) {
            (
                Ok(()),
                Op::Write {
                    id,
                    lba,
                    blocks,
                    fua,
                },
            ) => {
                self.model.write(Source::Write(id), lba, blocks, fua);
            }
            (Ok(()), Op::Zeroes { lba, blocks, .. }) => {
                self.model.write(Source::Zeroes, lba, blocks, false);
            }
            (Ok(()), Op::Flush { covers_before }) => self.model.flush(covers_before),
            (Err(IoError::Flush { .. }), Op::Flush { covers_before }) => {
                observed.flush_failures += 1;
                let namespace = &self.namespace;
                let settled = self
                    .model
                    .fail_flush(covers_before, |lba| namespace.read_durable(lba))
                    .and_then(|counts| self.check_visible().map(|()| counts));
                match settled {
                    Ok((kept, lost)) => {
                        observed.kept_by_failed_flush += kept;
                        observed.lost_to_failed_flush += lost;
                    }
                    Err(why) => panic!("crash model violated at a failed flush: {why}"),
                }
            }
            (Err(IoError::Device { .. }), Op::Write { .. } | Op::Zeroes { .. }) => {}
            (Err(error), op) => panic!("unexpected failure {error:?} of {op:?}"),
        }
    }

    fn run_workload(&mut self, observed: &mut Observed) {
        let ops = self.rng.random_range(4..40);
        for _ in 0..ops {
            self.submit(observed);
            match self.rng.random_range(0..10) {
                0..=3 => self.complete_one(false, observed),
                4..=6 => self.complete_one(true, observed),
                7 => {
                    let ticks = self.rng.random_range(0..4);
                    self.namespace.advance(ticks);
                }
                _ => {}
            }
        }
        // Leave some commands in flight: they have not executed, so no crash
        // state may show them.
        if self.rng.random_bool(0.5) {
            while self.queue.in_flight() > 0 {
                self.complete_one(true, observed);
            }
        }
        observed.in_flight_at_crash += u64::from(self.queue.in_flight());
    }

    /// Reads return what the model says is visible, sector by sector.
    fn check_visible(&self) -> Result<(), String> {
        for lba in 0..LBA_COUNT {
            let block = self.namespace.read_volatile(lba);
            for (sector, actual) in block.chunks(SECTOR_BYTES).enumerate() {
                let source = self.model.visible(lba, sector);
                if sector_content(source, lba, sector) != actual {
                    return Err(format!(
                        "volatile lba {lba} sector {sector} holds {}, the model says {source:?}",
                        identify(actual, lba, sector)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The sim's durable image is exactly the model's: a sim that made more
    /// (or less) durable than the model would pass the crash checks alone.
    fn check_durable(&self) -> Result<(), String> {
        self.check_visible()?;
        for lba in 0..LBA_COUNT {
            let block = self.namespace.read_durable(lba);
            for (sector, actual) in block.chunks(SECTOR_BYTES).enumerate() {
                let source = self.model.durable[lba as usize][sector];
                if sector_content(source, lba, sector) != actual {
                    return Err(format!(
                        "durable lba {lba} sector {sector} holds {}, the model says {source:?}",
                        identify(actual, lba, sector)
                    ));
                }
            }
        }
        if self.namespace.uncovered_writes() != self.model.uncovered.len() {
            return Err(format!(
                "the sim has {} uncovered writes, the model {}",
                self.namespace.uncovered_writes(),
                self.model.uncovered.len()
            ));
        }
        Ok(())
    }

    fn check_crash(&self, crash_seed: u64, observed: &mut Observed) -> Result<(), String> {
        let crashed = self.namespace.crash(crash_seed);
        observed.crash_states += 1;
        let summary = crashed.crash_summary().ok_or("no crash summary")?;
        if summary.uncovered != self.model.uncovered.len() {
            return Err(format!(
                "the sim had {} uncovered writes, the model {}",
                summary.uncovered,
                self.model.uncovered.len()
            ));
        }
        if crashed.uncovered_writes() != 0 {
            return Err("a crash state has uncovered writes".into());
        }
        let mut blocks = Vec::with_capacity(LBA_COUNT as usize);
        for lba in 0..LBA_COUNT {
            let block = crashed.read_durable(lba);
            if block != crashed.read_volatile(lba) {
                return Err(format!(
                    "lba {lba}: volatile differs from durable after a crash"
                ));
            }
            for (sector, actual) in block.chunks(SECTOR_BYTES).enumerate() {
                let allowed = self.model.allowed(lba, sector);
                observed.sectors_checked += 1;
                if allowed.len() == 1 && allowed[0] != Source::Zeroes {
                    observed.sectors_pinned += 1;
                }
                if !allowed
                    .iter()
                    .any(|&source| sector_content(source, lba, sector) == actual)
                {
                    return Err(format!(
                        "lba {lba} sector {sector} holds {}, allowed only {allowed:?}",
                        identify(actual, lba, sector)
                    ));
                }
            }
            blocks.push(block);
        }
        self.classify(&blocks, observed);
        Ok(())
    }

    /// Counts how uncovered writes that nothing else touches fared: every
    /// sector new (kept), none (dropped), or some (torn).
    fn classify(&self, blocks: &[Vec<u8>], observed: &mut Observed) {
        let uncovered = &self.model.uncovered;
        for (i, write) in uncovered.iter().enumerate() {
            let Source::Write(_) = write.source else {
                continue;
            };
            let range = write.lba..write.lba + write.blocks;
            let alone = write.superseded.is_empty()
                && uncovered.iter().enumerate().all(|(j, other)| {
                    j == i || other.lba + other.blocks <= range.start || other.lba >= range.end
                });
            if !alone {
                continue;
            }
            let (mut new, mut total) = (0, 0);
            for lba in range {
                let mut new_in_block = 0;
                for sector in 0..SECTORS {
                    let start = sector * SECTOR_BYTES;
                    let actual = &blocks[lba as usize][start..start + SECTOR_BYTES];
                    new_in_block +=
                        usize::from(sector_content(write.source, lba, sector) == actual);
                }
                if new_in_block != 0 && new_in_block != SECTORS {
                    observed.torn_within_block += 1;
                }
                new += new_in_block;
                total += SECTORS;
            }
            match new {
                0 => observed.dropped += 1,
                n if n == total => observed.kept += 1,
                _ => observed.torn += 1,
            }
        }
    }
}

fn case_seed(index: u64) -> u64 {
    // SplitMix64 of the index: well-spread, reproducible seeds.
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn run_case(seed: u64, verbose: bool, observed: &mut Observed) {
    let mut case = Case::new(seed, verbose);
    case.run_workload(observed);
    let fail = |why: String, crash_seed: Option<u64>| -> ! {
        panic!(
            "crash model violated: {why}\n  case seed {seed} (crash seed {crash_seed:?}); \
             replay with VELTRIX_SIM_SEED={seed}"
        );
    };
    if let Err(why) = case.check_durable() {
        fail(why, None);
    }
    for crash in 0..CRASHES_PER_CASE {
        let crash_seed = seed ^ crash.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        if let Err(why) = case.check_crash(crash_seed, observed) {
            fail(why, Some(crash_seed));
        }
    }
}

#[test]
fn every_crash_state_is_allowed_by_the_model() {
    if let Ok(seed) = std::env::var("VELTRIX_SIM_SEED") {
        let seed: u64 = seed.parse().expect("VELTRIX_SIM_SEED is a u64");
        eprintln!("replaying case seed {seed}");
        run_case(seed, true, &mut Observed::default());
        return;
    }
    let mut observed = Observed::default();
    for index in 0..CASES {
        run_case(case_seed(index), false, &mut observed);
    }
    eprintln!(
        "{} crash states, {} sectors checked ({} pinned to durable data); \
         lone uncovered writes: {} kept, {} dropped, {} torn ({} blocks torn inside); \
         {} failed flushes (lone writes they settled: {} kept, {} lost); \
         {} commands in flight at crashes",
        observed.crash_states,
        observed.sectors_checked,
        observed.sectors_pinned,
        observed.kept,
        observed.dropped,
        observed.torn,
        observed.torn_within_block,
        observed.flush_failures,
        observed.kept_by_failed_flush,
        observed.lost_to_failed_flush,
        observed.in_flight_at_crash,
    );
    assert!(observed.crash_states >= 10_000);
    // Each outcome is common (about a third of lone writes each), not a
    // rare accident of tearing, which can look like keeping or dropping.
    let common = observed.crash_states / 10;
    assert!(
        observed.kept > common,
        "kept writes observed: {}",
        observed.kept
    );
    assert!(
        observed.dropped > common,
        "dropped writes observed: {}",
        observed.dropped
    );
    assert!(
        observed.torn > common,
        "torn writes observed: {}",
        observed.torn
    );
    assert!(
        observed.torn_within_block > common,
        "blocks torn at sector granularity: {}",
        observed.torn_within_block
    );
    assert!(observed.sectors_pinned > 10_000, "durable data was checked");
    assert!(observed.flush_failures > 0 && observed.in_flight_at_crash > 0);
    assert!(
        observed.kept_by_failed_flush > 0 && observed.lost_to_failed_flush > 0,
        "failed flushes must be seen both to keep and to lose writes"
    );
}

/// The workload drives the sim deterministically: the same case seed gives
/// the same crash states, sector for sector.
#[test]
fn a_case_replays_exactly() {
    let seed = case_seed(42);
    let crash_images = |seed| {
        let mut case = Case::new(seed, false);
        case.run_workload(&mut Observed::default());
        let images: Vec<Vec<Vec<u8>>> = (0..5)
            .map(|crash| {
                let crashed = case.namespace.crash(crash);
                (0..LBA_COUNT)
                    .map(|lba| crashed.read_durable(lba))
                    .collect()
            })
            .collect();
        (images, case.namespace.stats(), case.namespace.now())
    };
    let first = crash_images(seed);
    assert_eq!(first, crash_images(seed));
    assert_ne!(first.0, crash_images(case_seed(43)).0);
}

/// fsyncgate: a flush that succeeds after a failed one (a retry) proves
/// nothing about the writes the failed one should have covered. Whatever the
/// failure left is durable or lost for good, reads show it at once, and the
/// retry changes nothing; across seeds the write is sometimes lost (so a
/// retry that counted as proof would be a lie) and sometimes kept.
#[test]
fn a_retry_after_a_failed_flush_proves_nothing() {
    let written = vec![0xAB; 4096];
    let (mut lost, mut kept) = (0, 0);
    for seed in 0..64 {
        let config = SimConfig {
            faults: FaultConfig {
                flush_error: 1.0,
                ..FaultConfig::default()
            },
            ..SimConfig::new(64, seed)
        };
        let namespace = SimNamespace::new(config);
        let mut queue = namespace.queue_pair(4).expect("queue pair");
        let mut buf = namespace.buffers().alloc(4096).expect("buffer");
        buf.as_mut_slice().copy_from_slice(&written);
        queue
            .submit(
                1,
                Command::Write {
                    lba: 7,
                    buf,
                    fua: false,
                },
            )
            .expect("admitted");
        assert!(queue.wait(None).expect("write").result.is_ok());
        queue.submit(2, Command::Flush).expect("admitted");
        let done = queue.wait(None).expect("flush");
        assert_eq!(done.result, Err(IoError::Flush { errno: libc::EIO }));
        let after_failure = namespace.read_durable(7);
        assert_eq!(
            namespace.read_volatile(7),
            after_failure,
            "reads see the truth"
        );
        assert_eq!(
            namespace.uncovered_writes(),
            0,
            "settled, not left for a retry"
        );

        namespace.set_faults(FaultConfig::default());
        queue.submit(3, Command::Flush).expect("admitted");
        assert!(queue.wait(None).expect("retry").result.is_ok());
        assert_eq!(
            namespace.read_durable(7),
            after_failure,
            "the retry proved nothing"
        );
        assert_eq!(namespace.read_volatile(7), after_failure);
        for crash in 0..8 {
            assert_eq!(namespace.crash(crash).read_durable(7), after_failure);
        }
        if after_failure == written {
            kept += 1;
        } else {
            lost += 1;
        }
    }
    assert!(lost > 0, "some seed loses the write despite the retry");
    assert!(
        kept > 0,
        "some seed keeps it: the failure settles, it does not always lose"
    );
}

/// Writes that executed after a failed flush was submitted are not its
/// business: a later flush covers them as usual.
#[test]
fn a_failed_flush_leaves_later_writes_to_later_flushes() {
    let config = SimConfig {
        faults: FaultConfig {
            flush_error: 1.0,
            latency_ticks_max: 0,
            ..FaultConfig::default()
        },
        ..SimConfig::new(64, 5)
    };
    let namespace = SimNamespace::new(config);
    let mut queue = namespace.queue_pair(4).expect("queue pair");
    queue.submit(1, Command::Flush).expect("admitted");
    let mut buf = namespace.buffers().alloc(4096).expect("buffer");
    buf.as_mut_slice().fill(0xCD);
    queue
        .submit(
            2,
            Command::Write {
                lba: 9,
                buf,
                fua: false,
            },
        )
        .expect("admitted");
    // The flush was submitted before the write executed: it does not cover it.
    assert!(queue.wait(None).expect("flush").result.is_err());
    assert!(queue.wait(None).expect("write").result.is_ok());
    assert_eq!(namespace.uncovered_writes(), 1);
    namespace.set_faults(FaultConfig::default());
    queue.submit(3, Command::Flush).expect("admitted");
    assert!(queue.wait(None).expect("flush").result.is_ok());
    assert_eq!(namespace.read_durable(9), vec![0xCD; 4096]);
}
