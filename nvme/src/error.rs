//! The block layer's errors, one enum per kind of operation.

use std::path::PathBuf;

use crate::command::Command;

/// Why a namespace could not be opened. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path does not exist and no size was given to create it.
    #[error("{path}: no such file or device (give a size to create a file-backed namespace)")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The process may not open the path for reading and writing.
    #[error("{path}: permission denied (a namespace is opened read-write)")]
    PermissionDenied {
        /// The path given.
        path: PathBuf,
    },
    /// Another process (or another namespace in this one) holds the path.
    #[error("{path}: in use by another process (exclusive open or lock refused)")]
    InUse {
        /// The path given.
        path: PathBuf,
    },
    /// The file or device is smaller than the minimum.
    #[error("{path}: too small: {bytes} bytes, need at least {bytes_min}")]
    TooSmall {
        /// The path given.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The smallest size accepted.
        bytes_min: u64,
    },
    /// The size is not a whole number of logical blocks.
    #[error("{path}: size {bytes} is not a multiple of the {lba_bytes}-byte block size")]
    NotAligned {
        /// The path given.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The logical block size.
        lba_bytes: u32,
    },
    /// The file system refuses O_DIRECT (tmpfs, some FUSE file systems).
    #[error("{path}: the file system refuses O_DIRECT; put the namespace on ext4, xfs or a block device")]
    DirectIoUnsupported {
        /// The path given.
        path: PathBuf,
    },
    /// Neither a regular file nor a block device.
    #[error("{path}: not a regular file or block device")]
    NotBlockOrFile {
        /// The path given.
        path: PathBuf,
    },
    /// The options are inconsistent (bad LBA size, empty pool, ...).
    #[error("invalid namespace options: {0}")]
    InvalidOptions(String),
    /// The backend could not be set up (io_uring missing, SQPOLL refused, ...).
    #[error("{path}: {backend} backend unavailable: {source}")]
    BackendUnavailable {
        /// The path given.
        path: PathBuf,
        /// Backend name.
        backend: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Any other OS error.
    #[error("{path}: {source}")]
    Os {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why an I/O failed. Carried by a [`crate::Completion`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IoError {
    /// The device or OS reported an I/O error (EIO and friends).
    #[error("I/O error at lba {lba}: errno {errno}")]
    Device {
        /// First LBA of the failed command (0 for flush).
        lba: u64,
        /// The OS errno, or a synthetic one from the simulator.
        errno: i32,
    },
    /// A latent sector error: the medium could not return this block.
    #[error("unreadable sector at lba {lba}")]
    Media {
        /// The unreadable LBA.
        lba: u64,
    },
    /// End-to-end protection information failed (NVMe status 0x282/0x284,
    /// EILSEQ from the kernel). The data must be treated as corrupt.
    #[error("protection information check failed at lba {lba}")]
    Integrity {
        /// The LBA whose guard or reference tag failed.
        lba: u64,
    },
    /// The flush failed: writes since the last good flush may not be durable.
    #[error("flush failed: errno {errno}")]
    Flush {
        /// The OS errno.
        errno: i32,
    },
}

/// Why a submission was refused. The command comes back in [`Refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The queue already holds `depth` commands: poll, then retry.
    QueueFull,
    /// The buffer length or LBA range is not a whole number of blocks, or the
    /// buffer is empty.
    Misaligned,
    /// The range runs past the end of the namespace.
    OutOfRange,
    /// The transfer exceeds [`crate::Geometry::transfer_bytes_max`].
    TooLarge,
    /// The namespace does not support this command (FUA, deallocate).
    Unsupported,
}

/// A refused submission: the reason, and the command handed back intact so its
/// buffer is not lost.
#[derive(Debug, thiserror::Error)]
#[error("submission refused: {reason:?}")]
pub struct Refused {
    /// Why.
    pub reason: RefuseReason,
    /// The command, returned to the caller.
    pub command: Command,
}
