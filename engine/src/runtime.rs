//! Threads that drive the workers: the production runtime.
//!
//! One thread per worker, each looping over: take requests from its bounded
//! inbox, step its [`WorkerCore`], send replies. Requests reach the owning
//! worker through the shard-owner table; a worker that receives a request
//! for a shard it no longer owns forwards it. A batch whose keys live on
//! several workers first gathers its shards on one worker by moving them
//! (hash tags avoid that cost), so that it commits as one frame.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nvme::Namespace;

use crate::config::EngineConfig;
use crate::error::{EngineError, OpenError};
use crate::index::Art;
use crate::shard::{shard, SHARD_COUNT};
use crate::stats::{OpKind, OpResult, Stats};
use crate::worker::{BatchOp, Op, Reply, SharedCache, WorkerCore};
use crate::{open_workers, Checkpointer, RecoveryReport};

/// Where a reply goes: back to a blocked caller, or to a worker's frontend.
enum ReplyTo {
    Caller(SyncSender<Reply>),
    Frontend { worker: u16, token: u64 },
}

enum Message {
    Request {
        op: Op,
        reply: ReplyTo,
    },
    Reply {
        token: u64,
        reply: Reply,
    },
    MoveOut {
        shard: u16,
        to: u16,
        done: Option<SyncSender<()>>,
    },
    MoveIn {
        shard: u16,
        index: Art,
    },
    Shutdown,
}

/// Wakes a worker blocked in its frontend's poll.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

struct Router {
    owners: Vec<AtomicU16>,
    inboxes: Vec<SyncSender<Message>>,
    wakers: Vec<Option<Wake>>,
}

impl Router {
    fn owner(&self, shard_id: u16) -> u16 {
        self.owners[usize::from(shard_id)].load(Ordering::Acquire)
    }

    fn wake(&self, worker: u16) {
        if let Some(wake) = &self.wakers[usize::from(worker)] {
            wake();
        }
    }

    fn send(&self, worker: u16, message: Message) -> Result<(), ()> {
        self.inboxes[usize::from(worker)]
            .send(message)
            .map_err(|_| ())?;
        self.wake(worker);
        Ok(())
    }
}

/// The network side of a worker: it owns connections, parses requests and
/// submits them through a [`Submitter`]; the worker thread calls it on every
/// turn of its loop. Requests for the worker's own shards run right there;
/// others go to the owning worker and their replies come back the same way.
pub trait Frontend: Send {
    /// Does the network work that is ready. May block up to `timeout` when
    /// there is nothing to do (`None`: do not block). Returns whether it did
    /// anything.
    fn poll(&mut self, submitter: &mut Submitter<'_>, timeout: Option<Duration>) -> bool;
    /// The reply to a request submitted with `token`.
    fn reply(&mut self, token: u64, reply: Reply);
    /// Stops accepting and closes connections once their replies are out.
    fn shutdown(&mut self);
    /// Whether the frontend still has work (connections with replies to
    /// write) during shutdown.
    fn draining(&self) -> bool;
}

/// How a frontend submits requests to the engine.
pub struct Submitter<'a> {
    thread: &'a mut WorkerThread,
}

impl Submitter<'_> {
    /// Submits `op`; its reply arrives through [`Frontend::reply`] with
    /// `token`.
    pub fn submit(&mut self, token: u64, op: Op) {
        let worker = self.thread.core.id;
        self.thread.request(op, ReplyTo::Frontend { worker, token });
    }

    /// Engine-wide counters.
    pub fn stats(&self) -> &Stats {
        self.thread.core.stats()
    }

    /// The worker this frontend runs on.
    pub fn worker(&self) -> u16 {
        self.thread.core.id
    }

    /// Keys indexed by this worker (for DBSIZE, summed over workers by the
    /// caller).
    pub fn local_keys(&self) -> usize {
        self.thread.core.key_count()
    }
}

/// A running engine: worker threads over one namespace.
pub struct Engine {
    router: Arc<Router>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<crate::worker::Shared>,
    report: RecoveryReport,
    stopping: Arc<AtomicBool>,
    checkpoints: Arc<CheckpointDriver>,
    checkpoint_thread: Option<JoinHandle<()>>,
    /// Each worker's value cache: [`Engine::get`] answers hits on the
    /// caller's thread, without the round trip to the worker.
    caches: Vec<SharedCache>,
}

/// Runs the checkpointer from threads of the runtime: the automatic
/// schedule, [`Engine::checkpoint`] and the last checkpoint at shutdown.
struct CheckpointDriver {
    checkpointer: Mutex<Checkpointer>,
    router: Arc<Router>,
    shared: Arc<crate::worker::Shared>,
    /// The engine's next sequence number when the last checkpoint was taken.
    taken_at_seq: AtomicU64,
    /// When the last checkpoint was taken (or the engine opened).
    taken_at: Mutex<Instant>,
    /// After a failed checkpoint, the schedule waits until then (a full
    /// namespace would otherwise fail one every turn).
    retry_at: Mutex<Option<Instant>>,
}

/// How long the schedule waits after a failed checkpoint.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(10);

impl CheckpointDriver {
    /// Takes a checkpoint now, waiting for one in progress to finish first.
    /// Returns whether one became durable.
    fn run(&self) -> bool {
        let Ok(mut checkpointer) = self.checkpointer.lock() else {
            return false;
        };
        let before = self.shared.stats.checkpoints.load(Ordering::Acquire);
        let start_seq = self.shared.next_seq.load(Ordering::Acquire);
        if !checkpointer.request() {
            return false;
        }
        while checkpointer.in_progress() {
            if checkpointer.collecting() {
                // Workers copy their shards on their own turns; wake the
                // ones sleeping in their frontend's poll.
                for worker in 0..self.router.inboxes.len() {
                    self.router.wake(worker as u16);
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            checkpointer.step();
        }
        let durable = self.shared.stats.checkpoints.load(Ordering::Acquire) > before;
        if durable {
            self.taken_at_seq.store(start_seq, Ordering::Release);
            if let Ok(mut at) = self.taken_at.lock() {
                *at = Instant::now();
            }
        }
        if let Ok(mut retry) = self.retry_at.lock() {
            *retry = (!durable).then(|| Instant::now() + CHECKPOINT_RETRY);
        }
        durable
    }

    /// Whether enough was written since the last checkpoint for another.
    fn due(&self) -> bool {
        let every = self.shared.config.checkpoint_records;
        let waiting = self
            .retry_at
            .lock()
            .is_ok_and(|r| r.is_some_and(|at| Instant::now() < at));
        if every == 0 || waiting {
            return false;
        }
        let written = self
            .shared
            .next_seq
            .load(Ordering::Acquire)
            .saturating_sub(self.taken_at_seq.load(Ordering::Acquire));
        let interval = self.shared.config.checkpoint_interval_s;
        let aged = interval > 0
            && written > 0
            && self
                .taken_at
                .lock()
                .is_ok_and(|at| at.elapsed() >= Duration::from_secs(interval));
        aged || written >= every.max(self.shared.stats.keys.load(Ordering::Relaxed))
    }

    /// Whether anything was written since the last checkpoint.
    fn dirty(&self) -> bool {
        self.shared.next_seq.load(Ordering::Acquire) > self.taken_at_seq.load(Ordering::Acquire)
    }
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
        mut frontend: impl FnMut(u16) -> Option<(Box<dyn Frontend>, Wake)>,
    ) -> Result<Engine, OpenError> {
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        let opened = open_workers(namespace, config, workers)?;
        let mut receivers = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel(config.inbox_max.max(1));
            inboxes.push(tx);
            receivers.push(rx);
        }
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
        let router = Arc::new(Router {
            owners: (0..SHARD_COUNT)
                .map(|s| AtomicU16::new((usize::from(s) % workers) as u16))
                .collect(),
            inboxes,
            wakers,
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let caches = opened.cores.iter().map(WorkerCore::shared_cache).collect();
        let mut threads = Vec::with_capacity(workers);
        for ((core, inbox), frontend) in opened.cores.into_iter().zip(receivers).zip(frontends) {
            let router = Arc::clone(&router);
            let thread = std::thread::Builder::new()
                .name(format!("veltrix-worker-{}", core.id))
                .spawn(move || WorkerThread::new(core, inbox, router, frontend).run())
                .map_err(|e| OpenError::Config(format!("cannot start worker thread: {e}")))?;
            threads.push(thread);
        }
        let checkpoints = Arc::new(CheckpointDriver {
            checkpointer: Mutex::new(opened.checkpointer),
            router: Arc::clone(&router),
            shared: Arc::clone(&opened.shared),
            taken_at_seq: AtomicU64::new(opened.shared.next_seq.load(Ordering::Acquire)),
            taken_at: Mutex::new(Instant::now()),
            retry_at: Mutex::new(None),
        });
        let checkpoint_thread = {
            let driver = Arc::clone(&checkpoints);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("veltrix-checkpoint".into())
                .spawn(move || {
                    while !stopping.load(Ordering::Acquire) {
                        if driver.due() {
                            driver.run();
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
                .map_err(|e| OpenError::Config(format!("cannot start checkpoint thread: {e}")))?
        };
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
    pub fn space(&self) -> crate::Space {
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
        let (tx, rx) = mpsc::sync_channel(1);
        let sent = self.router.send(
            worker,
            Message::Request {
                op,
                reply: ReplyTo::Caller(tx),
            },
        );
        if sent.is_err() {
            return Reply::Failed(EngineError::ShuttingDown);
        }
        rx.recv()
            .unwrap_or(Reply::Failed(EngineError::ShuttingDown))
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
            let hit = crate::worker::value_cache::lock(cache).get_hit(key, &self.shared.stats);
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

    /// Sets a key and returns the value it replaced, atomically, once the
    /// write is durable (`SET ... GET`).
    pub fn put_get(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        match self.call_for_key(key, Op::PutGet(key.to_vec(), value.to_vec())) {
            Reply::Value(old) => Ok(old),
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
        let first_key = match first {
            BatchOp::Put(k, _) | BatchOp::Delete(k) => k.clone(),
        };
        // Gather every shard of the batch on the first key's worker.
        loop {
            let target = self.router.owner(shard(&first_key));
            let strays: Vec<u16> = ops
                .iter()
                .map(|op| match op {
                    BatchOp::Put(k, _) | BatchOp::Delete(k) => shard(k),
                })
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
                Message::MoveOut {
                    shard: shard_id,
                    to,
                    done: Some(tx),
                },
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
        if let Some(thread) = self.checkpoint_thread.take() {
            let _ = thread.join();
        }
        // The next open then replays nothing.
        if self.shared.config.checkpoint_records > 0 && self.checkpoints.dirty() {
            self.checkpoints.run();
        }
        for worker in 0..self.router.inboxes.len() {
            let _ = self.router.send(worker as u16, Message::Shutdown);
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
    shared: Arc<crate::worker::Shared>,
    checkpoints: Arc<CheckpointDriver>,
}

impl EngineHandle {
    /// Engine-wide counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// How the namespace's segments are used.
    pub fn space(&self) -> crate::Space {
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
        for worker in 0..self.router.inboxes.len() {
            self.router.wake(worker as u16);
        }
    }
}

fn unreachable_reply<T>(reply: Reply) -> Result<T, EngineError> {
    panic!("engine answered with the wrong kind of reply: {reply:?}")
}

fn op_kind(op: &Op) -> OpKind {
    match op {
        Op::Get(_) => OpKind::Get,
        Op::Exists(_) => OpKind::Exists,
        Op::Put(..) => OpKind::Put,
        Op::PutIf(..) => OpKind::PutIf,
        Op::PutGet(..) => OpKind::PutGet,
        Op::Delete(_) => OpKind::Delete,
        Op::Batch(_) => OpKind::Batch,
        Op::Scan(_) => OpKind::Scan,
    }
}

fn op_result(reply: &Reply) -> OpResult {
    match reply {
        Reply::Done | Reply::Deleted(true) | Reply::Exists(true) | Reply::Keys(_) => OpResult::Ok,
        Reply::Value(Some(_)) => OpResult::Ok,
        Reply::Value(None) | Reply::Deleted(false) | Reply::Exists(false) => OpResult::NotFound,
        Reply::NotApplied => OpResult::NotApplied,
        Reply::Failed(_) => OpResult::Error,
    }
}

fn op_shard(op: &Op) -> Option<u16> {
    match op {
        Op::Get(k)
        | Op::Exists(k)
        | Op::Put(k, _)
        | Op::PutIf(k, _, _)
        | Op::PutGet(k, _)
        | Op::Delete(k) => Some(shard(k)),
        Op::Scan(shard_id) => Some(*shard_id),
        Op::Batch(ops) => ops.first().map(|op| match op {
            BatchOp::Put(k, _) | BatchOp::Delete(k) => shard(k),
        }),
    }
}

/// One worker's thread: its core, its inbox, and its frontend if any.
pub struct WorkerThread {
    core: WorkerCore,
    frontend: Option<Box<dyn Frontend>>,
    /// Replies for this worker's own frontend, delivered after its poll.
    frontend_replies: Vec<(u64, Reply)>,
    inbox: Receiver<Message>,
    router: Arc<Router>,
    started: Instant,
    next_id: u64,
    /// Requests at the core: who to answer, what they were, since when.
    waiting: HashMap<u64, (ReplyTo, OpKind, Instant)>,
    /// Shards being moved out: (target, who to tell).
    moving: BTreeMap<u16, (u16, Option<SyncSender<()>>)>,
    /// Shards this worker asked for, to gather an atomic batch.
    gathering: std::collections::BTreeSet<u16>,
    /// Writes for a moving shard, forwarded once it has moved.
    held: Vec<(Op, ReplyTo)>,
    /// Messages for other workers whose inboxes were full.
    outbox: Vec<(u16, Message)>,
    replies: Vec<(u64, Reply)>,
    shutting_down: bool,
}

impl WorkerThread {
    fn new(
        core: WorkerCore,
        inbox: Receiver<Message>,
        router: Arc<Router>,
        frontend: Option<Box<dyn Frontend>>,
    ) -> WorkerThread {
        WorkerThread {
            core,
            frontend,
            frontend_replies: Vec::new(),
            inbox,
            router,
            started: Instant::now(),
            next_id: 1,
            waiting: HashMap::new(),
            moving: BTreeMap::new(),
            gathering: std::collections::BTreeSet::new(),
            held: Vec::new(),
            outbox: Vec::new(),
            replies: Vec::new(),
            shutting_down: false,
        }
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn run(mut self) {
        loop {
            let mut progressed = false;
            while let Ok(message) = self.inbox.try_recv() {
                progressed = true;
                self.handle(message);
            }
            progressed |= self.poll_frontend(None);
            progressed |= self.core.step(self.now_us(), &mut self.replies);
            self.send_replies();
            progressed |= self.finish_moves();
            self.flush_outbox();
            progressed |= self.deliver_frontend_replies();
            if self.shutting_down
                && !self.core.busy()
                && self.waiting.is_empty()
                && self.frontend.as_ref().is_none_or(|f| !f.draining())
            {
                return;
            }
            if progressed {
                continue;
            }
            if self.core.io_in_flight() > 0 {
                self.core
                    .wait_io(Duration::from_micros(200), &mut self.replies);
                self.send_replies();
            } else if let Some(due) = self.core.commit_due_us() {
                let now = self.now_us();
                if due > now {
                    let pause = Duration::from_micros((due - now).min(1000));
                    if self.frontend.is_some() {
                        self.poll_frontend(Some(pause));
                    } else {
                        std::thread::sleep(pause);
                    }
                }
            } else if self.core.busy() || !self.moving.is_empty() || !self.outbox.is_empty() {
                std::thread::yield_now();
            } else if self.frontend.is_some() {
                // Sleeps in epoll; a message to our inbox wakes it.
                self.poll_frontend(Some(Duration::from_millis(10)));
            } else {
                match self.inbox.recv_timeout(Duration::from_millis(10)) {
                    Ok(message) => self.handle(message),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.shutting_down = true,
                }
            }
        }
    }

    fn poll_frontend(&mut self, timeout: Option<Duration>) -> bool {
        let Some(mut frontend) = self.frontend.take() else {
            return false;
        };
        let progressed = frontend.poll(&mut Submitter { thread: self }, timeout);
        self.frontend = Some(frontend);
        progressed
    }

    fn deliver_frontend_replies(&mut self) -> bool {
        let Some(frontend) = self.frontend.as_mut() else {
            return false;
        };
        if self.frontend_replies.is_empty() {
            return false;
        }
        for (token, reply) in self.frontend_replies.drain(..) {
            frontend.reply(token, reply);
        }
        true
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Request { op, reply } => self.request(op, reply),
            Message::MoveOut { shard, to, done } => {
                let owner = self.router.owner(shard);
                if to == self.core.id && self.core.owns(shard) {
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                } else if owner != self.core.id {
                    // Ownership changed since the sender looked: pass it on.
                    self.outbox
                        .push((owner, Message::MoveOut { shard, to, done }));
                } else {
                    // Ours, or on its way to us: released once it is here.
                    self.moving.insert(shard, (to, done));
                }
            }
            Message::MoveIn { shard, index } => {
                self.core.adopt_shard(shard, index);
                self.router.owners[usize::from(shard)].store(self.core.id, Ordering::Release);
            }
            Message::Reply { token, reply } => self.frontend_replies.push((token, reply)),
            Message::Shutdown => {
                self.shutting_down = true;
                if let Some(frontend) = self.frontend.as_mut() {
                    frontend.shutdown();
                }
            }
        }
    }

    fn request(&mut self, op: Op, reply: ReplyTo) {
        let Some(shard_id) = op_shard(&op) else {
            self.answer(reply, Reply::Done);
            return;
        };
        if !self.core.owns(shard_id) {
            let owner = self.router.owner(shard_id);
            if owner == self.core.id {
                // The index is on its way to us: keep the request until it lands.
                self.held.push((op, reply));
            } else {
                self.outbox.push((owner, Message::Request { op, reply }));
            }
            return;
        }
        let is_write = !matches!(op, Op::Get(_) | Op::Exists(_));
        if is_write && self.moving.contains_key(&shard_id) {
            self.held.push((op, reply));
            return;
        }
        if let Op::Batch(ops) = &op {
            // A batch commits as one frame, so every shard it touches must be
            // here: ask the owners of the others to move them, and hold the
            // batch until they have arrived.
            let mut missing = false;
            for o in ops {
                let s = match o {
                    BatchOp::Put(k, _) | BatchOp::Delete(k) => shard(k),
                };
                if self.core.owns(s) && !self.moving.contains_key(&s) {
                    continue;
                }
                missing = true;
                let owner = self.router.owner(s);
                if owner != self.core.id && self.gathering.insert(s) {
                    self.outbox.push((
                        owner,
                        Message::MoveOut {
                            shard: s,
                            to: self.core.id,
                            done: None,
                        },
                    ));
                }
            }
            if missing {
                self.held.push((op, reply));
                return;
            }
            for o in ops {
                let (BatchOp::Put(k, _) | BatchOp::Delete(k)) = o;
                self.gathering.remove(&shard(k));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiting
            .insert(id, (reply, op_kind(&op), Instant::now()));
        let now = self.now_us();
        self.core.accept(id, op, now);
    }

    fn send_replies(&mut self) {
        let replies = std::mem::take(&mut self.replies);
        for (id, reply) in replies {
            if let Some((to, kind, since)) = self.waiting.remove(&id) {
                let stats = self.core.stats();
                stats.ops[kind as usize][op_result(&reply) as usize]
                    .fetch_add(1, Ordering::Relaxed);
                stats.op_latency[kind as usize].record(since.elapsed().as_micros() as u64);
                self.answer(to, reply);
            }
        }
    }

    fn answer(&mut self, to: ReplyTo, reply: Reply) {
        match to {
            ReplyTo::Caller(tx) => {
                let _ = tx.send(reply);
            }
            ReplyTo::Frontend { worker, token } if worker == self.core.id => {
                self.frontend_replies.push((token, reply));
            }
            ReplyTo::Frontend { worker, token } => {
                self.outbox.push((worker, Message::Reply { token, reply }));
            }
        }
    }

    fn finish_moves(&mut self) -> bool {
        let mut progressed = false;
        let shards: Vec<u16> = self.moving.keys().copied().collect();
        for shard_id in shards {
            let Some(index) = self.core.release_shard(shard_id) else {
                continue;
            };
            let Some((to, done)) = self.moving.remove(&shard_id) else {
                continue;
            };
            self.core
                .stats()
                .shard_moves
                .fetch_add(1, Ordering::Relaxed);
            // Publish the new owner only once the index is in the target's
            // inbox; requests that race ahead are held there until it lands.
            self.router.owners[usize::from(shard_id)].store(to, Ordering::Release);
            self.outbox.push((
                to,
                Message::MoveIn {
                    shard: shard_id,
                    index,
                },
            ));
            let held = std::mem::take(&mut self.held);
            for (op, reply) in held {
                if op_shard(&op) == Some(shard_id) {
                    self.outbox.push((to, Message::Request { op, reply }));
                } else {
                    self.held.push((op, reply));
                }
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
            progressed = true;
        }
        // Requests held for shards that have since arrived.
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            for (op, reply) in held {
                if self.ready(&op) {
                    progressed = true;
                    self.request(op, reply);
                } else {
                    self.held.push((op, reply));
                }
            }
        }
        progressed
    }

    /// Whether every shard `op` needs is here and staying.
    fn ready(&self, op: &Op) -> bool {
        let here = |s: u16| self.core.owns(s) && !self.moving.contains_key(&s);
        match op {
            Op::Batch(ops) => ops.iter().all(|o| match o {
                BatchOp::Put(k, _) | BatchOp::Delete(k) => here(shard(k)),
            }),
            other => op_shard(other).is_some_and(here),
        }
    }

    fn flush_outbox(&mut self) {
        let pending = std::mem::take(&mut self.outbox);
        for (to, message) in pending {
            match self.router.inboxes[usize::from(to)].try_send(message) {
                Ok(()) => self.router.wake(to),
                Err(TrySendError::Full(message)) => self.outbox.push((to, message)),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}
