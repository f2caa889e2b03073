//! A batch whose frame is one write goes out as one FUA write, with no
//! flush after it (`docs/format/wal.md`, "Group commit and
//! acknowledgement"): it is durable when acknowledged, and a failed FUA
//! write fences the worker as a failed flush does.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::run;
use engine::{format, open_workers, EngineConfig, EngineError, FormatOptions, Op, Reply};
use nvme::sim::{FaultConfig, SimConfig, SimNamespace};
use nvme::Namespace;

fn config() -> EngineConfig {
    EngineConfig {
        commit_interval_us: 0,
        key_bytes_max: 64,
        value_bytes_max: 8 << 10,
        checkpoint_records: 0,
        checkpoint_interval_s: 0,
        fua_commit: true,
        ..EngineConfig::default()
    }
}

fn fresh(seed: u64) -> Arc<SimNamespace> {
    let sim = SimNamespace::new(SimConfig::new(2048, seed));
    let mut options = FormatOptions::new([9; 16]);
    options.segment_bytes = 64 << 10;
    format(sim.as_ref() as &dyn Namespace, &options).expect("format");
    sim
}

fn put(opened: &mut engine::Opened, id: u64, key: &[u8]) -> Reply {
    run(opened, id, Op::Put(key.to_vec(), vec![id as u8; 100]))
}

#[test]
fn a_one_write_batch_is_one_fua_write_and_durable_when_acknowledged() {
    for seed in 0..8 {
        let sim = fresh(seed);
        let namespace = Arc::clone(&sim) as Arc<dyn Namespace>;
        let mut opened = open_workers(namespace, &config(), 1).expect("open");
        // The first batch opens a segment: header, frame, then a flush.
        assert_eq!(put(&mut opened, 1, b"first"), Reply::Done);
        let before = sim.stats();
        assert_eq!(put(&mut opened, 2, b"second"), Reply::Done);
        let after = sim.stats();
        assert_eq!(after.fua_writes - before.fua_writes, 1, "seed {seed}");
        assert_eq!(after.writes - before.writes, 1, "seed {seed}");
        assert_eq!(after.flushes, before.flushes, "seed {seed}: no flush");
        assert_eq!(sim.uncovered_writes(), 0, "seed {seed}");
        drop(opened);
        // Whatever a crash keeps, both acknowledged puts are there.
        for crash in 0..4 {
            let crashed = sim.crash(crash) as Arc<dyn Namespace>;
            let mut reopened = open_workers(crashed, &config(), 1).expect("reopen");
            for (id, key) in [(1u64, &b"first"[..]), (2, b"second")] {
                let got = run(&mut reopened, 10 + id, Op::Get(key.to_vec()));
                assert_eq!(got, Reply::Value(Some(vec![id as u8; 100])), "seed {seed}");
            }
        }
    }
}

#[test]
fn a_failed_fua_write_fences_the_worker_as_a_failed_flush_does() {
    let sim = fresh(1);
    let namespace = Arc::clone(&sim) as Arc<dyn Namespace>;
    let mut opened = open_workers(namespace, &config(), 1).expect("open");
    assert_eq!(put(&mut opened, 1, b"first"), Reply::Done);
    sim.set_faults(FaultConfig {
        transient_error: 1.0,
        ..FaultConfig::default()
    });
    let failed = put(&mut opened, 2, b"second");
    assert!(
        matches!(failed, Reply::Failed(EngineError::Io(_))),
        "{failed:?}"
    );
    sim.set_faults(FaultConfig::default());
    // Its failure may have been the flush's: nothing more is acknowledged
    // until the engine is reopened.
    let refused = put(&mut opened, 3, b"third");
    assert!(
        matches!(refused, Reply::Failed(EngineError::Fenced(_))),
        "{refused:?}"
    );
    assert_eq!(opened.stats().flush_errors.load(Ordering::Relaxed), 1);
    drop(opened);
    let mut reopened = open_workers(sim as Arc<dyn Namespace>, &config(), 1).expect("reopen");
    assert_eq!(put(&mut reopened, 4, b"fourth"), Reply::Done);
}
