//! The `uring` backend: one io_uring per queue pair. (Being written.)

use crate::device::Device;
use crate::error::OpenError;

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

/// A namespace driven through io_uring.
#[derive(Debug)]
pub struct UringNamespace;

impl UringNamespace {
    pub(crate) fn new(device: Device, _options: &UringOptions) -> Result<crate::sync::SyncNamespace, OpenError> {
        Err(OpenError::BackendUnavailable {
            path: device.path,
            backend: "uring",
            source: std::io::Error::other("not yet implemented"),
        })
    }
}
