//! The simulated queue pair: commands wait, in a heap ordered by simulated
//! completion time, until the clock reaches them; each executes when it is
//! returned.

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::state::{Pending, State};
use crate::command::{Command, Completion};
use crate::error::Refused;
use crate::geometry::Geometry;
use crate::queue::{self, QueuePair};

/// Locks the shared state. A panic while it was held (a failed assertion in
/// another thread) leaves it as consistent as any other panic would; carry on
/// so that thread's panic, not a poison error, is what the test reports.
pub(super) fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A queue pair of the `sim` backend.
///
/// `poll` returns the command with the earliest completion time that the
/// clock has reached (ties in submission order) and executes it then; `wait`
/// first moves the clock to that time if nothing is ready, which is how the
/// simulation blocks. Its timeout is wall-clock and so never applies: the
/// simulated device always completes.
#[derive(Debug)]
pub struct SimQueuePair {
    shared: Arc<Mutex<State>>,
    geometry: Geometry,
    depth: u32,
    pending: BinaryHeap<Pending>,
}

impl SimQueuePair {
    pub(super) fn new(shared: Arc<Mutex<State>>, geometry: Geometry, depth: u32) -> SimQueuePair {
        SimQueuePair {
            shared,
            geometry,
            depth,
            pending: BinaryHeap::with_capacity(depth as usize),
        }
    }

    fn complete(&mut self, block: bool) -> Option<Completion> {
        let ready_at = self.pending.peek()?.ready_at;
        let mut state = lock(&self.shared);
        if ready_at > state.now {
            if !block {
                return None;
            }
            state.now = ready_at;
        }
        let next = self.pending.pop()?;
        Some(state.execute(next))
    }
}

impl QueuePair for SimQueuePair {
    fn depth(&self) -> u32 {
        self.depth
    }

    fn in_flight(&self) -> u32 {
        self.pending.len() as u32
    }

    fn submit(&mut self, token: u64, command: Command) -> Result<(), Refused> {
        let command = queue::admit(&self.geometry, self.in_flight(), self.depth, command)?;
        let pending = lock(&self.shared).schedule(token, command);
        self.pending.push(pending);
        Ok(())
    }

    fn poll(&mut self) -> Option<Completion> {
        self.complete(false)
    }

    fn wait(&mut self, _timeout: Option<Duration>) -> Option<Completion> {
        self.complete(true)
    }
}
