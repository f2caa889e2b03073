//! One submitter's pipelined requests take effect in the order it
//! submitted them while shards move between workers under them: the real
//! `Engine`, its worker threads, and a frontend (as the daemon's network
//! loop) that submits without waiting for replies, like a Redis client
//! pipelining `SET k 1`, `SET k 2`, `GET k`.
//!
//! Each round, the frontend on worker 0 pipelines, for every key, two puts,
//! now and then an atomic batch over the key and another one (`MSET`), a
//! third put and a get, which must answer that third put. Once every reply
//! is in, it reads every key back: each must hold the last value submitted.
//! Meanwhile another thread moves the keys' shards between the workers.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use engine::shard::shard;
use engine::{
    format, BatchOp, Engine, EngineConfig, FormatOptions, Frontend, Op, Reply, Submitter, Wake,
};
use nvme::sim::{SimConfig, SimNamespace};
use nvme::Namespace;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const WORKERS: usize = 4;
const KEYS: usize = 12;
const ROUNDS: u64 = 1000;

/// What a reply must be.
enum Expect {
    Done,
    Value(Vec<u8>),
}

/// The pipelining client, run by worker 0's thread as its frontend.
struct Pipeline {
    keys: Vec<Vec<u8>>,
    round: u64,
    /// Whether the next phase reads every key back.
    check_next: bool,
    /// The last value submitted for each key.
    last: BTreeMap<Vec<u8>, Vec<u8>>,
    in_flight: HashMap<u64, Expect>,
    next_token: u64,
    failures: Vec<String>,
    submitted: u64,
    finished: Option<mpsc::Sender<(Vec<String>, u64)>>,
}

impl Pipeline {
    fn send(&mut self, submitter: &mut Submitter<'_>, op: Op, expect: Expect) {
        let token = self.next_token;
        self.next_token += 1;
        self.in_flight.insert(token, expect);
        self.submitted += 1;
        submitter.submit(token, op);
    }

    fn put(&mut self, submitter: &mut Submitter<'_>, key: &[u8], value: Vec<u8>) {
        self.last.insert(key.to_vec(), value.clone());
        self.send(submitter, Op::Put(key.to_vec(), value), Expect::Done);
    }

    /// Pipelines one round of writes and reads.
    fn write_round(&mut self, submitter: &mut Submitter<'_>) {
        let r = self.round;
        for i in 0..self.keys.len() {
            let key = self.keys[i].clone();
            self.put(submitter, &key, format!("{r}.{i}.a").into_bytes());
            self.put(submitter, &key, format!("{r}.{i}.b").into_bytes());
            if (r + i as u64).is_multiple_of(3) {
                // MSET of this key and another, likely on another worker:
                // the batch gathers both shards first.
                let other = self.keys[(i + 5) % self.keys.len()].clone();
                let (v1, v2) = (
                    format!("{r}.{i}.batch").into_bytes(),
                    format!("{r}.{i}.batch-other").into_bytes(),
                );
                self.last.insert(key.clone(), v1.clone());
                self.last.insert(other.clone(), v2.clone());
                let ops = vec![BatchOp::Put(key.clone(), v1), BatchOp::Put(other, v2)];
                self.send(submitter, Op::Batch(ops), Expect::Done);
            }
            let third = format!("{r}.{i}.c").into_bytes();
            self.put(submitter, &key, third.clone());
            self.send(submitter, Op::Get(key), Expect::Value(third));
        }
    }

    /// Reads every key back: each must hold the last value submitted.
    fn check_round(&mut self, submitter: &mut Submitter<'_>) {
        for key in self.keys.clone() {
            let last = self.last[&key].clone();
            self.send(submitter, Op::Get(key), Expect::Value(last));
        }
    }
}

impl Frontend for Pipeline {
    fn poll(&mut self, submitter: &mut Submitter<'_>, timeout: Option<Duration>) -> bool {
        if self.in_flight.is_empty() && self.finished.is_some() {
            if self.round == ROUNDS || self.failures.len() > 20 {
                let finished = self.finished.take().unwrap();
                let _ = finished.send((std::mem::take(&mut self.failures), self.submitted));
                return true;
            }
            if self.check_next {
                self.check_round(submitter);
                self.round += 1;
            } else {
                self.write_round(submitter);
            }
            self.check_next = !self.check_next;
            return true;
        }
        if let Some(timeout) = timeout {
            std::thread::sleep(timeout.min(Duration::from_micros(200)));
        }
        false
    }

    fn reply(&mut self, token: u64, reply: Reply) {
        let Some(expect) = self.in_flight.remove(&token) else {
            self.failures
                .push(format!("reply to unknown token {token}"));
            return;
        };
        let fine = match (&expect, &reply) {
            (Expect::Done, Reply::Done) => true,
            (Expect::Value(want), Reply::Value(Some(got))) => want == got,
            _ => false,
        };
        if !fine {
            let want = match expect {
                Expect::Done => "Done".to_string(),
                Expect::Value(v) => String::from_utf8_lossy(&v).into_owned(),
            };
            let got = match reply {
                Reply::Value(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
                other => format!("{other:?}"),
            };
            self.failures.push(format!(
                "round {}: request {token} answered {got}, expected {want}",
                self.round
            ));
        }
    }

    fn shutdown(&mut self) {}

    fn draining(&self) -> bool {
        false
    }
}

#[test]
fn pipelined_writes_keep_their_order_while_shards_move() {
    let sim = SimNamespace::new(SimConfig::new(32 << 10, 7));
    let mut options = FormatOptions::new([3; 16]);
    options.segment_bytes = 1 << 20;
    format(sim.as_ref() as &dyn Namespace, &options).unwrap();
    let config = EngineConfig {
        workers: WORKERS,
        commit_interval_us: 0,
        // Small inboxes: messages wait in the senders' outboxes, as under load.
        inbox_max: 8,
        value_bytes_max: 4 << 10,
        checkpoint_records: 0,
        checkpoint_interval_s: 0,
        ..EngineConfig::default()
    };
    // Keys on distinct shards.
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for n in 0.. {
        let key = format!("key-{n}").into_bytes();
        if keys.iter().all(|k| shard(k) != shard(&key)) {
            keys.push(key);
        }
        if keys.len() == KEYS {
            break;
        }
    }
    let shards: Vec<u16> = keys.iter().map(|k| shard(k)).collect();
    let (finished_tx, finished_rx) = mpsc::channel();
    let mut pipeline = Some(Pipeline {
        keys,
        round: 0,
        check_next: false,
        last: BTreeMap::new(),
        in_flight: HashMap::new(),
        next_token: 1,
        failures: Vec::new(),
        submitted: 0,
        finished: Some(finished_tx),
    });
    let engine = Arc::new(
        Engine::open_with_frontends(sim, &config, |worker| {
            let wake: Wake = Arc::new(|| {});
            let frontend = pipeline.take().filter(|_| worker == 0)?;
            Some((Box::new(frontend) as Box<dyn Frontend>, wake))
        })
        .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let (mut moves, mut failed) = (0u64, Vec::new());
            while !stop.load(Ordering::Acquire) {
                let s = shards[rng.random_range(0..shards.len())];
                let to = rng.random_range(0..WORKERS) as u16;
                if let Err(e) = engine.move_shard(s, to) {
                    failed.push(format!("move of shard {s} to worker {to}: {e}"));
                }
                moves += 1;
            }
            (moves, failed)
        })
    };
    let outcome = finished_rx.recv_timeout(Duration::from_secs(120));
    stop.store(true, Ordering::Release);
    let (moves, failed_moves) = mover.join().unwrap();
    let (failures, submitted) = outcome.expect("the pipeline finished its rounds in time");
    let landed = engine.stats().shard_moves.load(Ordering::Relaxed);
    eprintln!("{submitted} requests pipelined, {moves} moves asked for, {landed} shard moves");
    assert!(
        failures.is_empty(),
        "pipelined requests took effect out of order ({} failures):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        failed_moves.is_empty(),
        "moves failed while the engine ran:\n{}",
        failed_moves.join("\n")
    );
    assert!(landed >= 100, "shards moved under the pipeline: {landed}");
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.shutdown(),
        Err(_) => panic!("the engine is still shared"),
    }
}
