//! A worker's thread: a thin loop over its inbox, its frontend, its
//! [`WorkerCore`] and its [`ShardMover`]. Everything it decides is in those
//! state machines; the loop moves messages and sleeps when there is nothing
//! to do.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::mover::{Effect, Message, ShardMover, Stamp};
use super::router::{Envelope, ReplyTo, Router};
use crate::stats::{OpKind, OpResult, Stats};
use crate::worker::{Op, Reply, WorkerCore};

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
    ///
    /// Requests submitted here take effect in the order submitted, per
    /// shard (so per key), even when they are pipelined and shards move
    /// meanwhile: the mover stamps each with its place in this worker's
    /// order (`mover.rs`).
    pub fn submit(&mut self, token: u64, op: Op) {
        let worker = self.thread.core.id;
        self.thread
            .request(op, ReplyTo::Frontend { worker, token }, Submitted::Here);
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

/// Where a request comes from.
enum Submitted {
    /// This worker's frontend: the mover stamps it.
    Here,
    /// Another worker or an `Engine` caller, stamped or not.
    Elsewhere(Option<Stamp>),
}

/// One worker's thread: its core, its inbox, and its frontend if any.
pub struct WorkerThread {
    core: WorkerCore,
    mover: ShardMover<ReplyTo, SyncSender<()>>,
    frontend: Option<Box<dyn Frontend>>,
    /// Replies for this worker's own frontend, delivered after its poll.
    frontend_replies: Vec<(u64, Reply)>,
    inbox: Receiver<Envelope>,
    router: Arc<Router>,
    started: Instant,
    next_id: u64,
    /// Requests at the core: who to answer, what they were, since when.
    waiting: HashMap<u64, (ReplyTo, OpKind, Instant)>,
    /// The mover's effects, carried out after each of its steps.
    effects: Vec<Effect<ReplyTo, SyncSender<()>>>,
    /// Messages for other workers whose inboxes were full.
    outbox: Vec<(u16, Envelope)>,
    replies: Vec<(u64, Reply)>,
    shutting_down: bool,
}

/// The system's clock in milliseconds since the Unix epoch (0 before it).
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

impl WorkerThread {
    pub(super) fn new(
        core: WorkerCore,
        inbox: Receiver<Envelope>,
        router: Arc<Router>,
        frontend: Option<Box<dyn Frontend>>,
    ) -> WorkerThread {
        WorkerThread {
            mover: ShardMover::new(core.id),
            core,
            frontend,
            frontend_replies: Vec::new(),
            inbox,
            router,
            started: Instant::now(),
            next_id: 1,
            waiting: HashMap::new(),
            effects: Vec::new(),
            outbox: Vec::new(),
            replies: Vec::new(),
            shutting_down: false,
        }
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub(super) fn run(mut self) {
        loop {
            // Key deadlines are wall-clock times: the worker is given the
            // system's clock, as it is given the time for its commit timer.
            self.core.set_clock_ms(wall_clock_ms());
            let mut progressed = false;
            while let Ok(message) = self.inbox.try_recv() {
                progressed = true;
                self.handle(message);
            }
            progressed |= self.poll_frontend(None);
            progressed |= self.core.step(self.now_us(), &mut self.replies);
            self.send_replies();
            progressed |=
                self.mover
                    .advance(&mut self.core, &self.router.owners, &mut self.effects);
            self.apply_effects();
            self.flush_outbox();
            progressed |= self.deliver_frontend_replies();
            if self.shutting_down
                && !self.core.busy()
                && self.waiting.is_empty()
                && self.frontend.as_ref().is_none_or(|f| !f.draining())
            {
                return;
            }
            if !progressed {
                self.idle();
            }
        }
    }

    /// Waits for something to do: I/O, the next commit, the network or the
    /// inbox.
    fn idle(&mut self) {
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
        } else if self.core.busy() || self.mover.busy() || !self.outbox.is_empty() {
            std::thread::yield_now();
        } else if self.frontend.is_some() {
            // Sleeps in epoll; a message to our inbox wakes it.
            self.poll_frontend(Some(Duration::from_millis(10)));
        } else {
            match self.inbox.recv_timeout(Duration::from_millis(10)) {
                Ok(message) => self.handle(message),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.shutting_down = true;
                    self.core.stop_background();
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

    fn handle(&mut self, message: Envelope) {
        let owners = &self.router.owners;
        match message {
            Envelope::Mover(Message::Request { op, reply, stamp }) => {
                self.request(op, reply, Submitted::Elsewhere(stamp))
            }
            Envelope::Mover(Message::MoveOut { shard, to, done }) => {
                self.mover
                    .move_out(&self.core, owners, shard, to, done, &mut self.effects);
                self.apply_effects();
            }
            Envelope::Mover(Message::MoveIn {
                shard,
                index,
                turns,
            }) => {
                self.mover
                    .move_in(&mut self.core, owners, shard, *index, turns);
            }
            Envelope::Reply { token, reply } => self.frontend_replies.push((token, reply)),
            Envelope::Shutdown => {
                self.shutting_down = true;
                self.core.stop_background();
                if let Some(frontend) = self.frontend.as_mut() {
                    frontend.shutdown();
                }
            }
        }
    }

    fn request(&mut self, op: Op, reply: ReplyTo, submitted: Submitted) {
        if matches!(&op, Op::Batch(ops) | Op::BatchIf(ops, _) if ops.is_empty()) {
            self.answer(reply, Reply::Done);
            return;
        }
        let (core, owners, effects) = (&self.core, &self.router.owners, &mut self.effects);
        match submitted {
            Submitted::Here => self.mover.submit(core, owners, op, reply, effects),
            Submitted::Elsewhere(stamp) => {
                self.mover.request(core, owners, op, reply, stamp, effects)
            }
        }
        self.apply_effects();
    }

    /// Carries out what the mover decided. The buffer is put back with its
    /// capacity: this runs for every request, and must not allocate.
    fn apply_effects(&mut self) {
        let mut effects = std::mem::take(&mut self.effects);
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { to, message } => self.outbox.push((to, Envelope::Mover(message))),
                Effect::Accept { op, reply } => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.waiting
                        .insert(id, (reply, op_kind(&op), Instant::now()));
                    let now = self.now_us();
                    self.core.accept(id, op, now);
                }
                Effect::MoveDone(done) => {
                    let _ = done.send(());
                }
            }
        }
        self.effects = effects;
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
            ReplyTo::Caller(replier) => replier.send(reply),
            ReplyTo::Frontend { worker, token } if worker == self.core.id => {
                self.frontend_replies.push((token, reply));
            }
            ReplyTo::Frontend { worker, token } => {
                self.outbox.push((worker, Envelope::Reply { token, reply }));
            }
        }
    }

    fn flush_outbox(&mut self) {
        for (to, message) in std::mem::take(&mut self.outbox) {
            if let Err(message) = self.router.try_send(to, message) {
                self.outbox.push((to, message));
            }
        }
    }
}

fn op_kind(op: &Op) -> OpKind {
    match op {
        Op::Get(_) => OpKind::Get,
        Op::Exists(_) | Op::Deadline(_) => OpKind::Exists,
        Op::Put(..) => OpKind::Put,
        Op::PutIf(..) => OpKind::PutIf,
        Op::PutGet(..) => OpKind::PutGet,
        Op::Modify(..) => OpKind::Modify,
        Op::Delete(_) => OpKind::Delete,
        Op::Batch(_) | Op::BatchIf(..) => OpKind::Batch,
        Op::Scan(_) | Op::Count(_) => OpKind::Scan,
    }
}

fn op_result(reply: &Reply) -> OpResult {
    match reply {
        Reply::Done
        | Reply::Deleted(true)
        | Reply::Exists(true)
        | Reply::Keys(_)
        | Reply::Integer(_) => OpResult::Ok,
        Reply::Value(Some(_)) => OpResult::Ok,
        Reply::Value(None) | Reply::Deleted(false) | Reply::Exists(false) => OpResult::NotFound,
        Reply::NotApplied => OpResult::NotApplied,
        Reply::Failed(_) => OpResult::Error,
    }
}
