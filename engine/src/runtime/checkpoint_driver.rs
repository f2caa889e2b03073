//! Runs the [`Checkpointer`] from threads of the runtime: the automatic
//! schedule (every `checkpoint_records` records, at least every
//! `checkpoint_interval_s` seconds once anything was written),
//! [`super::Engine::checkpoint`], and the last checkpoint at shutdown.
//!
//! Event-driven: the driver sleeps on the store's `checkpoint_events`
//! signal, which a worker notifies when its commit passes the record count
//! for the next checkpoint and when a collection of the index completes;
//! timeouts only bound the wait for the time-based trigger.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::router::Router;
use crate::store::Shared;
use crate::Checkpointer;

/// How long the schedule waits after a failed checkpoint (a full namespace
/// would otherwise fail one on every commit).
const CHECKPOINT_RETRY: Duration = Duration::from_secs(10);
/// How long a collection may wait before sleeping workers are woken again
/// (a worker asleep in its frontend's poll copies its shards on its next
/// turn).
const COLLECTION_REWAKE: Duration = Duration::from_millis(20);

pub(super) struct CheckpointDriver {
    checkpointer: Mutex<Checkpointer>,
    router: Arc<Router>,
    shared: Arc<Shared>,
    /// The engine's next sequence number when the last checkpoint was taken.
    taken_at_seq: AtomicU64,
    /// When the last checkpoint was taken (or the engine opened), and,
    /// after a failure, when the schedule may try again.
    times: Mutex<Times>,
}

struct Times {
    taken_at: Instant,
    retry_at: Option<Instant>,
}

impl CheckpointDriver {
    pub fn new(checkpointer: Checkpointer, router: Arc<Router>, shared: Arc<Shared>) -> Self {
        let driver = CheckpointDriver {
            checkpointer: Mutex::new(checkpointer),
            router,
            taken_at_seq: AtomicU64::new(shared.next_seq.load(Ordering::Acquire)),
            shared,
            times: Mutex::new(Times {
                taken_at: Instant::now(),
                retry_at: None,
            }),
        };
        driver.arm();
        driver
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times
            .lock()
            .expect("the checkpoint driver's lock is poisoned")
    }

    /// Tells the workers at which sequence number the next checkpoint is
    /// due by record count.
    fn arm(&self) {
        let every = self.shared.config.checkpoint_records;
        let due = if every == 0 {
            u64::MAX
        } else {
            let keys = self.shared.stats.keys.load(Ordering::Relaxed);
            self.taken_at_seq
                .load(Ordering::Acquire)
                .saturating_add(every.max(keys))
        };
        self.shared.checkpoint_due_seq.store(due, Ordering::Release);
        // A commit may have passed it while it was being set.
        self.shared.note_commit();
    }

    /// Takes a checkpoint now, waiting for one in progress to finish first.
    /// Returns whether one became durable.
    pub fn run(&self) -> bool {
        let mut checkpointer = self
            .checkpointer
            .lock()
            .expect("the checkpointer's lock is poisoned");
        let before = self.shared.stats.checkpoints.load(Ordering::Acquire);
        let start_seq = self.shared.next_seq.load(Ordering::Acquire);
        if !checkpointer.request() {
            return false;
        }
        while checkpointer.in_progress() {
            let seen = self.shared.checkpoint_events.count();
            if checkpointer.collecting() {
                // Workers copy their shards on their own turns; wake the
                // ones asleep in their frontend's poll, then wait for the
                // last one to say the collection is complete.
                self.router.wake_all();
                self.shared.checkpoint_events.wait(seen, COLLECTION_REWAKE);
            }
            checkpointer.step();
        }
        drop(checkpointer);
        let durable = self.shared.stats.checkpoints.load(Ordering::Acquire) > before;
        {
            let mut times = self.times();
            if durable {
                self.taken_at_seq.store(start_seq, Ordering::Release);
                times.taken_at = Instant::now();
            }
            times.retry_at = (!durable).then(|| Instant::now() + CHECKPOINT_RETRY);
        }
        self.arm();
        durable
    }

    /// The automatic schedule, until `stopping`: sleeps until a worker says
    /// enough was written, or the interval or a retry delay runs out.
    pub fn schedule(&self, stopping: &AtomicBool) {
        while !stopping.load(Ordering::Acquire) {
            let seen = self.shared.checkpoint_events.count();
            if self.due() {
                self.run();
                continue;
            }
            self.shared
                .checkpoint_events
                .wait(seen, self.until_next_deadline());
        }
    }

    /// Wakes the schedule (to stop).
    pub fn interrupt(&self) {
        self.shared.checkpoint_events.notify();
    }

    /// How long until the time-based trigger or the retry delay may make a
    /// checkpoint due (at most a second, so a changed clock is noticed).
    fn until_next_deadline(&self) -> Duration {
        let interval = Duration::from_secs(self.shared.config.checkpoint_interval_s);
        let times = self.times();
        let now = Instant::now();
        let mut wait = Duration::from_secs(1);
        if !interval.is_zero() {
            wait = wait.min((times.taken_at + interval).saturating_duration_since(now));
        }
        if let Some(at) = times.retry_at {
            wait = wait.min(at.saturating_duration_since(now));
        }
        wait.max(Duration::from_millis(1))
    }

    /// Whether enough was written, or enough time passed with anything
    /// written, since the last checkpoint.
    fn due(&self) -> bool {
        let every = self.shared.config.checkpoint_records;
        let times = self.times();
        let waiting = times.retry_at.is_some_and(|at| Instant::now() < at);
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
            && times.taken_at.elapsed() >= Duration::from_secs(interval);
        aged || written >= every.max(self.shared.stats.keys.load(Ordering::Relaxed))
    }

    /// Whether anything was written since the last checkpoint.
    pub fn dirty(&self) -> bool {
        self.shared.next_seq.load(Ordering::Acquire) > self.taken_at_seq.load(Ordering::Acquire)
    }
}
