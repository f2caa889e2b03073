//! Shard moves and request routing between workers, as a state machine
//! with no thread, channel or clock: the runtime's worker threads drive one
//! per worker, and so does the simulator, which crashes the engine while
//! shards are on their way.
//!
//! A request reaches the worker the owner table names. If that worker does
//! not hold the shard's index (it moved away, or is on its way here), the
//! request is forwarded or held. A batch commits as one frame on one worker,
//! so a worker given a batch whose shards are elsewhere asks their owners
//! to move them here and holds the batch until they have arrived.
//!
//! A move: the owner marks the shard moving (writes to it are held from
//! then on), waits until the core has no write of the shard in flight
//! ([`WorkerCore::release_shard`]), hands the index over in a
//! [`Message::MoveIn`] and publishes the new owner. Reads keep being served
//! by the old owner until the index leaves, and by the new one after.
//!
//! One submitter's requests of a shard take effect in the order it
//! submitted them, whatever moves happen meanwhile. A worker's frontend
//! pipelines (it submits without waiting for replies), and its requests of
//! one shard can take different paths: one routed by the owner table just
//! before a move may wait at the old owner (in its inbox, held, or parked
//! behind a gathering batch) while the next, routed just after, reaches
//! the new owner. So [`ShardMover::submit`] stamps each request with its
//! number among the submitter's requests of each shard it touches, and the
//! shard's owner hands requests to its core only in that order, holding one
//! that arrives early until those before it have been handed over. The
//! numbers expected next travel with the shard's index in
//! [`Message::MoveIn`]. Requests of the `Engine` API (one caller, one
//! request at a time) carry no stamp.
//!
//! Nothing here is durable: the index is rebuilt from the log at open, so a
//! crash with a shard in flight loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::index::Art;
use crate::shard::{shard, SHARD_COUNT};
use crate::worker::{Op, WorkerCore};

/// Which worker owns each shard: read by every thread, changed only by a
/// move.
pub struct Owners {
    owners: Vec<AtomicU16>,
}

impl Owners {
    /// Shard `s` on worker `s % workers`, as `open_workers` distributes them.
    pub fn new(workers: usize) -> Owners {
        assert!(workers > 0 && workers <= usize::from(SHARD_COUNT));
        Owners {
            owners: (0..SHARD_COUNT)
                .map(|s| AtomicU16::new((usize::from(s) % workers) as u16))
                .collect(),
        }
    }

    /// The worker that owns `shard_id` now.
    pub fn owner(&self, shard_id: u16) -> u16 {
        self.owners[usize::from(shard_id)].load(Ordering::Acquire)
    }

    fn set(&self, shard_id: u16, worker: u16) {
        self.owners[usize::from(shard_id)].store(worker, Ordering::Release);
    }
}

/// Where a request stands in its submitter's order: for each shard it
/// touches, its number among the submitter's requests of that shard.
/// Compact, since every message of a request carries it.
#[derive(Clone, Debug)]
pub struct Stamp {
    submitter: u16,
    shard: u16,
    number: u32,
    /// The other shards of a batch.
    rest: Option<Box<[(u16, u32)]>>,
}

impl Stamp {
    fn turns(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        let rest = self.rest.iter().flat_map(|r| r.iter().copied());
        std::iter::once((self.shard, self.number)).chain(rest)
    }
}

/// Per shard, the number of the request each submitter hands over next:
/// it moves with the shard.
#[derive(Clone, Debug, Default)]
pub struct Turns(Box<[u32]>);

impl Turns {
    fn next(&self, submitter: u16) -> u32 {
        self.0.get(usize::from(submitter)).copied().unwrap_or(0)
    }

    fn take(&mut self, submitter: u16) {
        let at = usize::from(submitter);
        if self.0.len() <= at {
            // A submitter's first request of this shard: grow once.
            let mut grown = std::mem::take(&mut self.0).into_vec();
            grown.resize(at + 1, 0);
            self.0 = grown.into_boxed_slice();
        }
        self.0[at] = self.0[at].wrapping_add(1);
    }
}

/// A message between workers. `R` says whom to answer; `D` whom to tell
/// that a move is done.
pub enum Message<R, D> {
    /// A request for a shard the receiver owns (or is about to), with its
    /// place in its submitter's order if it has one.
    Request {
        op: Op,
        reply: R,
        stamp: Option<Stamp>,
    },
    /// Move `shard` to worker `to`.
    MoveOut {
        shard: u16,
        to: u16,
        done: Option<D>,
    },
    /// A shard's index, arriving, and whose request it takes next. Boxed:
    /// it is the largest message, and every message is moved by value
    /// through the inboxes.
    MoveIn {
        shard: u16,
        index: Box<Art>,
        turns: Turns,
    },
}

/// What the mover asks its driver to do.
pub enum Effect<R, D> {
    /// Send `message` to worker `to`.
    Send { to: u16, message: Message<R, D> },
    /// Hand the request to this worker's core: every shard it needs is here.
    Accept { op: Op, reply: R },
    /// Tell whoever asked that a move is done.
    MoveDone(D),
}

/// The shards `op` touches (a batch may touch several; a scan names one),
/// without allocating: routing runs for every request.
fn op_shards(op: &Op) -> impl Iterator<Item = u16> + '_ {
    let scanned = match op {
        Op::Scan(shard_id) | Op::Count(shard_id) => Some(*shard_id),
        _ => None,
    };
    op.keys().map(shard).chain(scanned)
}

/// A request waiting in a mover.
struct Held<R> {
    op: Op,
    reply: R,
    stamp: Option<Stamp>,
}

/// One worker's side of routing and moves.
pub struct ShardMover<R, D> {
    worker: u16,
    /// Shards being moved out: (target, whom to tell).
    moving: BTreeMap<u16, (u16, Option<D>)>,
    /// Moves asked for while the shard was already leaving: passed on to
    /// its next owner once it has left.
    then_moves: Vec<(u16, u16, Option<D>)>,
    /// Shards this worker asked for, to gather an atomic batch.
    gathering: BTreeSet<u16>,
    /// Requests waiting for a shard to arrive or to finish leaving, or for
    /// their turn.
    held: Vec<Held<R>>,
    /// Per shard, how many requests of it this worker's frontend has
    /// submitted: the next one's number.
    submitted: Vec<u32>,
    /// Per shard this worker owns, whose request it hands over next.
    turns: Vec<Turns>,
}

impl<R, D> ShardMover<R, D> {
    /// The mover of worker `worker`.
    pub fn new(worker: u16) -> ShardMover<R, D> {
        ShardMover {
            worker,
            moving: BTreeMap::new(),
            then_moves: Vec::new(),
            gathering: BTreeSet::new(),
            held: Vec::new(),
            submitted: vec![0; usize::from(SHARD_COUNT)],
            turns: vec![Turns::default(); usize::from(SHARD_COUNT)],
        }
    }

    /// Whether moves or held requests are pending.
    pub fn busy(&self) -> bool {
        !self.moving.is_empty() || !self.held.is_empty() || !self.then_moves.is_empty()
    }

    /// Submits a request of this worker's frontend: stamps it with its
    /// place in this worker's order of each shard it touches, then routes it.
    pub fn submit(
        &mut self,
        core: &WorkerCore,
        owners: &Owners,
        op: Op,
        reply: R,
        effects: &mut Vec<Effect<R, D>>,
    ) {
        let stamp = self.stamp(&op);
        self.request(core, owners, op, reply, stamp, effects);
    }

    fn stamp(&mut self, op: &Op) -> Option<Stamp> {
        let mut shards = op_shards(op);
        let first = shards.next()?;
        let mut number = |s: u16| {
            let n = &mut self.submitted[usize::from(s)];
            let this = *n;
            *n = n.wrapping_add(1);
            this
        };
        let mut rest = None;
        if op.is_batch() {
            let mut others: Vec<u16> = shards.filter(|&s| s != first).collect();
            others.sort_unstable();
            others.dedup();
            if !others.is_empty() {
                rest = Some(others.into_iter().map(|s| (s, number(s))).collect());
            }
        }
        Some(Stamp {
            submitter: self.worker,
            shard: first,
            number: number(first),
            rest,
        })
    }

    /// Routes a request that reached this worker.
    pub fn request(
        &mut self,
        core: &WorkerCore,
        owners: &Owners,
        op: Op,
        reply: R,
        stamp: Option<Stamp>,
        effects: &mut Vec<Effect<R, D>>,
    ) {
        let Some(first) = op_shards(&op).next() else {
            // An empty batch: nothing to route; the core answers it.
            effects.push(Effect::Accept { op, reply });
            return;
        };
        if !core.owns(first) {
            let owner = owners.owner(first);
            if owner == self.worker {
                // The index is on its way here: keep the request until it lands.
                self.held.push(Held { op, reply, stamp });
            } else {
                let message = Message::Request { op, reply, stamp };
                effects.push(Effect::Send { to: owner, message });
            }
            return;
        }
        let is_write = !matches!(op, Op::Get(_) | Op::Exists(_) | Op::Deadline(_));
        if is_write && self.moving.contains_key(&first) {
            self.held.push(Held { op, reply, stamp });
            return;
        }
        if op.is_batch() && self.gather(core, owners, &op, effects) {
            self.held.push(Held { op, reply, stamp });
            return;
        }
        // Every shard it needs is here: it goes to the core in its
        // submitter's order.
        if let Some(turn) = &stamp {
            if !self.in_turn(turn) {
                self.held.push(Held { op, reply, stamp });
                return;
            }
            for (s, _) in turn.turns() {
                self.turns[usize::from(s)].take(turn.submitter);
            }
        }
        effects.push(Effect::Accept { op, reply });
    }

    /// Whether every request its submitter stamped before `stamp` on its
    /// shards has been handed to a core.
    fn in_turn(&self, stamp: &Stamp) -> bool {
        stamp
            .turns()
            .all(|(s, n)| self.turns[usize::from(s)].next(stamp.submitter) == n)
    }

    /// Asks the owners of a batch's shards that are not here to move them
    /// here. Returns whether any is missing.
    fn gather(
        &mut self,
        core: &WorkerCore,
        owners: &Owners,
        batch: &Op,
        effects: &mut Vec<Effect<R, D>>,
    ) -> bool {
        let mut missing = false;
        for s in op_shards(batch) {
            if core.owns(s) && !self.moving.contains_key(&s) {
                continue;
            }
            missing = true;
            let owner = owners.owner(s);
            if owner != self.worker && self.gathering.insert(s) {
                let message = Message::MoveOut {
                    shard: s,
                    to: self.worker,
                    done: None,
                };
                effects.push(Effect::Send { to: owner, message });
            }
        }
        if !missing {
            for s in op_shards(batch) {
                self.gathering.remove(&s);
            }
        }
        missing
    }

    /// Another worker (or the engine) asks that `shard_id` move to `to`.
    pub fn move_out(
        &mut self,
        core: &WorkerCore,
        owners: &Owners,
        shard_id: u16,
        to: u16,
        done: Option<D>,
        effects: &mut Vec<Effect<R, D>>,
    ) {
        let owner = owners.owner(shard_id);
        if owner != self.worker {
            // Ownership changed since the sender looked: pass it on.
            let message = Message::MoveOut {
                shard: shard_id,
                to,
                done,
            };
            effects.push(Effect::Send { to: owner, message });
        } else if self.moving.contains_key(&shard_id) {
            // Already leaving: this move follows the shard once it has left
            // (replacing the first would drop whoever waits for it).
            self.then_moves.push((shard_id, to, done));
        } else if to == self.worker && core.owns(shard_id) {
            effects.extend(done.map(Effect::MoveDone));
        } else {
            // Ours, or on its way to us: released once it is here.
            self.moving.insert(shard_id, (to, done));
        }
    }

    /// A shard's index arrives.
    pub fn move_in(
        &mut self,
        core: &mut WorkerCore,
        owners: &Owners,
        shard_id: u16,
        index: Art,
        turns: Turns,
    ) {
        core.adopt_shard(shard_id, index);
        self.turns[usize::from(shard_id)] = turns;
        // Asked for again if it leaves before the batch that wanted it runs.
        self.gathering.remove(&shard_id);
        owners.set(shard_id, self.worker);
    }

    /// Sends away the shards whose writes have drained, and routes the
    /// requests held for shards that have since arrived or left, or whose
    /// turn has come. Returns whether anything happened.
    pub fn advance(
        &mut self,
        core: &mut WorkerCore,
        owners: &Owners,
        effects: &mut Vec<Effect<R, D>>,
    ) -> bool {
        let mut progressed = false;
        let shards: Vec<u16> = self.moving.keys().copied().collect();
        for shard_id in shards {
            let Some(index) = core.release_shard(shard_id) else {
                continue;
            };
            let Some((to, done)) = self.moving.remove(&shard_id) else {
                continue;
            };
            core.stats().shard_moves.fetch_add(1, Ordering::Relaxed);
            // Publish the new owner only once the index is on its way;
            // requests that race ahead are held there until it lands.
            owners.set(shard_id, to);
            let turns = std::mem::take(&mut self.turns[usize::from(shard_id)]);
            let message = Message::MoveIn {
                shard: shard_id,
                index: Box::new(index),
                turns,
            };
            effects.push(Effect::Send { to, message });
            effects.extend(done.map(Effect::MoveDone));
            let mut at = 0;
            while at < self.then_moves.len() {
                if self.then_moves[at].0 != shard_id {
                    at += 1;
                    continue;
                }
                let (_, next, done) = self.then_moves.remove(at);
                if next == to {
                    effects.extend(done.map(Effect::MoveDone));
                } else {
                    let message = Message::MoveOut {
                        shard: shard_id,
                        to: next,
                        done,
                    };
                    effects.push(Effect::Send { to, message });
                }
            }
            progressed = true;
        }
        // A request handed over lets the next of its submitter go: pass
        // again until nothing moves.
        loop {
            let mut moved = false;
            let held = std::mem::take(&mut self.held);
            for h in held {
                if self.ready(core, &h) || self.gone(core, owners, &h.op) {
                    moved = true;
                    self.request(core, owners, h.op, h.reply, h.stamp, effects);
                } else {
                    if h.op.is_batch() {
                        // Asks again for a shard that came and left.
                        self.gather(core, owners, &h.op, effects);
                    }
                    self.held.push(h);
                }
            }
            progressed |= moved;
            if !moved || self.held.is_empty() {
                break;
            }
        }
        progressed
    }

    /// Whether every shard a held request needs is here and staying, and
    /// its turn has come.
    fn ready(&self, core: &WorkerCore, held: &Held<R>) -> bool {
        op_shards(&held.op).all(|s| core.owns(s) && !self.moving.contains_key(&s))
            && held.stamp.as_ref().is_none_or(|stamp| self.in_turn(stamp))
    }

    /// Whether the shard `op` is routed by (a batch's first key's) has left
    /// for another worker: the request follows it.
    fn gone(&self, core: &WorkerCore, owners: &Owners, op: &Op) -> bool {
        op_shards(op)
            .next()
            .is_some_and(|s| !core.owns(s) && owners.owner(s) != self.worker)
    }
}
