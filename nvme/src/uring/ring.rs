//! Creating rings and registering the file and the buffer pool with them.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::IoUring;

use super::UringOptions;
use crate::buffer::BufferPool;

/// What a ring is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// The namespace's SQPOLL owner: no I/O, it only keeps the shared
    /// submission thread alive for the queue pairs attached to it.
    Anchor,
    /// A queue pair's ring for reads and writes, with the options' SQPOLL and
    /// IOPOLL settings.
    Data,
    /// A queue pair's second ring for flush and fallocate when the data ring
    /// is IOPOLL (which refuses both): no SQPOLL, no IOPOLL.
    Control,
}

/// Builds a ring of `entries` for `role`. With SQPOLL, a data ring attaches
/// to `anchor` so that every queue pair of a namespace shares one kernel
/// submission thread instead of each spinning its own. `iopoll` sets up
/// IORING_SETUP_IOPOLL on anchor and data rings.
pub(super) fn build(
    options: &UringOptions,
    role: Role,
    entries: u32,
    anchor: Option<&IoUring>,
    iopoll: bool,
) -> Result<IoUring, String> {
    let mut builder = IoUring::builder();
    if role != Role::Control {
        if options.sqpoll {
            builder.setup_sqpoll(options.sqpoll_idle_ms);
            if let Some(cpu) = options.sqpoll_cpu {
                builder.setup_sqpoll_cpu(cpu);
            }
            if let Some(anchor) = anchor {
                builder.setup_attach_wq(anchor.as_raw_fd());
            }
        }
        if iopoll {
            builder.setup_iopoll();
        }
    }
    let ring = builder
        .build(entries)
        .map_err(|e| explain_setup(options, role, &e))?;
    // Timed waits pass their timeout through IORING_ENTER_EXT_ARG (5.11).
    if !ring.params().is_feature_ext_arg() {
        return Err(
            "the kernel lacks IORING_FEAT_EXT_ARG (timed waits); Linux 5.11 or newer is needed"
                .into(),
        );
    }
    Ok(ring)
}

fn explain_setup(options: &UringOptions, role: Role, error: &io::Error) -> String {
    let what = match role {
        Role::Control => "io_uring_setup (control ring)",
        _ => "io_uring_setup",
    };
    let hint = match error.raw_os_error() {
        Some(libc::ENOSYS) => " (io_uring is not built into this kernel)",
        Some(libc::EPERM) => " (io_uring is disabled: see sysctl kernel.io_uring_disabled)",
        Some(libc::EINVAL) if options.sqpoll_cpu.is_some() && role != Role::Control => {
            " (SQPOLL refused: is sqpoll_cpu an online CPU?)"
        }
        Some(libc::ENOMEM) => " (ring memory is charged to RLIMIT_MEMLOCK: raise `ulimit -l`)",
        _ if options.sqpoll && role != Role::Control => " (SQPOLL refused by the kernel)",
        _ => "",
    };
    format!("{what} failed: {error}{hint}")
}

/// Registers `fd` as fixed file 0 and, when given, each of the pool's regions
/// as fixed buffer `i` (the [`crate::DmaBuf::region_index`] of its buffers).
///
/// The caller must keep `pool` alive for as long as the ring exists.
pub(super) fn register(ring: &IoUring, fd: RawFd, pool: Option<&BufferPool>) -> Result<(), String> {
    let submitter = ring.submitter();
    submitter
        .register_files(&[fd])
        .map_err(|e| format!("registering the file with io_uring failed: {e}"))?;
    let Some(pool) = pool else {
        return Ok(());
    };
    let iovecs: Vec<libc::iovec> = pool
        .regions()
        .map(|(base, bytes)| libc::iovec {
            iov_base: base.cast(),
            iov_len: bytes,
        })
        .collect();
    let total_bytes: usize = iovecs.iter().map(|v| v.iov_len).sum();
    // SAFETY: each iovec is one whole region of `pool`, mapped read-write
    // until the pool is dropped. The caller keeps an Arc to the pool for the
    // ring's whole life (the queue pair declares the pool after its rings, so
    // it is dropped after them), so the registration never outlives the
    // memory. The kernel pins the pages; it reads and writes them only for
    // ReadFixed/WriteFixed SQEs whose buffer a queue pair owns.
    let registered = unsafe { submitter.register_buffers(&iovecs) };
    registered.map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::ENOMEM) {
            format!(
                " ({} MiB of pool buffers are pinned per ring and charged to RLIMIT_MEMLOCK: raise `ulimit -l`, run with CAP_IPC_LOCK, or shrink the pool)",
                total_bytes >> 20
            )
        } else {
            String::new()
        };
        format!("registering the buffer pool with io_uring failed: {e}{hint}")
    })
}
