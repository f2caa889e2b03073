//! The deterministic simulator: the engine's workers, the simulated
//! namespace and simulated clients, all stepped from one thread in an order
//! drawn from one seed. Crashes at random points; after each, recovery, then
//! a comparison of every key against a model of what was acknowledged.
//!
//! A failing run prints its seed; `VELTRIX_SIM_SEED=<seed>` replays exactly
//! that run (with a trace of every recovery and violation).
//! `VELTRIX_SIM_SEEDS=<n>` changes how many seeds a run explores.
//!
//! The oracle is strict (`sim/oracle.rs`): every acknowledged write is
//! present with exactly its value or a later one's; a write in flight at
//! the crash (or one that failed) is wholly present or wholly absent, and so
//! is every atomic batch; a deleted key stays deleted; every reply (`Done`,
//! `Deleted(existed)`, `NotApplied`, `Exists`, `Keys`, the old value of
//! `SET ... GET`) is exactly what the model says when it is determined. It
//! relaxes per key, only where a fault that was reported could have touched
//! the key.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod sim;

use sim::faults::{Damage, FaultClasses, Site};
use sim::{Class, Counters, FullClass, Options, Sim};

/// Fault classes of the main exploration. Each `false` here is a class the
/// engine is known to mishandle; its `known_bug_*` test below replays it.
const AT_REST_SITES: [Site; 7] = Site::ALL;
const RANDOM_LATENT_SECTOR_ERRORS: bool = true;
/// Off in the main run: with misdirected writes, an unacknowledged batch
/// was once seen torn after a crash (`known_bug_batch_torn_after_misdirected_writes`,
/// not yet diagnosed). The hidden segment they used to cause is fixed
/// (`regression_misdirected_segment_header_hid_a_segment`).
const MISDIRECTED_WRITES: bool = false;
/// Batches that include a key whose `SET ... GET` is still unanswered.
const BATCHES_OVER_A_PENDING_SET_GET: bool = true;
/// Whether an open under injected I/O errors may answer `CheckpointCorrupt`
/// (off: it must not; it once did, see
/// `regression_open_io_error_was_reported_as_checkpoint_corrupt`).
const TOLERATE_CHECKPOINT_CORRUPT_ON_OPEN_IO_ERRORS: bool = false;
/// Faults in checkpoint roots and bodies after a batch may have failed (a
/// flush or write error) in the run.
///
/// The bug this once excluded is fixed (see
/// `regression_failed_batch_under_a_checkpoint_watermark`); turning it
/// on showed nothing new once misdirected writes were off.
const CHECKPOINT_FAULTS_AFTER_A_FAILED_BATCH: bool = true;
/// At-rest faults the main exploration does not place (none since the
/// damaged tail frame was fixed:
/// `regression_damaged_tail_frame_was_cut_silently`).
const AT_REST_EXCLUDED: [(Site, Damage); 0] = [];
/// Many concurrent writers of any size on the full namespace (off: one
/// writer, frames of whole blocks).
const FULL_NAMESPACE_CONCURRENT_WRITERS: bool = true;
/// Reopen the full namespace with one more worker (off: the same count).
const FULL_NAMESPACE_REOPENED_WITH_MORE_WORKERS: bool = true;
/// On the full namespace, write after a single GC storm (off: storms one at
/// a time until free segments are above the reserve).
const FULL_NAMESPACE_ONE_GC_STORM: bool = true;

/// Seeds per namespace-full variant (each takes about 10 ms).
const FULL_SEEDS: u64 = 96;

/// The namespace-full variants the main run explores: the base class (one
/// writer at a time, the same worker count, storms until there is room),
/// each switch above turned on alone, and all three together. Each switch
/// once exposed an engine bug (the `regression_*` tests of the full
/// namespace).
fn full_classes() -> Vec<FullClass> {
    let base = FullClass {
        concurrent_writers: false,
        reopen_with_more_workers: false,
        one_storm: false,
    };
    let mut classes = vec![base.clone()];
    if FULL_NAMESPACE_CONCURRENT_WRITERS {
        classes.push(FullClass {
            concurrent_writers: true,
            ..base.clone()
        });
    }
    if FULL_NAMESPACE_REOPENED_WITH_MORE_WORKERS {
        classes.push(FullClass {
            reopen_with_more_workers: true,
            ..base.clone()
        });
    }
    if FULL_NAMESPACE_ONE_GC_STORM {
        classes.push(FullClass {
            one_storm: true,
            ..base.clone()
        });
    }
    classes.push(FullClass {
        concurrent_writers: FULL_NAMESPACE_CONCURRENT_WRITERS,
        reopen_with_more_workers: FULL_NAMESPACE_REOPENED_WITH_MORE_WORKERS,
        one_storm: FULL_NAMESPACE_ONE_GC_STORM,
    });
    classes.dedup();
    classes
}

fn fault_classes() -> FaultClasses {
    FaultClasses {
        random_latent_sector: RANDOM_LATENT_SECTOR_ERRORS,
        misdirected_write: MISDIRECTED_WRITES,
        sites: AT_REST_SITES.to_vec(),
        excluded: AT_REST_EXCLUDED.to_vec(),
        open_faults: true,
        open_power_cuts: true,
        checkpoint_faults_after_failed_batch: CHECKPOINT_FAULTS_AFTER_A_FAILED_BATCH,
    }
}

fn options() -> Options {
    Options {
        batches_over_pending_set_get: BATCHES_OVER_A_PENDING_SET_GET,
        tolerate_checkpoint_corrupt_on_open_io_errors:
            TOLERATE_CHECKPOINT_CORRUPT_ON_OPEN_IO_ERRORS,
        moves: false,
        pipeline_depth: 1,
    }
}

/// Seeds of the shard-move exploration under faults.
const ROUTING_FAULT_SEEDS: u64 = 500;

/// Clients connected to a worker's frontend keep this many requests in
/// flight in the routing explorations.
const PIPELINE_DEPTH: usize = 4;

/// The routing explorations' switches: shard moves, cross-worker batches,
/// pipelining clients.
fn routing_options() -> Options {
    Options {
        moves: true,
        pipeline_depth: PIPELINE_DEPTH,
        ..options()
    }
}

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("VELTRIX_SIM_SEED") {
        return vec![seed.parse().expect("VELTRIX_SIM_SEED is a u64")];
    }
    let n: u64 = std::env::var("VELTRIX_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..n).map(|i| 0x5EED_0000 + i).collect()
}

fn full_exploration() -> bool {
    std::env::var("VELTRIX_SIM_SEED").is_err() && std::env::var("VELTRIX_SIM_SEEDS").is_err()
}

/// Runs `seeds` of `class`; panics with the first failing seed (with
/// `VELTRIX_SIM_ALL` set, runs every seed and lists each failing one with
/// its first violation).
fn explore(class: &Class, seeds: &[u64], crashes: u32) -> (u64, Counters) {
    explore_with(class, seeds, crashes, &options())
}

/// [`explore`] with other workload and oracle switches.
fn explore_with(class: &Class, seeds: &[u64], crashes: u32, options: &Options) -> (u64, Counters) {
    let mut states = 0;
    let mut total = Counters::default();
    let mut failed = Vec::new();
    for &seed in seeds {
        let mut sim = Sim::new(seed, class.clone());
        sim.options = options.clone();
        // An engine panic (a failed assertion) is a violation of this seed.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match class {
            Class::Full(_) => sim.run_full(),
            _ => sim.run(crashes, 400),
        }));
        if let Err(panic) = ran {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            sim.violation(format!("the engine panicked: {what}"));
        }
        if !sim.oracle.violations.is_empty() {
            if std::env::var("VELTRIX_SIM_ALL").is_err() {
                panic!(
                    "simulation violated the model; replay with VELTRIX_SIM_SEED={seed} \
                     (this test; VELTRIX_SIM_TRACE=<key> follows one key):\n{}",
                    sim.oracle.violations.join("\n")
                );
            }
            failed.push(format!(
                "VELTRIX_SIM_SEED={seed}: {}",
                sim.oracle.violations[0]
            ));
        }
        states += sim.crash_states;
        total.merge(&sim.counters);
    }
    assert!(
        failed.is_empty(),
        "{} seeds violated the model:\n{}",
        failed.len(),
        failed.join("\n")
    );
    (states, total)
}

fn require(stats: &Counters, names: &[&str], at_least: u64) {
    for name in names {
        assert!(
            stats.get(name) >= at_least,
            "{name} must fire at least {at_least} times:\n{stats:?}"
        );
    }
}

/// The workers' shard movers stepped like the runtime's threads drive
/// them: shards move at random while requests run and crashes land, batches
/// spread over workers gather their shards and commit atomically, and the
/// caller-thread cache read path is checked (`sim/routing.rs`).
#[test]
fn shard_moves_and_cross_worker_batches_respect_the_model() {
    let (states, stats) = explore_with(&Class::CrashOnly, &seeds(200), 20, &routing_options());
    eprintln!("shard-move simulation: {states} crash states\n{stats:?}");
    if full_exploration() {
        assert!(states >= 4_000, "explored only {states} crash states");
        require(
            &stats,
            &[
                "shard_moves_requested",
                "shard_moves_landed",
                "requests_forwarded",
                "cross_worker_batches_accepted",
                "acked_batches",
                "crashes_with_shards_in_flight",
                "cache_reads_hit",
            ],
            50,
        );
    }
}

/// The shard-move exploration under the fault class: media faults, faults
/// at rest and faults and power cuts during open, with shards moving,
/// batches gathering across workers and clients pipelining, under the same
/// strict oracle.
#[test]
fn shard_moves_under_faults_respect_the_model() {
    let class = Class::Faults(fault_classes());
    let (states, stats) = explore_with(&class, &seeds(ROUTING_FAULT_SEEDS), 6, &routing_options());
    eprintln!("shard-move fault simulation: {states} crash states\n{stats:?}");
    if full_exploration() {
        assert!(
            states >= 6 * ROUTING_FAULT_SEEDS * 9 / 10,
            "explored only {states} crash states"
        );
        require(
            &stats,
            &[
                "shard_moves_landed",
                "requests_forwarded",
                "cross_worker_batches_accepted",
                "crashes_with_shards_in_flight",
                "io_errors",
                "corruption_reported",
                "opens_under_faults",
                "open_power_cuts",
            ],
            10,
        );
    }
}

#[test]
fn crash_states_respect_the_model() {
    let (states, stats) = explore(&Class::CrashOnly, &seeds(500), 20);
    eprintln!("crash-only simulation: {states} crash states\n{stats:?}");
    if full_exploration() {
        assert!(states >= 10_000, "explored only {states} crash states");
        require(&stats, &["acked_puts"], 10_000);
        require(
            &stats,
            &[
                "gc_segments_freed",
                "crashes_during_gc",
                "crashes_during_checkpoint",
                "segments_skipped",
            ],
            100,
        );
        require(&stats, &["checkpoints", "recoveries_from_checkpoint"], 500);
        // Key expiry: expiring writes, reads of them before their
        // deadline, reclamation, keys found gone after a crash because
        // they expired, and the clock jumping both ways.
        require(
            &stats,
            &[
                "expiring_writes",
                "expiring_values_served",
                "expired_reclaimed",
                "expired_keys_gone_after_recovery",
                "clock_jumps_back",
                "clock_jumps_forward",
            ],
            500,
        );
        require(
            &stats,
            &[
                "put_if_applied",
                "put_if_not_applied",
                "put_if_exact",
                "put_get_exact",
                "swaps_written",
                "swaps_unwritten",
                "deletes_exact",
                "exists_verified",
                "gets_verified",
                "scans_verified",
                "acked_batches",
                "batch_overwrites",
                "batch_deletes",
                "batch_fresh_puts",
                "batches_checked_at_recovery",
                "long_key_requests",
                "empty_values",
                "crash_cut_root_write_kept",
                "crash_cut_root_write_dropped",
                "epochs_ended_at_root_write",
            ],
            50,
        );
    }
}

#[test]
fn faults_are_detected_and_never_served() {
    let (states, stats) = explore(&Class::Faults(fault_classes()), &seeds(500), 6);
    eprintln!("fault simulation: {states} crash states\n{stats:?}");
    if full_exploration() {
        assert!(states >= 3_000, "explored only {states} crash states");
        require(
            &stats,
            &["corruption_reported", "io_errors", "random_read_bitflips"],
            10,
        );
        require(
            &stats,
            &[
                "opens_under_faults",
                "opens_under_faults_failed",
                "open_power_cuts",
                "open_power_cuts_mid_open",
                "open_power_cuts_failed_open",
            ],
            10,
        );
        // Not required: a crash that finds the superblock write uncovered
        // (`crash_cut_superblock_write_*`). A power cut that fails the
        // superblock's flush settles the write there (the sim decides a failed
        // flush's writes at once), so a crash sees it uncovered only when the
        // cut came before its flush was submitted: rare. Power cuts in the
        // middle of an open (required above) cover the superblock advance.
        for site in AT_REST_SITES {
            for (damage, name) in [(Damage::BitFlip, "bit_flip"), (Damage::Latent, "latent")] {
                if !AT_REST_EXCLUDED.contains(&(site, damage)) {
                    require(&stats, &[&format!("at_rest_{}_{name}", site.name())], 5);
                }
            }
        }
        if RANDOM_LATENT_SECTOR_ERRORS {
            require(&stats, &["random_latent_sector_errors"], 10);
        }
        if MISDIRECTED_WRITES {
            require(&stats, &["misdirected_epochs"], 10);
        }
    }
}

#[test]
fn a_full_namespace_fails_cleanly_and_recovers() {
    for full in full_classes() {
        eprintln!("full-namespace simulation of {full:?}");
        let (states, stats) = explore(&Class::Full(full.clone()), &seeds(FULL_SEEDS), 0);
        eprintln!("{states} crash states\n{stats:?}");
        if full_exploration() {
            require(
                &stats,
                &[
                    "full_namespaces",
                    "out_of_space",
                    "full_deletes_acked",
                    "full_writes_after_gc",
                ],
                FULL_SEEDS,
            );
            // After a single storm, writes wait for the rest of it instead;
            // a grown reserve takes storms until there is room.
            if !full.one_storm || full.reopen_with_more_workers {
                require(&stats, &["full_collected"], FULL_SEEDS);
            }
            if full.reopen_with_more_workers {
                require(
                    &stats,
                    &["full_delete_rounds_for_a_grown_reserve"],
                    FULL_SEEDS / 2,
                );
            }
        }
    }
}

/// Runs one frozen seed of `class` with `options`, as the exploration does.
fn run_seed(seed: u64, class: Class, options: Options, crashes: u32) {
    let mut sim = Sim::new(seed, class.clone());
    sim.options = options;
    match class {
        Class::Full(_) => sim.run_full(),
        _ => sim.run(crashes, 400),
    }
    assert!(
        sim.oracle.violations.is_empty(),
        "seed {seed} violated the model (replay with VELTRIX_SIM_SEED={seed}):\n{}",
        sim.oracle.violations.join("\n")
    );
}

/// Runs one frozen seed of the main exploration.
fn replay(seed: u64, class: Class, crashes: u32) {
    run_seed(seed, class, options(), crashes);
}

// The regression seeds below were found by the first simulator. Its
// workload and faults have since grown, so each seed now replays a
// different run: the bugs they caught are covered by the strict oracle
// (proved by `sim/mutate.sh`, which breaks the engine and expects a failing
// seed), and the seeds stay as runs of the simulator.

/// Caught a segment switch read as damage, and the torn remains of an
/// unacknowledged frame salvaged as if acknowledged (stale values after a
/// crash). Fixed by `prev_seq` in segment headers and erasing torn tails.
#[test]
fn regression_torn_tail_remains_were_salvaged() {
    replay(1592590654, Class::CrashOnly, 20);
}

/// Caught a latent sector error in a segment header failing the whole open.
/// Fixed by tolerant recovery reads that report unreadable blocks as damage.
#[test]
fn regression_unreadable_header_failed_open() {
    replay(1592590417, Class::Faults(fault_classes()), 4);
}

/// Caught the model rejecting a read parked behind a write that returned a
/// value written during its lifetime (the model was too strict).
#[test]
fn regression_read_parked_behind_a_write() {
    replay(1592590614, Class::CrashOnly, 20);
}

/// Caught a segment generation reused after a restart: a segment whose
/// header never became durable was reopened with the same generation, and
/// a stale frame in it became valid again. Fixed by claiming each open's
/// generations in the superblock.
#[test]
fn regression_segment_generation_reused() {
    replay(1592592085, Class::CrashOnly, 20);
}

/// Caught GC freeing the segment a stream had just left before the seal
/// written into it was durable (the commit path then wrote the seal into a
/// free segment and found it gone from the segment table: a panic). Fixed:
/// GC does not choose the segment its stream is sealing.
#[test]
fn regression_segment_freed_before_its_seal() {
    replay(1592590517, Class::CrashOnly, 20);
}

/// Caught a segment whose header was unreadable at one open put on the free
/// list, and its old records coming back at a later open. Fixed by keeping
/// such segments out of use.
#[test]
fn regression_unreadable_segment_came_back() {
    replay(1592590491, Class::Faults(fault_classes()), 4);
}

/// Runs one frozen seed of the shard-move exploration (crash-only).
fn replay_routing(seed: u64) {
    run_seed(seed, Class::CrashOnly, routing_options(), 20);
}

/// Caught a segment generation handed out twice: the segment holding the
/// newest generation had its header damaged (so recovery never saw that
/// generation) after a bit flip had sent the open to the superblock's older
/// copy (whose generation claim was one open behind). Recovery now takes
/// the generation of the first frame in a segment whose header is damaged
/// or missing as used.
#[test]
fn regression_generation_reused_after_a_damaged_header() {
    known_bug("main_faults", 1592593137);
}

/// Caught a segment whose header a latent sector error made unreadable:
/// reported as damage with no keys, though its acknowledged frames (the
/// newest records of six keys) were lost with it. Recovery now reads the
/// body of a segment whose header is damaged or unreadable and names the
/// keys whose newest record is there.
#[test]
fn regression_unreadable_segment_header_named_no_keys() {
    run_seed(
        1592590352,
        Class::Faults(fault_classes()),
        routing_options(),
        6,
    );
}

// The seeds below were found by the shard-move exploration once its
// clients pipelined (each failed on the engine before its fix).

/// Caught an atomic batch held while it gathered its shards (MSET of keys
/// on two workers) overtaken by a later SET of one of its keys from the same
/// client: the key ended with the batch's value. Fixed by stamping each
/// request a frontend submits with its place in that worker's order of each
/// shard, and handing requests to a core only in that order (`mover.rs`).
#[test]
fn regression_pipelined_batch_was_overtaken() {
    replay_routing(1592590521);
}

/// Caught a read parked behind a write of its key waiting for a later write
/// of the same client too (SET, GET, SET: the GET answered the second
/// value). Fixed: a parked read holds back later writes of its key.
#[test]
fn regression_parked_read_saw_a_later_write() {
    replay_routing(1592590512);
}

/// Caught a read parked behind a conditional put that planned to
/// `NotApplied` left behind when its shard moved: it resumed on a worker
/// without the shard and failed with `NotOwner`. Fixed: a shard with a
/// parked request is not released.
#[test]
fn regression_parked_read_lost_its_shard() {
    replay_routing(1592590408);
}

/// Caught GC collecting the stream's previous tail while the commit path
/// still had its seal to make durable (the engine panicked: "a sealed
/// segment is in the segment table"); found at 5,000 seeds. Fixed: GC
/// leaves a segment being sealed alone.
#[test]
fn regression_gc_collected_a_segment_being_sealed() {
    replay_routing(1592593362);
}

// Known engine bugs. Each runs the smallest failing seed found (by
// `search_known_bug`) of the main exploration with exactly that bug's class
// turned back on, and fails until the engine is fixed. Diagnoses are in the
// report of issue 12.

/// The configuration that exposes each known bug: the main one with its
/// class turned back on.
fn bug_config(bug: &str) -> (Class, Options, u32) {
    let mut classes = fault_classes();
    let mut options = options();
    let full = FullClass {
        concurrent_writers: false,
        reopen_with_more_workers: false,
        one_storm: false,
    };
    let class = match bug {
        "superblock_latent" => {
            classes
                .excluded
                .retain(|e| *e != (Site::Superblock, Damage::Latent));
            Class::Faults(classes)
        }
        "tail_frame" => {
            classes
                .excluded
                .retain(|(site, _)| *site != Site::TailFrame);
            Class::Faults(classes)
        }
        "segment_header_flip" => {
            classes
                .excluded
                .retain(|e| *e != (Site::SegmentHeader, Damage::BitFlip));
            Class::Faults(classes)
        }
        "failed_batch_checkpoint" => {
            classes.checkpoint_faults_after_failed_batch = true;
            Class::Faults(classes)
        }
        "checkpoint_corrupt_on_io_error" => {
            options.tolerate_checkpoint_corrupt_on_open_io_errors = false;
            Class::Faults(classes)
        }
        "batch_overtakes" => {
            options.batches_over_pending_set_get = true;
            Class::CrashOnly
        }
        "full_one_storm" => Class::Full(FullClass {
            one_storm: true,
            ..full
        }),
        "full_concurrent" => Class::Full(FullClass {
            concurrent_writers: true,
            ..full
        }),
        "full_more_workers" => Class::Full(FullClass {
            reopen_with_more_workers: true,
            ..full
        }),
        "main_faults" => Class::Faults(classes),
        "misdirected" => {
            classes.misdirected_write = true;
            Class::Faults(classes)
        }
        other => panic!("no known bug {other}"),
    };
    let crashes = match class {
        Class::CrashOnly => 20,
        _ => 6,
    };
    (class, options, crashes)
}

/// Lists the failing seeds of one known bug's configuration, smallest
/// first: `VELTRIX_SIM_BUG=<name> VELTRIX_SIM_SEEDS=<n> cargo test -p engine
/// --test simulator search_known_bug -- --ignored --nocapture`.
#[test]
#[ignore = "a search tool, not a test"]
fn search_known_bug() {
    let Ok(bug) = std::env::var("VELTRIX_SIM_BUG") else {
        eprintln!("set VELTRIX_SIM_BUG to one of bug_config's names");
        return;
    };
    let (class, options, crashes) = bug_config(&bug);
    for seed in seeds(100) {
        let mut sim = Sim::new(seed, class.clone());
        sim.options = options.clone();
        match class {
            Class::Full(_) => sim.run_full(),
            _ => sim.run(crashes, 400),
        }
        if let Some(first) = sim.oracle.violations.first() {
            eprintln!("VELTRIX_SIM_SEED={seed}: {first}");
        }
    }
}

fn known_bug(bug: &str, seed: u64) {
    let (class, options, crashes) = bug_config(bug);
    run_seed(seed, class, options, crashes);
}

/// Caught a latent sector error on one superblock copy failing the whole
/// open (both copies were read in one read). Fixed by reading each copy on
/// its own. The main run places these latent errors again.
#[test]
fn regression_unreadable_superblock_copy_failed_the_open() {
    known_bug("superblock_latent", 1592590336);
}

/// Caught an open cut by a power cut refused with `CheckpointCorrupt`: one
/// checkpoint was damaged at rest, the other could not be read because the
/// device stopped answering, and the refusal sent the operator to discard
/// checkpoints one of which may have been whole. An unread checkpoint on a
/// device that answers nothing is now an I/O failure whatever the other one
/// holds.
#[test]
fn regression_power_cut_open_refused_as_checkpoint_corrupt() {
    known_bug("main_faults", 1592590963);
}

/// Caught a stream's last acknowledged frame, damaged at rest (a bit flip
/// or an unreadable block), cut and erased as a torn tail without a report.
/// With one copy and nothing written after it, recovery cannot tell it from
/// the remains of a commit in flight at a crash; it now reports every cut
/// that holds something written (`RecoveryReport::torn_tails`, with the keys
/// it can name), keeps the cut's first block so a failed open destroys no
/// evidence, counts an unreadable block as written, and ends the log in a
/// segment whose first frame is damaged instead of taking that segment for
/// an orphan. The main run places tail-frame faults again.
#[test]
fn regression_damaged_tail_frame_was_cut_silently() {
    known_bug("tail_frame", 1592590338);
}

/// Caught a segment header that fails its crc taken for a free segment, its
/// records lost without a report. Fixed by `log::read::classify`: a header
/// block that is neither zeroes nor valid is damage, reported, and the
/// segment kept out of use. The main run places these flips again.
#[test]
fn regression_corrupt_segment_header_was_taken_for_free() {
    known_bug("segment_header_flip", 1592590492);
}

/// Caught a failed batch's sequence numbers falling under the next
/// checkpoint's watermark: recovery from that checkpoint skipped its records,
/// a fallback replayed them. Fixed by keeping a checkpoint's watermark below
/// a failed batch until a later batch is durable in its place, and by
/// answering a batch written under a failed flush with `Io`, not `Fenced`
/// (which promises the write never reached the device).
#[test]
fn regression_failed_batch_under_a_checkpoint_watermark() {
    known_bug("failed_batch_checkpoint", 1592590398);
}

/// Caught an I/O error reading a checkpoint root or body during open
/// counted as corruption: the open refused the store with
/// `CheckpointCorrupt`, whose remedy (discarding checkpoints) can bring
/// deleted keys back. Fixed: reads are retried, and an unreadable checkpoint
/// that leaves none to open from fails the open with the I/O error.
#[test]
fn regression_open_io_error_was_reported_as_checkpoint_corrupt() {
    known_bug("checkpoint_corrupt_on_io_error", 1592590388);
}

/// Caught a batch parked behind a SET ... GET of one of its keys overtaken
/// by a later write of another of its keys (per-key order broken). Fixed: a
/// parked write blocks later requests of all its keys.
#[test]
fn regression_parked_batch_was_overtaken() {
    known_bug("batch_overtakes", 1592590350);
}

/// Caught, on a full namespace after deletes, a GC storm whose remaining
/// victims waited for more writes (GC had found nothing to collect before
/// the deletes and idled until 256 more sequence numbers were written)
/// while the writes waited for the room the storm would make: both stalled.
/// Fixed: GC idles only with no storm victims left. The main run writes
/// after a single storm again.
#[test]
fn regression_gc_storm_stalled_writes_on_a_full_namespace() {
    known_bug("full_one_storm", 1592590336);
}

/// Caught, on a full namespace with many writers, GC's relocations queued
/// behind user writes that waited at the queue's front for the room GC
/// would make (each group commit took the writes, found no room, put them
/// back). Then GC churned: records relocated one small frame each took as
/// much room as their victim freed. Fixed: a batch refused room lets GC's
/// waiting requests go first; a segment taken from the reserve is not for
/// user puts while the store is at the reserve; GC packs its records into
/// frames filling the tail, and stops (so waiting writes fail with
/// `OutOfSpace`) when a victim freed no room. The main run fills with
/// concurrent writers again.
#[test]
fn regression_gc_relocations_waited_behind_writes_on_a_full_namespace() {
    known_bug("full_concurrent", 1592590336);
}

/// Caught, on a full store reopened with one more worker, deletes failing
/// with `OutOfSpace` (fixed earlier: the delete floor is at most 2
/// segments), then writes that never came back after deletes and GC: GC
/// relocated this worker's records out of victims it could not free, since
/// records of shards that had moved to another worker stayed live there,
/// and gave up on them for 2^16 sequence numbers even once they were empty.
/// Fixed: such a victim is left as it is (nothing relocated into the
/// reserve) and tried again as soon as nothing in it is live. The reserve
/// stays per worker, so the store's new reserve is two segments per added
/// worker larger than the one it was filled under: the simulator deletes
/// until that growth is covered too (at most a round of deletes per
/// segment it grew; docs/gc.md, "A full namespace"). The main run reopens
/// full stores with more workers again. (The seed is the smallest failing
/// one with the retry once empty taken out; 1592590336, the first seed the
/// bug was found with, passes without it now.)
#[test]
fn regression_writes_never_came_back_after_reopening_with_more_workers() {
    known_bug("full_more_workers", 1592590339);
}

/// Caught a segment that was at once a log tail and a checkpoint body of the
/// other slot (that slot's root was unreadable at an earlier open, so its
/// body segment went to the log; the root read again later): installing a
/// checkpoint there freed it and the log overwrote acknowledged records.
/// Fixed at open: a root's segments that a log holds, or that the loaded
/// checkpoint owns, are not that root's; and `install_checkpoint` asserts
/// that what it frees is referenced by nothing.
#[test]
fn regression_checkpoint_body_segment_was_also_a_log_segment() {
    known_bug("main_faults", 1592591636);
}

/// Caught a misdirected segment-header write (it landed two blocks into
/// its own segment) hiding the segment: recovery took it for free, and the
/// acknowledged frames in it were lost without a report. Recovery now
/// probes the first body block of every segment with no log header of its
/// own and reports the keys whose newest record sits in a headerless
/// segment; GC zeroes a freed segment's first body block (after its
/// header) so a free segment never looks like one.
#[test]
fn regression_misdirected_segment_header_hid_a_segment() {
    known_bug("misdirected", 1592590417);
}

#[test]
#[ignore = "known engine bug, half diagnosed: in an epoch with misdirected writes, an unacknowledged batch (write 178) shows on 1 of its 4 distinguishable keys after a crash. The one misdirected write was segment 5's header (LBA 80) landing at LBA 86, inside segment 5 while batch 178 was in flight; where the one applied key comes from is not yet known; see 1592590409"]
fn known_bug_batch_torn_after_misdirected_writes() {
    known_bug("misdirected", 1592590409);
}

/// Caught a get serving a value whose deadline passed while its record was
/// read from the device, when the key's reclamation (a delete) became
/// durable during the read: the index no longer held the key, so the check
/// at the read's end found nothing expired. One-write batches going out as
/// FUA writes (one completion, not two) made the reclamation fast enough to
/// land inside the read. Fixed: the record's own deadline decides.
#[test]
fn regression_a_read_served_a_value_that_expired_and_was_reclaimed_meanwhile() {
    run_seed(1592590586, Class::CrashOnly, options(), 20);
}
