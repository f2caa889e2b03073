//! Simulated clients: each has one operation in flight at a time, routes
//! by the leaders it has learnt (and sometimes to a random node, so
//! redirects and followers are exercised), and records every operation in
//! the history the checker reads.
//!
//! Besides the register keys (checked for linearizability by
//! `cluster::history`), a few counter keys take only INCRs, a
//! read-modify-write each replica evaluates as it applies the entry; the
//! counter oracle ([`Clients::check_counters`]) checks them.
//!
//! Outcomes: a refusal before proposing (`NotLeader`, `WrongNode`, a
//! down node) and a proposal overwritten by another leader's entry
//! (`Lost`) are failures; a timeout, a lost connection (the node crashed)
//! or `Unknown` is indeterminate.

use std::collections::BTreeMap;

use cluster::entry::{Rmw, Write};
use cluster::group::{Read, Reply};
use cluster::history::{History, Op, Operation, Outcome};
use cluster::layout::GroupLayout;
use cluster::node::Request;
use cluster::placement::NodeId;
use engine::modify::{Answer, Modify};
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
    /// An INCR, or the final read of a counter key.
    counter: bool,
}

/// Counter keys: INCRs spread over this many.
const COUNTERS: usize = 2;

/// One INCR as its client saw it.
struct Incr {
    key: Vec<u8>,
    invoked: u64,
    completed: u64,
    /// The count it answered; `None` when its outcome is unknown.
    answer: Option<i64>,
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
    incr_percent: u32,
    counters: Vec<Vec<u8>>,
    /// Every INCR that did not definitely fail.
    incrs: Vec<Incr>,
    /// Each counter's value read back at the end.
    counter_finals: BTreeMap<Vec<u8>, i64>,
}

impl Clients {
    pub fn new(
        count: usize,
        keys: usize,
        layout: GroupLayout,
        rate: f64,
        incr_percent: u32,
    ) -> Self {
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
            final_done: vec![false; keys + COUNTERS],
            final_busy: vec![false; keys + COUNTERS],
            rate,
            incr_percent,
            counters: (0..COUNTERS)
                .map(|c| format!("counter-{c}").into_bytes())
                .collect(),
            incrs: Vec::new(),
            counter_finals: BTreeMap::new(),
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
            let k = rng.random_range(0..self.keys.len());
            let key = self.keys[k].clone();
            let draw = rng.random_range(0..100);
            if draw >= 100 - self.incr_percent {
                // The draws are the same as a register operation's, so a
                // seed's randomness does not shift with the mix.
                let key = self.counters[k % COUNTERS].clone();
                let rmw = Rmw {
                    modify: Modify::IncrBy(1),
                    now_ms: 0,
                    value_bytes_max: 1 << 20,
                };
                let request = Request::Write(Write::Modify {
                    key: key.clone(),
                    rmw,
                });
                self.busy[client] = true;
                self.submit(rng, now, client, key, Op::Get, request, true, slots, ids);
                continue;
            }
            let (op, request) = match draw {
                0..45 => {
                    let value = format!("v{}", self.next_value).into_bytes();
                    self.next_value += 1;
                    (
                        Op::Put(value.clone()),
                        Request::Write(Write::Put {
                            key: key.clone(),
                            value,
                        }),
                    )
                }
                45..55 => (
                    Op::Delete,
                    Request::Write(Write::Delete { key: key.clone() }),
                ),
                _ => (
                    Op::Get,
                    Request::Get {
                        read: Read::value(key.clone(), 0),
                        stale: false,
                    },
                ),
            };
            self.busy[client] = true;
            self.submit(rng, now, client, key, op, request, false, slots, ids);
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
        counter: bool,
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
            counter,
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
        if flight.counter {
            return self.complete_counter(flight, outcome, completed);
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
                // An INCR's answer, carried as a read of the count.
                Reply::Answer(Answer::Integer(n)) if flight.counter => {
                    Outcome::Read(Some(n.to_string().into_bytes()))
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
        for k in 0..self.final_done.len() {
            if self.final_done[k] || self.final_busy[k] {
                continue;
            }
            self.final_busy[k] = true;
            let counter = k >= self.keys.len();
            let key = match self.keys.get(k) {
                Some(key) => key.clone(),
                None => self.counters[k - self.keys.len()].clone(),
            };
            let request = Request::Get {
                read: Read::value(key.clone(), 0),
                stale: false,
            };
            let client = self.count + k;
            self.submit(rng, now, client, key, Op::Get, request, counter, slots, ids);
        }
    }

    /// An INCR ended, or a counter's final read.
    fn complete_counter(&mut self, flight: InFlight, outcome: Outcome, completed: u64) {
        let count = |bytes: &[u8]| -> i64 {
            let text = String::from_utf8_lossy(bytes);
            text.parse()
                .unwrap_or_else(|_| panic!("counter {text:?} is not a number"))
        };
        let answer = match outcome {
            Outcome::Failed => return,
            Outcome::Read(value) => Some(value.as_deref().map_or(0, count)),
            Outcome::Indeterminate => None,
            Outcome::Written => panic!("an INCR answered \"written\""),
        };
        if flight.client >= self.count {
            if let Some(value) = answer {
                self.counter_finals.insert(flight.key, value);
            }
            return;
        }
        self.incrs.push(Incr {
            key: flight.key,
            invoked: flight.invoked,
            completed,
            answer,
        });
    }

    /// INCRs that did not definitely fail.
    pub fn incrs(&self) -> usize {
        self.incrs.len()
    }

    /// The counter oracle. Per counter key, the INCRs (each adds one and
    /// answers the new count) are linearizable exactly when some order
    /// consistent with real time gives the k-th the answer k. So:
    /// acknowledged answers are distinct (no lost or repeated update);
    /// one that returned before another was invoked answered less; an
    /// answer `a` needs `a` INCRs invoked before it returned (itself
    /// included: none can come from nowhere); and the count read at the end
    /// lies between the acknowledged INCRs and all that may have applied,
    /// and is at least every answer.
    pub fn check_counters(&self) -> Result<(), String> {
        for key in &self.counters {
            let name = String::from_utf8_lossy(key);
            let ops: Vec<&Incr> = self.incrs.iter().filter(|i| &i.key == key).collect();
            let mut acked: Vec<(&Incr, i64)> = ops
                .iter()
                .filter_map(|i| i.answer.map(|a| (*i, a)))
                .collect();
            acked.sort_by_key(|&(_, a)| a);
            let mut latest_invoked = 0;
            for pair in acked.windows(2) {
                if pair[0].1 == pair[1].1 {
                    return Err(format!("{name}: two INCRs both answered {}", pair[0].1));
                }
            }
            for &(op, a) in &acked {
                // In answer order, none may have returned before an INCR
                // with a smaller answer was invoked.
                if op.completed < latest_invoked {
                    return Err(format!(
                        "{name}: an INCR answered {a} and returned before one with a smaller \
                         answer was invoked"
                    ));
                }
                latest_invoked = latest_invoked.max(op.invoked);
            }
            for &(op, a) in &acked {
                let possible = ops.iter().filter(|o| o.invoked < op.completed).count();
                if a < 1 || a as usize > possible {
                    return Err(format!(
                        "{name}: an INCR answered {a} when only {possible} had been invoked"
                    ));
                }
            }
            let Some(&end) = self.counter_finals.get(key) else {
                return Err(format!("{name}: never read back"));
            };
            let (low, high) = (acked.len() as i64, ops.len() as i64);
            let top = acked.last().map_or(0, |&(_, a)| a);
            if end < low || end > high || end < top {
                return Err(format!(
                    "{name}: read back {end}, but {low} INCRs were acknowledged (the greatest                      answering {top}) and {high} may have applied"
                ));
            }
        }
        Ok(())
    }
}
