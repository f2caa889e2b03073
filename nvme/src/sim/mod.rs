//! The `sim` backend: an in-memory namespace, deterministic from a seed, that
//! models the crash states a volatile write cache allows and injects faults.
//! The engine's deterministic simulator runs on it.
//!
//! # Time and ordering
//!
//! The namespace keeps a simulated clock ([`SimNamespace::now`], moved by
//! [`SimNamespace::advance`]). Each submitted command is given a completion
//! time `now + latency`, the latency drawn from `0..=latency_ticks_max`. A
//! command *executes when it completes*: [`crate::QueuePair::poll`] returns
//! the queue pair's command with the earliest completion time the clock has
//! reached (ties in submission order) and applies it to the medium then.
//! [`crate::QueuePair::wait`] moves the clock forward to that time when
//! nothing is ready (that is how the simulation blocks), and returns `None`
//! at once when nothing is in flight. With no latency, commands complete in
//! submission order.
//!
//! # The medium and the crash model
//!
//! - The durable image is a sparse map of LBA → block (absent blocks are
//!   zeroes). The volatile view, which reads see, is the durable image plus
//!   every executed write that no flush has covered yet. Those uncovered
//!   writes are kept in execution order.
//! - A flush covers the writes that had executed when it was *submitted* (the
//!   NVMe rule: a write completing while a flush is in flight is not
//!   guaranteed to be covered by it), and makes them durable when it
//!   completes.
//! - A failed flush (`flush_error`) *settles* the writes it should have
//!   covered, when it completes, by the crash model's own draw: each is
//!   written whole, lost, or torn, in a random order, into the durable image,
//!   and leaves the uncovered writes. Reads see the outcome at once (the
//!   volatile view of those LBAs is rebuilt from the durable image and the
//!   writes still uncovered), and no later flush can change it: a flush that
//!   succeeds after a failed one proves nothing about the writes the failed
//!   one covered. Writes that executed after the failed flush was submitted
//!   are not touched, and a later flush covers them as usual.
//!
//!   Why this model. A flush is one command for the whole namespace, so its
//!   failure says the volatile cache (NVMe) or the dirty data (Linux) it was
//!   asked to persist is in an unknown state, whichever queue pair wrote it.
//!   On Linux a failed `fsync`/`fdatasync` reports the error once; the
//!   pages whose writeback failed are marked clean, so a retried `fsync`
//!   succeeds without writing them ("fsyncgate", 2018), and an NVMe
//!   controller that fails a Flush may have written part of its cache and
//!   dropped the rest. Settling at once, rather than leaving the writes
//!   undecided until a crash, keeps reads truthful: what a reader sees after
//!   the failure is what is durable, so an engine that reopens after a failed
//!   flush re-reads the truth and redoes whatever was lost. That matches
//!   this engine's stack, which reads through `O_DIRECT` or from the device
//!   itself, never from a page cache that could still hold the lost data; a
//!   model in which reads keep showing data that a crash will lose is the
//!   page-cache case, and it is not modelled.
//! - A FUA write is durable when it completes. It covers nothing else, and it
//!   supersedes the uncovered writes before it on the LBAs they share: no
//!   crash puts older data over it.
//! - Write-zeroes and deallocate are writes of zeroes
//!   (`deallocate_reads_zeroes` holds), uncovered until flushed.
//! - [`SimNamespace::crash`] draws a crash state: starting from the durable
//!   image, the uncovered writes are visited in a random order and each is
//!   kept whole, dropped, or torn (each `sector_bytes` sector independently
//!   new or old). An earlier write may therefore land over a later one: writes
//!   no flush covered may be reordered.
//!
//! # Faults
//!
//! See [`FaultConfig`]. Every decision is drawn when the command executes,
//! from the namespace's one ChaCha8 stream, so a single-threaded run replays
//! exactly from its seed. Several queue pairs share that stream; driven from
//! several threads the sim stays correct but not reproducible.

mod crash;
mod faults;
mod media;
mod queue;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use self::crash::CrashSummary;
pub use self::faults::{FaultConfig, FaultCounts};
pub use self::queue::SimQueuePair;
pub use self::state::SimStats;

use self::media::Media;
use self::queue::lock;
use self::state::State;
use crate::buffer::{BufferPool, PoolClass, PoolConfig};
use crate::error::OpenError;
use crate::geometry::{Geometry, MetadataFormat};
use crate::queue::{check_depth, Namespace, QueuePair};

/// The ChaCha stream a crash draws from, apart from the stream (0) that the
/// namespace made by the crash uses for its latencies and faults, though both
/// are seeded with the crash seed.
const CRASH_STREAM: u64 = 1;

/// The shape, seed and faults of a simulated namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Bytes per logical block: a power of two in 512..=4096.
    pub lba_bytes: u32,
    /// Capacity in logical blocks. Storage is sparse: only written blocks
    /// take memory.
    pub lba_count: u64,
    /// The torn-write granularity: a power of two dividing `lba_bytes`.
    pub sector_bytes: u32,
    /// Largest single transfer, a multiple of `lba_bytes`.
    pub transfer_bytes_max: u32,
    /// Seeds the namespace's random stream.
    pub seed: u64,
    /// What to inject, and the latency range.
    pub faults: FaultConfig,
    /// The buffer pool to allocate.
    pub pool: PoolConfig,
}

impl SimConfig {
    /// 4 KiB blocks, 512-byte sectors, 1 MiB transfers, no faults, no
    /// latency, and a small pool without hugepages (512 × 4 KiB, 64 × 64 KiB,
    /// 4 × 1 MiB: 10 MiB of address space, touched only as used).
    pub fn new(lba_count: u64, seed: u64) -> SimConfig {
        SimConfig {
            lba_bytes: 4096,
            lba_count,
            sector_bytes: 512,
            transfer_bytes_max: 1 << 20,
            seed,
            faults: FaultConfig::default(),
            pool: PoolConfig {
                classes: vec![
                    PoolClass {
                        slot_bytes: 4096,
                        slots: 512,
                    },
                    PoolClass {
                        slot_bytes: 64 << 10,
                        slots: 64,
                    },
                    PoolClass {
                        slot_bytes: 1 << 20,
                        slots: 4,
                    },
                ],
                hugepages: false,
            },
        }
    }

    /// Panics, naming the field, on an inconsistent configuration: a bug in
    /// the caller, which builds configurations in code.
    fn validate(&self) {
        let lba_bytes = self.lba_bytes;
        assert!(
            lba_bytes.is_power_of_two() && (512..=4096).contains(&lba_bytes),
            "SimConfig::lba_bytes {lba_bytes} must be a power of two in 512..=4096"
        );
        assert!(self.lba_count > 0, "SimConfig::lba_count must be positive");
        assert!(
            self.lba_count.checked_mul(u64::from(lba_bytes)).is_some(),
            "SimConfig::lba_count {} overflows the byte capacity",
            self.lba_count
        );
        assert!(
            self.sector_bytes.is_power_of_two() && self.sector_bytes <= lba_bytes,
            "SimConfig::sector_bytes {} must be a power of two no larger than lba_bytes {lba_bytes}",
            self.sector_bytes
        );
        assert!(
            self.transfer_bytes_max >= lba_bytes
                && self.transfer_bytes_max.is_multiple_of(lba_bytes),
            "SimConfig::transfer_bytes_max {} must be a positive multiple of lba_bytes {lba_bytes}",
            self.transfer_bytes_max
        );
        self.faults.validate();
    }
}

/// An in-memory, deterministic, fault-injecting namespace.
pub struct SimNamespace {
    shared: Arc<Mutex<State>>,
    pool: Arc<BufferPool>,
    geometry: Geometry,
    seed: u64,
    sector_bytes: u32,
    pool_config: PoolConfig,
    crash_summary: Option<CrashSummary>,
}

impl fmt::Debug for SimNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNamespace")
            .field("seed", &self.seed)
            .field("geometry", &self.geometry)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl SimNamespace {
    /// A zeroed namespace. Panics on an inconsistent `config` (see
    /// [`SimConfig`]'s fields) or when the buffer pool cannot be mapped.
    pub fn new(config: SimConfig) -> Arc<SimNamespace> {
        config.validate();
        let media = Media::new(config.lba_bytes as usize);
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Arc::new(SimNamespace::assemble(config, media, rng, 0, None))
    }

    fn assemble(
        config: SimConfig,
        media: Media,
        rng: ChaCha8Rng,
        now: u64,
        crash_summary: Option<CrashSummary>,
    ) -> SimNamespace {
        let pool = BufferPool::new(&config.pool)
            .unwrap_or_else(|e| panic!("sim buffer pool {:?}: {e}", config.pool));
        let geometry = Geometry {
            lba_bytes: config.lba_bytes,
            lba_count: config.lba_count,
            transfer_bytes_max: config.transfer_bytes_max,
            metadata: MetadataFormat::None,
            supports_flush: true,
            supports_fua: true,
            supports_deallocate: true,
            deallocate_reads_zeroes: true,
        };
        let state = State {
            geometry,
            sector_bytes: config.sector_bytes as usize,
            media,
            rng,
            now,
            submitted: 0,
            faults: config.faults,
            stats: SimStats::default(),
        };
        SimNamespace {
            shared: Arc::new(Mutex::new(state)),
            pool,
            geometry,
            seed: config.seed,
            sector_bytes: config.sector_bytes,
            pool_config: config.pool,
            crash_summary,
        }
    }

    /// The configuration, with the faults currently set.
    pub fn config(&self) -> SimConfig {
        self.config_with(self.faults())
    }

    /// A new namespace holding one crash state of this one, drawn from
    /// `seed`: what a power cut now could leave on the medium (see the
    /// module doc). It has the same geometry, faults, latent sector errors and
    /// clock; a fresh buffer pool and statistics; nothing in flight and
    /// nothing uncovered. Its own stream is seeded with `seed` (its
    /// [`SimConfig::seed`] is `seed`). This namespace is left as it was, and
    /// commands still in flight on it play no part: they had not executed.
    pub fn crash(&self, seed: u64) -> Arc<SimNamespace> {
        let state = lock(&self.shared);
        let mut crash_rng = ChaCha8Rng::seed_from_u64(seed);
        crash_rng.set_stream(CRASH_STREAM);
        let lba_bytes = self.geometry.lba_bytes as usize;
        let (image, summary) = crash::draw(
            &state.media,
            lba_bytes,
            self.sector_bytes as usize,
            &mut crash_rng,
        );
        let latent: BTreeSet<u64> = state.media.latent().clone();
        let media = Media::from_image(lba_bytes, image, latent);
        let mut config = self.config_with(state.faults.clone());
        config.seed = seed;
        let now = state.now;
        drop(state);
        Arc::new(SimNamespace::assemble(
            config,
            media,
            ChaCha8Rng::seed_from_u64(seed),
            now,
            Some(summary),
        ))
    }

    fn config_with(&self, faults: FaultConfig) -> SimConfig {
        SimConfig {
            lba_bytes: self.geometry.lba_bytes,
            lba_count: self.geometry.lba_count,
            sector_bytes: self.sector_bytes,
            transfer_bytes_max: self.geometry.transfer_bytes_max,
            seed: self.seed,
            faults,
            pool: self.pool_config.clone(),
        }
    }

    /// For a namespace made by [`SimNamespace::crash`]: what the crash did to
    /// the uncovered writes. `None` for one made by [`SimNamespace::new`].
    pub fn crash_summary(&self) -> Option<CrashSummary> {
        self.crash_summary
    }

    /// Replaces the fault configuration, from the next command on (latencies
    /// already drawn stand). Panics on a probability outside `0.0..=1.0`.
    pub fn set_faults(&self, faults: FaultConfig) {
        faults.validate();
        lock(&self.shared).faults = faults;
    }

    /// The faults currently injected.
    pub fn faults(&self) -> FaultConfig {
        lock(&self.shared).faults.clone()
    }

    /// Flips bit `bit` (0 = the least significant bit of the first byte) of
    /// `lba` on the medium: in the durable image, in the volatile view, and in
    /// every pending write to that LBA, so the flip survives flushes and
    /// crashes until the LBA is rewritten. Panics out of range.
    pub fn flip_bit_at_rest(&self, lba: u64, bit: u32) {
        self.check_lba(lba);
        lock(&self.shared).media.flip_bit(lba, bit);
    }

    /// Makes reads of `lba` fail with [`crate::IoError::Media`] until it is
    /// rewritten (by a write, write-zeroes or deallocate). Latent errors
    /// survive crashes. Panics out of range.
    pub fn add_latent_error(&self, lba: u64) {
        self.check_lba(lba);
        lock(&self.shared).media.add_latent(lba);
    }

    /// Every LBA with a latent sector error now, whether a write left it
    /// (`FaultConfig::latent_sector`) or [`SimNamespace::add_latent_error`]
    /// did: a simulator's oracle learns exactly where reads will fail.
    pub fn latent_errors(&self) -> BTreeSet<u64> {
        lock(&self.shared).media.latent().clone()
    }

    /// Moves the simulated clock forward.
    pub fn advance(&self, ticks: u64) {
        let mut state = lock(&self.shared);
        state.now = state.now.saturating_add(ticks);
    }

    /// The simulated clock, in ticks.
    pub fn now(&self) -> u64 {
        lock(&self.shared).now
    }

    /// Counts of commands executed and faults injected so far.
    pub fn stats(&self) -> SimStats {
        lock(&self.shared).stats
    }

    /// One block as reads see it now (the volatile view). For tests; no
    /// faults apply. Panics out of range.
    pub fn read_volatile(&self, lba: u64) -> Vec<u8> {
        self.check_lba(lba);
        lock(&self.shared).media.volatile_block(lba)
    }

    /// One block as the durable image holds it. For tests. Panics out of
    /// range.
    pub fn read_durable(&self, lba: u64) -> Vec<u8> {
        self.check_lba(lba);
        lock(&self.shared).media.durable_block(lba)
    }

    /// Executed writes (including write-zeroes and deallocate) that no
    /// completed flush has covered and no failed flush has settled: those a
    /// crash may lose, tear or reorder.
    pub fn uncovered_writes(&self) -> usize {
        lock(&self.shared).media.uncovered().len()
    }

    fn check_lba(&self, lba: u64) {
        assert!(
            lba < self.geometry.lba_count,
            "lba {lba} out of range (lba_count {})",
            self.geometry.lba_count
        );
    }
}

impl Namespace for SimNamespace {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn buffers(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    fn queue_pair(&self, depth: u32) -> Result<Box<dyn QueuePair>, OpenError> {
        check_depth(depth)?;
        Ok(Box::new(SimQueuePair::new(
            Arc::clone(&self.shared),
            self.geometry,
            depth,
        )))
    }

    fn describe(&self) -> String {
        format!(
            "sim (seed {}, faults {})",
            self.seed,
            self.faults().describe()
        )
    }
}
