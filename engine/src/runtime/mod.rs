//! Threads that drive the workers: the production runtime.
//!
//! - [`Engine`] (this file) is the API: open, the key-value calls, shard
//!   moves, checkpoints, shutdown.
//! - `router.rs`: the inboxes, the owner table and the wakers.
//! - `mover.rs`: routing and shard moves as a pure state machine
//!   (`mover::ShardMover`), which the simulator steps too.
//! - `checkpoint_driver.rs`: the event-driven checkpoint schedule.
//! - `thread.rs`: the thin per-worker loop, and the [`Frontend`] hook
//!   through which the daemon's network loop runs on each worker thread.
//!
//! One thread per worker, each looping over: take requests from its bounded
//! inbox, step its [`WorkerCore`] and its mover, send replies. A batch whose
//! keys live on several workers first gathers its shards on one worker by
//! moving them (hash tags avoid that cost), so that it commits as one frame.

mod checkpoint_driver;
pub mod mover;
mod reply;
mod router;
mod thread;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use nvme::Namespace;

use crate::config::EngineConfig;
use crate::error::{EngineError, OpenError};
use crate::modify::{Answer, Modify};
use crate::open::{open_workers, RecoveryReport};
use crate::shard::{shard, SHARD_COUNT};
use crate::stats::{OpKind, OpResult, Stats};
use crate::store::Shared;
use crate::worker::{BatchOp, CacheReader, Op, Reply, WorkerCore};
use checkpoint_driver::CheckpointDriver;
use mover::{Message, Owners};
use router::{Envelope, ReplyTo, Router};

pub use router::Wake;
pub use thread::{wall_clock_ms, Frontend, Submitter, WorkerThread};

/// Each worker's frontend, if it has one, in worker order.
type Frontends = Vec<Option<Box<dyn Frontend>>>;

/// A running engine: worker threads over one namespace.
pub struct Engine {
    router: Arc<Router>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    report: RecoveryReport,
    stopping: Arc<AtomicBool>,
    checkpoints: Arc<CheckpointDriver>,
    checkpoint_thread: Option<JoinHandle<()>>,
    /// Each worker's value cache: [`Engine::get`] answers hits on the
    /// caller's thread, without the round trip to the worker.
    caches: Vec<CacheReader>,
}

impl Engine {
    /// Opens (recovers) the store on `namespace` and starts its workers.
    pub fn open(namespace: Arc<dyn Namespace>, config: &EngineConfig) -> Result<Engine, OpenError> {
        Self::open_with_frontends(namespace, config, |_| None)
    }

    /// Opens the store and starts its workers, each with the frontend (and
    /// its waker) that `frontend(worker)` returns.
    pub fn open_with_frontends(
        namespace: Arc<dyn Namespace>,
        config: &EngineConfig,
        frontend: impl FnMut(u16) -> Option<(Box<dyn Frontend>, Wake)>,
    ) -> Result<Engine, OpenError> {
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        let opened = open_workers(namespace, config, workers)?;
        let (inboxes, receivers) = Self::inboxes(workers, config.inbox_max);
        let (frontends, wakers) = Self::frontends(workers, frontend);
        let router = Arc::new(Router {
            owners: Owners::new(workers),
            inboxes,
            wakers,
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let caches = opened.cores.iter().map(WorkerCore::cache_reader).collect();
        let threads = Self::spawn_workers(opened.cores, receivers, frontends, &router)?;
        let checkpoints = Arc::new(CheckpointDriver::new(
            opened.checkpointer,
            Arc::clone(&router),
            Arc::clone(&opened.shared),
        ));
        let checkpoint_thread = Self::spawn_checkpoint_thread(&checkpoints, &stopping)?;
        Ok(Engine {
            router,
            threads,
            shared: opened.shared,
            report: opened.report,
            stopping,
            checkpoints,
            checkpoint_thread: Some(checkpoint_thread),
            caches,
        })
    }

    /// One bounded inbox per worker (of at least one request): the senders,
    /// and the receivers for the worker threads.
    fn inboxes(
        workers: usize,
        inbox_max: usize,
    ) -> (
        Vec<mpsc::SyncSender<Envelope>>,
        Vec<mpsc::Receiver<Envelope>>,
    ) {
        let mut receivers = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel(inbox_max.max(1));
            inboxes.push(tx);
            receivers.push(rx);
        }
        (inboxes, receivers)
    }

    /// Each worker's frontend and its waker, as `frontend(worker)` returns
    /// them, asked in worker order.
    fn frontends(
        workers: usize,
        mut frontend: impl FnMut(u16) -> Option<(Box<dyn Frontend>, Wake)>,
    ) -> (Frontends, Vec<Option<Wake>>) {
        let mut frontends = Vec::with_capacity(workers);
        let mut wakers = Vec::with_capacity(workers);
        for worker in 0..workers {
            match frontend(worker as u16) {
                Some((f, wake)) => {
                    frontends.push(Some(f));
                    wakers.push(Some(wake));
                }
                None => {
                    frontends.push(None);
                    wakers.push(None);
                }
            }
        }
        (frontends, wakers)
    }

    /// Starts one thread per worker, in worker order.
    fn spawn_workers(
        cores: Vec<WorkerCore>,
        receivers: Vec<mpsc::Receiver<Envelope>>,
        frontends: Frontends,
        router: &Arc<Router>,
    ) -> Result<Vec<JoinHandle<()>>, OpenError> {
        let mut threads = Vec::with_capacity(cores.len());
        for ((core, inbox), frontend) in cores.into_iter().zip(receivers).zip(frontends) {
            let router = Arc::clone(router);
            let thread = std::thread::Builder::new()
                .name(format!("veltrix-worker-{}", core.id))
                .spawn(move || WorkerThread::new(core, inbox, router, frontend).run())
                .map_err(|e| OpenError::Config(format!("cannot start worker thread: {e}")))?;
            threads.push(thread);
        }
        Ok(threads)
    }

    /// Starts the thread that schedules checkpoints until `stopping`.
    fn spawn_checkpoint_thread(
        checkpoints: &Arc<CheckpointDriver>,
        stopping: &Arc<AtomicBool>,
    ) -> Result<JoinHandle<()>, OpenError> {
        let driver = Arc::clone(checkpoints);
        let stopping = Arc::clone(stopping);
        std::thread::Builder::new()
            .name("veltrix-checkpoint".into())
            .spawn(move || driver.schedule(&stopping))
            .map_err(|e| OpenError::Config(format!("cannot start checkpoint thread: {e}")))
    }

    /// What recovery found at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Engine-wide counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// A shared handle on the engine-wide counters, for other threads.
    pub fn stats_handle(&self) -> Arc<Stats> {
        Arc::clone(&self.shared.stats)
    }

    /// How the namespace's segments are used.
    pub fn space(&self) -> crate::store::Space {
        self.shared.space()
    }

    /// Starts a GC storm: every worker collects every segment of its stream
    /// that holds any garbage, under the I/O budget. Returns at once; the
    /// `gc_*` counters and [`Engine::space`] show the progress.
    pub fn gc_storm(&self) {
        self.handle().gc_storm();
    }

    /// Takes an index checkpoint now and returns once it is durable (or
    /// failed: see the `checkpoint_failures` counter and the log). Later
    /// opens replay only the log written after it.
    pub fn checkpoint(&self) -> Result<(), EngineError> {
        self.handle().checkpoint()
    }

    /// A handle for other threads (the admin port): counters, space, shard
    /// owners and the GC trigger, without access to the data path.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            router: Arc::clone(&self.router),
            shared: Arc::clone(&self.shared),
            checkpoints: Arc::clone(&self.checkpoints),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.router.inboxes.len()
    }

    /// The worker that owns a shard now.
    pub fn shard_owner(&self, shard_id: u16) -> u16 {
        self.router.owner(shard_id)
    }

    fn call(&self, worker: u16, op: Op) -> Reply {
        if self.stopping.load(Ordering::Acquire) {
            return Reply::Failed(EngineError::ShuttingDown);
        }
        reply::call(|replier| {
            // A request that cannot be sent drops its replier, which
            // answers `ShuttingDown`.
            let _ = self.router.send(
                worker,
                Envelope::Mover(Message::Request {
                    op,
                    reply: ReplyTo::Caller(replier),
                    // One request at a time: nothing to order it after.
                    stamp: None,
                }),
            );
        })
    }

    fn call_for_key(&self, key: &[u8], op: Op) -> Reply {
        self.call(self.router.owner(shard(key)), op)
    }

    /// Reads a key. A value in the owning worker's cache is answered right
    /// here, on the caller's thread; anything else goes to the worker.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let started = Instant::now();
        let owner = self.router.owner(shard(key));
        if let Some(cache) = self.caches.get(usize::from(owner)) {
            // Wait for the lock rather than fall back to the worker when it
            // is busy: its holders (other callers' hits, the worker's
            // write-through of one batch) keep it for microseconds, and
            // the round trip to the worker costs two context switches
            // and waits for the worker anyway.
            let hit = cache.get(key);
            if let Some(value) = hit {
                let stats = &self.shared.stats;
                stats.ops[OpKind::Get as usize][OpResult::Ok as usize]
                    .fetch_add(1, Ordering::Relaxed);
                stats.op_latency[OpKind::Get as usize].record(started.elapsed().as_micros() as u64);
                return Ok(Some(value));
            }
        }
        match self.call_for_key(key, Op::Get(key.to_vec())) {
            Reply::Value(v) => Ok(v),
            Reply::Failed(e) => Err(e),
            other => unreachable_reply(other),
        }
    }

    /// Whether a key exists.
    pub fn exists(&self, key: &[u8]) -> Result<bool, EngineError> {
        match self.call_for_key(key, Op::Exists(key.to_vec())) {
            Reply::Exists(v) => Ok(v),
            Reply::Failed(e) => Err(e),
            other => unreachable_reply(other),
        }
    }

    /// Sets a key; returns once the write is durable.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), EngineError> {
        match self.call_for_key(key, Op::Put(key.to_vec(), value.to_vec())) {
            Reply::Done => Ok(()),
            Reply::Failed(e) => Err(e),
            other => unreachable_reply(other),
        }
    }

    /// Sets a key that expires once the clock passes `deadline_ms`
    /// (milliseconds since the Unix epoch); returns once durable.
    pub fn put_until(&self, key: &[u8], value: &[u8], deadline_ms: u64) -> Result<(), EngineError> {
        let put = BatchOp::PutUntil(key.to_vec(), value.to_vec(), deadline_ms);
        self.write_batch(vec![put])
    }

    /// A key's deadline in milliseconds since the Unix epoch, -1 when it
    /// does not expire, -2 when it is missing or expired (`PEXPIRETIME`).
    pub fn deadline(&self, key: &[u8]) -> Result<i64, EngineError> {
        match self.call_for_key(key, Op::Deadline(key.to_vec())) {
            Reply::Integer(n) => Ok(n),
            Reply::Failed(e) => Err(e),
            other => unreachable_reply(other),
        }
    }

    /// Sets a key and returns the value it replaced, atomically, once the
    /// write is durable (`SET ... GET`).
    pub fn put_get(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        match self.call_for_key(key, Op::PutGet(key.to_vec(), value.to_vec())) {
            Reply::Value(old) => Ok(old),
            Reply::Failed(e) => Err(e),
            other => unreachable_reply(other),
        }
    }

    /// Applies a read-modify-write to a key atomically (`INCRBY`, `APPEND`,
    /// ...); returns its answer once its write is durable.
    pub fn modify(&self, key: &[u8], modify: Modify) -> Result<Answer, EngineError> {
        match self.call_for_key(key, Op::modify(key.to_vec(), modify)) {
            Reply::Integer(n) => Ok(Answer::Integer(n)),
            Reply::Value(v) => Ok(Answer::Value(v)),
            Reply::Failed(e) => Err(e),
            other => unreachable_reply(other),
        }
    }

    /// Removes a key; returns whether it existed, once the delete is durable.
    pub fn delete(&self, key: &[u8]) -> Result<bool, EngineError> {
        match self.call_for_key(key, Op::Delete(key.to_vec())) {
            Reply::Deleted(existed) => Ok(existed),
            Reply::Failed(e) => Err(e),
            other => unreachable_reply(other),
        }
    }

    /// Applies puts and deletes atomically: after a crash, all or none.
    pub fn write_batch(&self, ops: Vec<BatchOp>) -> Result<(), EngineError> {
        let Some(first) = ops.first() else {
            return Ok(());
        };
        let first_key = first.key().to_vec();
        // Gather every shard of the batch on the first key's worker.
        loop {
            let target = self.router.owner(shard(&first_key));
            let strays: Vec<u16> = ops
                .iter()
                .map(|op| shard(op.key()))
                .filter(|&s| self.router.owner(s) != target)
                .collect();
            if strays.is_empty() {
                match self.call(target, Op::Batch(ops.clone())) {
                    Reply::Done => return Ok(()),
                    Reply::Failed(EngineError::NotOwner { .. }) => continue,
                    Reply::Failed(e) => return Err(e),
                    other => return unreachable_reply(other),
                }
            }
            for s in strays {
                self.move_shard(s, target)?;
            }
        }
    }

    /// Moves a shard to another worker while the engine runs. Reads of the
    /// shard keep being served throughout: by the old owner until the index
    /// changes hands, by the new one after.
    pub fn move_shard(&self, shard_id: u16, to: u16) -> Result<(), EngineError> {
        if usize::from(to) >= self.workers() || shard_id >= SHARD_COUNT {
            return Err(EngineError::NotOwner { shard: shard_id });
        }
        let from = self.router.owner(shard_id);
        if from == to {
            return Ok(());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.router
            .send(
                from,
                Envelope::Mover(Message::MoveOut {
                    shard: shard_id,
                    to,
                    done: Some(tx),
                }),
            )
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.recv().map_err(|_| EngineError::ShuttingDown)
    }

    /// Stops the workers after they finish what they hold.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.checkpoints.interrupt();
        if let Some(thread) = self.checkpoint_thread.take() {
            let _ = thread.join();
        }
        // The next open then replays nothing.
        if self.shared.config.checkpoint_records > 0 && self.checkpoints.dirty() {
            self.checkpoints.run();
        }
        for worker in 0..self.router.inboxes.len() {
            let _ = self.router.send(worker as u16, Envelope::Shutdown);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cloneable handle on a running engine for observers and operators.
#[derive(Clone)]
pub struct EngineHandle {
    router: Arc<Router>,
    shared: Arc<Shared>,
    checkpoints: Arc<CheckpointDriver>,
}

impl EngineHandle {
    /// Engine-wide counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// How the namespace's segments are used.
    pub fn space(&self) -> crate::store::Space {
        self.shared.space()
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.router.inboxes.len()
    }

    /// The worker that owns a shard now.
    pub fn shard_owner(&self, shard_id: u16) -> u16 {
        self.router.owner(shard_id)
    }

    /// Keys in a shard.
    pub fn shard_keys(&self, shard_id: u16) -> u64 {
        self.shared
            .shard_keys
            .get(usize::from(shard_id))
            .map_or(0, |k| k.load(Ordering::Relaxed))
    }

    /// Takes an index checkpoint (see [`Engine::checkpoint`]).
    pub fn checkpoint(&self) -> Result<(), EngineError> {
        if self.checkpoints.run() {
            Ok(())
        } else {
            Err(EngineError::CheckpointFailed)
        }
    }

    /// Starts a GC storm (see [`Engine::gc_storm`]).
    pub fn gc_storm(&self) {
        self.shared.gc_storms.fetch_add(1, Ordering::AcqRel);
        self.router.wake_all();
    }
}

fn unreachable_reply<T>(reply: Reply) -> Result<T, EngineError> {
    panic!("engine answered with the wrong kind of reply: {reply:?}")
}
