//! A queue pair of the uring backend: one ring (two with IOPOLL), the
//! in-flight slab, and the mapping from CQEs to completions.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::{Fixed, FsyncFlags, SubmitArgs, Timespec};
use io_uring::{opcode, squeue, IoUring};

use super::slab::{InFlight, RingId, Slab};
use crate::buffer::BufferPool;
use crate::command::{Command, Completion};
use crate::device;
use crate::error::{IoError, RefuseReason, Refused};
use crate::geometry::Geometry;
use crate::queue::{self, QueuePair};

/// The namespace's file is fixed file 0 on every ring.
const FILE: Fixed = Fixed(0);

/// How long dropping a queue pair waits for its in-flight commands before it
/// gives up and leaks their buffers (so that no slot the kernel may still
/// write is handed out again).
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Pause after an unexpected io_uring_enter error, so a persistent failure
/// does not spin a core.
const ENTER_ERROR_BACKOFF: Duration = Duration::from_millis(1);

/// A queue pair of the uring backend.
///
/// Submissions are queued in the SQ by [`QueuePair::submit`] and handed to
/// the kernel by the next [`QueuePair::poll`] or [`QueuePair::wait`] (with
/// SQPOLL the kernel thread picks them up by itself), so a batch of
/// submissions costs one system call.
pub(crate) struct UringQueuePair {
    // Fields drop in declaration order: the rings (and with them the buffer
    // registrations) go before the slab and the pool.
    /// Reads and writes; with IOPOLL off, every command.
    data: IoUring,
    /// Flush and fallocate when `data` is IOPOLL, which refuses them.
    control: Option<IoUring>,
    /// Owns every in-flight command and its buffer; `user_data` is the index.
    slab: Slab,
    geometry: Geometry,
    depth: u32,
    /// Commands queued on each ring and not yet completed.
    data_in_flight: u32,
    control_in_flight: u32,
    iopoll: bool,
    /// Keeps the registered regions mapped while the rings exist.
    _pool: Arc<BufferPool>,
}

impl UringQueuePair {
    pub(super) fn new(
        data: IoUring,
        control: Option<IoUring>,
        geometry: Geometry,
        depth: u32,
        iopoll: bool,
        pool: Arc<BufferPool>,
    ) -> UringQueuePair {
        UringQueuePair {
            data,
            control,
            slab: Slab::new(depth),
            geometry,
            depth,
            data_in_flight: 0,
            control_in_flight: 0,
            iopoll,
            _pool: pool,
        }
    }

    fn ring_for(&self, command: &Command) -> RingId {
        match command {
            Command::Read { .. } | Command::Write { .. } => RingId::Data,
            Command::Flush | Command::WriteZeroes { .. } | Command::Deallocate { .. } => {
                if self.control.is_some() {
                    RingId::Control
                } else {
                    RingId::Data
                }
            }
        }
    }

    fn counter(&mut self, ring: RingId) -> &mut u32 {
        match ring {
            RingId::Data => &mut self.data_in_flight,
            RingId::Control => &mut self.control_in_flight,
        }
    }

    /// Pushes the SQE for slab entry `index` (the rest of it, after a short
    /// transfer). False when the SQ is full, which SQ entries = 2 × depth
    /// rules out (see `UringNamespace::open_queue_pair`).
    fn push(&mut self, index: u32) -> bool {
        let lba_bytes = u64::from(self.geometry.lba_bytes);
        let Some(entry) = self.slab.get_mut(index) else {
            return false;
        };
        let ring_id = entry.ring;
        let sqe = build_sqe(entry, index, lba_bytes);
        let ring = match ring_id {
            RingId::Data => &mut self.data,
            RingId::Control => match self.control.as_mut() {
                Some(ring) => ring,
                None => return false,
            },
        };
        // SAFETY: the SQE's buffer pointer (reads and writes) addresses the
        // slot of the DmaBuf inside `self.slab[index]`'s command, for at most
        // its remaining `len - done_bytes` bytes. That DmaBuf stays in the slab
        // (which nothing else can reach) until the CQE carrying `index` is
        // reaped; `Drop` waits for every CQE, and leaks the buffer rather than
        // freeing the slot if one never comes. The slot's memory is a region
        // of `self._pool`, registered as fixed buffer `region_index`, and the
        // pool outlives the rings (field order). Other opcodes carry no
        // pointers.
        let pushed = unsafe { ring.submission().push(&sqe) };
        pushed.is_ok()
    }

    /// Hands queued SQEs to the kernel without waiting; on an IOPOLL ring
    /// this also polls the device for completions.
    fn enter_nonblocking(&mut self) {
        let iopoll_busy = self.iopoll && self.data_in_flight > 0;
        if iopoll_busy || !self.data.submission().is_empty() {
            if let Err(error) = self.data.submit() {
                note_enter_error(&error);
            }
        }
        if let Some(control) = self.control.as_mut() {
            if !control.submission().is_empty() {
                if let Err(error) = control.submit() {
                    note_enter_error(&error);
                }
            }
        }
    }

    /// Blocks on one ring (submitting its queued SQEs) until it has a CQE or
    /// `timeout` passes.
    fn block_on(&mut self, ring_id: RingId, timeout: Option<Duration>) {
        let ring = match ring_id {
            RingId::Data => &self.data,
            RingId::Control => match self.control.as_ref() {
                Some(ring) => ring,
                None => return,
            },
        };
        let submitter = ring.submitter();
        let result = match timeout {
            Some(timeout) => {
                let timespec = Timespec::from(timeout);
                let args = SubmitArgs::new().timespec(&timespec);
                submitter.submit_with_args(1, &args)
            }
            None => submitter.submit_and_wait(1),
        };
        if let Err(error) = result {
            note_enter_error(&error);
        }
    }

    /// Whether either CQ holds a CQE.
    fn completion_posted(&mut self) -> bool {
        !self.data.completion().is_empty()
            || self
                .control
                .as_mut()
                .is_some_and(|control| !control.completion().is_empty())
    }

    /// Takes one CQE from either ring and turns it into a completion. A short
    /// transfer is resubmitted for the remainder and yields nothing.
    fn reap(&mut self) -> Option<Completion> {
        loop {
            let cqe = match self.data.completion().next() {
                Some(cqe) => cqe,
                None => self.control.as_mut()?.completion().next()?,
            };
            if let Some(done) = self.complete(cqe.user_data(), cqe.result()) {
                return Some(done);
            }
        }
    }

    fn complete(&mut self, user_data: u64, result: i32) -> Option<Completion> {
        let index = u32::try_from(user_data).ok();
        let entry = index.and_then(|i| self.slab.get_mut(i));
        let (Some(index), Some(entry)) = (index, entry) else {
            panic!("io_uring CQE with user_data {user_data} matches no command in flight");
        };
        let (lba, transfer_bytes) = match &entry.command {
            Command::Read { lba, buf } | Command::Write { lba, buf, .. } => {
                (*lba, Some(buf.len() as u32))
            }
            Command::WriteZeroes { lba, .. } | Command::Deallocate { lba, .. } => (*lba, None),
            Command::Flush => (0, None),
        };
        let outcome = if result < 0 {
            let errno = -result;
            Err(match entry.command {
                Command::Flush => IoError::Flush { errno },
                _ => device::io_error(&io::Error::from_raw_os_error(errno), lba),
            })
        } else if let Some(len) = transfer_bytes {
            // `result` is at most the bytes asked for, which fit a u32.
            let done_bytes = entry.done_bytes.saturating_add(result as u32);
            entry.done_bytes = done_bytes;
            if done_bytes >= len {
                Ok(())
            } else {
                let short = match entry.command {
                    Command::Read { .. } => io::ErrorKind::UnexpectedEof,
                    _ => io::ErrorKind::WriteZero,
                };
                // Short but progressing, as pread/pwrite may be: ask for the
                // rest, as the sync backend's read_exact_at does. No progress
                // at all is the end of the device: an error.
                if result > 0 && self.push(index) {
                    return None;
                }
                Err(device::io_error(&io::Error::from(short), lba))
            }
        } else {
            Ok(())
        };
        let entry = self.slab.remove(index)?;
        *self.counter(entry.ring) -= 1;
        Some(Completion {
            token: entry.token,
            result: outcome,
            buf: entry.command.into_buf(),
        })
    }
}

/// The SQE for `entry`: its whole command, or the rest of a transfer that
/// came back short.
fn build_sqe(entry: &mut InFlight, index: u32, lba_bytes: u64) -> squeue::Entry {
    let done_bytes = entry.done_bytes;
    let sqe = match &mut entry.command {
        Command::Read { lba, buf } => {
            // done_bytes < len <= capacity: the pointer stays inside the slot.
            let target = buf.as_mut_ptr().wrapping_add(done_bytes as usize);
            opcode::ReadFixed::new(
                FILE,
                target,
                buf.len() as u32 - done_bytes,
                buf.region_index(),
            )
            .offset(*lba * lba_bytes + u64::from(done_bytes))
            .build()
        }
        Command::Write { lba, buf, fua } => {
            let source = buf.as_ptr().wrapping_add(done_bytes as usize);
            opcode::WriteFixed::new(
                FILE,
                source,
                buf.len() as u32 - done_bytes,
                buf.region_index(),
            )
            .offset(*lba * lba_bytes + u64::from(done_bytes))
            .rw_flags(if *fua { libc::RWF_DSYNC } else { 0 })
            .build()
        }
        Command::Flush => opcode::Fsync::new(FILE).flags(FsyncFlags::DATASYNC).build(),
        Command::WriteZeroes { lba, lbas } => {
            opcode::Fallocate::new(FILE, u64::from(*lbas) * lba_bytes)
                .offset(*lba * lba_bytes)
                .mode(libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE)
                .build()
        }
        Command::Deallocate { lba, lbas } => {
            opcode::Fallocate::new(FILE, u64::from(*lbas) * lba_bytes)
                .offset(*lba * lba_bytes)
                .mode(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE)
                .build()
        }
    };
    sqe.user_data(u64::from(index))
}

/// EINTR, EAGAIN, EBUSY and ETIME are part of normal operation (a signal, a
/// momentary shortage, a timed wait that expired); anything else is logged
/// and backed off from, and the caller's next poll or wait tries again.
fn note_enter_error(error: &io::Error) {
    match error.raw_os_error() {
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY | libc::ETIME) => {}
        _ => {
            tracing::warn!("io_uring_enter failed: {error}");
            std::thread::sleep(ENTER_ERROR_BACKOFF);
        }
    }
}

impl QueuePair for UringQueuePair {
    fn depth(&self) -> u32 {
        self.depth
    }

    fn in_flight(&self) -> u32 {
        self.slab.len()
    }

    fn submit(&mut self, token: u64, command: Command) -> Result<(), Refused> {
        let command = queue::admit(&self.geometry, self.in_flight(), self.depth, command)?;
        let ring = self.ring_for(&command);
        let entry = InFlight {
            token,
            command,
            done_bytes: 0,
            ring,
        };
        let refuse = |entry: InFlight| Refused {
            reason: RefuseReason::QueueFull,
            command: entry.command,
        };
        let index = self.slab.insert(entry).map_err(refuse)?;
        if !self.push(index) {
            // Unreachable with SQ entries = 2 × depth; refuse rather than lose
            // the command if it ever happens.
            return match self.slab.remove(index) {
                Some(entry) => Err(refuse(entry)),
                None => unreachable!("slab entry {index} vanished"),
            };
        }
        *self.counter(ring) += 1;
        Ok(())
    }

    fn poll(&mut self) -> Option<Completion> {
        // Submit first: a command queued behind a batch of completions would
        // otherwise wait for the whole batch to be drained, and the device
        // would see the queue in bursts (measured: 10% fewer IOPS at QD32).
        self.enter_nonblocking();
        self.reap()
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Option<Completion> {
        if self.in_flight() == 0 {
            return None;
        }
        if self.completion_posted() {
            if let Some(done) = self.poll() {
                return Some(done);
            }
        }
        // A timeout too large to add to now is as good as none.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let remaining = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    Some(left)
                }
                None => None,
            };
            if self.iopoll && self.data_in_flight > 0 {
                // An IOPOLL ring's completions appear only when polled, and
                // the kernel ignores a wait timeout on it: poll from here
                // until the deadline, letting other threads in between.
                self.enter_nonblocking();
                if let Some(done) = self.reap() {
                    return Some(done);
                }
                std::thread::yield_now();
                continue;
            }
            // One system call submits whatever is queued and waits.
            if self.data_in_flight > 0 {
                self.block_on(RingId::Data, remaining);
            } else {
                self.block_on(RingId::Control, remaining);
            }
            if let Some(done) = self.reap() {
                return Some(done);
            }
        }
    }
}

impl Drop for UringQueuePair {
    fn drop(&mut self) {
        let started = Instant::now();
        while self.in_flight() > 0 && started.elapsed() < DRAIN_LIMIT {
            // Dropping the completion returns its buffer to the pool.
            drop(self.wait(Some(Duration::from_millis(100))));
        }
        if self.in_flight() > 0 {
            tracing::error!(
                "io_uring queue pair dropped with {} commands still in flight after {:?}; leaking their buffers",
                self.in_flight(),
                DRAIN_LIMIT
            );
            for entry in self.slab.drain() {
                // The kernel may still write into these slots: never return
                // them to the pool.
                std::mem::forget(entry.command);
            }
            return;
        }
        // A closed ring is torn down by a kernel worker some time later, and
        // until then it holds the registered file, and with it a block
        // device's O_EXCL claim: a namespace reopened at once would find its
        // device "in use". Unregistering now releases both before drop
        // returns.
        for ring in std::iter::once(&self.data).chain(self.control.as_ref()) {
            let submitter = ring.submitter();
            if let Err(error) = submitter.unregister_files() {
                tracing::warn!("io_uring: unregistering the file failed: {error}");
            }
            // Fails harmlessly (ENXIO) on the control ring, which has none.
            let _ = submitter.unregister_buffers();
        }
    }
}
