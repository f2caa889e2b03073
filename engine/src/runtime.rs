//! Threads that drive the workers: the production runtime.
//!
//! One thread per worker, each looping over: take requests from its bounded
//! inbox, step its [`WorkerCore`], send replies. Requests reach the owning
//! worker through the shard-owner table; a worker that receives a request
//! for a shard it no longer owns forwards it. A batch whose keys live on
//! several workers first gathers its shards on one worker by moving them
//! (hash tags avoid that cost), so that it commits as one frame.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nvme::Namespace;

use crate::config::EngineConfig;
use crate::error::{EngineError, OpenError};
use crate::index::Art;
use crate::shard::{shard, SHARD_COUNT};
use crate::worker::{BatchOp, Op, Reply, WorkerCore};
use crate::{open_workers, stats::Stats, RecoveryReport};

enum Message {
    Request { op: Op, reply: SyncSender<Reply> },
    MoveOut { shard: u16, to: u16, done: SyncSender<()> },
    MoveIn { shard: u16, index: Art },
    Shutdown,
}

struct Router {
    owners: Vec<AtomicU16>,
    inboxes: Vec<SyncSender<Message>>,
}

impl Router {
    fn owner(&self, shard_id: u16) -> u16 {
        self.owners[usize::from(shard_id)].load(Ordering::Acquire)
    }
}

/// A running engine: worker threads over one namespace.
pub struct Engine {
    router: Arc<Router>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<crate::worker::Shared>,
    report: RecoveryReport,
    stopping: Arc<AtomicBool>,
}

impl Engine {
    /// Opens (recovers) the store on `namespace` and starts its workers.
    pub fn open(namespace: Arc<dyn Namespace>, config: &EngineConfig) -> Result<Engine, OpenError> {
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
        let router = Arc::new(Router {
            owners: (0..SHARD_COUNT).map(|s| AtomicU16::new((usize::from(s) % workers) as u16)).collect(),
            inboxes,
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(workers);
        for (core, inbox) in opened.cores.into_iter().zip(receivers) {
            let router = Arc::clone(&router);
            let thread = std::thread::Builder::new()
                .name(format!("veltrix-worker-{}", core.id))
                .spawn(move || WorkerThread::new(core, inbox, router).run())
                .map_err(|e| OpenError::Config(format!("cannot start worker thread: {e}")))?;
            threads.push(thread);
        }
        Ok(Engine {
            router,
            threads,
            shared: opened.shared,
            report: opened.report,
            stopping,
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
        let sent = self.router.inboxes[usize::from(worker)].send(Message::Request { op, reply: tx });
        if sent.is_err() {
            return Reply::Failed(EngineError::ShuttingDown);
        }
        rx.recv().unwrap_or(Reply::Failed(EngineError::ShuttingDown))
    }

    fn call_for_key(&self, key: &[u8], op: Op) -> Reply {
        self.call(self.router.owner(shard(key)), op)
    }

    /// Reads a key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
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
        let Some(first) = ops.first() else { return Ok(()) };
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
        self.router.inboxes[usize::from(from)]
            .send(Message::MoveOut { shard: shard_id, to, done: tx })
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.recv().map_err(|_| EngineError::ShuttingDown)
    }

    /// Stops the workers after they finish what they hold.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        for inbox in &self.router.inboxes {
            let _ = inbox.send(Message::Shutdown);
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

fn unreachable_reply<T>(reply: Reply) -> Result<T, EngineError> {
    panic!("engine answered with the wrong kind of reply: {reply:?}")
}

fn op_shard(op: &Op) -> Option<u16> {
    match op {
        Op::Get(k) | Op::Exists(k) | Op::Put(k, _) | Op::Delete(k) => Some(shard(k)),
        Op::Batch(ops) => ops.first().map(|op| match op {
            BatchOp::Put(k, _) | BatchOp::Delete(k) => shard(k),
        }),
    }
}

struct WorkerThread {
    core: WorkerCore,
    inbox: Receiver<Message>,
    router: Arc<Router>,
    started: Instant,
    next_id: u64,
    waiting: HashMap<u64, SyncSender<Reply>>,
    /// Shards being moved out: (target, who to tell).
    moving: BTreeMap<u16, (u16, SyncSender<()>)>,
    /// Writes for a moving shard, forwarded once it has moved.
    held: Vec<(Op, SyncSender<Reply>)>,
    /// Messages for other workers whose inboxes were full.
    outbox: Vec<(u16, Message)>,
    replies: Vec<(u64, Reply)>,
    shutting_down: bool,
}

impl WorkerThread {
    fn new(core: WorkerCore, inbox: Receiver<Message>, router: Arc<Router>) -> WorkerThread {
        WorkerThread {
            core,
            inbox,
            router,
            started: Instant::now(),
            next_id: 1,
            waiting: HashMap::new(),
            moving: BTreeMap::new(),
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
            progressed |= self.core.step(self.now_us(), &mut self.replies);
            self.send_replies();
            progressed |= self.finish_moves();
            self.flush_outbox();
            if self.shutting_down && !self.core.busy() && self.waiting.is_empty() {
                return;
            }
            if progressed {
                continue;
            }
            if self.core.io_in_flight() > 0 {
                self.core.wait_io(Duration::from_micros(200), &mut self.replies);
                self.send_replies();
            } else if let Some(due) = self.core.commit_due_us() {
                let now = self.now_us();
                if due > now {
                    std::thread::sleep(Duration::from_micros((due - now).min(1000)));
                }
            } else if self.core.busy() || !self.moving.is_empty() || !self.outbox.is_empty() {
                std::thread::yield_now();
            } else {
                match self.inbox.recv_timeout(Duration::from_millis(10)) {
                    Ok(message) => self.handle(message),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.shutting_down = true,
                }
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Request { op, reply } => self.request(op, reply),
            Message::MoveOut { shard, to, done } => {
                self.moving.insert(shard, (to, done));
            }
            Message::MoveIn { shard, index } => {
                self.core.adopt_shard(shard, index);
                self.router.owners[usize::from(shard)].store(self.core.id, Ordering::Release);
            }
            Message::Shutdown => self.shutting_down = true,
        }
    }

    fn request(&mut self, op: Op, reply: SyncSender<Reply>) {
        let Some(shard_id) = op_shard(&op) else {
            let _ = reply.send(Reply::Done);
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
            // Every shard of a batch must be ours; the caller gathers them.
            let foreign = ops.iter().any(|o| match o {
                BatchOp::Put(k, _) | BatchOp::Delete(k) => {
                    let s = shard(k);
                    !self.core.owns(s) || self.moving.contains_key(&s)
                }
            });
            if foreign {
                let _ = reply.send(Reply::Failed(EngineError::NotOwner { shard: shard_id }));
                return;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.insert(id, reply);
        let now = self.now_us();
        self.core.accept(id, op, now);
    }

    fn send_replies(&mut self) {
        for (id, reply) in self.replies.drain(..) {
            if let Some(tx) = self.waiting.remove(&id) {
                let _ = tx.send(reply);
            }
        }
    }

    fn finish_moves(&mut self) -> bool {
        let mut progressed = false;
        let shards: Vec<u16> = self.moving.keys().copied().collect();
        for shard_id in shards {
            let Some(index) = self.core.release_shard(shard_id) else { continue };
            let Some((to, done)) = self.moving.remove(&shard_id) else { continue };
            // Publish the new owner only once the index is in the target's
            // inbox; requests that race ahead are held there until it lands.
            self.router.owners[usize::from(shard_id)].store(to, Ordering::Release);
            self.outbox.push((to, Message::MoveIn { shard: shard_id, index }));
            let held = std::mem::take(&mut self.held);
            for (op, reply) in held {
                if op_shard(&op) == Some(shard_id) {
                    self.outbox.push((to, Message::Request { op, reply }));
                } else {
                    self.held.push((op, reply));
                }
            }
            let _ = done.send(());
            progressed = true;
        }
        // Requests held for shards that have since arrived.
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            for (op, reply) in held {
                match op_shard(&op) {
                    Some(s) if self.core.owns(s) && !self.moving.contains_key(&s) => {
                        progressed = true;
                        self.request(op, reply);
                    }
                    _ => self.held.push((op, reply)),
                }
            }
        }
        progressed
    }

    fn flush_outbox(&mut self) {
        let pending = std::mem::take(&mut self.outbox);
        for (to, message) in pending {
            match self.router.inboxes[usize::from(to)].try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) => self.outbox.push((to, message)),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}
