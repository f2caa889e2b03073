//! The deterministic simulator's parts:
//!
//! - here, the driver: a `Sim` per seed, its epochs, crashes and recoveries;
//! - `model.rs`: what each key may hold, from writes issued and replies;
//! - `workload.rs`: the clients' requests;
//! - `oracle.rs`: the strict checks of every reply and every recovery, and
//!   which keys a reported fault makes lossy;
//! - `faults.rs`: fault sites, placing faults at rest, the power-cut
//!   namespace; `injection.rs`: how the driver injects them and locates them;
//! - `disk.rs`: the durable image read with the engine's format decoders;
//! - `full.rs`: the namespace-full class;
//! - `mutate.sh`: breaks the engine on purpose and expects a failing seed.

pub mod disk;
pub mod faults;
pub mod full;
pub mod injection;
pub mod model;
pub mod no_fua;
pub mod oracle;
pub mod routing;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use engine::format::checkpoint::ROOT_LBAS;
use engine::{
    format, open_workers, Checkpointer, EngineConfig, FormatOptions, Op, OpenError, Reply,
    WorkerCore,
};
use nvme::sim::{FaultConfig, SimConfig, SimNamespace};
use nvme::Namespace;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use self::faults::{FaultClasses, Placed};
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
    /// Route requests through the workers' shard movers, move shards at
    /// random, spread batches over workers, and read through the
    /// caller-thread cache path (`routing.rs`).
    pub moves: bool,
    /// With `moves`: how many requests a client connected to a worker's
    /// frontend keeps in flight (pipelining; 1: one at a time). Such a
    /// client's requests of one key must take effect in the order issued.
    pub pipeline_depth: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batches_over_pending_set_get: true,
            tolerate_checkpoint_corrupt_on_open_io_errors: false,
            moves: false,
            pipeline_depth: 1,
        }
    }
}

/// How the namespace-full class runs.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Whether the engine sees the namespace's FUA support (even seeds; not
    /// drawn from `rng`, so every seed's draws stay what they were).
    pub fua: bool,
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
    /// The simulated wall clock (key deadlines) is `CLOCK_BASE_MS`, plus
    /// the simulated time, plus this: jumps move it forward and back.
    pub clock_offset_ms: i64,
    /// The wall clock the workers were last given.
    pub clock_given_ms: u64,
    /// Clients that may not issue now (their pipeline is full).
    pub clients_busy: BTreeSet<usize>,
    /// Requests in flight per client.
    pub client_requests: BTreeMap<usize, usize>,
    pub keyspace: Vec<Vec<u8>>,
    pub epoch: Epoch,
    /// Faults placed at rest that may still be there.
    pub placed: Vec<Placed>,
    /// How many of `placed` (the last ones) the next recovery meets first.
    pub fresh_placed: usize,
    /// Faults placed earlier and since overwritten (an open's erase of a
    /// torn tail, a segment reused): a cut log end at their place may be
    /// the loss they caused, reported by an open that then failed.
    pub faded: Vec<faults::Located>,
    /// What the last `locate_faults` found.
    pub last_located: Vec<faults::Located>,
    pub segment_lbas: u64,
    /// The namespace-full class keeps one worker count (the reserve
    /// depends on it).
    pub full_workers: Option<usize>,
    /// A flush or a write may have failed a batch while the engine ran, in
    /// this run.
    pub batch_failed: bool,
    pub crash_states: u64,
    pub counters: Counters,
    /// Shard movers, owner table and inboxes, when `options.moves`.
    pub routing: Option<routing::Routing>,
    /// Every log segment header seen on the durable image, by generation:
    /// a generation names one segment's one life, never two.
    pub generations: BTreeMap<u64, (u32, u16, u64)>,
}

pub const SEGMENT_BYTES: u64 = 64 << 10;

/// Where the simulated wall clock starts: 2023-11-14, in milliseconds.
pub const CLOCK_BASE_MS: u64 = 1_700_000_000_000;

impl Sim {
    /// The namespace as the engine sees it: with or without FUA (`no_fua.rs`).
    fn engine_namespace(&self) -> Arc<dyn Namespace> {
        match self.fua {
            true => self.namespace.clone(),
            false => Arc::new(no_fua::NoFua(Arc::clone(&self.namespace))),
        }
    }

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
            fua: seed.is_multiple_of(2),
            cores: Vec::new(),
            checkpointer: None,
            checkpoint_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xC4EC_9017),
            model: Model::default(),
            oracle: Oracle::default(),
            pending: BTreeMap::new(),
            next_request: 1,
            next_write: 1,
            now_us: 0,
            clock_offset_ms: 0,
            clock_given_ms: 0,
            clients_busy: BTreeSet::new(),
            client_requests: BTreeMap::new(),
            keyspace: workload::keyspace(),
            epoch: Epoch::default(),
            placed: Vec::new(),
            fresh_placed: 0,
            faded: Vec::new(),
            last_located: Vec::new(),
            segment_lbas: SEGMENT_BYTES / 4096,
            full_workers: None,
            batch_failed: false,
            crash_states: 0,
            counters: Counters::default(),
            routing: None,
            generations: BTreeMap::new(),
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
            // The namespace decides (`no_fua.rs`: odd seeds have none).
            fua_commit: true,
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
        self.check_generations();
        if let Class::Faults(classes) = &self.class {
            let (faults, cuts) = (classes.open_faults, classes.open_power_cuts);
            // What an open reports is logged, whatever happens to it after:
            // a loss it reported (and then erased, cutting a torn tail) was
            // not silent.
            let located = self.locate_faults();
            let report = match self.rng.random_range(0..6) {
                0 if faults => self.open_under_faults(),
                1 if cuts => self.open_with_power_cut(),
                _ => None,
            };
            if let Some(report) = report {
                self.absorb_report(&report, &located);
            }
        }
        let located = self.locate_faults();
        let workers = self.workers();
        let config = self.config();
        let opened = match open_workers(self.engine_namespace(), &config, workers) {
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
                match open_workers(self.engine_namespace(), &config, workers) {
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
        self.give_clock(true);
        self.checkpointer = Some(opened.checkpointer);
        self.routing = self
            .options
            .moves
            .then(|| routing::Routing::new(self.cores.len()));
        self.check_recovery();
    }

    /// "Generations are never reused" (ARCHITECTURE.md), checked directly on
    /// the durable image: one generation, one segment header, for the whole
    /// run.
    fn check_generations(&mut self) {
        for (segment, generation, stream, prev_seq) in disk::durable_log_headers(&self.namespace) {
            let seen = *self
                .generations
                .entry(generation)
                .or_insert((segment, stream, prev_seq));
            if seen != (segment, stream, prev_seq) {
                self.violation(format!(
                    "generation {generation} reused: segment {segment} (stream {stream}, after seq \
                     {prev_seq}), earlier segment {} (stream {}, after seq {})",
                    seen.0, seen.1, seen.2
                ));
            }
        }
        self.counters
            .add("generations_checked", self.generations.len() as u64);
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
        if let Some(routing) = &self.routing {
            return usize::from(routing.owners.owner(shard));
        }
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
        self.give_clock(false);
    }

    /// The simulated wall clock, in milliseconds since the Unix epoch.
    pub fn clock_ms(&self) -> u64 {
        (CLOCK_BASE_MS + self.now_us / 1000).saturating_add_signed(self.clock_offset_ms)
    }

    /// Moves the wall clock by `ms` (either way), as an operator's or
    /// NTP's step would, without moving simulated time.
    pub fn jump_clock(&mut self, ms: i64) {
        self.clock_offset_ms += ms;
        self.counters.add(
            if ms < 0 {
                "clock_jumps_back"
            } else {
                "clock_jumps_forward"
            },
            1,
        );
        self.give_clock(false);
    }

    /// Gives every worker the wall clock when it changed (or `always`,
    /// for workers just opened), and tells the model.
    pub fn give_clock(&mut self, always: bool) {
        let now = self.clock_ms();
        if now == self.clock_given_ms && !always {
            return;
        }
        self.clock_given_ms = now;
        self.model.clock(now);
        for core in &mut self.cores {
            core.set_clock_ms(now);
        }
    }

    /// How many requests `client` may keep in flight.
    pub fn client_depth(&self, client: usize) -> usize {
        if self.frontend_of(client).is_some() {
            self.options.pipeline_depth.max(1)
        } else {
            1
        }
    }

    /// A request of `client` is in flight.
    pub fn client_sent(&mut self, client: usize) {
        let n = self.client_requests.entry(client).or_default();
        *n += 1;
        if *n >= self.client_depth(client) {
            self.clients_busy.insert(client);
        }
    }

    /// A request of `client` is answered.
    pub fn client_answered(&mut self, client: usize) {
        if let Some(n) = self.client_requests.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                self.client_requests.remove(&client);
            }
        }
        self.clients_busy.remove(&client);
    }

    pub fn step_worker(&mut self, w: usize) {
        // With routing, a worker's thread takes what its inbox holds when it
        // looks; a message sent while it works waits for its next turn.
        let limit = match &self.routing {
            Some(routing) if self.rng.random_range(0..4) == 0 => {
                let held = routing.inbox_len(w);
                self.rng.random_range(0..=held)
            }
            _ => usize::MAX,
        };
        self.deliver(w, limit);
        let mut replies = Vec::new();
        self.cores[w].step(self.now_us, &mut replies);
        for (id, reply) in replies {
            self.handle_reply(id, reply);
        }
        self.advance_mover(w);
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
            self.counters.add(
                "expired_reclaimed",
                stats.expired_reclaimed.load(Ordering::Relaxed),
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
        if self.routing.as_ref().is_some_and(|r| r.in_flight()) {
            self.counters.add("crashes_with_shards_in_flight", 1);
        }
        self.routing = None;
        self.checkpointer = None;
        self.cores.clear();
        self.pending.clear();
        self.clients_busy.clear();
        self.client_requests.clear();
        self.oracle.deferred_reads.clear();
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

    /// Steps clients, workers, GC and checkpoints in a random order.
    fn step_random(&mut self) -> bool {
        match self.rng.random_range(0..10) {
            0..=3 if self.clients_busy.len() < workload::CLIENTS => self.issue(),
            4..=7 => {
                let w = self.rng.random_range(0..self.cores.len());
                self.step_worker(w);
            }
            8 if self.routing.is_some() => match self.rng.random_range(0..4) {
                0 => self.request_move(),
                _ => self.check_cache_read(),
            },
            // Now and then, a GC storm: crashes then land in every phase of
            // collection, as well as in GC started on its own.
            9 if self.rng.random_range(0..16) == 0 => {
                if let Some(core) = self.cores.first() {
                    core.request_gc_storm();
                    self.counters.add("gc_storms", 1);
                }
            }
            // Now and then the wall clock jumps, back or forward, over the
            // deadlines of keys written a moment ago.
            9 if self.rng.random_range(0..24) == 0 => {
                let ms = self.rng.random_range(-20i64..20);
                self.jump_clock(ms);
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
}
