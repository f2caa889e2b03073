//! Read-modify-write (`Op::Modify`): concurrent increments of one key are
//! never lost, from many threads while the key's shard moves between
//! workers; every increment is answered only once durable, so a crash
//! before a flush loses none that was answered; and requests pipelined
//! behind one see its result, with or without the value cache.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use engine::modify::{Answer, Extended};
use engine::shard::shard;
use engine::{format, open_workers, Engine, EngineConfig, FormatOptions, Modify, Op, Reply};
use engine::{RequestId, WorkerCore};
use nvme::sim::{SimConfig, SimNamespace};
use nvme::Namespace;

const THREADS: u64 = 4;
const INCREMENTS: u64 = 150;
const COUNTERS: [&[u8]; 3] = [b"c0", b"c1", b"{c0}.x"];

fn file_engine(dir: &std::path::Path, format_it: bool) -> Engine {
    let ns = common::file_namespace(&dir.join("ns.img"), 64 << 20);
    if format_it {
        let mut options = FormatOptions::new([6; 16]);
        options.segment_bytes = 1 << 20;
        format(ns.as_ref(), &options).unwrap();
    }
    let config = EngineConfig {
        workers: 2,
        commit_interval_us: 0,
        value_bytes_max: 64 << 10,
        checkpoint_records: 0,
        ..EngineConfig::default()
    };
    Engine::open(ns, &config).unwrap()
}

fn integer(answer: Answer) -> i64 {
    match answer {
        Answer::Integer(n) => n,
        other => panic!("an increment answered {other:?}"),
    }
}

/// Threads increment the same keys while a mover sends their shards back
/// and forth between the two workers: every answer is distinct (no two
/// increments read the same value), the totals are exact, and they are
/// durable across a restart.
#[test]
fn concurrent_increments_across_workers_are_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(file_engine(dir.path(), true));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut moves = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                for key in COUNTERS {
                    let s = shard(key);
                    let to = 1 - engine.shard_owner(s);
                    engine.move_shard(s, to).unwrap();
                    moves += 1;
                }
            }
            moves
        })
    };
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let mut answers: BTreeMap<&[u8], Vec<i64>> = BTreeMap::new();
                for _ in 0..INCREMENTS {
                    for key in COUNTERS {
                        let answer = engine.modify(key, Modify::IncrBy(1)).unwrap();
                        answers.entry(key).or_default().push(integer(answer));
                    }
                }
                answers
            })
        })
        .collect();
    let mut all: BTreeMap<&[u8], Vec<i64>> = BTreeMap::new();
    for thread in threads {
        for (key, answers) in thread.join().unwrap() {
            // One client's increments of a key answer rising numbers.
            assert!(answers.windows(2).all(|w| w[0] < w[1]), "{answers:?}");
            all.entry(key).or_default().extend(answers);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    assert!(mover.join().unwrap() > 0, "no shard moved");
    let total = (THREADS * INCREMENTS) as i64;
    for (key, mut answers) in all {
        answers.sort_unstable();
        let expected: Vec<i64> = (1..=total).collect();
        assert_eq!(
            answers, expected,
            "increments of {key:?} read the same value"
        );
    }
    drop(Arc::into_inner(engine).unwrap());
    let engine = file_engine(dir.path(), false);
    for key in COUNTERS {
        let value = engine.get(key).unwrap().unwrap();
        assert_eq!(
            value,
            total.to_string().into_bytes(),
            "{key:?} after restart"
        );
    }
}

fn sim_namespace(seed: u64) -> Arc<SimNamespace> {
    let mut config = SimConfig::new(4096, seed);
    config.faults.latency_ticks_max = 3;
    let namespace = SimNamespace::new(config);
    let mut options = FormatOptions::new([7; 16]);
    options.segment_bytes = 256 << 10;
    format(namespace.as_ref() as &dyn Namespace, &options).unwrap();
    namespace
}

/// One worker on a simulated namespace, stepped by hand.
struct Rig {
    namespace: Arc<SimNamespace>,
    core: WorkerCore,
    now_us: u64,
    next_id: RequestId,
}

impl Rig {
    fn open(namespace: &Arc<SimNamespace>, cache_bytes: usize) -> Rig {
        let config = EngineConfig {
            commit_interval_us: 0,
            value_bytes_max: 64 << 10,
            cache_bytes,
            ..EngineConfig::default()
        };
        let ns: Arc<dyn Namespace> = namespace.clone();
        let mut opened = open_workers(ns, &config, 1).unwrap();
        Rig {
            namespace: Arc::clone(namespace),
            core: opened.cores.remove(0),
            now_us: 0,
            next_id: 1,
        }
    }

    /// Gives the worker every op in one instant; returns their ids.
    fn send(&mut self, ops: Vec<Op>) -> Vec<RequestId> {
        ops.into_iter()
            .map(|op| {
                let id = self.next_id;
                self.next_id += 1;
                self.core.accept(id, op, self.now_us);
                id
            })
            .collect()
    }

    /// Steps (and lets the device's time pass) `steps` times; the replies.
    fn step(&mut self, steps: usize) -> BTreeMap<RequestId, Reply> {
        let mut answers = BTreeMap::new();
        for _ in 0..steps {
            let mut replies = Vec::new();
            self.core.step(self.now_us, &mut replies);
            answers.extend(replies);
            self.now_us += 1;
            self.namespace.advance(1);
        }
        answers
    }

    /// Sends `ops` and steps until all are answered; replies in op order.
    fn run(&mut self, ops: Vec<Op>) -> Vec<Reply> {
        let ids = self.send(ops);
        let mut answers = BTreeMap::new();
        for _ in 0..100_000 {
            answers.extend(self.step(1));
            if ids.iter().all(|id| answers.contains_key(id)) {
                return ids.iter().map(|id| answers.remove(id).unwrap()).collect();
            }
        }
        panic!("requests never completed");
    }
}

fn incr(key: &[u8], by: i64) -> Op {
    Op::modify(key.to_vec(), Modify::IncrBy(by))
}

/// Increments pipelined in one instant, with and without the value cache
/// (so the value comes from the device): each sees the one before it, and
/// a GET behind them sees the last; a refused one changes nothing.
#[test]
fn pipelined_modifications_of_one_key_run_in_order() {
    for cache_bytes in [0, 1 << 20] {
        let mut rig = Rig::open(&sim_namespace(3), cache_bytes);
        let mut ops: Vec<Op> = (0..20).map(|_| incr(b"n", 2)).collect();
        ops.push(Op::modify(b"n".to_vec(), Modify::Append(b"x".to_vec())));
        ops.push(incr(b"n", 1));
        ops.push(Op::modify(b"n".to_vec(), Modify::GetDel));
        ops.push(Op::Get(b"n".to_vec()));
        let replies = rig.run(ops);
        let sums: Vec<Reply> = (1..=20).map(|i| Reply::Integer(2 * i)).collect();
        assert_eq!(replies[..20], sums[..], "cache {cache_bytes}");
        assert_eq!(replies[20], Reply::Integer(3));
        assert!(
            matches!(&replies[21], Reply::Failed(engine::EngineError::Modify(_))),
            "{:?}",
            replies[21]
        );
        assert_eq!(replies[22], Reply::Value(Some(b"40x".to_vec())));
        assert_eq!(replies[23], Reply::Value(None));
        let by = Extended::parse(b"0.1").unwrap();
        let float = rig.run(vec![Op::modify(b"f".to_vec(), Modify::IncrByFloat(by))]);
        assert_eq!(float[0], Reply::Value(Some(b"0.1".to_vec())));
    }
}

/// Renames pipelined with writes of both keys keep their order: each sees
/// the writes before it, and the writes after it see its result.
#[test]
fn renames_keep_per_key_order_over_both_keys() {
    for cache_bytes in [0, 1 << 20] {
        let mut rig = Rig::open(&sim_namespace(5), cache_bytes);
        let (a, b) = (b"{t}a".to_vec(), b"{t}b".to_vec());
        let rename = |if_absent| {
            let to = b.clone();
            Op::modify(a.clone(), Modify::Rename { to, if_absent })
        };
        let replies = rig.run(vec![
            Op::Put(b.clone(), b"old".to_vec()),
            rename(false),
            Op::Put(a.clone(), b"v".to_vec()),
            rename(true),
            rename(false),
            Op::Get(a.clone()),
            Op::Get(b.clone()),
            Op::Put(b.clone(), b"w".to_vec()),
            Op::Get(b.clone()),
            Op::modify(
                a.clone(),
                Modify::Rename {
                    to: b"elsewhere".to_vec(),
                    if_absent: false,
                },
            ),
        ]);
        let no_such_key =
            Reply::Failed(engine::EngineError::Modify(engine::ModifyError::NoSuchKey));
        assert_eq!(replies[1], no_such_key, "cache {cache_bytes}");
        assert_eq!(
            replies[3],
            Reply::Integer(0),
            "RENAMENX onto an existing key"
        );
        assert_eq!(replies[4], Reply::Integer(1));
        assert_eq!(replies[5], Reply::Value(None));
        assert_eq!(replies[6], Reply::Value(Some(b"v".to_vec())));
        assert_eq!(replies[8], Reply::Value(Some(b"w".to_vec())));
        let cross = Reply::Failed(engine::EngineError::Modify(engine::ModifyError::CrossShard));
        assert_eq!(replies[9], cross);
    }
}

/// Increments acknowledged before a crash are all there after it: the
/// value recovered is at least the largest answer, and at most the
/// increments issued (the one in flight may or may not have landed).
#[test]
fn a_crash_before_the_flush_loses_no_acknowledged_increment() {
    let mut checked = 0;
    for seed in 0..8u64 {
        let namespace = sim_namespace(seed);
        let mut rig = Rig::open(&namespace, 1 << 20);
        let mut acknowledged = 0i64;
        let issued = 30i64;
        rig.send((0..issued).map(|_| incr(b"k", 1)).collect());
        // Step until about half are answered, then stop mid-commit.
        while acknowledged < issued / 2 {
            for (_, reply) in rig.step(1) {
                let Reply::Integer(n) = reply else {
                    panic!("an increment answered {reply:?}")
                };
                assert!(n > acknowledged, "answers go up");
                acknowledged = n;
            }
        }
        rig.step(2);
        // In flight: written and not flushed, or (a one-write batch goes
        // out FUA, with no flush) submitted and not completed.
        let submitted = rig.core.stats().io_in_flight.load(Ordering::Relaxed);
        let in_flight = namespace.uncovered_writes() > 0 || submitted > 0;
        for crash in 0..4 {
            let crashed = namespace.crash(seed * 10 + crash);
            let mut reopened = Rig::open(&crashed, 0);
            let Reply::Value(Some(value)) = reopened.run(vec![Op::Get(b"k".to_vec())]).remove(0)
            else {
                panic!("the counter is gone after a crash");
            };
            let value: i64 = String::from_utf8(value).unwrap().parse().unwrap();
            assert!(
                (acknowledged..=issued).contains(&value),
                "seed {seed} crash {crash}: {value} recovered, {acknowledged} acknowledged"
            );
            // It goes on from there, once.
            let next = reopened.run(vec![incr(b"k", 1)]).remove(0);
            assert_eq!(next, Reply::Integer(value + 1));
            checked += usize::from(in_flight);
        }
    }
    assert!(checked > 0, "no crash caught an increment in flight");
}
