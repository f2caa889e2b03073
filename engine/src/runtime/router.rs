//! How worker threads reach each other: one bounded inbox per worker, the
//! shard-owner table, and a waker for workers asleep in their frontend's
//! poll.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use super::mover::{self, Owners};
use super::reply::Replier;
use crate::worker::Reply;

/// Where a reply goes: back to a blocked caller, or to a worker's frontend.
pub(super) enum ReplyTo {
    Caller(Replier),
    Frontend { worker: u16, token: u64 },
}

/// A shard mover's message, as the threads carry it.
pub(super) type MoverMessage = mover::Message<ReplyTo, SyncSender<()>>;

/// What travels through a worker's inbox.
pub(super) enum Envelope {
    /// Routing and shard moves.
    Mover(MoverMessage),
    /// A reply for this worker's frontend.
    Reply { token: u64, reply: Reply },
    /// Finish what is held, then stop.
    Shutdown,
}

/// Wakes a worker blocked in its frontend's poll.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

pub(super) struct Router {
    pub owners: Owners,
    pub inboxes: Vec<SyncSender<Envelope>>,
    pub wakers: Vec<Option<Wake>>,
}

impl Router {
    pub fn owner(&self, shard_id: u16) -> u16 {
        self.owners.owner(shard_id)
    }

    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    pub fn wake(&self, worker: u16) {
        if let Some(wake) = &self.wakers[usize::from(worker)] {
            wake();
        }
    }

    pub fn wake_all(&self) {
        for worker in 0..self.workers() {
            self.wake(worker as u16);
        }
    }

    /// Sends, blocking while the inbox is full (callers outside the
    /// workers).
    pub fn send(&self, worker: u16, message: Envelope) -> Result<(), ()> {
        self.inboxes[usize::from(worker)]
            .send(message)
            .map_err(|_| ())?;
        self.wake(worker);
        Ok(())
    }

    /// Sends without blocking (workers, which must not wait on each other):
    /// a full inbox hands the message back.
    pub fn try_send(&self, worker: u16, message: Envelope) -> Result<(), Envelope> {
        match self.inboxes[usize::from(worker)].try_send(message) {
            Ok(()) => {
                self.wake(worker);
                Ok(())
            }
            Err(TrySendError::Full(message)) => Err(message),
            // The worker is gone (shutdown): nothing to deliver to.
            Err(TrySendError::Disconnected(_)) => Ok(()),
        }
    }
}
