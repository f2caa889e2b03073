//! `Engine::get` answers cache hits on the caller's thread. Against writers
//! on other threads, that path must still read its own writes, never go
//! back in time, and see an atomic batch whole or not at all.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use engine::{format, BatchOp, Engine, EngineConfig, FormatOptions};

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let ns = common::file_namespace(&dir.join("ns.img"), 64 << 20);
    let mut options = FormatOptions::new([5; 16]);
    options.segment_bytes = 1 << 20;
    format(ns.as_ref(), &options).unwrap();
    let config = EngineConfig {
        workers: 2,
        commit_interval_us: 0,
        value_bytes_max: 64 << 10,
        cache_bytes: 8 << 20,
        checkpoint_records: 0,
        ..EngineConfig::default()
    };
    Arc::new(Engine::open(ns, &config).unwrap())
}

fn number(value: Option<Vec<u8>>) -> u64 {
    value.map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

#[test]
fn cached_reads_see_own_writes_and_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (engine, done) = (Arc::clone(&engine), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    let now = number(engine.get(b"counter").unwrap());
                    assert!(now >= last, "went back from {last} to {now}");
                    last = now;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 1..=300u64 {
        engine.put(b"counter", i.to_string().as_bytes()).unwrap();
        // Read-your-writes through the cache (the put wrote it through).
        assert_eq!(number(engine.get(b"counter").unwrap()), i);
    }
    done.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 300, "the readers ran: {reads}");
    let hits = engine.stats().cache_hits.load(Ordering::Relaxed);
    assert!(hits > 300, "reads were answered from the cache: {hits}");
}

#[test]
fn cached_reads_see_an_atomic_batch_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    // Same hash tag: one shard, one worker, one frame per batch.
    let (a, b) = (b"{pair}.a".to_vec(), b"{pair}.b".to_vec());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (engine, done) = (Arc::clone(&engine), Arc::clone(&done));
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut checks = 0u64;
                while !done.load(Ordering::Acquire) {
                    // b is read after a; batches write both with the same
                    // number, so b can only be at or past what a showed.
                    let first = number(engine.get(&a).unwrap());
                    let second = number(engine.get(&b).unwrap());
                    assert!(
                        second >= first,
                        "saw half a batch: a = {first}, then b = {second}"
                    );
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for i in 1..=300u64 {
        let v = i.to_string().into_bytes();
        engine
            // a first: a write-through that let readers in between the
            // two keys would show a new a and an old b.
            .write_batch(vec![
                BatchOp::Put(a.clone(), v.clone()),
                BatchOp::Put(b.clone(), v),
            ])
            .unwrap();
    }
    done.store(true, Ordering::Release);
    let checks: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checks > 300, "the readers ran: {checks}");
}
