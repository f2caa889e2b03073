//! Simulated clients: each has one operation in flight at a time, routes
//! by the leaders it has learnt (and sometimes to a random node, so
//! redirects and followers are exercised), and records every operation in
//! the history the checker reads.
//!
//! Outcomes: a refusal before proposing (`NotLeader`, `WrongNode`, a
//! down node) and a proposal overwritten by another leader's entry
//! (`Lost`) are failures; a timeout, a lost connection (the node crashed)
//! or `Unknown` is indeterminate.

use std::collections::BTreeMap;

use cluster::group::{Read, Reply};
use cluster::history::{History, Op, Operation, Outcome};
use cluster::layout::GroupLayout;
use cluster::node::Request;
use cluster::placement::NodeId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Leaders, Slot};

struct InFlight {
    request: u64,
    client: usize,
    node: NodeId,
    key: Vec<u8>,
    op: Op,
    invoked: u64,
    started_at: u64,
}

pub struct Clients {
    count: usize,
    keys: Vec<Vec<u8>>,
    layout: GroupLayout,
    /// Per client, the leader it last learnt for each group.
    leaders: Vec<Leaders>,
    busy: Vec<bool>,
    in_flight: BTreeMap<u64, InFlight>,
    history: History,
    /// Orders every invocation and completion: the checker's real time.
    clock: u64,
    next_request: u64,
    next_value: u64,
    /// Keys the final phase has read back.
    final_done: Vec<bool>,
    final_busy: Vec<bool>,
    /// Per time unit, the chance an idle client starts an operation.
    rate: f64,
}

impl Clients {
    pub fn new(count: usize, keys: usize, layout: GroupLayout, rate: f64) -> Self {
        Self {
            count,
            keys: (0..keys).map(|k| format!("key-{k}").into_bytes()).collect(),
            layout,
            leaders: vec![Leaders::new(); count + 1],
            busy: vec![false; count],
            in_flight: BTreeMap::new(),
            history: History::default(),
            clock: 0,
            next_request: 1,
            next_value: 1,
            final_done: vec![false; keys],
            final_busy: vec![false; keys],
            rate,
        }
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Idle clients start an operation, now and then.
    pub fn act(&mut self, rng: &mut ChaCha8Rng, now: u64, slots: &mut [Slot], ids: &[NodeId]) {
        for client in 0..self.count {
            if self.busy[client] || !rng.random_bool(self.rate) {
                continue;
            }
            let key = self.keys[rng.random_range(0..self.keys.len())].clone();
            let (op, request) = match rng.random_range(0..100) {
                0..45 => {
                    let value = format!("v{}", self.next_value).into_bytes();
                    self.next_value += 1;
                    (
                        Op::Put(value.clone()),
                        Request::Put {
                            key: key.clone(),
                            value,
                        },
                    )
                }
                45..55 => (Op::Delete, Request::Delete { key: key.clone() }),
                _ => (
                    Op::Get,
                    Request::Get {
                        read: Read::value(key.clone(), 0),
                        stale: false,
                    },
                ),
            };
            self.busy[client] = true;
            self.submit(rng, now, client, key, op, request, slots, ids);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: u64,
        client: usize,
        key: Vec<u8>,
        op: Op,
        request: Request,
        slots: &mut [Slot],
        ids: &[NodeId],
    ) {
        let group = self.layout.group_of_key(&key);
        let node = match self.leaders[client.min(self.count)].get(&group) {
            Some(&leader) if rng.random_bool(0.85) => leader,
            _ => ids[rng.random_range(0..ids.len())],
        };
        let id = self.next_request;
        self.next_request += 1;
        let invoked = self.tick();
        let flight = InFlight {
            request: id,
            client,
            node,
            key,
            op,
            invoked,
            started_at: now,
        };
        let index = ids.iter().position(|&n| n == node).expect("a member");
        match &mut slots[index] {
            Slot::Up(n) => {
                n.submit(id, request);
                self.in_flight.insert(id, flight);
            }
            // Connection refused: nothing was sent.
            Slot::Down(_) => self.complete(flight, Outcome::Failed),
        }
    }

    fn complete(&mut self, flight: InFlight, outcome: Outcome) {
        let completed = self.tick();
        if flight.client < self.count {
            self.busy[flight.client] = false;
        } else {
            self.final_busy[flight.client - self.count] = false;
            if matches!(outcome, Outcome::Read(_)) {
                self.final_done[flight.client - self.count] = true;
            }
        }
        self.history.record(Operation {
            client: flight.client as u64,
            key: flight.key,
            op: flight.op,
            invoked: flight.invoked,
            completed,
            outcome,
        });
    }

    /// A node's replies.
    pub fn replies(&mut self, _now: u64, node: NodeId, replies: Vec<(u64, Reply)>) {
        for (request, reply) in replies {
            let Some(flight) = self.in_flight.remove(&request) else {
                continue;
            };
            assert_eq!(
                flight.node, node,
                "request {request} answered by another node"
            );
            let group = self.layout.group_of_key(&flight.key);
            let cache = &mut self.leaders[flight.client.min(self.count)];
            let outcome = match reply {
                Reply::Written => Outcome::Written,
                Reply::Value(v) => Outcome::Read(v),
                Reply::NotLeader { leader } | Reply::WrongNode { leader } => {
                    match leader {
                        Some(l) => cache.insert(group, l),
                        None => cache.remove(&group),
                    };
                    Outcome::Failed
                }
                Reply::Lost => Outcome::Failed,
                Reply::Unknown => Outcome::Indeterminate,
                Reply::Halted => {
                    panic!("group {group} halted on node {node}: an entry did not decode")
                }
                Reply::NotApplied | Reply::Answer(_) | Reply::Refused(_) | Reply::Deadline(_) => {
                    panic!(
                        "request {request}: {reply:?} answers a request this workload never makes"
                    )
                }
            };
            if matches!(outcome, Outcome::Written | Outcome::Read(_)) {
                cache.insert(group, node);
            }
            self.complete(flight, outcome);
        }
    }

    /// Operations older than `timeout` become indeterminate.
    pub fn time_out(&mut self, now: u64, timeout: u64) {
        let late: Vec<u64> = self
            .in_flight
            .values()
            .filter(|f| now - f.started_at > timeout)
            .map(|f| f.request)
            .collect();
        for request in late {
            if let Some(flight) = self.in_flight.remove(&request) {
                self.leaders[flight.client.min(self.count)].clear();
                self.complete(flight, Outcome::Indeterminate);
            }
        }
    }

    /// A node crashed: its connections broke, with whatever was in flight.
    pub fn node_lost(&mut self, node: NodeId) {
        let lost: Vec<u64> = self
            .in_flight
            .values()
            .filter(|f| f.node == node)
            .map(|f| f.request)
            .collect();
        for request in lost {
            if let Some(flight) = self.in_flight.remove(&request) {
                self.complete(flight, Outcome::Indeterminate);
            }
        }
    }

    pub fn start_final_reads(&mut self) {
        self.final_done.iter_mut().for_each(|d| *d = false);
    }

    pub fn final_reads_done(&self) -> bool {
        self.final_done.iter().all(|&d| d)
    }

    /// One reader per key reads it back until a read succeeds.
    pub fn act_final(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: u64,
        slots: &mut [Slot],
        ids: &[NodeId],
    ) {
        for k in 0..self.keys.len() {
            if self.final_done[k] || self.final_busy[k] {
                continue;
            }
            self.final_busy[k] = true;
            let key = self.keys[k].clone();
            let request = Request::Get {
                read: Read::value(key.clone(), 0),
                stale: false,
            };
            self.submit(rng, now, self.count + k, key, Op::Get, request, slots, ids);
        }
    }
}
