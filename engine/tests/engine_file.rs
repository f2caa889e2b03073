//! The engine end to end on a file-backed namespace (the sync backend):
//! format, put/get/delete/batch, restart, shard moves, corruption.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use engine::{format, BatchOp, Engine, EngineConfig, EngineError, FormatOptions, OpenError};
use nvme::Namespace;

fn namespace(path: &Path) -> Arc<dyn Namespace> {
    common::file_namespace(path, 64 << 20)
}

fn config(workers: usize) -> EngineConfig {
    EngineConfig {
        workers,
        value_bytes_max: 256 << 10,
        ..EngineConfig::default()
    }
}

fn fresh(path: &Path, workers: usize) -> Engine {
    let ns = namespace(path);
    let mut options = FormatOptions::new([7; 16]);
    options.segment_bytes = 1 << 20;
    format(ns.as_ref(), &options).unwrap();
    Engine::open(ns, &config(workers)).unwrap()
}

#[test]
fn put_get_delete_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let engine = fresh(&path, 2);
    for i in 0..500u32 {
        let value = vec![(i % 251) as u8; (i as usize * 37) % 5000];
        engine.put(format!("key:{i}").as_bytes(), &value).unwrap();
    }
    assert_eq!(engine.get(b"key:7").unwrap(), Some(vec![7u8; 259]));
    assert!(engine.delete(b"key:7").unwrap());
    assert!(
        !engine.delete(b"key:7").unwrap(),
        "second delete finds nothing"
    );
    assert_eq!(engine.get(b"key:7").unwrap(), None);
    assert!(engine.exists(b"key:8").unwrap());
    engine.put(b"key:9", b"overwritten").unwrap();
    let big = vec![0xAB; 200 << 10];
    engine.put(b"big", &big).unwrap();
    drop(engine);

    let engine = Engine::open(namespace(&path), &config(3)).unwrap();
    assert_eq!(engine.recovery_report().keys, 500);
    assert_eq!(engine.get(b"key:7").unwrap(), None);
    assert_eq!(engine.get(b"key:9").unwrap(), Some(b"overwritten".to_vec()));
    assert_eq!(engine.get(b"big").unwrap(), Some(big));
    for i in (0..500u32).filter(|&i| i != 7 && i != 9) {
        let value = vec![(i % 251) as u8; (i as usize * 37) % 5000];
        assert_eq!(
            engine.get(format!("key:{i}").as_bytes()).unwrap(),
            Some(value),
            "key:{i}"
        );
    }
    assert!(engine.recovery_report().damage.is_empty());
}

#[test]
fn limits_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fresh(&dir.path().join("ns.img"), 1);
    assert!(matches!(
        engine.put(b"", b"v"),
        Err(EngineError::KeyLength { len: 0, .. })
    ));
    let long_key = vec![b'k'; 1025];
    assert!(matches!(
        engine.get(&long_key),
        Err(EngineError::KeyLength { len: 1025, .. })
    ));
    let huge = vec![0u8; (256 << 10) + 1];
    assert!(matches!(
        engine.put(b"k", &huge),
        Err(EngineError::ValueLength { .. })
    ));
    engine.put(b"k", b"still works").unwrap();
    assert_eq!(engine.get(b"k").unwrap(), Some(b"still works".to_vec()));
}

#[test]
fn batches_span_workers_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let engine = fresh(&path, 2);
    let ops: Vec<BatchOp> = (0..50)
        .map(|i| BatchOp::Put(format!("batch:{i}").into_bytes(), vec![i as u8; 100]))
        .collect();
    engine.write_batch(ops).unwrap();
    engine
        .write_batch(vec![
            BatchOp::Delete(b"batch:3".to_vec()),
            BatchOp::Put(b"batch:4".to_vec(), b"x".to_vec()),
        ])
        .unwrap();
    drop(engine);
    let engine = Engine::open(namespace(&path), &config(2)).unwrap();
    assert_eq!(engine.get(b"batch:3").unwrap(), None);
    assert_eq!(engine.get(b"batch:4").unwrap(), Some(b"x".to_vec()));
    assert_eq!(engine.get(b"batch:49").unwrap(), Some(vec![49u8; 100]));
}

#[test]
fn shard_moves_never_fail_reads() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(fresh(&dir.path().join("ns.img"), 2));
    let keys: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("{{tag}}:{i}").into_bytes())
        .collect();
    let shard = engine::shard::shard(&keys[0]);
    for key in &keys {
        engine.put(key, key).unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let engine = Arc::clone(&engine);
        let keys = keys.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for key in &keys {
                    assert_eq!(engine.get(key).unwrap().as_deref(), Some(key.as_slice()));
                    reads += 1;
                }
            }
            reads
        })
    };
    for round in 0..20u16 {
        let to = (engine.shard_owner(shard) + 1) % 2;
        engine.move_shard(shard, to).unwrap();
        assert_eq!(engine.shard_owner(shard), to);
        engine
            .put(&keys[usize::from(round)], &keys[usize::from(round)])
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
}

#[test]
fn open_refuses_foreign_and_reformat() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let ns = namespace(&path);
    assert!(matches!(
        Engine::open(Arc::clone(&ns), &config(1)),
        Err(OpenError::NotFormatted)
    ));
    let mut options = FormatOptions::new([1; 16]);
    options.segment_bytes = 1 << 20;
    format(ns.as_ref(), &options).unwrap();
    assert!(matches!(
        format(ns.as_ref(), &options),
        Err(OpenError::AlreadyFormatted { .. })
    ));
    options.force = true;
    format(ns.as_ref(), &options).unwrap();
    drop(ns);
    // Corrupt both superblock copies.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xFF; 4], 20).unwrap();
    file.write_all_at(&[0xFF; 4], 4096 + 20).unwrap();
    drop(file);
    assert!(matches!(
        Engine::open(namespace(&path), &config(1)),
        Err(OpenError::SuperblockCorrupt { .. })
    ));
}

#[test]
fn a_flipped_bit_is_detected_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let engine = fresh(&path, 1);
    engine.put(b"victim", &[0x11; 3000]).unwrap();
    engine.put(b"bystander", &[0x22; 3000]).unwrap();
    drop(engine);
    // Find the victim's value in the file and flip one bit of it.
    let bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(6).position(|w| w == b"victim").unwrap() + 100;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[bytes[at] ^ 0x04], at as u64).unwrap();
    drop(file);
    let engine = Engine::open(namespace(&path), &config(1)).unwrap();
    match engine.get(b"victim") {
        Err(EngineError::Corruption { location, .. }) => assert!(location.segment >= 1),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(
        engine
            .stats()
            .corruption_detected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(engine.get(b"bystander").unwrap(), Some(vec![0x22; 3000]));
}

/// SET ... GET is an atomic exchange: with many threads exchanging values
/// on one key, every value written is handed back exactly once (as some
/// exchange's old value, or as the final value), and none twice.
#[test]
fn put_get_is_an_atomic_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    let engine = Arc::new(fresh(&path, 2));
    assert_eq!(engine.put_get(b"x", b"start").unwrap(), None);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        engine
                            .put_get(b"x", format!("{t}:{i}").as_bytes())
                            .unwrap()
                            .expect("x always has a value")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut returned: Vec<Vec<u8>> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    returned.push(engine.get(b"x").unwrap().unwrap());
    let mut expected: Vec<Vec<u8>> = (0..8)
        .flat_map(|t| (0..50).map(move |i| format!("{t}:{i}").into_bytes()))
        .collect();
    expected.push(b"start".to_vec());
    returned.sort();
    expected.sort();
    assert_eq!(returned, expected);
}
