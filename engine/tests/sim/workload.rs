//! The simulated clients' requests: every operation the engine takes, over
//! a small key space with some keys as long as `key_bytes_max`.

use std::collections::BTreeMap;

use engine::modify::Expiry;
use engine::shard::shard;
use engine::{BatchOp, Condition, Modify, Op};
use rand::Rng;

use super::model::{BatchModel, Value};
use super::oracle::{Expect, Pending};
use super::Sim;

pub const CLIENTS: usize = 12;
pub const KEYS: usize = 48;
/// The simulator's `key_bytes_max`.
pub const KEY_BYTES_MAX: usize = 1024;

/// `k0`..`k47`; every sixth key is long, some exactly [`KEY_BYTES_MAX`].
pub fn keyspace() -> Vec<Vec<u8>> {
    const LONG: [usize; 8] = [100, 512, KEY_BYTES_MAX, 777, KEY_BYTES_MAX, 300, 1000, 65];
    (0..KEYS)
        .map(|i| {
            let mut key = format!("k{i}").into_bytes();
            if i % 6 == 5 {
                key.push(b':');
                while key.len() < LONG[(i / 6) % LONG.len()] {
                    key.push(b'a' + (key.len() % 26) as u8);
                }
            }
            key
        })
        .collect()
}

impl Sim {
    pub fn value_for(&mut self, key: &[u8], write: u64) -> Vec<u8> {
        if self.rng.random_range(0..20) == 0 {
            self.counters.add("empty_values", 1);
            return Vec::new();
        }
        let len = match self.rng.random_range(0..10) {
            0 => self.rng.random_range(4096..12 << 10),
            1..=3 => self.rng.random_range(0..16),
            _ => self.rng.random_range(16..3000),
        };
        let prefix = &key[..key.len().min(8)];
        let mut value = format!("{}:{write}:", String::from_utf8_lossy(prefix)).into_bytes();
        value.resize(len.max(value.len()), (write % 251) as u8);
        value
    }

    fn new_write(&mut self) -> u64 {
        let write = self.next_write;
        self.next_write += 1;
        write
    }

    /// Issues one request from a client with room in its pipeline.
    pub fn issue(&mut self) {
        let client = loop {
            let c = self.rng.random_range(0..CLIENTS);
            if !self.clients_busy.contains(&c) {
                break c;
            }
        };
        let mut key = self.keyspace[self.rng.random_range(0..KEYS)].clone();
        if self.client_depth(client) > 1 && self.rng.random_bool(0.5) {
            // A pipelining client often works on one key: SET, GET, SET ...
            if let Some(last) = self.routing.as_ref().and_then(|r| r.last_key(client)) {
                key = last.to_vec();
            }
        }
        let roll = self.rng.random_range(0..100);
        if self
            .routing
            .as_ref()
            .is_some_and(|r| r.claimed_by_other(client, std::slice::from_ref(&key)))
        {
            return;
        }
        let Some((route, op, expect)) = self.request(client, roll, key) else {
            return;
        };
        let id = self.next_request;
        self.next_request += 1;
        if let Ok(traced) = std::env::var("VELTRIX_SIM_TRACE") {
            let keys: Vec<&[u8]> = match &op {
                Op::Batch(ops) => ops
                    .iter()
                    .map(|o| match o {
                        BatchOp::Put(k, _) | BatchOp::PutUntil(k, _, _) | BatchOp::Delete(k) => {
                            k.as_slice()
                        }
                    })
                    .collect(),
                _ => vec![route.as_slice()],
            };
            if traced == "*" || keys.contains(&traced.as_bytes()) {
                let shown: Vec<String> = keys.iter().map(|k| super::model::show_key(k)).collect();
                let kind = format!("{op:?}");
                let kind = kind.split('(').next().unwrap_or_default();
                eprintln!("request {id} from client {client}: {kind} {shown:?}");
            }
        }
        let owner = self.owner(&route);
        self.client_sent(client);
        self.pending.insert(id, Pending { client, expect });
        self.submit(client, owner, id, op);
    }

    /// A request and what its reply is checked against; the first element
    /// is a key that routes it.
    fn request(&mut self, client: usize, roll: u32, key: Vec<u8>) -> Option<(Vec<u8>, Op, Expect)> {
        if key.len() > 64 {
            self.counters.add("long_key_requests", 1);
        }
        let read = |sim: &Sim, key: Vec<u8>, exists: bool| Expect::Read {
            snapshot: sim.model.acceptable(&key),
            first_write: sim.next_write,
            key,
            exists,
        };
        Some(match roll {
            0..=7 => return self.batch(client, key),
            8..=29 => (key.clone(), Op::Get(key.clone()), read(self, key, false)),
            30..=35 => (key.clone(), Op::Exists(key.clone()), read(self, key, true)),
            36..=37 => {
                let shard = shard(&key);
                let keys: BTreeMap<Vec<u8>, (bool, bool)> = self
                    .model
                    .keys
                    .keys()
                    .filter(|k| engine::shard::shard(k) == shard)
                    .map(|k| {
                        let states = self.model.acceptable(k);
                        let present = states.iter().any(Option::is_some);
                        // A key that expires may expire before the scan
                        // is answered.
                        let absent = states
                            .iter()
                            .any(|v| v.is_none() || self.model.expires(k, v));
                        (k.clone(), (present, absent))
                    })
                    .collect();
                (key, Op::Scan(shard), Expect::Scan { shard, keys })
            }
            38..=48 => {
                let write = self.new_write();
                self.model.issue(write, client, &key, None);
                let expect = Expect::Delete {
                    write,
                    key: key.clone(),
                };
                (key.clone(), Op::Delete(key), expect)
            }
            49..=52 => return Some(self.swap(client, key)),
            53..=54 => {
                let write = self.new_write();
                let value = self.value_for(&key, write);
                self.model.issue(write, client, &key, Some(value.clone()));
                let expect = Expect::PutGet {
                    write,
                    key: key.clone(),
                };
                (key.clone(), Op::PutGet(key, value), expect)
            }
            55..=62 => {
                let condition = if self.rng.random_bool(0.5) {
                    Condition::Absent
                } else {
                    Condition::Present
                };
                let write = self.new_write();
                let value = self.value_for(&key, write);
                self.model.issue(write, client, &key, Some(value.clone()));
                let expect = Expect::PutIf {
                    write,
                    key: key.clone(),
                    condition,
                };
                (key.clone(), Op::PutIf(key, value, condition), expect)
            }
            _ => {
                let write = self.new_write();
                let value = self.value_for(&key, write);
                self.model.issue(write, client, &key, Some(value.clone()));
                let expect = Expect::Put {
                    write,
                    key: key.clone(),
                };
                (key.clone(), Op::Put(key, value), expect)
            }
        })
    }

    /// A read-modify-write answering the old value: `GETDEL`, or `SET ...
    /// NX|XX GET`. The state it leaves is known when it is issued (absent,
    /// or its value), so the model takes it like any write; the oracle
    /// learns whether it wrote from the old value it answers.
    fn swap(&mut self, client: usize, key: Vec<u8>) -> (Vec<u8>, Op, Expect) {
        let write = self.new_write();
        let roll = self.rng.random_range(0..6);
        if roll == 0 {
            self.model.issue(write, client, &key, None);
            let expect = Expect::Swap {
                write,
                key: key.clone(),
                deletes: true,
                condition: None,
            };
            return (key.clone(), Op::modify(key, Modify::GetDel), expect);
        }
        let condition = [None, Some(Condition::Absent), Some(Condition::Present)][roll % 3];
        let value = self.value_for(&key, write);
        // Half of them expire, some already in the past: a few
        // milliseconds of simulated time either side of the clock, so
        // keys expire (and the clock jumps over deadlines) within an
        // epoch.
        let deadline = (roll >= 3 || condition.is_none()).then(|| {
            let offset = self.rng.random_range(-3i64..12);
            self.clock_ms().saturating_add_signed(offset)
        });
        let expiry = deadline.map_or(Expiry::Clear, Expiry::At);
        // An expiring value is never empty: values tell writes apart, and
        // empty ones do not.
        let value = match (deadline, value.is_empty()) {
            (Some(_), true) => format!("expiring:{write}:").into_bytes(),
            _ => value,
        };
        let exchange = Modify::Exchange {
            value: value.clone(),
            condition,
            expiry,
        };
        match deadline {
            Some(at) => {
                self.model
                    .issue_expiring(write, client, &key, Some(value), at);
                self.counters.add("expiring_writes", 1);
            }
            None => self.model.issue(write, client, &key, Some(value)),
        }
        let expect = Expect::Swap {
            write,
            key: key.clone(),
            deletes: false,
            condition,
        };
        (key.clone(), Op::modify(key, exchange), expect)
    }

    /// An atomic batch on one worker: puts, deletes and overwrites of
    /// existing keys, and puts of fresh keys (hash-tagged onto a short key
    /// of the same worker).
    fn batch(&mut self, client: usize, first: Vec<u8>) -> Option<(Vec<u8>, Op, Expect)> {
        let owner = self.owner(&first);
        let pending_set_get: Vec<Vec<u8>> = if self.options.batches_over_pending_set_get {
            Vec::new()
        } else {
            self.pending
                .values()
                .filter_map(|p| match &p.expect {
                    Expect::PutGet { key, .. } | Expect::Swap { key, .. } => Some(key.clone()),
                    _ => None,
                })
                .collect()
        };
        if pending_set_get.contains(&first) {
            return None;
        }
        let mut candidates: Vec<Vec<u8>> = self
            .keyspace
            .iter()
            .filter(|k| {
                **k != first
                    && (self.routing.is_some() || self.owner(k) == owner)
                    && !pending_set_get.contains(k)
                    && !self
                        .routing
                        .as_ref()
                        .is_some_and(|r| r.claimed_by_other(client, std::slice::from_ref(*k)))
            })
            .cloned()
            .collect();
        let tag = std::iter::once(&first)
            .chain(candidates.iter())
            .find(|k| k.len() <= 4)
            .cloned();
        let write = self.new_write();
        let n = self.rng.random_range(2..6);
        let mut keys = vec![first];
        for i in 1..n {
            if let (Some(tag), true) = (&tag, self.rng.random_bool(0.3)) {
                keys.push(format!("{{{}}}b{write}:{i}", String::from_utf8_lossy(tag)).into_bytes());
            } else if !candidates.is_empty() {
                let at = self.rng.random_range(0..candidates.len());
                keys.push(candidates.swap_remove(at));
            }
        }
        let mut ops = Vec::new();
        let mut model_ops: Vec<(Vec<u8>, Value)> = Vec::new();
        for key in &keys {
            let fresh = !self.model.keys.contains_key(key);
            if !fresh && self.rng.random_bool(0.3) {
                ops.push(BatchOp::Delete(key.clone()));
                model_ops.push((key.clone(), None));
                self.counters.add("batch_deletes", 1);
            } else {
                let mut value = self.value_for(key, write);
                value.truncate(600);
                ops.push(BatchOp::Put(key.clone(), value.clone()));
                model_ops.push((key.clone(), Some(value)));
                self.counters.add(
                    if fresh {
                        "batch_fresh_puts"
                    } else {
                        "batch_overwrites"
                    },
                    1,
                );
            }
        }
        debug_assert!(self.routing.is_some() || keys.iter().all(|k| self.owner(k) == owner));
        for (key, value) in &model_ops {
            self.model.issue(write, client, key, value.clone());
        }
        self.model.batches.push(BatchModel {
            write,
            ops: model_ops,
        });
        let route = keys[0].clone();
        Some((route, Op::Batch(ops), Expect::Batch { write, keys }))
    }
}
