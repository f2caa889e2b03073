//! Shard moves and cross-worker batches under simulation: each worker's
//! `engine::mover::ShardMover` (the same state machine the runtime's threads
//! drive), an owner table, and one inbox per worker, all stepped from the
//! simulator's one thread. Shards move at random while requests run and
//! crashes land; a batch whose keys live on several workers gathers its
//! shards on one worker and commits as one frame. The caller-thread cache
//! read path (`WorkerCore::cache_reader`, what `Engine::get` uses) is read
//! between steps and checked.
//!
//! Clients reach the engine two ways, as in the runtime. Most are
//! connections to a worker's frontend (`Submitter::submit`): their requests
//! go through that worker's mover, which routes them by the owner table, and
//! they pipeline (`Options::pipeline_depth` requests in flight, often on one
//! key); one client's requests of a key must take effect in the order
//! issued, whatever moves happen meanwhile. The others are callers of the
//! `Engine` API (`Engine::call`): one request at a time, sent to the inbox of
//! the worker the owner table names.
//!
//! Requests from *different* clients to one key have no order once shards
//! move (they are concurrent), so the workload keeps a key's requests in
//! flight to one client at a time; the model's per-key order is then that
//! client's issue order, which the engine must keep.

use std::collections::{BTreeMap, VecDeque};

use engine::mover::{Effect, Message, Owners, ShardMover};
use engine::Op;
use rand::Rng;

use super::model::show_key;
use super::Sim;

type Mover = ShardMover<u64, u64>;

/// The routing state of one life of the engine.
pub struct Routing {
    pub owners: Owners,
    movers: Vec<Mover>,
    inboxes: Vec<VecDeque<Message<u64, u64>>>,
    /// Keys with a request in flight: the client whose requests they are,
    /// and how many.
    busy_keys: BTreeMap<Vec<u8>, (usize, u32)>,
    /// The keys of each request in flight.
    request_keys: BTreeMap<u64, Vec<Vec<u8>>>,
    /// The key each client last asked for.
    last_keys: BTreeMap<usize, Vec<u8>>,
}

impl Routing {
    pub fn new(workers: usize) -> Routing {
        Routing {
            owners: Owners::new(workers),
            movers: (0..workers).map(|w| ShardMover::new(w as u16)).collect(),
            inboxes: (0..workers).map(|_| VecDeque::new()).collect(),
            busy_keys: BTreeMap::new(),
            request_keys: BTreeMap::new(),
            last_keys: BTreeMap::new(),
        }
    }

    /// Messages waiting in worker `w`'s inbox.
    pub fn inbox_len(&self, w: usize) -> usize {
        self.inboxes[w].len()
    }

    /// The key `client` last asked for.
    pub fn last_key(&self, client: usize) -> Option<&[u8]> {
        self.last_keys.get(&client).map(Vec::as_slice)
    }

    /// Whether a shard is on its way or a request is held.
    pub fn in_flight(&self) -> bool {
        self.movers.iter().any(Mover::busy) || self.inboxes.iter().any(|i| !i.is_empty())
    }

    /// Whether any of `keys` has a request in flight.
    pub fn busy(&self, keys: &[Vec<u8>]) -> bool {
        keys.iter().any(|k| self.busy_keys.contains_key(k))
    }

    /// Whether another client than `client` has a request of any of `keys`
    /// in flight.
    pub fn claimed_by_other(&self, client: usize, keys: &[Vec<u8>]) -> bool {
        keys.iter()
            .any(|k| self.busy_keys.get(k).is_some_and(|(c, _)| *c != client))
    }

    fn claim(&mut self, id: u64, client: usize, keys: Vec<Vec<u8>>) {
        for key in &keys {
            let (owner, n) = self.busy_keys.entry(key.clone()).or_insert((client, 0));
            assert_eq!(
                *owner, client,
                "a key's requests in flight are one client's"
            );
            *n += 1;
        }
        if let Some(first) = keys.first() {
            self.last_keys.insert(client, first.clone());
        }
        self.request_keys.insert(id, keys);
    }

    /// A request is answered: its keys are free again.
    pub fn release(&mut self, id: u64) {
        for key in self.request_keys.remove(&id).into_iter().flatten() {
            if let Some((_, n)) = self.busy_keys.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.busy_keys.remove(&key);
                }
            }
        }
    }
}

impl Sim {
    /// The worker whose frontend `client` is connected to, if it is a
    /// connection (with routing on); otherwise it calls the `Engine` API.
    pub fn frontend_of(&self, client: usize) -> Option<usize> {
        self.routing.as_ref()?;
        (client % 3 != 2).then(|| client % self.cores.len())
    }

    /// Hands a request over: with routing on, a connection's through its
    /// frontend worker's mover (`Submitter::submit`), a caller's to the
    /// inbox of the worker the owner table names (`Engine::call`); without
    /// routing, straight to the owner's core.
    pub fn submit(&mut self, client: usize, owner: usize, id: u64, op: Op) {
        let frontend = self.frontend_of(client);
        let Some(routing) = self.routing.as_mut() else {
            self.cores[owner].accept(id, op, self.now_us);
            return;
        };
        routing.claim(id, client, op.keys().map(<[u8]>::to_vec).collect());
        let Some(f) = frontend else {
            routing.inboxes[owner].push_back(Message::Request {
                op,
                reply: id,
                stamp: None,
            });
            return;
        };
        let mut effects = Vec::new();
        routing.movers[f].submit(&self.cores[f], &routing.owners, op, id, &mut effects);
        self.apply_effects(f, effects);
    }

    /// Delivers up to `limit` of the messages waiting in worker `w`'s
    /// inbox, in order.
    pub fn deliver(&mut self, w: usize, limit: usize) {
        for _ in 0..limit {
            let Some(routing) = self.routing.as_mut() else {
                return;
            };
            let Some(message) = routing.inboxes[w].pop_front() else {
                return;
            };
            let mut effects = Vec::new();
            let (mover, owners) = (&mut routing.movers[w], &routing.owners);
            match message {
                Message::Request { op, reply, stamp } => {
                    mover.request(&self.cores[w], owners, op, reply, stamp, &mut effects)
                }
                Message::MoveOut { shard, to, done } => {
                    mover.move_out(&self.cores[w], owners, shard, to, done, &mut effects)
                }
                Message::MoveIn {
                    shard,
                    index,
                    turns,
                } => {
                    mover.move_in(&mut self.cores[w], owners, shard, *index, turns);
                    self.counters.add("shard_moves_landed", 1);
                }
            }
            self.apply_effects(w, effects);
        }
    }

    /// Lets worker `w`'s mover send away drained shards and route what it
    /// held.
    pub fn advance_mover(&mut self, w: usize) {
        let Some(routing) = self.routing.as_mut() else {
            return;
        };
        let mut effects = Vec::new();
        routing.movers[w].advance(&mut self.cores[w], &routing.owners, &mut effects);
        self.apply_effects(w, effects);
    }

    fn apply_effects(&mut self, w: usize, effects: Vec<Effect<u64, u64>>) {
        for effect in effects {
            match effect {
                Effect::Send { to, message } => {
                    if matches!(message, Message::Request { .. }) {
                        self.counters.add("requests_forwarded", 1);
                    }
                    if let Some(routing) = self.routing.as_mut() {
                        routing.inboxes[usize::from(to)].push_back(message);
                    }
                }
                Effect::Accept { op, reply } => {
                    if matches!(&op, Op::Batch(ops) if self.spans_workers(ops)) {
                        self.counters.add("cross_worker_batches_accepted", 1);
                    }
                    self.cores[w].accept(reply, op, self.now_us);
                }
                Effect::MoveDone(_) => self.counters.add("shard_moves_done", 1),
            }
        }
    }

    /// Whether a batch's keys were spread over several workers when the
    /// engine opened (shard `s` starts on worker `s % workers`).
    fn spans_workers(&self, ops: &[engine::BatchOp]) -> bool {
        let workers = self.cores.len();
        let mut homes = ops
            .iter()
            .map(|o| usize::from(engine::shard::shard(o.key())) % workers);
        let first = homes.next();
        homes.any(|h| Some(h) != first)
    }

    /// Asks the owner of a random key's shard to move it to another worker:
    /// half the time a key with requests in flight.
    pub fn request_move(&mut self) {
        let workers = self.cores.len();
        if workers < 2 {
            return;
        }
        let Some(routing) = self.routing.as_ref() else {
            return;
        };
        let busy = routing.busy_keys.len();
        let key = if busy > 0 && self.rng.random_bool(0.5) {
            let at = self.rng.random_range(0..busy);
            routing.busy_keys.keys().nth(at).cloned()
        } else {
            None
        };
        let key = key.unwrap_or_else(|| {
            self.keyspace[self.rng.random_range(0..self.keyspace.len())].clone()
        });
        let shard = engine::shard::shard(&key);
        let Some(routing) = self.routing.as_mut() else {
            return;
        };
        let from = routing.owners.owner(shard);
        let to = (usize::from(from) + self.rng.random_range(1..workers)) % workers;
        routing.inboxes[usize::from(from)].push_back(Message::MoveOut {
            shard,
            to: to as u16,
            done: Some(0),
        });
        self.counters.add("shard_moves_requested", 1);
    }

    /// Reads a random key through its owner's cache on the "caller's
    /// thread", as `Engine::get` does, and checks a hit: with no request of
    /// the key in flight, a hit must be exactly the acknowledged value.
    pub fn check_cache_read(&mut self) {
        let key = self.keyspace[self.rng.random_range(0..self.keyspace.len())].clone();
        let Some(routing) = self.routing.as_ref() else {
            return;
        };
        if routing.busy(std::slice::from_ref(&key)) || self.oracle.lossy(&key) {
            return;
        }
        let owner = usize::from(routing.owners.owner(engine::shard::shard(&key)));
        let Some(value) = self.cores[owner].cache_reader().get(&key) else {
            self.counters.add("cache_reads_missed", 1);
            return;
        };
        self.counters.add("cache_reads_hit", 1);
        let acceptable = self.model.acceptable(&key);
        if !acceptable.contains(&Some(value.clone())) {
            self.violation(format!(
                "cache read of {} on the caller's thread returned a value the model does not allow ({} bytes)",
                show_key(&key),
                value.len()
            ));
        }
    }
}
