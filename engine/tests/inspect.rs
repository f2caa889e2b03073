//! `engine::inspect` on a file-backed store: a clean store verifies, and
//! flipped bytes are reported with their location.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use engine::inspect::{inspect, InspectReport, ProblemKind};
use engine::{Engine, EngineConfig};
use nvme::Namespace;

const NAMESPACE_BYTES: u64 = 32 << 20;

fn namespace(path: &Path) -> Arc<dyn Namespace> {
    common::file_namespace(path, NAMESPACE_BYTES)
}

/// Formats, writes `victim` first and then 200 more keys (one frame each,
/// over two workers), deletes 10, and closes.
fn store(path: &Path) {
    let ns = common::formatted_namespace(path, NAMESPACE_BYTES, 1 << 20);
    let engine = Engine::open(
        ns,
        &EngineConfig {
            workers: 2,
            value_bytes_max: 256 << 10,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    engine.put(b"victim", &[0x11; 3000]).unwrap();
    for i in 0..200u32 {
        engine
            .put(format!("key{i}").as_bytes(), &[i as u8; 100])
            .unwrap();
    }
    for i in 0..10u32 {
        engine.delete(format!("key{i}").as_bytes()).unwrap();
    }
    engine.shutdown();
}

fn run(path: &Path) -> InspectReport {
    let mut calls = 0;
    let report = inspect(namespace(path).as_ref(), &mut |_, _| calls += 1).unwrap();
    assert!(calls > 0, "progress is reported");
    report
}

fn flip(path: &Path, at: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
}

#[test]
fn a_clean_store_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    store(&path);
    let report = run(&path);
    assert_eq!(report.problems, vec![]);
    assert!(!report.corrupt());
    assert_eq!(report.superblocks_valid, 2);
    assert_eq!(report.records, 211);
    assert_eq!((report.puts, report.deletes), (201, 10));
    assert_eq!(report.live_keys, 191);
    assert_eq!(report.frames, 211, "each put was its own group commit");
    assert!(report.segments_used >= 2, "both workers wrote");
    // The clean shutdown took an index checkpoint.
    assert_eq!(report.checkpoint, Some(1));
    assert_eq!(report.segments_checkpoint, 1);
    assert_eq!(
        report.segments_used + report.segments_free + report.segments_checkpoint,
        report.layout.segment_count - 1
    );
}

/// GC drops a delete once a checkpoint reflects it, while the put it
/// deleted may live on in an older segment. Counting live keys from the log
/// alone would then count the deleted keys again; inspect starts from the
/// checkpoint, as recovery does.
#[test]
fn live_keys_start_from_the_checkpoint_when_gc_dropped_deletes() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let ns = common::formatted_namespace(&path, NAMESPACE_BYTES, 1 << 20);
    let engine = Engine::open(
        ns,
        &EngineConfig {
            workers: 1,
            value_bytes_max: 256 << 10,
            checkpoint_records: 0,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    // One segment of 120 keys (8 KiB frames), of which 5 are deleted later:
    // 96% live, so GC leaves it alone.
    for i in 0..120u32 {
        engine
            .put(format!("key{i}").as_bytes(), &[i as u8; 8000])
            .unwrap();
    }
    // The deletes go to the next segment, among overwrites of one key that
    // leave it all garbage.
    engine.put(b"pad", &[0; 100 << 10]).unwrap();
    for i in 0..5u32 {
        engine.delete(format!("key{i}").as_bytes()).unwrap();
    }
    for round in 0..12u8 {
        engine.put(b"pad", &[round; 100 << 10]).unwrap();
    }
    // Both root slots must reflect the deletes before GC may drop them
    // (an open falls back to the other slot if the newest is damaged).
    engine.checkpoint().unwrap();
    engine.checkpoint().unwrap();
    let freed = || engine.stats().gc_segments_freed.load(Ordering::Relaxed);
    engine.gc_storm();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while freed() == 0 {
        assert!(std::time::Instant::now() < deadline, "GC freed nothing");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(engine.get(b"key0").unwrap().is_none());
    engine.shutdown();

    let report = run(&path);
    assert_eq!(report.problems, vec![]);
    assert!(report.checkpoint.is_some());
    assert!(
        report.deletes < 5,
        "GC dropped the deletes: the case under test ({} left)",
        report.deletes
    );
    assert_eq!(report.live_keys, 116, "115 keys and pad");
    // Keys key5..key119 (5 of 4 bytes, 90 of 5, 20 of 6) with 8000-byte
    // values, and pad's 100 KiB.
    let keys = 5 * 4 + 90 * 5 + 20 * 6;
    assert_eq!(report.live_bytes, keys + 115 * 8000 + 3 + (100 << 10));
}

#[test]
fn a_damaged_checkpoint_body_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    store(&path);
    // The body follows its segment's header block; every key is in it.
    let bytes = std::fs::read(&path).unwrap();
    let header = bytes
        .chunks(1 << 20)
        .position(|s| &s[0..8] == b"VXSEGMT1" && s[12] == 2)
        .expect("a checkpoint segment");
    flip(&path, (header as u64) * (1 << 20) + 4096 + 200);
    let report = run(&path);
    assert!(report.corrupt(), "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == engine::inspect::ProblemKind::Checkpoint),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_flipped_byte_in_the_middle_of_a_log_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    store(&path);
    let bytes = std::fs::read(&path).unwrap();
    let key_at = bytes.windows(6).position(|w| w == b"victim").unwrap();
    let flipped = key_at as u64 + 1000;
    flip(&path, flipped);
    let report = run(&path);
    assert!(report.corrupt());
    let records: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Record)
        .collect();
    assert_eq!(records.len(), 1, "{:#?}", report.problems);
    let p = records[0];
    let lba_bytes = u64::from(report.layout.lba_bytes);
    let record_at =
        p.location.segment as u64 * report.layout.segment_bytes + u64::from(p.location.offset);
    // The record header (24 bytes) sits right before its key.
    assert_eq!(record_at, key_at as u64 - 24);
    assert_eq!(p.lba, record_at / lba_bytes);
    assert!(p.detail.contains("victim"), "{}", p.detail);
    // Everything else still counts.
    assert_eq!(report.records, 210);
}

#[test]
fn a_damaged_superblock_copy_or_segment_header_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    store(&path);
    let clean = run(&path);
    let lba_bytes = u64::from(clean.layout.lba_bytes);
    flip(&path, lba_bytes + 20); // copy B's UUID
    flip(&path, clean.layout.segment_bytes + 40); // segment 1's header
    let report = run(&path);
    assert!(report.corrupt());
    assert_eq!(report.superblocks_valid, 1);
    let kinds: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.location.segment, p.lba))
        .collect();
    assert!(
        kinds.contains(&(ProblemKind::Superblock, 0, 1)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(
            ProblemKind::SegmentHeader,
            1,
            clean.layout.segment_bytes / lba_bytes
        )),
        "{kinds:?}"
    );
}

#[test]
fn damage_to_the_last_frame_is_a_torn_tail_as_recovery_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    store(&path);
    // One more write: the last frame of its stream.
    let engine = Engine::open(
        namespace(&path),
        &EngineConfig {
            workers: 2,
            value_bytes_max: 256 << 10,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    engine.put(b"zzz-last", &[0x33; 500]).unwrap();
    engine.shutdown();
    let bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(8).position(|w| w == b"zzz-last").unwrap();
    flip(&path, at as u64 + 100);
    let report = run(&path);
    assert!(!report.corrupt(), "{:#?}", report.problems);
    assert!(report
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::TornTail));
}
