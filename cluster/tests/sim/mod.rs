//! The cluster simulator: nodes, a network and clients stepped in one
//! thread from one seed.
//!
//! Each run builds a cluster (3 or 5 nodes, three zones, a few groups),
//! runs clients against it while the network drops, duplicates, delays and
//! partitions and nodes crash and restart, then heals everything, reads
//! every key back, and checks the whole history for linearizability. A
//! failing seed replays exactly: `VELTRIX_CLUSTER_SEED=N`.

pub mod clients;
pub mod disk;
pub mod moves;
pub mod net;

use std::collections::BTreeMap;

use cluster::group::Tuning;
use cluster::history;
use cluster::layout::GroupLayout;
use cluster::map::ClusterMap;
use cluster::node::{Node, NodeConfig};
use cluster::placement::{place, Member, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use clients::Clients;
use disk::SimDisk;
use moves::Moves;
use net::{Net, NetFaults};

/// Time units per Raft tick (a unit is a millisecond of the modelled
/// network; a tick is 10 ms).
pub const TICK: u64 = 10;

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub groups: u32,
    pub keys: usize,
    pub clients: usize,
    /// Time units of faulty running, then of healed running.
    pub faulty_for: u64,
    pub healed_for: u64,
    pub net: NetFaults,
    /// Per time unit, chance in a million of a crash, a restart, a new
    /// partition, a heal.
    pub crash_ppm: u32,
    /// Chance in a million, per node step, of a crash in the middle of the
    /// step's flush.
    pub torn_flush_ppm: u32,
    pub restart_ppm: u32,
    pub partition_ppm: u32,
    pub heal_ppm: u32,
    /// Per time unit, chance in a million of starting a replica move (five
    /// nodes only: three have no spare node in a free zone).
    pub move_ppm: u32,
    /// Client operations time out after this many units (indeterminate).
    pub timeout: u64,
    pub tuning: Tuning,
    pub client_rate: f64,
    /// Percent of client operations that are INCRs of a counter key
    /// (checked by the counter oracle, apart from the register keys). Not
    /// drawn from the seed, so a frozen seed's draws stay what they were;
    /// the regression seeds run without them.
    pub incr_percent: u32,
}

impl SimConfig {
    /// A configuration drawn from the seed: node count, groups, keys and
    /// fault rates vary between seeds.
    pub fn from_seed(rng: &mut ChaCha8Rng) -> Self {
        Self {
            nodes: if rng.random_bool(0.7) { 3 } else { 5 },
            groups: [1, 2, 4][rng.random_range(0..3)],
            keys: rng.random_range(2..8),
            clients: rng.random_range(2..7),
            faulty_for: 4_000,
            healed_for: 2_000,
            incr_percent: 8,
            net: NetFaults {
                drop_ppm: rng.random_range(0..100_000),
                duplicate_ppm: rng.random_range(0..50_000),
                max_delay: rng.random_range(1..30),
            },
            crash_ppm: rng.random_range(0..1_000),
            torn_flush_ppm: rng.random_range(0..200),
            restart_ppm: 3_000,
            partition_ppm: rng.random_range(0..1_000),
            heal_ppm: 2_000,
            // Some runs churn: a move every 50 ms or so, replicas removed
            // and added back while messages to them are still in flight.
            move_ppm: if rng.random_bool(0.3) {
                20_000
            } else {
                rng.random_range(0..3_000)
            },
            timeout: 400,
            tuning: Tuning {
                snapshot_every: rng.random_range(8..200),
                // Mostly on, quick to fall asleep, so groups sleep and wake
                // all through the run.
                hibernate_after_ticks: if rng.random_bool(0.8) {
                    rng.random_range(3..30)
                } else {
                    0
                },
                ..Tuning::default()
            },
            // Per time unit, the chance an idle client starts an operation:
            // busy runs, and quiet ones whose groups go idle between.
            client_rate: [0.2, 0.05, 0.01][rng.random_range(0..3)],
        }
    }
}

/// A node slot: the node while it runs, its disk always.
pub enum Slot {
    Up(Box<Node<SimDisk>>),
    Down(SimDisk),
}

pub struct Sim {
    pub seed: u64,
    pub config: SimConfig,
    pub rng: ChaCha8Rng,
    pub now: u64,
    pub ids: Vec<NodeId>,
    pub node_configs: Vec<NodeConfig>,
    pub slots: Vec<Slot>,
    pub net: Net,
    pub clients: Clients,
    /// Per node, the time unit (mod TICK) at which it ticks: nodes' clocks
    /// are not in phase.
    pub phase: Vec<u64>,
    pub crashes: u64,
    pub torn_flushes: u64,
    pub partitions: u64,
    /// Whether faults are still being injected (off once healed).
    pub faults_on: bool,
    pub moves: Moves,
}

/// What a run found.
#[derive(Debug)]
pub struct RunReport {
    pub operations: usize,
    /// INCRs of the counter keys that did not definitely fail.
    pub incrs: usize,
    pub crashes: u64,
    pub torn_flushes: u64,
    pub partitions: u64,
    pub envelopes: u64,
    pub hibernation_notices: u64,
    pub moves_completed: u64,
    pub summary: history::Summary,
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let config = SimConfig::from_seed(&mut rng);
        Self::with_config(seed, config, rng)
    }

    /// The seed's run with registers only, as before counters joined the
    /// workload (for seeds frozen then).
    pub fn registers_only(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut config = SimConfig::from_seed(&mut rng);
        config.incr_percent = 0;
        Self::with_config(seed, config, rng)
    }

    pub fn with_config(seed: u64, config: SimConfig, mut rng: ChaCha8Rng) -> Self {
        let members: Vec<Member> = (0..config.nodes)
            .map(|i| Member {
                id: i as u64 + 1,
                zone: format!("zone-{}", i % 3),
            })
            .collect();
        let layout =
            GroupLayout::new(config.groups).expect("simulated group count divides the shards");
        let placement = place(&members, config.groups).expect("three zones");
        let ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
        let node_configs: Vec<NodeConfig> = ids
            .iter()
            .map(|&id| NodeConfig {
                id,
                layout,
                placement: placement.clone(),
                tuning: config.tuning,
                seed,
            })
            .collect();
        let mut slots = Vec::new();
        for nc in &node_configs {
            let mut node = Node::open(nc.clone(), SimDisk::default()).expect("open a new node");
            node.campaign_preferred();
            slots.push(Slot::Up(Box::new(node)));
        }
        let phase = ids.iter().map(|_| rng.random_range(0..TICK)).collect();
        let clients = Clients::new(
            config.clients,
            config.keys,
            layout,
            config.client_rate,
            config.incr_percent,
        );
        let moves = Moves::new(ClusterMap::bootstrap(&members, config.groups).expect("a map"));
        Self {
            seed,
            net: Net::new(config.net),
            config,
            rng,
            now: 0,
            ids,
            node_configs,
            slots,
            clients,
            phase,
            crashes: 0,
            torn_flushes: 0,
            partitions: 0,
            faults_on: true,
            moves,
        }
    }

    /// Runs the faulty phase, heals, runs the healed phase, reads every key
    /// back and checks the history.
    pub fn run(mut self) -> Result<RunReport, String> {
        let faulty_until = self.config.faulty_for;
        while self.now < faulty_until {
            self.faults();
            self.advance(true);
        }
        self.heal_all();
        let healed_until = self.now + self.config.healed_for;
        while self.now < healed_until {
            self.advance(true);
        }
        self.final_reads()?;
        let history = self.clients.history();
        let summary = history::check(history)
            .map_err(|v| format!("seed {}: not linearizable: {v}", self.seed))?;
        self.clients
            .check_counters()
            .map_err(|v| format!("seed {}: counters: {v}", self.seed))?;
        Ok(RunReport {
            operations: history.len(),
            incrs: self.clients.incrs(),
            crashes: self.crashes,
            torn_flushes: self.torn_flushes,
            partitions: self.partitions,
            envelopes: self.net.sent,
            hibernation_notices: self.net.notices,
            moves_completed: self.moves.completed,
            summary,
        })
    }

    /// One time unit: deliver, tick, let clients act, step every node.
    pub fn advance(&mut self, clients_act: bool) {
        self.now += 1;
        for envelope in self.net.due(self.now) {
            if let Some(Slot::Up(node)) = self.slot_mut(envelope.to) {
                node.receive(envelope);
            }
        }
        for i in 0..self.slots.len() {
            if self.now % TICK == self.phase[i] {
                if let Slot::Up(node) = &mut self.slots[i] {
                    node.tick();
                }
            }
        }
        self.moves.drive(&mut self.slots, &self.ids);
        if clients_act {
            self.clients
                .act(&mut self.rng, self.now, &mut self.slots, &self.ids);
        }
        self.clients.time_out(self.now, self.config.timeout);
        for i in 0..self.slots.len() {
            let tear =
                self.faults_on && self.rng.random_range(0..1_000_000) < self.config.torn_flush_ppm;
            let Slot::Up(node) = &mut self.slots[i] else {
                continue;
            };
            // What may leave before the flush leaves (a leader's appends),
            // then the flush, which a crash may tear.
            let (early, flush) = node.begin_step();
            for envelope in early {
                self.net.send(&mut self.rng, self.now, envelope);
            }
            if tear {
                let torn_before = node.disk().torn;
                node.disk_mut().arm_tear(self.rng.random());
                let _lost = node.finish_step(flush);
                // Counted only when the step had something to persist.
                self.torn_flushes += node.disk().torn - torn_before;
                self.crash(i);
                continue;
            }
            let out = node.finish_step(flush);
            let id = node.id();
            for envelope in out.envelopes {
                self.net.send(&mut self.rng, self.now, envelope);
            }
            self.clients.replies(self.now, id, out.replies);
        }
    }

    fn slot_mut(&mut self, id: NodeId) -> Option<&mut Slot> {
        let i = self.ids.iter().position(|&n| n == id)?;
        self.slots.get_mut(i)
    }

    /// Draws this time unit's faults: crashes, restarts, partitions, heals.
    fn faults(&mut self) {
        let n = self.slots.len();
        if n >= 5 {
            self.moves.maybe_start(&mut self.rng, self.config.move_ppm);
        }
        if self.rng.random_range(0..1_000_000) < self.config.crash_ppm {
            let i = self.rng.random_range(0..n);
            self.crash(i);
        }
        if self.rng.random_range(0..1_000_000) < self.config.restart_ppm {
            let i = self.rng.random_range(0..n);
            self.restart(i);
        }
        if self.rng.random_range(0..1_000_000) < self.config.partition_ppm {
            self.partition();
        }
        if self.net.is_partitioned() && self.rng.random_range(0..1_000_000) < self.config.heal_ppm {
            self.net.heal();
        }
    }

    pub fn crash(&mut self, i: usize) {
        let slot = std::mem::replace(&mut self.slots[i], Slot::Down(SimDisk::default()));
        self.slots[i] = match slot {
            Slot::Up(node) => {
                self.crashes += 1;
                self.clients.node_lost(self.ids[i]);
                let mut disk = node.into_disk();
                disk.disarm();
                Slot::Down(disk)
            }
            down => down,
        };
    }

    pub fn restart(&mut self, i: usize) {
        let slot = std::mem::replace(&mut self.slots[i], Slot::Down(SimDisk::default()));
        self.slots[i] = match slot {
            Slot::Down(disk) => {
                let node =
                    Node::open(self.node_configs[i].clone(), disk).expect("reopen from its disk");
                Slot::Up(Box::new(node))
            }
            up => up,
        };
    }

    /// Isolates a random minority (or, rarely, cuts one link one way).
    fn partition(&mut self) {
        self.partitions += 1;
        if self.rng.random_bool(0.2) {
            let a = self.ids[self.rng.random_range(0..self.ids.len())];
            let b = self.ids[self.rng.random_range(0..self.ids.len())];
            if a != b {
                self.net.cut_one_way(a, b);
            }
            return;
        }
        let size = self
            .rng
            .random_range(1..=self.ids.len().div_ceil(2) - 1)
            .max(1);
        let mut side = self.ids.clone();
        while side.len() > size {
            let i = self.rng.random_range(0..side.len());
            side.remove(i);
        }
        let all = self.ids.clone();
        self.net.partition(&side, &all);
    }

    fn heal_all(&mut self) {
        self.faults_on = false;
        self.net.heal();
        self.net.faults = NetFaults::NONE;
        for i in 0..self.slots.len() {
            self.restart(i);
        }
    }

    /// Reads every key linearizably once the cluster is healed, retrying
    /// until each read succeeds; a key that cannot be read within the
    /// bound is a liveness failure.
    fn final_reads(&mut self) -> Result<(), String> {
        self.clients.start_final_reads();
        let deadline = self.now + 20_000;
        while !self.clients.final_reads_done() || !self.moves.active.is_empty() {
            if self.now > deadline {
                return Err(format!(
                    "seed {}: the healed cluster did not answer a read of every key and finish its {} replica \
                     move(s) within 20 s of simulated time\n{}",
                    self.seed,
                    self.moves.active.len(),
                    self.describe()
                ));
            }
            self.advance(false);
            self.clients
                .act_final(&mut self.rng, self.now, &mut self.slots, &self.ids);
        }
        Ok(())
    }
}

impl Sim {
    /// How many groups each running node leads.
    pub fn leaders_per_node(&self) -> Vec<usize> {
        self.slots
            .iter()
            .map(|slot| match slot {
                Slot::Up(node) => node.groups().filter(|g| g.is_leader()).count(),
                Slot::Down(_) => 0,
            })
            .collect()
    }

    /// Every replica's view, for a failure message.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (group, m) in &self.moves.active {
            out.push_str(&format!(
                "  moving group {group}: {} -> {}, target {:?}\n",
                m.from, m.to, self.moves.map.groups[*group as usize].replicas
            ));
        }
        for slot in &self.slots {
            let Slot::Up(node) = slot else {
                out.push_str("  a node is down\n");
                continue;
            };
            for g in node.groups() {
                out.push_str(&format!("  {}\n", g.describe()));
            }
        }
        out
    }
}

/// The seeds to run: `VELTRIX_CLUSTER_SEED` (one), or
/// `VELTRIX_CLUSTER_SEEDS` (how many, from a fixed base) or `default`.
pub fn seeds(default: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("VELTRIX_CLUSTER_SEED") {
        return vec![seed.parse().expect("VELTRIX_CLUSTER_SEED is a number")];
    }
    let count = std::env::var("VELTRIX_CLUSTER_SEEDS")
        .ok()
        .map(|s| s.parse().expect("VELTRIX_CLUSTER_SEEDS is a number"))
        .unwrap_or(default);
    (0..count).map(|i| 0x5eed_0000 + i).collect()
}

/// Keeps the per-node map type in one place for the clients.
pub type Leaders = BTreeMap<u32, NodeId>;
