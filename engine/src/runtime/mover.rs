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

/// A message between workers. `R` says whom to answer; `D` whom to tell
/// that a move is done.
pub enum Message<R, D> {
    /// A request for a shard the receiver owns (or is about to).
    Request { op: Op, reply: R },
    /// Move `shard` to worker `to`.
    MoveOut {
        shard: u16,
        to: u16,
        done: Option<D>,
    },
    /// A shard's index, arriving.
    MoveIn { shard: u16, index: Art },
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
        Op::Scan(shard_id) => Some(*shard_id),
        _ => None,
    };
    op.keys().map(shard).chain(scanned)
}

/// One worker's side of routing and moves.
pub struct ShardMover<R, D> {
    worker: u16,
    /// Shards being moved out: (target, whom to tell).
    moving: BTreeMap<u16, (u16, Option<D>)>,
    /// Shards this worker asked for, to gather an atomic batch.
    gathering: BTreeSet<u16>,
    /// Requests waiting for a shard to arrive or to finish leaving.
    held: Vec<(Op, R)>,
}

impl<R, D> ShardMover<R, D> {
    /// The mover of worker `worker`.
    pub fn new(worker: u16) -> ShardMover<R, D> {
        ShardMover {
            worker,
            moving: BTreeMap::new(),
            gathering: BTreeSet::new(),
            held: Vec::new(),
        }
    }

    /// Whether moves or held requests are pending.
    pub fn busy(&self) -> bool {
        !self.moving.is_empty() || !self.held.is_empty()
    }

    /// Routes a request that reached this worker.
    pub fn request(
        &mut self,
        core: &WorkerCore,
        owners: &Owners,
        op: Op,
        reply: R,
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
                self.held.push((op, reply));
            } else {
                let message = Message::Request { op, reply };
                effects.push(Effect::Send { to: owner, message });
            }
            return;
        }
        let is_write = !matches!(op, Op::Get(_) | Op::Exists(_));
        if is_write && self.moving.contains_key(&first) {
            self.held.push((op, reply));
            return;
        }
        if matches!(op, Op::Batch(_)) && self.gather(core, owners, &op, effects) {
            self.held.push((op, reply));
            return;
        }
        effects.push(Effect::Accept { op, reply });
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
        if to == self.worker && core.owns(shard_id) {
            effects.extend(done.map(Effect::MoveDone));
        } else if owner != self.worker {
            // Ownership changed since the sender looked: pass it on.
            let message = Message::MoveOut {
                shard: shard_id,
                to,
                done,
            };
            effects.push(Effect::Send { to: owner, message });
        } else {
            // Ours, or on its way to us: released once it is here.
            self.moving.insert(shard_id, (to, done));
        }
    }

    /// A shard's index arrives.
    pub fn move_in(&mut self, core: &mut WorkerCore, owners: &Owners, shard_id: u16, index: Art) {
        core.adopt_shard(shard_id, index);
        owners.set(shard_id, self.worker);
    }

    /// Sends away the shards whose writes have drained, and routes the
    /// requests held for shards that have since arrived or left. Returns
    /// whether anything happened.
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
            let message = Message::MoveIn {
                shard: shard_id,
                index,
            };
            effects.push(Effect::Send { to, message });
            effects.extend(done.map(Effect::MoveDone));
            progressed = true;
        }
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            for (op, reply) in held {
                if self.ready(core, &op) || self.gone(core, owners, &op) {
                    progressed = true;
                    self.request(core, owners, op, reply, effects);
                } else {
                    self.held.push((op, reply));
                }
            }
        }
        progressed
    }

    /// Whether every shard `op` needs is here and staying.
    fn ready(&self, core: &WorkerCore, op: &Op) -> bool {
        op_shards(op).all(|s| core.owns(s) && !self.moving.contains_key(&s))
    }

    /// Whether the shard `op` is routed by (a batch's first key's) has left
    /// for another worker: the request follows it.
    fn gone(&self, core: &WorkerCore, owners: &Owners, op: &Op) -> bool {
        op_shards(op)
            .next()
            .is_some_and(|s| !core.owns(s) && owners.owner(s) != self.worker)
    }
}
