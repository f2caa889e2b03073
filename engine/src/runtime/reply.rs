//! How a blocked `Engine` caller gets its reply: a slot per caller thread,
//! reused for every call, that the worker fills before it unparks the
//! caller.
//!
//! It replaces a `sync_channel(1)` per call. The profile of a durable put
//! (`docs/BENCHMARKS.md`, "CPU per request") showed that channel's costs on
//! every call: its allocation and free, its waker lists and their locks,
//! and the receiver spinning before it parks, on two cores shared by 64
//! callers. A caller has one call in flight at a time, so one slot per
//! thread is enough, and filling it is one uncontended lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;

use crate::error::EngineError;
use crate::worker::Reply;

/// A caller thread's reply slot.
struct Slot {
    reply: Mutex<Option<Reply>>,
    caller: Thread,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<Reply>> {
        // A poisoned slot means a worker panicked while answering: fatal.
        self.reply.lock().expect("a reply slot's lock is poisoned")
    }
}

thread_local! {
    static SLOT: Arc<Slot> = Arc::new(Slot {
        reply: Mutex::new(None),
        caller: std::thread::current(),
    });
}

/// The worker's end: answers the call once. Dropped unanswered (a worker
/// that stopped holding it), it answers `ShuttingDown`, so the caller never
/// waits forever.
pub(super) struct Replier {
    slot: Option<Arc<Slot>>,
}

impl Replier {
    /// Fills the caller's slot and wakes the caller.
    pub fn send(mut self, reply: Reply) {
        if let Some(slot) = self.slot.take() {
            Self::fill(&slot, reply);
        }
    }

    fn fill(slot: &Slot, reply: Reply) {
        let previous = slot.lock().replace(reply);
        assert!(previous.is_none(), "a reply slot answered twice");
        slot.caller.unpark();
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            Self::fill(&slot, Reply::Failed(EngineError::ShuttingDown));
        }
    }
}

/// Runs `send` with a [`Replier`] for this thread's slot, then waits for
/// the reply. A request that could not be sent drops its replier, which
/// answers `ShuttingDown`.
pub(super) fn call(send: impl FnOnce(Replier)) -> Reply {
    SLOT.with(|slot| {
        assert!(slot.lock().is_none(), "a reply slot holds a stale reply");
        send(Replier {
            slot: Some(Arc::clone(slot)),
        });
        loop {
            if let Some(reply) = slot.lock().take() {
                return reply;
            }
            // A wake-up may be spurious or left over from the previous
            // call (its replier unparks after filling the slot): the slot
            // decides, not the wake-up.
            std::thread::park();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_from_another_thread_reaches_the_caller() {
        for n in 0..100 {
            let reply = call(|replier| {
                std::thread::spawn(move || replier.send(Reply::Integer(n)));
            });
            assert!(matches!(reply, Reply::Integer(m) if m == n), "{reply:?}");
        }
    }

    #[test]
    fn a_replier_dropped_unanswered_answers_shutting_down() {
        let reply = call(|replier| {
            std::thread::spawn(move || drop(replier));
        });
        assert!(matches!(reply, Reply::Failed(EngineError::ShuttingDown)));
        // The slot is empty again for the next call.
        let reply = call(|replier| {
            replier.send(Reply::Done);
        });
        assert!(matches!(reply, Reply::Done));
    }
}
