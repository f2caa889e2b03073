//! Garbage collection end to end on a file-backed namespace: overwrites
//! keep going far past the namespace's capacity, a full namespace refuses
//! writes but not reads or deletes and recovers through GC, and a GC storm
//! frees space without losing or resurrecting anything, across restarts.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Engine, EngineConfig, EngineError};
use nvme::Namespace;

const NAMESPACE_BYTES: u64 = 32 << 20;
const SEGMENT_BYTES: u64 = 1 << 20;

fn namespace(path: &Path) -> Arc<dyn Namespace> {
    common::file_namespace(path, NAMESPACE_BYTES)
}

fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        value_bytes_max: 256 << 10,
        ..EngineConfig::default()
    }
}

fn fresh(path: &Path) -> Engine {
    let ns = common::formatted_namespace(path, NAMESPACE_BYTES, SEGMENT_BYTES);
    Engine::open(ns, &config()).unwrap()
}

fn reopen(path: &Path) -> Engine {
    Engine::open(namespace(path), &config()).unwrap()
}

fn value(key: u32, round: u32, len: usize) -> Vec<u8> {
    let mut v = format!("{key}:{round}:").into_bytes();
    v.resize(len, (round % 251) as u8);
    v
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

/// Waits until `done` holds or `limit` passes.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn overwrites_run_for_ten_times_the_capacity_with_flat_space() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    let engine = fresh(&path);
    let keys = 200u32;
    let len = 16 << 10;
    // 10× the namespace's bytes, overwriting a fixed key set (about 3 MiB
    // live in a 32 MiB namespace).
    let rounds = (10 * NAMESPACE_BYTES / (u64::from(keys) * len as u64)) as u32 + 1;
    let mut free_seen = Vec::new();
    for round in 0..rounds {
        for k in 0..keys {
            engine
                .put(&key(k), &value(k, round, len))
                .unwrap_or_else(|e| {
                    panic!(
                        "round {round} of {rounds}, key {k}: {e} ({:?})",
                        engine.space()
                    )
                });
        }
        free_seen.push(engine.space().free);
    }
    let stats = engine.stats();
    assert!(stats.gc_segments_freed.load(Ordering::Relaxed) > 0);
    // Space stays flat: the second half of the run never has fewer free
    // segments than GC's reserve.
    let space = engine.space();
    let late_min = free_seen[free_seen.len() / 2..]
        .iter()
        .min()
        .copied()
        .unwrap();
    assert!(
        late_min >= space.reserve,
        "free fell to {late_min}: {space:?}"
    );
    for k in 0..keys {
        assert_eq!(
            engine.get(&key(k)).unwrap(),
            Some(value(k, rounds - 1, len))
        );
    }
    drop(engine);
    let engine = reopen(&path);
    assert!(engine.recovery_report().damage.is_empty());
    for k in 0..keys {
        assert_eq!(
            engine.get(&key(k)).unwrap(),
            Some(value(k, rounds - 1, len))
        );
    }
}

#[test]
fn a_full_namespace_refuses_writes_keeps_reads_and_recovers_through_gc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    let engine = fresh(&path);
    let len = 64 << 10;
    let mut written = 0u32;
    let error = loop {
        match engine.put(&key(written), &value(written, 0, len)) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 10_000, "the namespace never filled");
    };
    assert_eq!(error, EngineError::OutOfSpace);
    assert!(error.to_string().contains("reads still work"), "{error}");
    assert!(written > 100, "filled after only {written} writes");
    // Reads keep working.
    for k in (0..written).step_by(7) {
        assert_eq!(engine.get(&key(k)).unwrap(), Some(value(k, 0, len)));
    }
    // Deletes still work on a full namespace, and GC turns them into room.
    for k in (0..written).filter(|k| k % 2 == 0) {
        assert!(engine.delete(&key(k)).unwrap(), "delete of {k}");
    }
    let before = engine.space().free;
    engine.gc_storm();
    assert!(
        wait_for(Duration::from_secs(30), || engine.space().free > before + 4),
        "GC freed nothing: {:?} {:?}",
        engine.space(),
        engine.stats()
    );
    engine.put(b"after", b"room again").unwrap();
    for k in 0..written {
        let expected = (k % 2 == 1).then(|| value(k, 0, len));
        assert_eq!(engine.get(&key(k)).unwrap(), expected, "key {k}");
    }
    // Nothing deleted comes back after a restart, and nothing live is lost.
    drop(engine);
    let engine = reopen(&path);
    assert!(engine.recovery_report().damage.is_empty());
    for k in 0..written {
        let expected = (k % 2 == 1).then(|| value(k, 0, len));
        assert_eq!(
            engine.get(&key(k)).unwrap(),
            expected,
            "key {k} after restart"
        );
    }
    assert_eq!(engine.get(b"after").unwrap(), Some(b"room again".to_vec()));
}

#[test]
fn a_storm_frees_garbage_and_free_space_goes_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    let engine = fresh(&path);
    let len = 8 << 10;
    // Three rounds over 300 keys: two thirds of what was written is garbage.
    for round in 0..3 {
        for k in 0..300 {
            engine.put(&key(k), &value(k, round, len)).unwrap();
        }
    }
    let before = engine.space();
    assert!(before.free < before.segments - 4, "{before:?}");
    engine.gc_storm();
    assert!(
        wait_for(Duration::from_secs(30), || {
            engine.space().free >= before.free + 2
                && engine.stats().gc_segments_freed.load(Ordering::Relaxed) >= 2
        }),
        "{:?} {:?}",
        engine.space(),
        engine.stats()
    );
    let after = engine.space();
    assert_eq!(
        after.live_bytes, before.live_bytes,
        "live bytes are unchanged by GC"
    );
    for k in 0..300 {
        assert_eq!(engine.get(&key(k)).unwrap(), Some(value(k, 2, len)));
    }
    drop(engine);
    let engine = reopen(&path);
    assert!(engine.recovery_report().damage.is_empty());
    // The storm may have freed more before shutdown; never less.
    let reopened = engine.space();
    assert!(reopened.free >= after.free, "{reopened:?} {after:?}");
    assert_eq!(reopened.live_bytes, before.live_bytes);
    // The offline inspector accepts the gaps GC left (the seals mark them).
    drop(engine);
    let report = engine::inspect::inspect(namespace(&path).as_ref(), &mut |_, _| {}).unwrap();
    assert!(!report.corrupt(), "{:?}", report.problems);
    let engine = reopen(&path);
    for k in 0..300 {
        assert_eq!(engine.get(&key(k)).unwrap(), Some(value(k, 2, len)));
    }
}

/// Garbage between two runs of cold data: GC collects segments in the
/// middle of each stream, and recovery and the inspector must both accept
/// the gaps (the seals say where each stream resumes).
#[test]
fn gaps_in_the_middle_of_a_stream_recover_and_inspect_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    let engine = fresh(&path);
    let len = 32 << 10;
    let phase = |engine: &Engine, prefix: &str, round: u32| {
        for k in 0..96u32 {
            let key = format!("{prefix}-{k:03}").into_bytes();
            engine.put(&key, &value(k, round, len)).unwrap();
        }
    };
    phase(&engine, "cold-a", 0);
    phase(&engine, "hot", 0);
    phase(&engine, "cold-b", 0);
    phase(&engine, "hot", 1);
    let before = engine.space();
    engine.gc_storm();
    assert!(
        wait_for(Duration::from_secs(30), || engine.space().free
            >= before.free + 2),
        "{:?} {:?}",
        engine.space(),
        engine.stats()
    );
    drop(engine);
    let report = engine::inspect::inspect(namespace(&path).as_ref(), &mut |_, _| {}).unwrap();
    assert!(!report.corrupt(), "{:?}", report.problems);
    let engine = reopen(&path);
    assert_eq!(engine.recovery_report().damage, vec![]);
    for k in 0..96u32 {
        for (prefix, round) in [("cold-a", 0), ("hot", 1), ("cold-b", 0)] {
            let key = format!("{prefix}-{k:03}").into_bytes();
            assert_eq!(
                engine.get(&key).unwrap(),
                Some(value(k, round, len)),
                "{prefix}-{k}"
            );
        }
    }
}
