//! The cluster simulator's tests: many seeded runs of a faulty cluster,
//! each checked for linearizability, plus the checks that the simulator
//! itself is deterministic and can tell a broken cluster from a sound one.
//! See `docs/cluster.md`, "The cluster simulator".

mod sim;

use sim::{seeds, Sim};

/// Runs every seed; on the first failure, names it and how to replay it.
#[test]
fn faulty_clusters_stay_linearizable() {
    let seeds = seeds(300);
    let (mut operations, mut crashes, mut torn, mut partitions, mut indeterminate) =
        (0, 0, 0, 0, 0);
    let mut moves = 0;
    for &seed in &seeds {
        let run = std::panic::catch_unwind(|| Sim::new(seed).run());
        let run = run.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("seed {seed}: panicked: {what}"))
        });
        match run {
            Ok(report) => {
                operations += report.operations;
                crashes += report.crashes;
                torn += report.torn_flushes;
                moves += report.moves_completed;
                partitions += report.partitions;
                indeterminate += report.summary.indeterminate_writes;
            }
            Err(e) => panic!(
                "{e}\nreplay: VELTRIX_CLUSTER_SEED={seed} cargo test -p cluster --test simulator"
            ),
        }
    }
    println!(
        "cluster simulator: {} seeds, {operations} operations, {crashes} crashes ({torn} in a flush), {partitions} partitions, {moves} replica moves, \
         {indeterminate} indeterminate writes: linearizable",
        seeds.len()
    );
    // The runs must have exercised what they claim to.
    if seeds.len() >= 50 {
        assert!(
            crashes > seeds.len() as u64 / 4,
            "too few crashes: {crashes}"
        );
        assert!(
            partitions > seeds.len() as u64 / 4,
            "too few partitions: {partitions}"
        );
        assert!(indeterminate > 0, "no write was ever indeterminate");
    }
}

/// The same seed gives the same run, envelope for envelope.
#[test]
fn a_seed_replays_exactly() {
    for seed in [7, 8, 9] {
        let a = Sim::new(seed).run().expect("seed passes");
        let b = Sim::new(seed).run().expect("seed passes");
        assert_eq!(
            (a.operations, a.crashes, a.partitions, a.envelopes),
            (b.operations, b.crashes, b.partitions, b.envelopes),
            "seed {seed} did not replay"
        );
    }
}

/// What idle groups cost: 64 groups on 3 nodes, no client, no fault, ten
/// seconds of simulated time after the leaders settle. Raft heartbeats
/// every group every 2 ticks; a node batches all groups' messages for one
/// peer into one envelope per step, so envelopes stay per node pair.
#[test]
fn idle_groups_batch_their_heartbeats() {
    use rand::SeedableRng;
    let seed = 11;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut config = sim::SimConfig::from_seed(&mut rng);
    config.nodes = 3;
    config.groups = 64;
    config.net = sim::net::NetFaults::NONE;
    let mut sim = Sim::with_config(seed, config, rng);
    sim.faults_on = false;
    for _ in 0..2_000 {
        sim.advance(false);
    }
    let (envelopes, messages) = (sim.net.sent, sim.net.messages);
    let seconds = 10;
    for _ in 0..seconds * 1_000 {
        sim.advance(false);
    }
    let envelopes = (sim.net.sent - envelopes) / seconds;
    let messages = (sim.net.messages - messages) / seconds;
    println!("idle, 64 groups on 3 nodes: {messages} Raft messages/s in {envelopes} envelopes/s");
    let leaders: Vec<usize> = sim.leaders_per_node();
    assert_eq!(
        leaders.iter().sum::<usize>(),
        64,
        "every group has one leader: {leaders:?}"
    );
    // 64 groups × 2 followers × (heartbeat + response) × 50 heartbeats/s.
    assert!(
        messages >= 64 * 2 * 2 * 40,
        "fewer messages than heartbeats need: {messages}"
    );
    // Envelopes: at most one per node pair and direction per time unit.
    assert!(
        envelopes <= 3 * 2 * 1_000,
        "envelopes not batched: {envelopes}/s"
    );
    assert!(
        messages > 5 * envelopes,
        "batching saved little: {messages} messages in {envelopes} envelopes"
    );
    assert_balanced(&sim, "at rest");

    // A node down for 3 s: its groups elect other leaders. Back up, the
    // preferred leaders take their groups back.
    sim.crash(0);
    for _ in 0..3_000 {
        sim.advance(false);
    }
    assert_eq!(sim.leaders_per_node()[0], 0);
    sim.restart(0);
    for _ in 0..5_000 {
        sim.advance(false);
    }
    assert_balanced(&sim, "after a node came back");
}

fn assert_balanced(sim: &Sim, when: &str) {
    let leaders = sim.leaders_per_node();
    let (min, max) = (leaders.iter().min().copied(), leaders.iter().max().copied());
    assert_eq!(
        leaders.iter().sum::<usize>(),
        64,
        "{when}: every group has one leader: {leaders:?}"
    );
    assert!(
        max.zip(min).is_some_and(|(max, min)| max - min <= 1),
        "{when}: leaders not balanced: {leaders:?}"
    );
}

/// Seeds that once found a bug, kept as they were found (each runs in
/// milliseconds): 1592590355, an armed torn flush left on a disk and spent
/// after the restart; 1592590768, a heartbeat to a removed replica reaching
/// the one added back on the same node; 1592591146, a leader applying its
/// own removal (raft-rs panicked at its next append).
#[test]
fn regression_seeds() {
    for seed in [1592590355, 1592590768, 1592591146] {
        if let Err(e) = Sim::new(seed).run() {
            panic!(
                "{e}\nreplay: VELTRIX_CLUSTER_SEED={seed} cargo test -p cluster --test simulator"
            );
        }
    }
}
