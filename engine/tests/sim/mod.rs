//! The deterministic simulator's parts: the driver (here), the model, the
//! workload, the oracle, the faults, and a reader of the durable image.

pub mod disk;
pub mod faults;
pub mod model;
pub mod oracle;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use engine::format::checkpoint::ROOT_LBAS;
use engine::format::record::{record_bytes, FRAME_HEADER_BYTES};
use engine::{
    format, open_workers, Checkpointer, EngineConfig, FormatOptions, Op, OpenError, Reply,
    WorkerCore,
};
use nvme::sim::{FaultConfig, SimConfig, SimNamespace};
use nvme::Namespace;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use self::disk::Survey;
use self::faults::{CutNamespace, Damage, FaultClasses, Located, Placed, Site};
use self::model::{Model, Value};
use self::oracle::{Oracle, Pending};

/// Named run counters: what fired, and how often.
#[derive(Default, Clone)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    pub fn add(&mut self, name: &str, n: u64) {
        *self.0.entry(name.to_string()).or_default() += n;
    }

    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &Counters) {
        for (name, n) in &other.0 {
            self.add(name, *n);
        }
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, n) in &self.0 {
            writeln!(f, "  {name}: {n}")?;
        }
        Ok(())
    }
}

/// What a seed runs.
#[derive(Clone, Debug)]
pub enum Class {
    /// Crashes only: no fault, no error (but `OutOfSpace`), no damage.
    CrashOnly,
    /// Crashes, random media faults, faults at rest, faults and power cuts
    /// during open.
    Faults(FaultClasses),
    /// A small namespace run full by a write-heavy workload, then emptied.
    Full(FullClass),
}

/// Workload and oracle switches that turn off what the engine is known to
/// get wrong (each has its `known_bug_*` test in `simulator.rs`).
#[derive(Clone, Debug)]
pub struct Options {
    /// Batches may include a key whose `SET ... GET` is unanswered.
    pub batches_over_pending_set_get: bool,
    /// An open that meets injected I/O errors may refuse the store with
    /// `OpenError::CheckpointCorrupt` (counted) instead of failing with an
    /// I/O error.
    pub tolerate_checkpoint_corrupt_on_open_io_errors: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batches_over_pending_set_get: true,
            tolerate_checkpoint_corrupt_on_open_io_errors: false,
        }
    }
}

/// How the namespace-full class runs.
#[derive(Clone, Debug)]
pub struct FullClass {
    /// Many writers at once with any value size; otherwise one writer at a
    /// time, each value sized so its frame fills whole blocks (no padding,
    /// so no garbage for GC to chase while the namespace fills).
    pub concurrent_writers: bool,
    /// Reopen the full store with one more worker (a larger reserve).
    pub reopen_with_more_workers: bool,
    /// One GC storm after the deletes, then writes (otherwise storms one
    /// at a time until free segments are above the reserve).
    pub one_storm: bool,
}

/// What the oracle must know about the epoch that just ran.
#[derive(Default)]
pub struct Epoch {
    pub first_write: u64,
    pub start_acked: BTreeMap<Vec<u8>, Value>,
    pub misdirected: bool,
}

pub struct Sim {
    pub seed: u64,
    pub class: Class,
    pub options: Options,
    pub rng: ChaCha8Rng,
    pub namespace: Arc<SimNamespace>,
    pub cores: Vec<WorkerCore>,
    pub checkpointer: Option<Checkpointer>,
    /// Drives checkpoints, apart from `rng`.
    pub checkpoint_rng: ChaCha8Rng,
    pub model: Model,
    pub oracle: Oracle,
    pub pending: BTreeMap<u64, Pending>,
    pub next_request: u64,
    pub next_write: u64,
    pub now_us: u64,
    pub clients_busy: BTreeSet<usize>,
    pub keyspace: Vec<Vec<u8>>,
    pub epoch: Epoch,
    /// Faults placed at rest that may still be there.
    pub placed: Vec<Placed>,
    /// How many of `placed` (the last ones) the next recovery meets first.
    pub fresh_placed: usize,
    pub segment_lbas: u64,
    /// The namespace-full class keeps one worker count (the reserve
    /// depends on it).
    pub full_workers: Option<usize>,
    /// A flush or a write may have failed a batch while the engine ran, in
    /// this run.
    pub batch_failed: bool,
    pub crash_states: u64,
    pub counters: Counters,
}

pub const SEGMENT_BYTES: u64 = 64 << 10;

impl Sim {
    pub fn new(seed: u64, class: Class) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lba_count = match class {
            // 24 segments: a few hundred large values fill it.
            Class::Full(_) => 24 * SEGMENT_BYTES / 4096,
            _ => 2048,
        };
        let mut config = SimConfig::new(lba_count, rng.random());
        config.faults.latency_ticks_max = rng.random_range(0..20);
        let namespace = SimNamespace::new(config);
        let mut options = FormatOptions::new(rng.random());
        options.segment_bytes = SEGMENT_BYTES;
        format(namespace.as_ref() as &dyn Namespace, &options).expect("format");
        Sim {
            seed,
            class,
            options: Options::default(),
            rng,
            namespace,
            cores: Vec::new(),
            checkpointer: None,
            checkpoint_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xC4EC_9017),
            model: Model::default(),
            oracle: Oracle::default(),
            pending: BTreeMap::new(),
            next_request: 1,
            next_write: 1,
            now_us: 0,
            clients_busy: BTreeSet::new(),
            keyspace: workload::keyspace(),
            epoch: Epoch::default(),
            placed: Vec::new(),
            fresh_placed: 0,
            segment_lbas: SEGMENT_BYTES / 4096,
            full_workers: None,
            batch_failed: false,
            crash_states: 0,
            counters: Counters::default(),
        }
    }

    pub fn faults_enabled(&self) -> bool {
        matches!(self.class, Class::Faults(_))
    }

    pub fn segment_lba(&self, segment: u32) -> u64 {
        u64::from(segment) * self.segment_lbas
    }

    pub fn segment_of(&self, lba: u64) -> u32 {
        (lba / self.segment_lbas) as u32
    }

    fn config(&mut self) -> EngineConfig {
        EngineConfig {
            workers: 0,
            commit_interval_us: self.rng.random_range(0..100),
            batch_bytes_max: self.rng.random_range(4096..32768),
            key_bytes_max: workload::KEY_BYTES_MAX,
            value_bytes_max: 12 << 10,
            queue_depth: self.rng.random_range(4..32),
            inbox_max: 64,
            reads_in_flight_max: self.rng.random_range(1..8),
            gc_io_share: self.rng.random_range(1..=100),
            // Off, tiny (constant eviction) or roomy.
            cache_bytes: [0, 48 << 10, 4 << 20][((self.seed + self.crash_states) % 3) as usize],
            // The simulator asks for checkpoints itself.
            checkpoint_records: 0,
            checkpoint_interval_s: 0,
            discard_checkpoints: false,
        }
    }

    fn workers(&mut self) -> usize {
        match self.full_workers {
            Some(workers) => workers,
            None => self.rng.random_range(1..=3),
        }
    }

    fn trace(&self, what: std::fmt::Arguments<'_>) {
        if std::env::var("VELTRIX_SIM_SEED").is_ok() {
            eprintln!("{what}");
        }
    }

    /// Opens the engine on the current namespace (in a fault run, maybe
    /// after an open under I/O faults or a power cut during an open) and
    /// checks every key the model knows against what recovery produced.
    pub fn recover(&mut self) {
        self.unchecked_tail_latent_errors();
        if let Class::Faults(classes) = &self.class {
            let (faults, cuts) = (classes.open_faults, classes.open_power_cuts);
            match self.rng.random_range(0..6) {
                0 if faults => self.open_under_faults(),
                1 if cuts => self.open_with_power_cut(),
                _ => {}
            }
        }
        let located = self.locate_faults();
        let workers = self.workers();
        let config = self.config();
        let namespace: Arc<dyn Namespace> = self.namespace.clone();
        let opened = match open_workers(namespace, &config, workers) {
            Ok(o) => o,
            Err(OpenError::CheckpointCorrupt(why)) if self.checkpoint_faults_possible() => {
                // Two checkpoints unusable: refusing is the documented
                // answer. The operator's way on: discard them and replay the
                // whole log, where a key whose delete GC trimmed may come
                // back (`docs/format/checkpoint.md`). Those keys only.
                self.trace(format_args!("open refused, discarding checkpoints: {why}"));
                self.counters.add("checkpoints_discarded", 1);
                let mut config = config.clone();
                config.discard_checkpoints = true;
                let deleted: Vec<Vec<u8>> = self
                    .model
                    .keys
                    .iter()
                    .filter(|(_, m)| m.acked.is_none() || m.maybe.iter().any(|(_, v)| v.is_none()))
                    .map(|(k, _)| k.clone())
                    .collect();
                self.oracle.damaged.extend(deleted);
                match open_workers(self.namespace.clone(), &config, workers) {
                    Ok(o) => o,
                    Err(e) => {
                        self.violation(format!("recovery with checkpoints discarded failed: {e}"));
                        return;
                    }
                }
            }
            Err(e) => {
                let placed = self.describe_fresh_placed();
                self.violation(format!("recovery failed: {e}{placed}"));
                return;
            }
        };
        let report = opened.report.clone();
        self.trace(format_args!(
            "recovery after crash {}: {report:?} (crash {:?}, located faults {:?})",
            self.crash_states,
            self.namespace.crash_summary(),
            located
                .iter()
                .map(|l| (l.lba, l.keys.len()))
                .collect::<Vec<_>>()
        ));
        if !self.faults_enabled() && !report.damage.is_empty() {
            self.violation(format!(
                "recovery reported damage without faults: {:?}",
                report.damage
            ));
        }
        self.counters.add("recoveries", 1);
        self.counters.add(
            "recoveries_reporting_damage",
            u64::from(!report.damage.is_empty()),
        );
        self.counters.add(
            "recoveries_from_checkpoint",
            u64::from(report.checkpoint.is_some()),
        );
        self.counters
            .add("segments_skipped", report.segments_skipped);
        self.absorb_report(&report, &located);
        self.count_site_duties(&report);
        self.cores = opened.cores;
        self.checkpointer = Some(opened.checkpointer);
        self.check_recovery();
    }

    /// Whether two checkpoints may both be damaged: a fault placed in one
    /// is still there, and the other may have met a fault the oracle cannot
    /// place (a misdirected write, a latent error left by a write).
    fn checkpoint_faults_possible(&self) -> bool {
        self.placed
            .iter()
            .any(|p| matches!(p.site, Site::Root | Site::CheckpointBody))
            && (self.counters.get("misdirected_epochs") > 0
                || self.counters.get("random_latent_sector_errors") > 0
                || self.counters.get("random_flush_errors") > 0)
    }

    fn describe_fresh_placed(&self) -> String {
        let fresh = &self.placed[self.placed.len() - self.fresh_placed..];
        fresh
            .iter()
            .map(|p| {
                format!(
                    " (after a {:?} placed at rest at LBA {}, {:?})",
                    p.damage, p.lba, p.site
                )
            })
            .collect()
    }

    /// Counts, per site of a fault placed before this recovery, whether the
    /// engine reported damage there.
    fn count_site_duties(&mut self, report: &engine::RecoveryReport) {
        let fresh: Vec<Placed> = self.placed[self.placed.len() - self.fresh_placed..].to_vec();
        self.fresh_placed = 0;
        for p in fresh {
            let segment = self.segment_of(p.lba);
            let reported = report.damage.iter().any(|d| d.start.segment == segment);
            let outcome = if reported { "reported" } else { "not_reported" };
            self.counters
                .add(&format!("at_rest_{}_{outcome}", p.site.name()), 1);
        }
    }

    /// Every place a fault sits that the oracle knows of, with the keys a
    /// loss there could take: faults placed at rest (flips still on the
    /// medium) and every latent sector error.
    fn locate_faults(&mut self) -> Vec<Located> {
        if !self.faults_enabled() {
            return Vec::new();
        }
        let latent = self.namespace.latent_errors();
        let namespace = self.namespace.clone();
        self.placed.retain(|p| match p.damage {
            Damage::Latent => latent.contains(&p.lba),
            Damage::BitFlip => {
                p.flipped_block.as_deref() == Some(&namespace.read_durable(p.lba)[..])
            }
        });
        self.fresh_placed = self.fresh_placed.min(self.placed.len());
        let mut located: Vec<Located> = self
            .placed
            .iter()
            .filter(|p| p.damage == Damage::BitFlip)
            .map(|p| Located {
                lba: p.lba,
                extent: p.extent,
                keys: p.keys.clone(),
            })
            .collect();
        if !latent.is_empty() {
            if let Some(survey) = Survey::read(&self.namespace) {
                for lba in latent {
                    self.trace(format_args!(
                        "latent error at LBA {lba}: extent {:?}, tail frame {}, keys {}",
                        survey.extent_at(lba),
                        survey.in_tail_frame(lba),
                        survey.keys_at(lba).len()
                    ));
                    located.push(Located {
                        lba,
                        extent: survey.extent_at(lba),
                        keys: survey.keys_at(lba),
                    });
                }
            }
        }
        located
    }

    /// An open while writes and flushes may fail: it succeeds or fails with
    /// an I/O error, and either way the power is cut after it.
    fn open_under_faults(&mut self) {
        let workers = self.workers();
        let config = self.config();
        self.namespace
            .set_faults(faults::open_faults(&mut self.rng));
        let namespace: Arc<dyn Namespace> = self.namespace.clone();
        let result = open_workers(namespace, &config, workers);
        self.namespace.set_faults(FaultConfig::default());
        self.counters.add("opens_under_faults", 1);
        self.trace(format_args!(
            "open under faults ({:?}): {:?}",
            self.namespace.stats().faults,
            result
                .as_ref()
                .map(|o| &o.report)
                .map_err(ToString::to_string)
        ));
        match result {
            Ok(opened) => drop(opened),
            Err(OpenError::Io(_)) => self.counters.add("opens_under_faults_failed", 1),
            Err(e) => self.unexpected_open_error("open under I/O faults", &e),
        }
        self.crash_namespace();
    }

    /// A latent error a write left in a stream's tail frame meets the
    /// excluded tail bug (`known_bug_damaged_tail_frame_is_cut_silently`):
    /// while that class is excluded, its keys are not checked.
    fn unchecked_tail_latent_errors(&mut self) {
        let Class::Faults(classes) = &self.class else {
            return;
        };
        if !classes
            .excluded
            .contains(&(Site::TailFrame, Damage::Latent))
        {
            return;
        }
        let latent = self.namespace.latent_errors();
        if latent.is_empty() {
            return;
        }
        let Some(survey) = Survey::read(&self.namespace) else {
            return;
        };
        for lba in latent.into_iter().filter(|&lba| survey.in_tail_frame(lba)) {
            self.counters.add("tail_latent_errors_unchecked", 1);
            self.oracle.damaged.extend(survey.keys_at(lba));
        }
    }

    /// An open that met injected I/O errors must fail with an I/O error.
    fn unexpected_open_error(&mut self, what: &str, e: &OpenError) {
        if matches!(e, OpenError::CheckpointCorrupt(_)) && self.checkpoint_faults_possible() {
            // Both checkpoints damaged for real: the documented refusal
            // (the open that follows discards them).
            self.counters
                .add("checkpoint_refusals_under_open_faults", 1);
            return;
        }
        if matches!(e, OpenError::CheckpointCorrupt(_))
            && self.options.tolerate_checkpoint_corrupt_on_open_io_errors
        {
            self.counters
                .add("known_bug_checkpoint_corrupt_on_open_io_errors", 1);
            return;
        }
        self.violation(format!("{what} failed with {e}"));
    }

    /// An open cut short by a power cut after a random number of commands.
    fn open_with_power_cut(&mut self) {
        let workers = self.workers();
        let config = self.config();
        let commands = self.rng.random_range(0..160);
        let cut = Arc::new(CutNamespace::new(self.namespace.clone(), commands));
        let result = open_workers(cut.clone() as Arc<dyn Namespace>, &config, workers);
        self.counters.add("open_power_cuts", 1);
        self.trace(format_args!(
            "open with a power cut after {commands} commands (cut: {}): {:?}",
            cut.cut(),
            result
                .as_ref()
                .map(|o| &o.report)
                .map_err(ToString::to_string)
        ));
        if cut.cut() {
            self.counters.add("open_power_cuts_mid_open", 1);
        }
        match result {
            Ok(opened) => drop(opened),
            Err(OpenError::Io(_)) => self.counters.add("open_power_cuts_failed_open", 1),
            Err(e) => self.unexpected_open_error("open cut by a power cut", &e),
        }
        self.crash_namespace();
    }

    /// Draws a crash state, and counts superblock and root writes the
    /// crash found uncovered: kept, dropped or torn.
    fn crash_namespace(&mut self) {
        let metadata = [0, 1, ROOT_LBAS[0], ROOT_LBAS[1]];
        let uncovered: Vec<(u64, Vec<u8>, Vec<u8>)> = metadata
            .iter()
            .map(|&lba| {
                (
                    lba,
                    self.namespace.read_volatile(lba),
                    self.namespace.read_durable(lba),
                )
            })
            .filter(|(_, new, old)| new != old)
            .collect();
        let crash_seed = self.rng.random();
        self.namespace = self.namespace.crash(crash_seed);
        self.crash_states += 1;
        for (lba, new, old) in uncovered {
            let now = self.namespace.read_durable(lba);
            let outcome = if now == new {
                "kept"
            } else if now == old {
                "dropped"
            } else {
                "torn"
            };
            let what = if lba < 2 { "superblock" } else { "root" };
            self.counters
                .add(&format!("crash_cut_{what}_write_{outcome}"), 1);
        }
    }

    pub fn owner(&self, key: &[u8]) -> usize {
        let shard = engine::shard::shard(key);
        self.cores
            .iter()
            .position(|c| c.owns(shard))
            .expect("some worker owns every shard")
    }

    /// Runs one get to completion (other work proceeds meanwhile).
    pub fn get_now(&mut self, key: &[u8]) -> Result<Value, engine::EngineError> {
        let owner = self.owner(key);
        let id = u64::MAX - self.next_request;
        self.next_request += 1;
        self.cores[owner].accept(id, Op::Get(key.to_vec()), self.now_us);
        for _ in 0..100_000 {
            let mut replies = Vec::new();
            self.cores[owner].step(self.now_us, &mut replies);
            for (rid, reply) in replies {
                if rid == id {
                    return match reply {
                        Reply::Value(v) => Ok(v),
                        Reply::Failed(e) => Err(e),
                        other => panic!("get answered {other:?}"),
                    };
                }
                self.handle_reply(rid, reply);
            }
            self.advance(1);
        }
        panic!("seed {}: get never completed", self.seed);
    }

    pub fn advance(&mut self, us: u64) {
        self.now_us += us;
        self.namespace.advance(us);
    }

    pub fn step_worker(&mut self, w: usize) {
        let mut replies = Vec::new();
        self.cores[w].step(self.now_us, &mut replies);
        for (id, reply) in replies {
            self.handle_reply(id, reply);
        }
    }

    /// Steps every worker until every request is answered (bounded).
    pub fn drain(&mut self) {
        for _ in 0..20_000 {
            if self.pending.is_empty() {
                return;
            }
            for w in 0..self.cores.len() {
                self.step_worker(w);
            }
            self.advance(1);
        }
        let space: Vec<engine::Space> = self.cores.iter().map(WorkerCore::space).collect();
        let busy: Vec<(bool, bool, u32)> = self
            .cores
            .iter()
            .map(|c| (c.busy(), c.gc_in_progress(), c.io_in_flight()))
            .collect();
        self.violation(format!(
            "{} requests never answered (space {space:?}, busy/gc/io {busy:?}, stats {:?})",
            self.pending.len(),
            self.cores.first().map(|c| c.stats())
        ));
    }

    pub fn crash(&mut self) {
        if let Some(core) = self.cores.first() {
            let stats = core.stats();
            self.counters.add(
                "gc_segments_freed",
                stats.gc_segments_freed.load(Ordering::Relaxed),
            );
            self.counters.add(
                "gc_records_relocated",
                stats.gc_records_relocated.load(Ordering::Relaxed),
            );
            self.counters
                .add("checkpoints", stats.checkpoints.load(Ordering::Relaxed));
            self.trace(format_args!(
                "crash {}: {:?} {:?}",
                self.crash_states,
                stats,
                core.space()
            ));
        }
        if self.cores.iter().any(WorkerCore::gc_in_progress) {
            self.counters.add("crashes_during_gc", 1);
        }
        if self
            .checkpointer
            .as_ref()
            .is_some_and(|c| c.in_progress() && !c.collecting())
        {
            self.counters.add("crashes_during_checkpoint", 1);
        }
        self.checkpointer = None;
        self.cores.clear();
        self.pending.clear();
        self.clients_busy.clear();
        self.crash_namespace();
    }

    /// Now and then starts an index checkpoint, and steps one in progress (a
    /// phase per step, so crashes land in every phase). Returns true to end
    /// the epoch now: a root write is uncovered, and a crash there is wanted.
    fn drive_checkpoints(&mut self) -> bool {
        let Some(checkpointer) = self.checkpointer.as_mut() else {
            return false;
        };
        if !checkpointer.in_progress() {
            if self.checkpoint_rng.random_range(0..120) == 0 {
                checkpointer.request();
            }
            return false;
        }
        if self.checkpoint_rng.random_range(0..3) != 0 || !checkpointer.step() {
            return false;
        }
        let root_uncovered = ROOT_LBAS
            .iter()
            .any(|&lba| self.namespace.read_volatile(lba) != self.namespace.read_durable(lba));
        root_uncovered && self.checkpoint_rng.random_range(0..2) == 0
    }

    fn begin_epoch(&mut self) {
        self.epoch = Epoch {
            first_write: self.next_write,
            start_acked: self
                .model
                .keys
                .iter()
                .map(|(k, m)| (k.clone(), m.acked.clone()))
                .collect(),
            misdirected: false,
        };
    }

    /// Places a fault at rest at a known LBA, between a crash and the open.
    fn inject_at_rest(&mut self) {
        let Class::Faults(classes) = &self.class else {
            return;
        };
        let mut sites = classes.sites.clone();
        if sites.is_empty() || self.rng.random_range(0..3) == 0 {
            return;
        }
        // One fault at a time in the superblocks and checkpoints: two at once
        // may leave nothing to open from, by design.
        let metadata = |s: Site| matches!(s, Site::Superblock | Site::Root | Site::CheckpointBody);
        if self.placed.iter().any(|p| metadata(p.site)) {
            sites.retain(|s| !metadata(*s));
        }
        if self.batch_failed && !classes.checkpoint_faults_after_failed_batch {
            sites.retain(|s| !matches!(s, Site::Root | Site::CheckpointBody));
        }
        let Some(survey) = Survey::read(&self.namespace) else {
            return;
        };
        if sites.is_empty() {
            return;
        }
        let site = sites[self.rng.random_range(0..sites.len())];
        let Some(lba) = faults::choose_lba(&survey, site, &mut self.rng) else {
            self.counters
                .add(&format!("at_rest_{}_no_place", site.name()), 1);
            return;
        };
        let mut damage = if self.rng.random_bool(0.5) {
            Damage::BitFlip
        } else {
            Damage::Latent
        };
        if classes.excluded.contains(&(site, damage)) {
            damage = match damage {
                Damage::BitFlip => Damage::Latent,
                Damage::Latent => Damage::BitFlip,
            };
            if classes.excluded.contains(&(site, damage)) {
                return;
            }
        }
        let keys = survey.keys_at(lba);
        let extent = survey.extent_at(lba);
        let flipped_block = faults::place(&self.namespace, damage, lba, &mut self.rng);
        let kind = if damage == Damage::BitFlip {
            "bit_flip"
        } else {
            "latent"
        };
        self.counters
            .add(&format!("at_rest_{}_{kind}", site.name()), 1);
        self.trace(format_args!(
            "placed {damage:?} at LBA {lba} ({site:?}), frame {extent:?}, keys {:?}",
            keys.iter().map(|k| model::show_key(k)).collect::<Vec<_>>()
        ));
        self.placed.push(Placed {
            site,
            damage,
            lba,
            keys,
            extent,
            flipped_block,
        });
        self.fresh_placed += 1;
    }

    /// Steps clients, workers, GC and checkpoints in a random order.
    fn step_random(&mut self) -> bool {
        match self.rng.random_range(0..10) {
            0..=3 if self.clients_busy.len() < workload::CLIENTS => self.issue(),
            4..=7 => {
                let w = self.rng.random_range(0..self.cores.len());
                self.step_worker(w);
            }
            // Now and then, a GC storm: crashes then land in every phase of
            // collection, as well as in GC started on its own.
            9 if self.rng.random_range(0..16) == 0 => {
                if let Some(core) = self.cores.first() {
                    core.request_gc_storm();
                    self.counters.add("gc_storms", 1);
                }
            }
            _ => {
                let us = self.rng.random_range(1..60);
                self.advance(us);
            }
        }
        self.drive_checkpoints()
    }

    pub fn run(&mut self, crashes: u32, steps_per_epoch: u32) {
        self.recover();
        for _ in 0..crashes {
            if !self.oracle.violations.is_empty() || self.cores.is_empty() {
                return;
            }
            self.begin_epoch();
            if let Class::Faults(classes) = &self.class {
                let f = faults::epoch_faults(&mut self.rng, classes);
                self.namespace.set_faults(f);
            }
            let steps = self.rng.random_range(1..steps_per_epoch);
            for _ in 0..steps {
                if self.step_random() {
                    self.counters.add("epochs_ended_at_root_write", 1);
                    break;
                }
            }
            if self.faults_enabled() {
                self.epoch.misdirected = self.namespace.stats().faults.misdirected_write > 0;
                self.counters
                    .add("misdirected_epochs", u64::from(self.epoch.misdirected));
                self.trace(format_args!(
                    "epoch faults: {:?}",
                    self.namespace.stats().faults
                ));
                let f = self.namespace.stats().faults;
                self.counters
                    .add("random_latent_sector_errors", f.latent_sector);
                self.counters.add("random_read_bitflips", f.read_bitflip);
                self.counters.add("random_flush_errors", f.flush_error);
                self.batch_failed |= f.flush_error + f.transient_error > 0;
                self.namespace.set_faults(FaultConfig::default());
            }
            self.crash();
            self.inject_at_rest();
            self.recover();
        }
    }

    /// The namespace-full class: fill a small namespace with fresh keys
    /// until writes fail with `OutOfSpace`, crash, delete the oldest keys
    /// (deletes must succeed: the GC reserve), collect, write again, crash.
    /// The strict oracle checks every recovery: no acknowledged write lost,
    /// no failed one applied.
    pub fn run_full(&mut self) {
        let Class::Full(full) = self.class.clone() else {
            panic!("run_full runs the Full class");
        };
        self.full_workers = Some(self.rng.random_range(1..=2));
        self.recover();
        let mut fill = 0u64;
        let out_before = self.counters.get("out_of_space");
        for _ in 0..40_000 {
            if self.counters.get("out_of_space") > out_before + 4
                || !self.oracle.violations.is_empty()
            {
                break;
            }
            if !full.concurrent_writers {
                self.issue_fill(&mut fill);
                self.drain();
            } else if self.clients_busy.len() < workload::CLIENTS
                && self.rng.random_range(0..3) == 0
            {
                self.issue_fill(&mut fill);
            } else if self.rng.random_range(0..2) == 0 {
                let w = self.rng.random_range(0..self.cores.len());
                self.step_worker(w);
            } else {
                let us = self.rng.random_range(1..60);
                self.advance(us);
            }
        }
        self.drain();
        if self.counters.get("out_of_space") == out_before {
            self.violation("the namespace never ran full".into());
        }
        if !self.oracle.violations.is_empty() {
            return;
        }
        self.counters.add("full_namespaces", 1);
        if full.reopen_with_more_workers {
            self.full_workers = Some(self.full_workers.unwrap_or(1) + 1);
        }
        self.crash();
        self.recover();
        if self.cores.is_empty() {
            return;
        }
        self.full_deletes();
        self.full_collect(full.one_storm);
        // Writes succeed again, as many as the freed room takes (after one
        // storm: more than that, so writes wait for GC).
        let writes = if full.one_storm {
            2 * workload::CLIENTS as u64
        } else {
            3
        };
        let puts_before = self.counters.get("acked_puts");
        for _ in 0..writes {
            self.issue_fill(&mut fill);
            self.drain();
            if !self.oracle.violations.is_empty() {
                return;
            }
        }
        let refilled = self.counters.get("acked_puts") - puts_before;
        if refilled == 0 || !full.one_storm && refilled != writes {
            self.violation(format!(
                "after deletes and GC, {refilled} of {writes} writes succeeded"
            ));
        }
        self.counters.add("full_writes_after_gc", refilled);
        self.crash();
        self.recover();
    }

    /// Deletes the oldest keys, two rounds of concurrent deletes: each must
    /// succeed on the full namespace.
    fn full_deletes(&mut self) {
        let mut present: Vec<(u64, Vec<u8>)> = self
            .model
            .keys
            .iter()
            .filter(|(k, m)| k.starts_with(b"f") && m.acked.is_some())
            .filter_map(|(k, _)| {
                Some((std::str::from_utf8(&k[1..]).ok()?.parse().ok()?, k.clone()))
            })
            .collect();
        present.sort();
        let (deletes_before, out_before) = (
            self.counters.get("acked_deletes"),
            self.counters.get("out_of_space"),
        );
        let mut issued = 0;
        for (_, key) in present.iter().take(2 * workload::CLIENTS) {
            self.issue_op(oracle::Expect::Delete {
                write: 0,
                key: key.clone(),
            });
            issued += 1;
            if self.clients_busy.len() >= workload::CLIENTS {
                self.drain();
            }
        }
        self.drain();
        let acked = self.counters.get("acked_deletes") - deletes_before;
        let out = self.counters.get("out_of_space") - out_before;
        if acked != issued {
            self.violation(format!(
                "on a full namespace only {acked} of {issued} deletes succeeded ({out} OutOfSpace)"
            ));
        }
        self.counters.add("full_deletes_acked", acked);
    }

    /// GC storms, one at a time, until free segments are above the reserve.
    /// (A storm collects its first victim at once; the rest of its list
    /// waits for more writes: `known_bug_gc_storm_stalls_writes_on_a_full_namespace`.)
    fn full_collect(&mut self, one_storm: bool) {
        for round in 0..12 {
            if one_storm && round == 1 {
                return;
            }
            let space = self.cores[0].space();
            if space.free > space.reserve + 1 {
                self.counters.add("full_collected", 1);
                return;
            }
            self.cores[0].request_gc_storm();
            self.counters.add("gc_storms", 1);
            for _ in 0..2_000 {
                for w in 0..self.cores.len() {
                    self.step_worker(w);
                }
                self.advance(5);
            }
        }
        let space = self.cores[0].space();
        self.violation(format!(
            "GC freed too little after deletes on a full namespace: {space:?}"
        ));
    }

    fn issue_fill(&mut self, fill: &mut u64) {
        let key = format!("f{fill}").into_bytes();
        *fill += 1;
        self.issue_op(oracle::Expect::Put { write: 0, key });
    }

    /// Issues a put (large value) or a delete from an idle client; the
    /// write number in `expect` is assigned here.
    fn issue_op(&mut self, expect: oracle::Expect) {
        let Some(client) = (0..workload::CLIENTS).find(|c| !self.clients_busy.contains(c)) else {
            return;
        };
        let write = self.next_write;
        self.next_write += 1;
        let (key, op, expect) = match expect {
            oracle::Expect::Put { key, .. } => {
                let mut value = self.value_for(&key, write);
                let exact = matches!(&self.class, Class::Full(f) if !f.concurrent_writers);
                let len = if exact {
                    // A frame of exactly two blocks.
                    2 * 4096 - FRAME_HEADER_BYTES - record_bytes(key.len(), 0)
                } else {
                    self.rng.random_range(6000..12 << 10)
                };
                value.resize(len, 0x5A);
                self.model.issue(write, &key, Some(value.clone()));
                (
                    key.clone(),
                    Op::Put(key.clone(), value),
                    oracle::Expect::Put { write, key },
                )
            }
            oracle::Expect::Delete { key, .. } => {
                self.model.issue(write, &key, None);
                (
                    key.clone(),
                    Op::Delete(key.clone()),
                    oracle::Expect::Delete { write, key },
                )
            }
            _ => unreachable!("fill issues puts and deletes"),
        };
        let id = self.next_request;
        self.next_request += 1;
        let owner = self.owner(&key);
        self.clients_busy.insert(client);
        self.pending.insert(id, Pending { client, expect });
        self.cores[owner].accept(id, op, self.now_us);
    }
}
