//! Index checkpoints on a file-backed namespace: recovery starts from the
//! newest one and replays only the log after it, falls back to the other
//! slot when the newest is damaged, and refuses the store when both are.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use engine::{Engine, EngineConfig, OpenError};
use nvme::Namespace;

const SEGMENT_BYTES: u64 = 1 << 20;
const BLOCK: u64 = 4096;

const NAMESPACE_BYTES: u64 = 64 << 20;

fn namespace(path: &Path) -> Arc<dyn Namespace> {
    common::file_namespace(path, NAMESPACE_BYTES)
}

/// No automatic checkpoints (nor one at shutdown): the tests take them.
fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        value_bytes_max: 64 << 10,
        checkpoint_records: 0,
        ..EngineConfig::default()
    }
}

fn fresh(path: &Path) -> Engine {
    let ns = common::formatted_namespace(path, NAMESPACE_BYTES, SEGMENT_BYTES);
    Engine::open(ns, &config()).unwrap()
}

fn value(i: u32, round: u32) -> Vec<u8> {
    vec![(i + round) as u8; 900 + (i as usize % 300)]
}

/// Writes keys 0..n with `round`'s values.
fn write_round(engine: &Engine, n: u32, round: u32) {
    for i in 0..n {
        engine
            .put(format!("k{i}").as_bytes(), &value(i, round))
            .unwrap();
    }
}

fn check(engine: &Engine, n: u32, round: u32, deleted: &[u32]) {
    for i in 0..n {
        let got = engine.get(format!("k{i}").as_bytes()).unwrap();
        if deleted.contains(&i) {
            assert_eq!(got, None, "k{i} was deleted");
        } else {
            assert_eq!(got, Some(value(i, round)), "k{i}");
        }
    }
}

fn flip(path: &Path, offset: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0x10;
    file.write_all_at(&byte, offset).unwrap();
}

#[test]
fn recovery_replays_only_the_log_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let engine = fresh(&path);
    write_round(&engine, 8000, 0);
    engine.checkpoint().unwrap();
    // After the checkpoint: overwrites and deletes, which replay must apply
    // on top of it (a deleted key must not come back from the checkpoint).
    for i in 0..300 {
        engine
            .put(format!("k{i}").as_bytes(), &value(i, 1))
            .unwrap();
    }
    let deleted: Vec<u32> = (300..400).collect();
    for i in &deleted {
        assert!(engine.delete(format!("k{i}").as_bytes()).unwrap());
    }
    assert_eq!(
        engine
            .stats()
            .checkpoints
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(engine);

    let engine = Engine::open(namespace(&path), &config()).unwrap();
    let report = engine.recovery_report().clone();
    assert_eq!(report.checkpoint, Some(1), "{report:?}");
    assert!(report.segments_skipped >= 2, "{report:?}");
    assert!(
        report.records < 1000,
        "only the log after the checkpoint is replayed: {report:?}"
    );
    assert_eq!(report.keys, 7900);
    for i in 0..300 {
        assert_eq!(
            engine.get(format!("k{i}").as_bytes()).unwrap(),
            Some(value(i, 1))
        );
    }
    for i in 300..8000 {
        let got = engine.get(format!("k{i}").as_bytes()).unwrap();
        if deleted.contains(&i) {
            assert_eq!(got, None, "k{i} was deleted after the checkpoint");
        } else {
            assert_eq!(got, Some(value(i, 0)), "k{i}");
        }
    }
    let space = engine.space();
    assert!(space.checkpoint >= 1, "{space:?}");
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_other_slot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let engine = fresh(&path);
    write_round(&engine, 2000, 0);
    engine.checkpoint().unwrap();
    write_round(&engine, 2000, 1);
    engine.checkpoint().unwrap();
    write_round(&engine, 500, 2);
    drop(engine);

    // Checkpoint 2 lives in root slot 0 (block 2 of segment 0): damage it.
    flip(&path, 2 * BLOCK + 20);
    let engine = Engine::open(namespace(&path), &config()).unwrap();
    assert_eq!(engine.recovery_report().checkpoint, Some(1));
    for i in 0..2000 {
        let round = if i < 500 { 2 } else { 1 };
        assert_eq!(
            engine.get(format!("k{i}").as_bytes()).unwrap(),
            Some(value(i, round)),
            "k{i}"
        );
    }
    // The next checkpoint takes the damaged slot's place.
    engine.checkpoint().unwrap();
    drop(engine);
    let engine = Engine::open(namespace(&path), &config()).unwrap();
    assert_eq!(engine.recovery_report().checkpoint, Some(2));
    check(&engine, 500, 2, &[]);
}

#[test]
fn a_damaged_checkpoint_body_is_detected_and_the_other_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let engine = fresh(&path);
    write_round(&engine, 3000, 0);
    engine.checkpoint().unwrap();
    write_round(&engine, 3000, 1);
    engine.checkpoint().unwrap();
    drop(engine);
    // Find checkpoint 2's body segment from its header (kind 2 after the
    // 8-byte magic, crc and kind) and flip a byte in the body.
    let file = std::fs::File::open(&path).unwrap();
    let mut body_segment = None;
    for segment in 1..64u64 {
        let mut header = [0u8; 64];
        file.read_exact_at(&mut header, segment * SEGMENT_BYTES)
            .unwrap();
        let kind = u32::from_le_bytes(header[12..16].try_into().unwrap());
        let generation = u64::from_le_bytes(header[32..40].try_into().unwrap());
        if &header[0..8] == b"VXSEGMT1" && kind == 2 && generation == 2 {
            body_segment = Some(segment);
        }
    }
    let segment = body_segment.expect("checkpoint 2 has a body segment");
    flip(&path, segment * SEGMENT_BYTES + BLOCK + 100);
    let engine = Engine::open(namespace(&path), &config()).unwrap();
    assert_eq!(engine.recovery_report().checkpoint, Some(1));
    check(&engine, 3000, 1, &[]);
}

#[test]
fn both_checkpoints_damaged_refuses_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let engine = fresh(&path);
    write_round(&engine, 100, 0);
    engine.checkpoint().unwrap();
    engine.checkpoint().unwrap();
    drop(engine);
    flip(&path, 2 * BLOCK + 20);
    flip(&path, 3 * BLOCK + 20);
    match Engine::open(namespace(&path), &config()) {
        Err(OpenError::CheckpointCorrupt(why)) => {
            assert!(why.contains("slot A") && why.contains("slot B"), "{why}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a store whose checkpoints are both damaged"),
    }
    // The way out: discard them and replay the whole log.
    let discard = EngineConfig {
        discard_checkpoints: true,
        ..config()
    };
    let engine = Engine::open(namespace(&path), &discard).unwrap();
    assert_eq!(engine.recovery_report().checkpoint, None);
    check(&engine, 100, 0, &[]);
    drop(engine);
    let engine = Engine::open(namespace(&path), &config()).unwrap();
    check(&engine, 100, 0, &[]);
}

#[test]
fn a_clean_shutdown_checkpoints_so_the_next_open_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let ns = common::formatted_namespace(&path, NAMESPACE_BYTES, SEGMENT_BYTES);
    let config = EngineConfig {
        workers: 2,
        value_bytes_max: 64 << 10,
        ..EngineConfig::default()
    };
    let engine = Engine::open(ns, &config).unwrap();
    write_round(&engine, 3000, 0);
    engine.shutdown();
    let engine = Engine::open(namespace(&path), &config).unwrap();
    let report = engine.recovery_report().clone();
    assert_eq!(report.checkpoint, Some(1), "{report:?}");
    assert_eq!(report.records, 0, "{report:?}");
    check(&engine, 3000, 0, &[]);
}

#[test]
fn a_full_namespace_fails_the_checkpoint_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let engine = fresh(&path);
    let big = vec![0x5A; 60 << 10];
    let mut written = 0u32;
    loop {
        match engine.put(format!("fill{written}").as_bytes(), &big) {
            Ok(()) => written += 1,
            Err(engine::EngineError::OutOfSpace) => break,
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(written < 2000, "the namespace never filled");
    }
    // The free segments left are GC's reserve: no room for a checkpoint.
    assert_eq!(
        engine.checkpoint(),
        Err(engine::EngineError::CheckpointFailed)
    );
    let stats = engine.stats();
    assert_eq!(
        stats
            .checkpoint_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(engine);
    let engine = Engine::open(namespace(&path), &config()).unwrap();
    assert_eq!(engine.recovery_report().checkpoint, None);
    assert_eq!(engine.recovery_report().keys, u64::from(written));
    assert_eq!(engine.get(b"fill0").unwrap(), Some(big.clone()));
}
