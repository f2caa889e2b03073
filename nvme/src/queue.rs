//! The namespace and queue-pair abstraction every backend implements.

use std::sync::Arc;
use std::time::Duration;

use crate::buffer::BufferPool;
use crate::command::{Command, Completion};
use crate::error::{OpenError, RefuseReason, Refused};
use crate::geometry::Geometry;

/// The deepest queue a backend accepts. NVMe allows 64 Ki entries; we bound
/// it far lower because every in-flight command pins a pool buffer.
pub const QUEUE_DEPTH_MAX: u32 = 1024;

/// A block namespace: a fixed-size array of logical blocks.
///
/// Shared between threads; each thread opens its own [`QueuePair`].
pub trait Namespace: Send + Sync {
    /// Shape and abilities.
    fn geometry(&self) -> Geometry;
    /// The pool every buffer for this namespace's I/O comes from.
    fn buffers(&self) -> &Arc<BufferPool>;
    /// Opens a queue pair of the given depth (1..=[`QUEUE_DEPTH_MAX`]).
    fn queue_pair(&self, depth: u32) -> Result<Box<dyn QueuePair>, OpenError>;
    /// A one-line description for status pages: backend, path, options.
    fn describe(&self) -> String;
}

/// A submission/completion queue pair, owned by one thread.
pub trait QueuePair: Send {
    /// The most commands this queue holds at once.
    fn depth(&self) -> u32;
    /// Commands submitted and not yet returned by [`QueuePair::poll`] or
    /// [`QueuePair::wait`].
    fn in_flight(&self) -> u32;
    /// Queues a command. Refused (with the command handed back) when the queue
    /// is full or the command is invalid for this namespace. Never blocks.
    fn submit(&mut self, token: u64, command: Command) -> Result<(), Refused>;
    /// Returns one finished command, if any, without blocking.
    fn poll(&mut self) -> Option<Completion>;
    /// Returns one finished command, blocking up to `timeout` (forever when
    /// `None`). Returns `None` at once when nothing is in flight.
    fn wait(&mut self, timeout: Option<Duration>) -> Option<Completion>;
}

/// Checks a command against the geometry: alignment, range and size. Every
/// backend calls this before queueing, so they all refuse the same things.
pub(crate) fn validate(geometry: &Geometry, command: &Command) -> Result<(), RefuseReason> {
    let lba_bytes = u64::from(geometry.lba_bytes);
    if let Command::Read { buf, .. } | Command::Write { buf, .. } = command {
        let bytes = buf.len() as u64;
        if bytes == 0 || !bytes.is_multiple_of(lba_bytes) {
            return Err(RefuseReason::Misaligned);
        }
        if bytes > u64::from(geometry.transfer_bytes_max) {
            return Err(RefuseReason::TooLarge);
        }
    }
    match command {
        Command::Write { fua: true, .. } if !geometry.supports_fua => {
            return Err(RefuseReason::Unsupported)
        }
        Command::Deallocate { .. } if !geometry.supports_deallocate => {
            return Err(RefuseReason::Unsupported)
        }
        _ => {}
    }
    if let Some((first, count)) = command.lba_range(geometry.lba_bytes) {
        if count == 0 {
            return Err(RefuseReason::Misaligned);
        }
        let end = first.checked_add(count).ok_or(RefuseReason::OutOfRange)?;
        if end > geometry.lba_count {
            return Err(RefuseReason::OutOfRange);
        }
    }
    Ok(())
}

/// Validates and checks the depth in one step, handing the command back on
/// refusal.
pub(crate) fn admit(
    geometry: &Geometry,
    in_flight: u32,
    depth: u32,
    command: Command,
) -> Result<Command, Refused> {
    if in_flight >= depth {
        return Err(Refused {
            reason: RefuseReason::QueueFull,
            command,
        });
    }
    match validate(geometry, &command) {
        Ok(()) => Ok(command),
        Err(reason) => Err(Refused { reason, command }),
    }
}

/// Checks a requested queue depth.
pub(crate) fn check_depth(depth: u32) -> Result<(), OpenError> {
    if depth == 0 || depth > QUEUE_DEPTH_MAX {
        return Err(OpenError::InvalidOptions(format!(
            "queue depth {depth} outside 1..={QUEUE_DEPTH_MAX}"
        )));
    }
    Ok(())
}
