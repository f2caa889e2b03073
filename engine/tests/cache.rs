//! The value cache inside the engine: hits skip the device, writes and
//! deletes are never hidden by an older cached value, a read racing a write
//! never caches the old value, a shard move never serves what the old owner
//! cached, and a restart serves only what recovery found.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use engine::shard::shard;
use engine::stats::Stats;
use engine::{format, open_workers, BatchOp, Condition, EngineConfig, FormatOptions, Op, Reply};
use engine::{RequestId, WorkerCore};
use nvme::sim::{SimConfig, SimNamespace};
use nvme::Namespace;

fn namespace(latency_ticks_max: u64) -> Arc<SimNamespace> {
    let mut config = SimConfig::new(4096, 11);
    config.faults.latency_ticks_max = latency_ticks_max;
    let namespace = SimNamespace::new(config);
    let mut options = FormatOptions::new([3; 16]);
    options.segment_bytes = 256 << 10;
    format(namespace.as_ref() as &dyn Namespace, &options).unwrap();
    namespace
}

fn config(cache_bytes: usize) -> EngineConfig {
    EngineConfig {
        commit_interval_us: 0,
        value_bytes_max: 64 << 10,
        cache_bytes,
        ..EngineConfig::default()
    }
}

/// Workers on `namespace`, and a clock.
struct Rig {
    namespace: Arc<SimNamespace>,
    cores: Vec<WorkerCore>,
    now_us: u64,
    next_id: RequestId,
}

impl Rig {
    fn open(namespace: &Arc<SimNamespace>, workers: usize, cache_bytes: usize) -> Rig {
        let ns: Arc<dyn Namespace> = namespace.clone();
        let opened = open_workers(ns, &config(cache_bytes), workers).unwrap();
        Rig {
            namespace: Arc::clone(namespace),
            cores: opened.cores,
            now_us: 0,
            next_id: 1,
        }
    }

    fn stats(&self) -> &Stats {
        self.cores[0].stats()
    }

    fn owner(&self, key: &[u8]) -> usize {
        self.cores.iter().position(|c| c.owns(shard(key))).unwrap()
    }

    /// Gives every op to worker `core` in the same instant, then steps
    /// until each is answered. Replies in op order.
    fn run_on(&mut self, core: usize, ops: Vec<Op>) -> Vec<Reply> {
        let first = self.next_id;
        let count = ops.len();
        for op in ops {
            self.cores[core].accept(self.next_id, op, self.now_us);
            self.next_id += 1;
        }
        let mut answers: BTreeMap<RequestId, Reply> = BTreeMap::new();
        for _ in 0..1_000_000 {
            let mut replies = Vec::new();
            self.cores[core].step(self.now_us, &mut replies);
            answers.extend(replies);
            if answers.len() == count {
                return (first..first + count as u64)
                    .map(|id| answers.remove(&id).unwrap())
                    .collect();
            }
            self.now_us += 1;
            self.namespace.advance(1);
        }
        panic!("requests never completed");
    }

    fn run(&mut self, op: Op) -> Reply {
        let key = match &op {
            Op::Get(k) | Op::Put(k, _) | Op::Delete(k) | Op::PutIf(k, _, _) => k.clone(),
            Op::Batch(ops) => ops[0].key().to_vec(),
            other => panic!("unrouted op {other:?}"),
        };
        let owner = self.owner(&key);
        self.run_on(owner, vec![op]).remove(0)
    }

    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        match self.run(Op::Get(key.to_vec())) {
            Reply::Value(v) => v,
            other => panic!("get answered {other:?}"),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        assert_eq!(self.run(Op::Put(key.to_vec(), value.to_vec())), Reply::Done);
    }
}

fn device_reads(stats: &Stats) -> (u64, u64) {
    (
        stats.gets.load(Ordering::Relaxed),
        stats.bytes_read.load(Ordering::Relaxed),
    )
}

#[test]
fn a_hit_does_no_device_read() {
    let ns = namespace(0);
    let mut rig = Rig::open(&ns, 1, 1 << 20);
    rig.put(b"k", b"value one");
    let before = device_reads(rig.stats());
    for _ in 0..3 {
        assert_eq!(rig.get(b"k").as_deref(), Some(&b"value one"[..]));
    }
    assert_eq!(
        device_reads(rig.stats()),
        before,
        "a cached get read the device"
    );
    assert_eq!(rig.stats().cache_hits.load(Ordering::Relaxed), 3);
    assert!(rig.stats().cache_bytes.load(Ordering::Relaxed) > 0);

    // Without the cache the same gets read the device: the check above can
    // tell the difference.
    drop(rig);
    let mut rig = Rig::open(&ns, 1, 0);
    let before = device_reads(rig.stats());
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"value one"[..]));
    assert_eq!(device_reads(rig.stats()).0, before.0 + 1);
    assert_eq!(rig.stats().cache_hits.load(Ordering::Relaxed), 0);
}

#[test]
fn a_miss_reads_the_device_then_hits() {
    let ns = namespace(0);
    let mut rig = Rig::open(&ns, 1, 1 << 20);
    rig.put(b"k", b"durable");
    drop(rig);
    // A restart starts with an empty cache.
    let mut rig = Rig::open(&ns, 1, 1 << 20);
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"durable"[..]));
    assert_eq!(rig.stats().cache_misses.load(Ordering::Relaxed), 1);
    assert_eq!(device_reads(rig.stats()).0, 1);
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"durable"[..]));
    assert_eq!(
        device_reads(rig.stats()).0,
        1,
        "the second get read the device"
    );
    assert_eq!(rig.stats().cache_hits.load(Ordering::Relaxed), 1);
}

#[test]
fn writes_and_deletes_are_never_hidden_by_the_cache() {
    let ns = namespace(0);
    let mut rig = Rig::open(&ns, 1, 1 << 20);
    rig.put(b"k", b"one");
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"one"[..]));
    rig.put(b"k", b"two");
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"two"[..]));
    assert_eq!(rig.run(Op::Delete(b"k".to_vec())), Reply::Deleted(true));
    assert_eq!(rig.get(b"k"), None);
    // A batch overwrites, the last write to a key wins.
    rig.put(b"k", b"three");
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"three"[..]));
    let batch = vec![
        BatchOp::Put(b"k".to_vec(), b"four".to_vec()),
        BatchOp::Put(b"k".to_vec(), b"five".to_vec()),
    ];
    assert_eq!(rig.run(Op::Batch(batch)), Reply::Done);
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"five"[..]));
    let batch = vec![BatchOp::Delete(b"k".to_vec())];
    assert_eq!(rig.run(Op::Batch(batch)), Reply::Done);
    assert_eq!(rig.get(b"k"), None);
    // A conditional put that does not apply leaves the cached value alone;
    // one that applies replaces it.
    rig.put(b"k", b"six");
    let nx = Op::PutIf(b"k".to_vec(), b"seven".to_vec(), Condition::Absent);
    assert_eq!(rig.run(nx), Reply::NotApplied);
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"six"[..]));
    let xx = Op::PutIf(b"k".to_vec(), b"eight".to_vec(), Condition::Present);
    assert_eq!(rig.run(xx), Reply::Done);
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"eight"[..]));
    // And all of it is what the device holds.
    drop(rig);
    let mut rig = Rig::open(&ns, 1, 0);
    assert_eq!(rig.get(b"k").as_deref(), Some(&b"eight"[..]));
}

/// A get misses and reads the old record while a put of the same key
/// commits: whichever finishes first, the old value must not end up cached.
#[test]
fn a_read_racing_a_write_never_caches_the_old_value() {
    let ns = namespace(40);
    let mut rig = Rig::open(&ns, 1, 1 << 20);
    let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("race{i}").into_bytes()).collect();
    for key in &keys {
        rig.put(key, b"old");
    }
    drop(rig);
    let mut rig = Rig::open(&ns, 1, 1 << 20);
    for key in &keys {
        // The get is accepted first, with no write pending: it misses and
        // starts a device read of "old". The put arrives in the same instant.
        let replies = rig.run_on(
            0,
            vec![Op::Get(key.clone()), Op::Put(key.clone(), b"new".to_vec())],
        );
        assert_eq!(replies[1], Reply::Done);
        assert_eq!(
            rig.get(key).as_deref(),
            Some(&b"new"[..]),
            "{} served a value older than an acknowledged write",
            String::from_utf8_lossy(key)
        );
    }
}

/// Worker 0 caches a key, its shard moves to worker 1, which overwrites it,
/// then the shard moves back: worker 0 must not serve what it cached before.
#[test]
fn a_shard_move_never_serves_what_the_old_owner_cached() {
    let ns = namespace(0);
    let mut rig = Rig::open(&ns, 2, 1 << 20);
    let key = b"moving".to_vec();
    let shard_id = shard(&key);
    let first = rig.owner(&key);
    let second = 1 - first;
    rig.put(&key, b"before the move");
    assert_eq!(rig.get(&key).as_deref(), Some(&b"before the move"[..]));

    let index = rig.cores[first].release_shard(shard_id).unwrap();
    rig.cores[second].adopt_shard(shard_id, index);
    rig.put(&key, b"while away");
    assert_eq!(rig.owner(&key), second);

    let index = rig.cores[second].release_shard(shard_id).unwrap();
    rig.cores[first].adopt_shard(shard_id, index);
    assert_eq!(rig.get(&key).as_deref(), Some(&b"while away"[..]));
}

#[test]
fn after_a_crash_only_what_recovery_found_is_served() {
    for crash_seed in 0..20u64 {
        let ns = namespace(5);
        let mut rig = Rig::open(&ns, 1, 1 << 20);
        rig.put(b"k", b"acknowledged");
        assert_eq!(rig.get(b"k").as_deref(), Some(&b"acknowledged"[..]));
        // A write in flight at the crash: may survive or not.
        rig.cores[0].accept(
            999,
            Op::Put(b"k".to_vec(), b"in flight".to_vec()),
            rig.now_us,
        );
        let mut replies = Vec::new();
        rig.cores[0].step(rig.now_us, &mut replies);
        drop(rig);
        let crashed = ns.crash(crash_seed);
        let mut rig = Rig::open(&crashed, 1, 1 << 20);
        let first = rig.get(b"k");
        assert!(
            first.as_deref() == Some(&b"acknowledged"[..])
                || first.as_deref() == Some(&b"in flight"[..]),
            "recovered {first:?}"
        );
        // Cached or not, later gets agree with the device.
        assert_eq!(rig.get(b"k"), first);
        drop(rig);
        let mut uncached = Rig::open(&crashed, 1, 0);
        assert_eq!(uncached.get(b"k"), first);
    }
}
