//! The `uring` backend: one io_uring per queue pair, over a file or block
//! device opened with O_DIRECT.
//!
//! - The namespace's file is registered as fixed file 0 on every ring, and the
//!   buffer pool's regions (one per size class) as fixed buffers, so reads and
//!   writes are `ReadFixed`/`WriteFixed` with `buf_index` =
//!   [`crate::DmaBuf::region_index`]: no per-I/O page pinning or fd lookup.
//! - Each queue pair preallocates a slab of `depth` in-flight entries; the
//!   SQE's `user_data` is the slab index. The queue owns a command's buffer
//!   from submission until its CQE is reaped. Nothing is allocated per I/O.
//! - Flush is `fsync(DATASYNC)`; a FUA write is a write with `RWF_DSYNC`;
//!   write-zeroes and deallocate are `fallocate` with `ZERO_RANGE` and
//!   `PUNCH_HOLE` (both with `KEEP_SIZE`), which Linux 6.x honours on files
//!   and block devices alike.
//! - SQPOLL (optional): the namespace owns an anchor ring whose kernel thread
//!   (`iou-sqp-PID`) every queue pair attaches to (IORING_SETUP_ATTACH_WQ), so
//!   N queue pairs cost one polling thread, not N.
//! - IOPOLL (optional): the data ring polls the device for completions. An
//!   IOPOLL ring refuses fsync and fallocate, so those go to a second, plain
//!   ring of the same queue pair. Only block devices with poll queues (NVMe
//!   with `nvme.poll_queues`) support it; opening refuses it elsewhere with
//!   [`OpenError::BackendUnavailable`].
//!
//! Opening probes the whole path once (a ring with the chosen options, the
//! registrations, one read of block 0), so an unsupported option fails at
//! open, naming the path, not at the first I/O.
#![allow(unsafe_code)]

mod queue;
mod ring;
mod slab;

use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::IoUring;

use self::queue::UringQueuePair;
use self::ring::Role;
use crate::buffer::BufferPool;
use crate::command::Command;
use crate::device::Device;
use crate::error::{IoError, OpenError};
use crate::geometry::Geometry;
use crate::queue::{check_depth, Namespace, QueuePair};

/// io_uring options.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UringOptions {
    /// Use a kernel submission-polling thread.
    pub sqpoll: bool,
    /// SQPOLL idle time before the kernel thread sleeps, in milliseconds.
    pub sqpoll_idle_ms: u32,
    /// Pin the SQPOLL thread to this CPU.
    pub sqpoll_cpu: Option<u32>,
    /// Use IOPOLL (completion polling) for reads and writes.
    pub iopoll: bool,
}

// Queue pairs size their SQ at twice the depth; io_uring allows 32 Ki entries.
const _: () = assert!(crate::queue::QUEUE_DEPTH_MAX * 2 <= 32 * 1024);

/// How long the open-time probe read may take.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// A namespace driven through io_uring.
pub struct UringNamespace {
    // Declared first so it drops first: the SQPOLL thread's owner ring.
    anchor: Option<IoUring>,
    file: File,
    path: PathBuf,
    pool: Arc<BufferPool>,
    geometry: Geometry,
    options: UringOptions,
    /// Data rings are set up with IORING_SETUP_IOPOLL. Equal to
    /// `options.iopoll`, except in tests that run the IOPOLL queue-pair logic
    /// (the split rings, the polling wait) on a device that cannot poll.
    iopoll_rings: bool,
}

impl fmt::Debug for UringNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringNamespace")
            .field("path", &self.path)
            .field("geometry", &self.geometry)
            .field("options", &self.options)
            .field("pool", &self.pool)
            .finish()
    }
}

impl UringNamespace {
    /// Sets up the backend on an opened device and probes it: SQPOLL and
    /// IOPOLL refusals, a missing io_uring and an exhausted memlock limit all
    /// come back as [`OpenError::BackendUnavailable`] naming the path.
    pub(crate) fn new(device: Device, options: &UringOptions) -> Result<UringNamespace, OpenError> {
        if !options.sqpoll && (options.sqpoll_cpu.is_some() || options.sqpoll_idle_ms != 0) {
            return Err(OpenError::InvalidOptions(format!(
                "{}: sqpoll_cpu and sqpoll_idle_ms need sqpoll",
                device.path.display()
            )));
        }
        let unavailable = |why: String| OpenError::BackendUnavailable {
            path: device.path.clone(),
            backend: "uring",
            source: std::io::Error::other(why),
        };
        if options.iopoll && device_polls(&device.file) == Some(false) {
            return Err(unavailable(iopoll_refusal(
                "the device has no poll queues (sysfs queue/io_poll is 0)",
            )));
        }
        let anchor = if options.sqpoll {
            Some(ring::build(options, Role::Anchor, 1, None, options.iopoll).map_err(unavailable)?)
        } else {
            None
        };
        let namespace = UringNamespace {
            anchor,
            file: device.file,
            path: device.path,
            pool: device.pool,
            geometry: device.geometry,
            options: options.clone(),
            iopoll_rings: options.iopoll,
        };
        namespace.probe()?;
        Ok(namespace)
    }

    fn unavailable(&self, why: String) -> OpenError {
        OpenError::BackendUnavailable {
            path: self.path.clone(),
            backend: "uring",
            source: std::io::Error::other(why),
        }
    }

    /// Reads block 0 through a queue pair of depth 1.
    fn probe(&self) -> Result<(), OpenError> {
        let mut queue = self.open_queue_pair(1)?;
        let Some(buf) = self.pool.alloc(self.geometry.lba_bytes as usize) else {
            return Ok(());
        };
        if let Err(refused) = queue.submit(0, Command::Read { lba: 0, buf }) {
            return Err(self.unavailable(format!("probe read refused: {:?}", refused.reason)));
        }
        let started = Instant::now();
        let done = loop {
            if let Some(done) = queue.wait(Some(Duration::from_millis(100))) {
                break done;
            }
            if started.elapsed() > PROBE_LIMIT {
                return Err(self.unavailable(format!(
                    "probe read of block 0 did not complete within {PROBE_LIMIT:?}"
                )));
            }
        };
        match done.result {
            Ok(()) => Ok(()),
            Err(IoError::Device { errno, .. })
                if self.options.iopoll && (errno == libc::EOPNOTSUPP || errno == libc::EINVAL) =>
            {
                Err(self.unavailable(iopoll_refusal(&format!(
                    "the probe read of block 0 failed with {}",
                    std::io::Error::from_raw_os_error(errno)
                ))))
            }
            Err(error) => Err(self.unavailable(format!("probe read of block 0 failed: {error}"))),
        }
    }

    fn open_queue_pair(&self, depth: u32) -> Result<UringQueuePair, OpenError> {
        check_depth(depth)?;
        let fd = self.file.as_raw_fd();
        // Twice the depth: with SQPOLL the kernel thread advances the SQ head
        // only after issuing its whole batch, so a command can complete, and
        // its slab entry be reused, while its SQE still occupies the ring.
        // Those stale SQEs are at most one batch of at most `depth` commands
        // (every SQE present when a batch starts is a command in flight), so
        // 2 × depth entries always leave room. (Seen: at depth 1, an SQ of 1
        // entry refused a push right after the previous read completed.)
        let sq_entries = depth * 2;
        let data = ring::build(
            &self.options,
            Role::Data,
            sq_entries,
            self.anchor.as_ref(),
            self.iopoll_rings,
        )
        .map_err(|why| self.unavailable(why))?;
        ring::register(&data, fd, Some(&self.pool)).map_err(|why| self.unavailable(why))?;
        let control = if self.options.iopoll {
            let control = ring::build(&self.options, Role::Control, sq_entries, None, false)
                .map_err(|why| self.unavailable(why))?;
            ring::register(&control, fd, None).map_err(|why| self.unavailable(why))?;
            Some(control)
        } else {
            None
        };
        Ok(UringQueuePair::new(
            data,
            control,
            self.geometry,
            depth,
            self.options.iopoll,
            Arc::clone(&self.pool),
        ))
    }
}

fn iopoll_refusal(why: &str) -> String {
    format!(
        "IOPOLL refused: {why}. Completion polling needs a block device with poll queues (NVMe with nvme.poll_queues > 0); regular files on other devices and loop devices cannot poll, so open without iopoll"
    )
}

/// Whether the block device under `file` (the device itself, or the one
/// holding the file system a regular file lives on) can poll for
/// completions, from sysfs `queue/io_poll`. `None` when that cannot be told
/// (no sysfs, a virtual file system, a stacked device without the file).
///
/// The open-time probe read cannot decide this alone: a read of a hole in a
/// regular file never reaches the device, so it succeeds under IOPOLL on a
/// device that will refuse every real read with EOPNOTSUPP.
fn device_polls(file: &File) -> Option<bool> {
    let metadata = file.metadata().ok()?;
    let dev = if metadata.file_type().is_block_device() {
        metadata.rdev()
    } else {
        metadata.dev()
    };
    let device = PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        libc::major(dev),
        libc::minor(dev)
    ));
    // A partition's queue is its disk's, one level up.
    let candidates = [
        device.join("queue/io_poll"),
        device.join("../queue/io_poll"),
    ];
    let text = candidates
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())?;
    match text.trim() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

impl Namespace for UringNamespace {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn buffers(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    fn queue_pair(&self, depth: u32) -> Result<Box<dyn QueuePair>, OpenError> {
        Ok(Box::new(self.open_queue_pair(depth)?))
    }

    fn describe(&self) -> String {
        let mut features = Vec::new();
        if self.options.sqpoll {
            let idle_ms = match self.options.sqpoll_idle_ms {
                // The kernel's default when given 0.
                0 => 1000,
                ms => ms,
            };
            match self.options.sqpoll_cpu {
                Some(cpu) => features.push(format!("SQPOLL idle {idle_ms} ms on cpu {cpu}")),
                None => features.push(format!("SQPOLL idle {idle_ms} ms")),
            }
        }
        if self.options.iopoll {
            features.push("IOPOLL".to_string());
        }
        features.push("registered buffers and file".to_string());
        features.push("O_DIRECT".to_string());
        format!(
            "io_uring ({}) on {}",
            features.join(", "),
            self.path.display()
        )
    }
}

#[cfg(all(test, feature = "conformance"))]
mod tests {
    use super::*;
    use crate::device::{open_device, OpenOptions};

    /// The IOPOLL queue-pair logic (flush and fallocate on the control ring,
    /// waiting by polling, completions from two rings) on a regular file,
    /// whose rings cannot really be IOPOLL: the rings are plain, the queue
    /// pairs behave as with IOPOLL.
    #[test]
    fn split_rings_conform() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns.img");
        let device = open_device(
            &path,
            &OpenOptions {
                create_bytes: Some(16 << 20),
                ..OpenOptions::default()
            },
        )
        .unwrap();
        for sqpoll in [false, true] {
            let device = Device {
                file: device.file.try_clone().unwrap(),
                path: device.path.clone(),
                kind: device.kind,
                geometry: device.geometry,
                pool: Arc::clone(&device.pool),
            };
            let anchor = sqpoll.then(|| {
                let options = UringOptions {
                    sqpoll: true,
                    ..UringOptions::default()
                };
                ring::build(&options, Role::Anchor, 1, None, false).unwrap()
            });
            let namespace = UringNamespace {
                anchor,
                file: device.file,
                path: device.path,
                pool: device.pool,
                geometry: device.geometry,
                options: UringOptions {
                    sqpoll,
                    iopoll: true,
                    ..UringOptions::default()
                },
                iopoll_rings: false,
            };
            namespace.probe().unwrap();
            let namespace: Arc<dyn Namespace> = Arc::new(namespace);
            assert!(namespace.describe().contains("IOPOLL"));
            crate::conformance::run_all(&namespace, 0x5_1117 + u64::from(sqpoll));
        }
    }
}
