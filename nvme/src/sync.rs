//! The `sync` backend: pread / pwrite / fdatasync with O_DIRECT.
//!
//! The portable baseline. A queue pair holds up to `depth` commands and runs
//! them in submission order when polled, so it has the same backpressure and
//! completion semantics as the asynchronous backends, with no concurrency.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::BufferPool;
use crate::command::{Command, Completion};
use crate::device::{self, Device, DeviceKind};
use crate::error::{IoError, OpenError, Refused};
use crate::geometry::Geometry;
use crate::queue::{self, Namespace, QueuePair};

/// A namespace driven by plain positional system calls.
#[derive(Debug)]
pub struct SyncNamespace {
    shared: Arc<Shared>,
    pool: Arc<BufferPool>,
    geometry: Geometry,
}

#[derive(Debug)]
struct Shared {
    file: File,
    kind: DeviceKind,
    path: std::path::PathBuf,
}

impl SyncNamespace {
    pub(crate) fn new(device: Device) -> SyncNamespace {
        SyncNamespace {
            shared: Arc::new(Shared {
                file: device.file,
                kind: device.kind,
                path: device.path,
            }),
            pool: device.pool,
            geometry: device.geometry,
        }
    }
}

impl Namespace for SyncNamespace {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn buffers(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    fn queue_pair(&self, depth: u32) -> Result<Box<dyn QueuePair>, OpenError> {
        queue::check_depth(depth)?;
        Ok(Box::new(SyncQueuePair {
            shared: Arc::clone(&self.shared),
            geometry: self.geometry,
            depth,
            pending: VecDeque::with_capacity(depth as usize),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "sync (pread/pwrite, O_DIRECT) on {}",
            self.shared.path.display()
        )
    }
}

/// A queue pair of the sync backend.
pub struct SyncQueuePair {
    shared: Arc<Shared>,
    geometry: Geometry,
    depth: u32,
    pending: VecDeque<(u64, Command)>,
}

impl SyncQueuePair {
    fn execute(&self, token: u64, command: Command) -> Completion {
        let lba_bytes = u64::from(self.geometry.lba_bytes);
        let file = &self.shared.file;
        let (result, buf) = match command {
            Command::Read { lba, mut buf } => {
                let result = file
                    .read_exact_at(buf.as_mut_slice(), lba * lba_bytes)
                    .map_err(|e| device::io_error(&e, lba));
                (result, Some(buf))
            }
            Command::Write { lba, buf, fua } => {
                let mut result = file
                    .write_all_at(buf.as_slice(), lba * lba_bytes)
                    .map_err(|e| device::io_error(&e, lba));
                if fua && result.is_ok() {
                    result = file.sync_data().map_err(|e| device::io_error(&e, lba));
                }
                (result, Some(buf))
            }
            Command::Flush => {
                let result = file.sync_data().map_err(|e| IoError::Flush {
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                });
                (result, None)
            }
            Command::WriteZeroes { lba, lbas } => {
                let result = device::zero_range(
                    file,
                    self.shared.kind,
                    lba * lba_bytes,
                    u64::from(lbas) * lba_bytes,
                )
                .map_err(|e| device::io_error(&e, lba));
                (result, None)
            }
            Command::Deallocate { lba, lbas } => {
                let result = device::discard_range(
                    file,
                    self.shared.kind,
                    lba * lba_bytes,
                    u64::from(lbas) * lba_bytes,
                )
                .map_err(|e| device::io_error(&e, lba));
                (result, None)
            }
        };
        Completion { token, result, buf }
    }
}

impl QueuePair for SyncQueuePair {
    fn depth(&self) -> u32 {
        self.depth
    }

    fn in_flight(&self) -> u32 {
        self.pending.len() as u32
    }

    fn submit(&mut self, token: u64, command: Command) -> Result<(), Refused> {
        let command = queue::admit(&self.geometry, self.in_flight(), self.depth, command)?;
        self.pending.push_back((token, command));
        Ok(())
    }

    fn poll(&mut self) -> Option<Completion> {
        let (token, command) = self.pending.pop_front()?;
        Some(self.execute(token, command))
    }

    fn wait(&mut self, _timeout: Option<Duration>) -> Option<Completion> {
        self.poll()
    }
}
