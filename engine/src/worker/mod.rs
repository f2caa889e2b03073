//! A worker: the state machine that owns some shards, their index, one queue
//! pair and one log stream.
//!
//! It owns no thread, clock or random source. A driver feeds it requests
//! ([`WorkerCore::accept`]) and the current time ([`WorkerCore::step`]), and
//! collects its replies. In production a pinned thread drives it
//! (`runtime.rs`); in tests the simulator steps every worker from one thread.

mod commit;
mod gc;
mod read;
pub(crate) mod value_cache;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nvme::{Command, Completion, IoError, Namespace, QueuePair};

use crate::error::{EngineError, Location};
use crate::index::Art;
use crate::log::Tail;
use crate::modify::{Answer, Context, Expiry, Modify, ModifyError, Outcome, Write};
use crate::shard::shard as shard_of;
use crate::stats::Stats;

pub use crate::modify::Condition;
pub(crate) use crate::store::Shared;
pub use commit::BatchOp;
use read::ReadKind;
pub use value_cache::CacheReader;

/// A caller's handle for matching replies to requests.
pub type RequestId = u64;

/// A request to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read a key.
    Get(Vec<u8>),
    /// Whether a key exists.
    Exists(Vec<u8>),
    /// A key's deadline (`PEXPIRETIME`): `Integer` of milliseconds since
    /// the Unix epoch, -1 when the key does not expire, -2 when it is
    /// missing (or expired).
    Deadline(Vec<u8>),
    /// Set a key.
    Put(Vec<u8>, Vec<u8>),
    /// Remove a key.
    Delete(Vec<u8>),
    /// Set a key only if it is absent (`SET NX`) or present (`SET XX`).
    PutIf(Vec<u8>, Vec<u8>, Condition),
    /// Set a key and answer with the value it replaced (`SET ... GET`),
    /// atomically: `Modify(key, Modify::Exchange { value, condition: None })`
    /// by its older name.
    PutGet(Vec<u8>, Vec<u8>),
    /// A read-modify-write of a key, atomic: the owning worker applies it
    /// to the key's durable value once every earlier write of the key is
    /// durable, requests of the key wait for it, and it is answered once
    /// its own write is durable.
    /// The modification is boxed to keep every request (and the messages
    /// that carry one between workers) small; [`Op::modify`] builds one.
    Modify(Vec<u8>, Box<Modify>),
    /// Apply several puts and deletes atomically.
    Batch(Vec<BatchOp>),
    /// Apply several puts and deletes atomically, only if every key they
    /// name meets the condition (`MSETNX`: all absent); `NotApplied`
    /// otherwise.
    BatchIf(Vec<BatchOp>, Condition),
    /// Every key of one shard (a SCAN step).
    Scan(u16),
    /// How many keys one shard holds, expired ones left out (`DBSIZE`,
    /// summed over the shards): `Integer`.
    Count(u16),
}

impl Op {
    /// The keys the request names (none for a scan).
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let (one, batch): (Option<&[u8]>, &[BatchOp]) = match self {
            Op::Get(k)
            | Op::Exists(k)
            | Op::Deadline(k)
            | Op::Put(k, _)
            | Op::PutIf(k, _, _)
            | Op::PutGet(k, _)
            | Op::Modify(k, _)
            | Op::Delete(k) => (Some(k), &[]),
            Op::Scan(_) | Op::Count(_) => (None, &[]),
            Op::Batch(ops) | Op::BatchIf(ops, _) => (None, ops),
        };
        let other = match self {
            Op::Modify(_, modify) => modify.other_key(),
            _ => None,
        };
        one.into_iter()
            .chain(other)
            .chain(batch.iter().map(BatchOp::key))
    }

    /// Whether the request writes its keys.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Op::Get(_) | Op::Exists(_) | Op::Deadline(_) | Op::Scan(_) | Op::Count(_)
        )
    }

    /// A read-modify-write of `key`.
    pub fn modify(key: Vec<u8>, modify: Modify) -> Op {
        Op::Modify(key, Box::new(modify))
    }

    /// Whether the request is an atomic batch, whose keys' shards are
    /// gathered on one worker first.
    pub fn is_batch(&self) -> bool {
        matches!(self, Op::Batch(_) | Op::BatchIf(..))
    }
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A write is durable.
    Done,
    /// A delete is durable; whether the key existed.
    Deleted(bool),
    /// The value, or `None` when the key is absent.
    Value(Option<Vec<u8>>),
    /// Whether the key exists.
    Exists(bool),
    /// A conditional put whose condition did not hold: nothing was written.
    NotApplied,
    /// A number a read-modify-write answers (a sum, a length).
    Integer(i64),
    /// The keys of a shard.
    Keys(Vec<Vec<u8>>),
    /// The request failed.
    Failed(EngineError),
}

// Token tags: the top byte of a completion token says what it was for.
const TAG_SHIFT: u32 = 56;
const TAG_WRITE: u64 = 1;
const TAG_FLUSH: u64 = 2;
const TAG_READ: u64 = 3;
const TAG_GC_READ: u64 = 4;
const TAG_GC_ERASE: u64 = 5;
const TAG_GC_FLUSH: u64 = 6;

/// What kind of block-layer command a token is for, for the I/O counters.
fn io_kind(token: u64) -> crate::stats::IoKind {
    use crate::stats::IoKind;
    match token >> TAG_SHIFT {
        TAG_READ | TAG_GC_READ => IoKind::Read,
        TAG_WRITE | TAG_GC_ERASE => IoKind::Write,
        TAG_FLUSH | TAG_GC_FLUSH => IoKind::Flush,
        _ => IoKind::Other,
    }
}

fn token(tag: u64, payload: u64) -> u64 {
    debug_assert!(payload < 1 << TAG_SHIFT);
    (tag << TAG_SHIFT) | payload
}

/// One worker's state.
pub struct WorkerCore {
    pub(crate) id: u16,
    shared: Arc<Shared>,
    namespace: Arc<dyn Namespace>,
    queue: Box<dyn QueuePair>,
    /// The index of every shard this worker owns.
    shards: BTreeMap<u16, Art>,
    /// Commands the queue refused as full; retried on the next step.
    deferred: VecDeque<(u64, Command)>,
    commit: commit::CommitPath,
    read: read::ReadPath,
    gc: gc::GcPath,
    /// The time of the latest step or request.
    now_us: u64,
    /// The wall clock the driver last gave, in milliseconds since the Unix
    /// epoch: what key deadlines are compared with. Not monotonic: it
    /// follows the driver's clock back and forth.
    clock_ms: u64,
    /// The clock at the last look for expired keys that found them all
    /// queued: no need to look again until it changes.
    reclaim_looked_ms: Option<u64>,
    /// The shard the next look for expired keys starts at: each look
    /// continues after the shard the last one took keys from, so every
    /// shard's expired keys are reached in turn and a look stops as soon as
    /// it has found enough.
    reclaim_from: u16,
    /// Set at shutdown: no new reclaims start (those queued finish; the
    /// next start reclaims the rest), so a stop never waits for a backlog
    /// of expired keys.
    background_stopped: bool,
    /// Bytes this worker has submitted for reads and writes, for GC's share.
    io_bytes: u64,
    replies: Vec<(RequestId, Reply)>,
    /// Reads parked behind a write to the same key.
    reads_after_commit: Vec<(RequestId, Op)>,
    cache: value_cache::SharedCache,
}

impl WorkerCore {
    pub(crate) fn new(
        id: u16,
        shared: Arc<Shared>,
        namespace: Arc<dyn Namespace>,
        queue: Box<dyn QueuePair>,
        shards: BTreeMap<u16, Art>,
        tail: Option<Tail>,
        cache_bytes: usize,
    ) -> WorkerCore {
        let config = shared.config.clone();
        let chunk_bytes_max = crate::blocking::chunk_bytes_max(namespace.as_ref());
        WorkerCore {
            id,
            commit: commit::CommitPath::new(&config, tail),
            read: read::ReadPath::new(&config, chunk_bytes_max),
            gc: gc::GcPath::new(config.gc_io_share),
            now_us: 0,
            clock_ms: 0,
            reclaim_looked_ms: None,
            reclaim_from: 0,
            background_stopped: false,
            io_bytes: 0,
            shared,
            namespace,
            queue,
            shards,
            deferred: VecDeque::new(),
            replies: Vec::new(),
            reads_after_commit: Vec::new(),
            cache: std::sync::Arc::new(std::sync::Mutex::new(value_cache::WorkerCache::new(
                cache_bytes,
            ))),
        }
    }

    /// Sets the wall clock key deadlines are compared with (milliseconds
    /// since the Unix epoch). The engine owns no clock: the runtime passes
    /// the system's, the simulator its own, which may jump either way. A
    /// key is expired once the clock is past its deadline, and the worker
    /// reclaims it with a delete.
    pub fn set_clock_ms(&mut self, now_ms: u64) {
        self.clock_ms = now_ms;
    }

    /// The wall clock last set.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Whether `key` has not expired: it is live in this worker's index
    /// (through `Art::get_live`, like every other read), or not in it at
    /// all (deleted, or its shard moved on while the read was in flight:
    /// the read answers what it read, as before expiry).
    fn live(&self, key: &[u8]) -> bool {
        match self.shards.get(&shard_of(key)) {
            Some(art) => art.get_live(key, self.clock_ms).is_some() || art.get(key).is_none(),
            None => true,
        }
    }

    /// Keys of this worker's shards present but expired (not yet
    /// reclaimed): `DBSIZE` leaves them out.
    pub fn expired_key_count(&self) -> usize {
        let now_ms = self.clock_ms;
        let shards = self.shards.values().filter(|a| a.expiring_len() > 0);
        shards.map(|art| art.expired_len(now_ms)).sum()
    }

    /// Whether this worker owns `shard`.
    pub fn owns(&self, shard: u16) -> bool {
        self.shards.contains_key(&shard)
    }

    /// Engine-wide counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Keys indexed by this worker.
    pub fn key_count(&self) -> usize {
        self.shards.values().map(Art::len).sum()
    }

    /// Heap bytes held by this worker's index.
    pub fn index_bytes(&self) -> usize {
        self.shards.values().map(Art::memory_bytes).sum()
    }

    fn check_key(&self, key: &[u8]) -> Result<(), EngineError> {
        let max = self.shared.config.key_bytes_max;
        if key.is_empty() || key.len() > max {
            return Err(EngineError::KeyLength {
                len: key.len(),
                max,
            });
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), EngineError> {
        self.check_value_len(value.len())
    }

    fn check_value_len(&self, len: usize) -> Result<(), EngineError> {
        let max = self.shared.config.value_bytes_max;
        if len > max {
            return Err(EngineError::ValueLength { len, max });
        }
        Ok(())
    }

    fn validate(&self, op: &Op) -> Result<(), EngineError> {
        match op {
            Op::Get(key) | Op::Exists(key) | Op::Deadline(key) | Op::Delete(key) => {
                self.check_key(key)
            }
            Op::Put(key, value) | Op::PutIf(key, value, _) | Op::PutGet(key, value) => {
                self.check_key(key)?;
                self.check_value(value)
            }
            Op::Modify(key, modify) => {
                self.check_key(key)?;
                if let Some(other) = modify.other_key() {
                    self.check_key(other)?;
                    // Both keys' writes go in one frame of this worker.
                    if shard_of(other) != shard_of(key) {
                        return Err(EngineError::Modify(ModifyError::CrossShard));
                    }
                }
                self.check_value_len(modify.argument_bytes())
            }
            Op::Scan(_) | Op::Count(_) => Ok(()),
            Op::Batch(ops) | Op::BatchIf(ops, _) => {
                let mut bytes = crate::format::record::FRAME_HEADER_BYTES;
                for op in ops {
                    self.check_key(op.key())?;
                    self.check_value(op.value().unwrap_or_default())?;
                    bytes += op.encoded_bytes();
                }
                let max = self.shared.layout.frame_bytes_max();
                if bytes > max {
                    return Err(EngineError::BatchTooLarge { bytes, max });
                }
                Ok(())
            }
        }
    }

    /// Takes a request. Its reply comes out of a later [`WorkerCore::step`]
    /// (or at once, for a request that fails validation).
    pub fn accept(&mut self, id: RequestId, op: Op, now_us: u64) {
        self.now_us = self.now_us.max(now_us);
        if let Err(e) = self.validate(&op) {
            self.replies.push((id, Reply::Failed(e)));
            return;
        }
        // Every request of a key whose read-modify-write is waiting or
        // reading the old value waits for it: the value it modifies is the
        // one before it, and a later GET reads its write.
        if self.modify_blocks(&op) {
            self.reads_after_commit.push((id, op));
            return;
        }
        match op {
            Op::Get(key) => self.accept_read(id, key, ReadKind::Value),
            Op::Exists(key) => self.accept_read(id, key, ReadKind::Exists),
            Op::Deadline(key) => self.accept_read(id, key, ReadKind::Deadline),
            Op::PutGet(key, value) => {
                let exchange = Modify::Exchange {
                    value,
                    condition: None,
                    expiry: Expiry::Clear,
                };
                self.accept_modify(id, key, Box::new(exchange), now_us)
            }
            Op::Modify(key, modify) => self.accept_modify(id, key, modify, now_us),
            Op::Put(key, value) => self.commit.enqueue(
                id,
                vec![BatchOp::Put(key, value)],
                commit::WriteKind::Plain,
                now_us,
            ),
            Op::PutIf(key, value, condition) => self.commit.enqueue(
                id,
                vec![BatchOp::Put(key, value)],
                commit::WriteKind::Conditional(condition),
                now_us,
            ),
            Op::Delete(key) => self.commit.enqueue(
                id,
                vec![BatchOp::Delete(key)],
                commit::WriteKind::Delete,
                now_us,
            ),
            Op::Batch(ops) => self
                .commit
                .enqueue(id, ops, commit::WriteKind::Plain, now_us),
            Op::BatchIf(ops, condition) => {
                self.commit
                    .enqueue(id, ops, commit::WriteKind::Conditional(condition), now_us)
            }
            Op::Scan(shard_id) => self.scan_shard(id, shard_id),
            Op::Count(shard_id) => {
                let now_ms = self.clock_ms;
                let reply = match self.shards.get(&shard_id) {
                    Some(art) => Reply::Integer((art.len() - art.expired_len(now_ms)) as i64),
                    None => Reply::Failed(EngineError::NotOwner { shard: shard_id }),
                };
                self.replies.push((id, reply));
            }
        }
    }

    /// Takes a GET, an EXISTS or a deadline read: answered from the value
    /// cache when it can be, otherwise from the index (and the device).
    fn accept_read(&mut self, id: RequestId, key: Vec<u8>, kind: ReadKind) {
        // A read of a key with a write waiting or in flight waits for
        // that write: commands reach a worker in order, and a client
        // that pipelines SET then GET must read its own write.
        if self.commit.touches_key(&key) {
            let op = match kind {
                ReadKind::Value => Op::Get(key),
                ReadKind::Exists => Op::Exists(key),
                ReadKind::Deadline => Op::Deadline(key),
            };
            self.reads_after_commit.push((id, op));
            return;
        }
        // The cache never holds a value that expires (`apply.rs`).
        if kind == ReadKind::Value {
            if let Some(value) = self.cache_get(&key) {
                self.replies.push((id, Reply::Value(Some(value))));
                return;
            }
        }
        let now_ms = self.clock_ms;
        self.read
            .start(id, key, kind, now_ms, &self.shards, &mut self.replies);
    }

    /// Takes a read-modify-write.
    fn accept_modify(&mut self, id: RequestId, key: Vec<u8>, modify: Box<Modify>, now_us: u64) {
        // It waits for writes of the key like a read, so that the value it
        // reads (cache, index, device) is the durable result of every
        // earlier write; its own write follows from that value.
        let other_waits = modify
            .other_key()
            .is_some_and(|other| self.commit.touches_key(other));
        if other_waits || self.commit.touches_key(&key) {
            self.reads_after_commit.push((id, Op::Modify(key, modify)));
            return;
        }
        let shard = WorkerCore::shard_of(&key);
        let pointer = match self.shards.get(&shard) {
            Some(art) => art.get_live(&key, self.clock_ms),
            None => {
                self.replies
                    .push((id, Reply::Failed(EngineError::NotOwner { shard })));
                return;
            }
        };
        match pointer {
            None => self.modified(id, key, *modify, None, now_us),
            Some(pointer) => match self.cache_get(&key) {
                Some(old) => self.modified(id, key, *modify, Some(old), now_us),
                None => self.read.start_modify(id, key, modify, pointer),
            },
        }
    }

    /// Applies a read-modify-write to the key's `current` value (durable:
    /// writes of the key waited for each other): queues the write it
    /// implies, to be answered once durable, or answers at once when it
    /// writes nothing or is refused.
    fn modified(
        &mut self,
        id: RequestId,
        key: Vec<u8>,
        modify: Modify,
        current: Option<Vec<u8>>,
        now_us: u64,
    ) {
        let answer = |answer| match answer {
            Answer::Integer(n) => Reply::Integer(n),
            Answer::Value(v) => Reply::Value(v),
        };
        let now_ms = self.clock_ms;
        let live = |k: &[u8]| {
            let art = self.shards.get(&shard_of(k));
            art.is_some_and(|art| art.get_live(k, now_ms).is_some())
        };
        let target_exists = modify.other_key().is_some_and(live);
        // The clock may have passed the deadline while the value was read.
        let current = current.filter(|_| live(&key));
        let deadline = current.as_ref().and_then(|_| {
            let art = self.shards.get(&shard_of(&key));
            art.and_then(|art| art.deadline(&key))
        });
        let context = Context {
            value_bytes_max: self.shared.config.value_bytes_max,
            target_exists,
            deadline,
            now_ms,
        };
        match modify.apply(&key, current, context) {
            Ok(Outcome {
                write: None,
                answer: a,
            }) => self.replies.push((id, answer(a))),
            Ok(Outcome {
                write: Some(write),
                answer: a,
            }) => {
                let ops = match write {
                    Write::Put(value) => vec![BatchOp::put(key, value, deadline)],
                    Write::PutUntil(value, until) => vec![BatchOp::put(key, value, until)],
                    Write::Delete => vec![BatchOp::Delete(key)],
                    Write::Move { to, value } => {
                        vec![BatchOp::Delete(key), BatchOp::put(to, value, deadline)]
                    }
                };
                self.commit.enqueue_modified(id, ops, answer(a), now_us);
            }
            Err(ModifyError::TooLong { len, max }) => {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let error = EngineError::ValueLength { len, max };
                self.replies.push((id, Reply::Failed(error)));
            }
            Err(e) => self
                .replies
                .push((id, Reply::Failed(EngineError::Modify(e)))),
        }
    }

    /// Answers a SCAN step: every key of one shard.
    fn scan_shard(&mut self, id: RequestId, shard_id: u16) {
        let reply = match self.shards.get(&shard_id) {
            Some(art) => {
                let mut keys = Vec::with_capacity(art.len());
                let now_ms = self.clock_ms;
                art.for_each(|key, _| {
                    if !art.expired(key, now_ms) {
                        keys.push(key.to_vec())
                    }
                });
                Reply::Keys(keys)
            }
            None => Reply::Failed(EngineError::NotOwner { shard: shard_id }),
        };
        self.replies.push((id, reply));
    }

    /// Whether `op` must wait for a read-modify-write of one of its keys
    /// that is parked or reading its old value (requests of a key run in
    /// order).
    ///
    /// A parked write blocks later requests of its keys too: a batch parked
    /// behind a read-modify-write of one of its keys must not be overtaken
    /// by a later write of another of its keys. And a parked read blocks
    /// later writes of its key: a client that pipelines SET, GET, SET must
    /// read the first value, not the second.
    fn modify_blocks(&self, op: &Op) -> bool {
        let writes = op.writes();
        op.keys().any(|key| {
            self.read.modify_pending(key)
                || self.reads_after_commit.iter().any(|(_, parked)| {
                    (writes || parked.writes()) && parked.keys().any(|k| k == key)
                })
        })
    }

    /// Advances the state machine: reaps completions, retries deferred
    /// submissions, starts reads and, when due, a group commit. Returns the
    /// replies produced so far. `true` in the second field when anything
    /// happened.
    pub fn step(&mut self, now_us: u64, replies: &mut Vec<(RequestId, Reply)>) -> bool {
        self.now_us = self.now_us.max(now_us);
        let mut progressed = false;
        while let Some(done) = self.queue.poll() {
            progressed = true;
            self.complete(done);
        }
        if !self.reads_after_commit.is_empty() {
            let parked = std::mem::take(&mut self.reads_after_commit);
            let count = parked.len();
            for (id, op) in parked {
                self.accept(id, op, now_us);
            }
            progressed |= self.reads_after_commit.len() < count;
        }
        progressed |= self.drive(now_us);
        if self.shared.checkpoints.collecting.load(Ordering::Acquire) {
            progressed |= self.copy_shards_for_checkpoint();
        }
        replies.append(&mut self.replies);
        progressed
    }

    /// Copies some of this worker's shards into the checkpoint being
    /// collected: about `KEYS_PER_STEP` keys' worth per step (at least one
    /// shard), so requests wait for that much copying at most.
    fn copy_shards_for_checkpoint(&mut self) -> bool {
        const KEYS_PER_STEP: usize = 16 << 10;
        let checkpoints = &self.shared.checkpoints;
        let wanted = checkpoints
            .collection()
            .wanted(self.shards.keys().copied(), usize::MAX);
        let mut keys = 0;
        let wanted: Vec<u16> = wanted
            .into_iter()
            .take_while(|s| {
                let fits = keys < KEYS_PER_STEP;
                keys += self.shards.get(s).map_or(0, |a| a.len());
                fits
            })
            .collect();
        if wanted.is_empty() {
            return false;
        }
        // Every record of these shards up to here is in their index.
        let watermark = self
            .commit
            .applied_through(self.shared.next_seq.load(Ordering::Acquire));
        let mut copies = Vec::with_capacity(wanted.len());
        for shard in wanted {
            if let Some(art) = self.shards.get(&shard) {
                let mut section = Vec::new();
                crate::format::checkpoint::encode_shard(&mut section, watermark, art);
                copies.push((shard, section));
            }
        }
        let mut collection = checkpoints.collection();
        for (shard, section) in copies {
            if collection.deposit(shard, watermark, section) {
                checkpoints.collecting.store(false, Ordering::Release);
                self.shared.checkpoint_events.notify();
            }
        }
        true
    }

    /// Blocks on the queue pair until a completion arrives or `timeout`
    /// passes; for drivers with nothing else to do.
    pub fn wait_io(&mut self, timeout: std::time::Duration, replies: &mut Vec<(RequestId, Reply)>) {
        if let Some(done) = self.queue.wait(Some(timeout)) {
            self.complete(done);
        }
        replies.append(&mut self.replies);
    }

    /// I/O in flight on this worker's queue pair.
    pub fn io_in_flight(&self) -> u32 {
        self.queue.in_flight()
    }

    /// Whether the worker has anything to do: I/O in flight or writes
    /// waiting for a commit.
    pub fn busy(&self) -> bool {
        self.queue.in_flight() > 0
            || !self.deferred.is_empty()
            || !self.reads_after_commit.is_empty()
            || self.commit.has_work()
            || self.read.has_work()
            || self.gc.has_work()
    }

    /// Whether foreground requests are waiting or in flight (GC then keeps
    /// to its share of the I/O).
    fn foreground_busy(&self) -> bool {
        self.read.has_work() || self.commit.has_user_work()
    }

    /// Whether free segments are below the level where GC starts on its own.
    fn space_low(&self) -> bool {
        self.shared.segments().free.len() < self.shared.gc_free_target
    }

    /// Whether GC is collecting a victim (reading, relocating or freeing).
    pub fn gc_in_progress(&self) -> bool {
        self.gc.has_work()
    }

    /// How the namespace's segments are used.
    pub fn space(&self) -> crate::store::Space {
        self.shared.space()
    }

    /// Whether writes that found no free segment may wait for GC: it is
    /// collecting, or may still find a victim, and writes are not fenced.
    fn gc_can_make_room(&self) -> bool {
        !self.commit.fenced()
            && self
                .gc
                .may_make_room(self.shared.next_seq.load(Ordering::Relaxed))
    }

    /// Whether free segments are under half the GC target, or down to the
    /// reserve: GC then ignores its I/O budget, since writes would soon
    /// fail (or already wait for it).
    fn space_urgent(&self) -> bool {
        let s = self.shared.segments();
        s.free.len() < self.shared.gc_free_target / 2 || s.free.len() <= s.reserve
    }

    /// Asks every worker of the engine to collect every segment of its
    /// stream that holds any garbage (a "GC storm"), under the I/O budget.
    pub fn request_gc_storm(&self) {
        self.shared.gc_storms.fetch_add(1, Ordering::AcqRel);
    }

    /// When the oldest waiting write is due for commit, if any.
    pub fn commit_due_us(&self) -> Option<u64> {
        self.commit.due_us(self.shared.config.commit_interval_us)
    }

    fn drive(&mut self, now_us: u64) -> bool {
        let mut progressed = false;
        while let Some((token, command)) = self.deferred.pop_front() {
            if let Err(refused) = self.queue.submit(token, command) {
                self.deferred.push_front((token, refused.command));
                break;
            }
            progressed = true;
        }
        progressed |= read::ReadPath::submit_waiting(self);
        let gc_done = self.commit.take_gc_done();
        self.gc.relocations_done(gc_done);
        progressed |= gc::GcPath::drive(self);
        progressed |= self.reclaim_expired(now_us);
        progressed |= commit::CommitPath::maybe_start(self, now_us);
        progressed
    }

    /// Stops starting background work that a stop need not wait for:
    /// reclaiming expired keys (reads never serve them; the next start
    /// reclaims them).
    pub fn stop_background(&mut self) {
        self.background_stopped = true;
    }

    /// Queues deletes of keys whose deadline has passed, earliest first
    /// within a shard, the shards in turn: at most `RECLAIMS_WAITING_MAX`
    /// wait at a time, so a burst of expiries costs a bounded share of each
    /// batch, and a look at the deadline maps stops once it has found that
    /// many (`docs/commands.md`, "Key expiry"). Before, every look took up
    /// to 128 keys from every owned shard to queue 64: with millions of
    /// keys expired at once, reclaiming them cost more than serving.
    fn reclaim_expired(&mut self, now_us: u64) -> bool {
        const RECLAIMS_WAITING_MAX: usize = 64;
        if self.commit.fenced() || self.background_stopped {
            return false;
        }
        let room = RECLAIMS_WAITING_MAX.saturating_sub(self.commit.reclaims_waiting());
        let now_ms = self.clock_ms;
        if room == 0 || self.reclaim_looked_ms == Some(now_ms) {
            return false;
        }
        let start = self.reclaim_from;
        let order = self.shards.range(start..).chain(self.shards.range(..start));
        // More than `room`: some may be waiting already.
        let wanted = room + RECLAIMS_WAITING_MAX;
        let (mut due, mut found_total) = (Vec::new(), 0);
        for (&shard, art) in order.filter(|(_, a)| a.expiring_len() > 0) {
            let found = art.due(now_ms, wanted);
            if !found.is_empty() {
                found_total += found.len();
                due.push((shard, found));
                if found_total >= wanted {
                    break;
                }
            }
        }
        let mut queued = 0;
        'shards: for (shard, found) in due {
            for (key, pointer) in found {
                if queued == room {
                    break 'shards;
                }
                // Requests of the key waiting or in flight decide it first.
                if self.commit.touches_key(&key) || self.modify_blocks(&Op::Delete(key.clone())) {
                    continue;
                }
                self.commit.enqueue_reclaim(key, pointer, now_us);
                queued += 1;
            }
            self.reclaim_from = shard.wrapping_add(1);
        }
        // Keys skipped for a request of theirs come back when the clock
        // next moves; a full room, when one is free again.
        self.reclaim_looked_ms = (queued < room).then_some(now_ms);
        queued > 0
    }

    fn submit(&mut self, token: u64, command: Command) {
        if let Command::Read { buf, .. } | Command::Write { buf, .. } = &command {
            self.io_bytes += buf.len() as u64;
        }
        let stats = &self.shared.stats;
        stats.io_submitted[io_kind(token) as usize].fetch_add(1, Ordering::Relaxed);
        stats.io_in_flight.fetch_add(1, Ordering::Relaxed);
        if !self.deferred.is_empty() {
            self.deferred.push_back((token, command));
            return;
        }
        if let Err(refused) = self.queue.submit(token, command) {
            match refused.reason {
                nvme::RefuseReason::QueueFull => {
                    self.shared
                        .stats
                        .io_queue_full
                        .fetch_add(1, Ordering::Relaxed);
                    self.deferred.push_back((token, refused.command))
                }
                reason => {
                    // Every command is built within the geometry; a refusal
                    // is a bug in the engine.
                    panic!("engine built an invalid command: {reason:?}");
                }
            }
        }
    }

    fn complete(&mut self, done: Completion) {
        let stats = &self.shared.stats;
        let kind = io_kind(done.token) as usize;
        stats.io_completed[kind].fetch_add(1, Ordering::Relaxed);
        stats.io_in_flight.fetch_sub(1, Ordering::Relaxed);
        if done.result.is_err() {
            stats.io_failed[kind].fetch_add(1, Ordering::Relaxed);
        }
        let tag = done.token >> TAG_SHIFT;
        let payload = done.token & ((1 << TAG_SHIFT) - 1);
        match tag {
            TAG_WRITE => commit::CommitPath::write_done(self, done.result),
            TAG_FLUSH => commit::CommitPath::flush_done(self, done.result),
            TAG_READ => read::ReadPath::chunk_done(self, payload, done),
            TAG_GC_READ => gc::GcPath::read_done(self, payload, done),
            TAG_GC_ERASE => gc::GcPath::erase_done(self, done.result),
            TAG_GC_FLUSH => gc::GcPath::flush_done(self, done.result),
            other => panic!("completion with unknown tag {other}"),
        }
    }

    /// Records a corruption detection.
    fn corruption(&mut self, location: Location, detail: String) -> EngineError {
        self.shared
            .stats
            .corruption_detected
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(worker = self.id, %location, "corruption detected: {detail}");
        if let Ok(mut last) = self.shared.stats.corruption_locations.lock() {
            if last.len() < crate::stats::CORRUPTION_LOCATIONS_MAX {
                last.push(location);
            }
        }
        EngineError::Corruption { location, detail }
    }

    /// Gives up a shard's index, for moving it to another worker. Refused
    /// (`None`) while writes to the shard are waiting or in flight, or any
    /// request of it is parked (a parked read looks its key up when it
    /// resumes, and needs the index here).
    pub fn release_shard(&mut self, shard_id: u16) -> Option<Art> {
        if self.shard_has_writes(shard_id) {
            return None;
        }
        let parked = self
            .reads_after_commit
            .iter()
            .any(|(_, op)| op.keys().any(|k| shard_of(k) == shard_id));
        if parked {
            return None;
        }
        let index = self.shards.remove(&shard_id)?;
        value_cache::lock(&self.cache).forget_shard(shard_id);
        Some(index)
    }

    /// Whether a write of `shard` is waiting or in flight anywhere in this
    /// worker: in the commit path, parked behind a read-modify-write, or a
    /// read-modify-write reading its old value (its write comes next).
    fn shard_has_writes(&self, shard: u16) -> bool {
        let parked = self
            .reads_after_commit
            .iter()
            .any(|(_, op)| op.writes() && op.keys().any(|k| shard_of(k) == shard));
        self.commit.touches_shard(shard) || parked || self.read.modify_touches_shard(shard)
    }

    /// Takes over a shard's index.
    pub fn adopt_shard(&mut self, shard_id: u16, index: Art) {
        let previous = self.shards.insert(shard_id, index);
        assert!(previous.is_none(), "shard {shard_id} adopted twice");
        value_cache::lock(&self.cache).forget_shard(shard_id);
    }

    /// Fences writes after a failed flush (the commit path's or GC's): the
    /// device may have dropped what that flush should have covered, and no
    /// later flush proves otherwise. Counted and logged once per worker.
    fn fence(&mut self, error: IoError) {
        if self.commit.fence(error.clone()) {
            tracing::error!(
                worker = self.id,
                "flush failed: {error}; fencing writes until restart"
            );
            self.shared
                .stats
                .fenced_workers
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn io_error(error: IoError) -> EngineError {
        EngineError::Io(error)
    }

    /// A reader of this worker's value cache, for answering hits on other
    /// threads.
    pub fn cache_reader(&self) -> value_cache::CacheReader {
        value_cache::CacheReader::new(Arc::clone(&self.cache), Arc::clone(&self.shared.stats))
    }

    pub(crate) fn shard_of(key: &[u8]) -> u16 {
        shard_of(key)
    }
}
