//! Opening a namespace by path: a regular file or a block device, always with
//! O_DIRECT, and the range operations (zeroing, discard) both file backends
//! share.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions as FsOpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::buffer::{BufferPool, PoolConfig};
use crate::error::OpenError;
use crate::geometry::{Geometry, MetadataFormat};
use crate::queue::Namespace;
use crate::uring::UringOptions;

/// Which backend drives a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// pread / pwrite / fdatasync.
    Sync,
    /// io_uring, one ring per queue pair.
    Uring(UringOptions),
}

/// How to open a namespace by path.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// The backend.
    pub backend: Backend,
    /// Create a regular file of this many bytes (sparse) when the path does
    /// not exist. An existing file is opened at its own size.
    pub create_bytes: Option<u64>,
    /// Logical block size for regular files (block devices report their own).
    pub lba_bytes: u32,
    /// Refuse anything smaller.
    pub bytes_min: u64,
    /// The DMA buffer pool to allocate.
    pub pool: PoolConfig,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            backend: Backend::Sync,
            create_bytes: None,
            lba_bytes: 4096,
            bytes_min: 1 << 20,
            pool: PoolConfig::default(),
        }
    }
}

/// What kind of thing a path turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    RegularFile,
    BlockDevice,
}

/// An open, validated path, before a backend wraps it.
#[derive(Debug)]
pub(crate) struct Device {
    pub file: File,
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub geometry: Geometry,
    pub pool: Arc<BufferPool>,
}

/// Opens `path` with the chosen backend.
pub fn open(path: &Path, options: &OpenOptions) -> Result<Arc<dyn Namespace>, OpenError> {
    let device = open_device(path, options)?;
    Ok(match &options.backend {
        Backend::Sync => Arc::new(crate::sync::SyncNamespace::new(device)),
        Backend::Uring(uring) => Arc::new(crate::uring::UringNamespace::new(device, uring)?),
    })
}

fn classify(path: &Path, error: io::Error) -> OpenError {
    let path = path.to_path_buf();
    match error.kind() {
        ErrorKind::NotFound => OpenError::NotFound { path },
        ErrorKind::PermissionDenied => OpenError::PermissionDenied { path },
        _ => match error.raw_os_error() {
            Some(libc::EBUSY) | Some(libc::EWOULDBLOCK) => OpenError::InUse { path },
            Some(libc::EINVAL) => OpenError::DirectIoUnsupported { path },
            Some(libc::EROFS) | Some(libc::EPERM) => OpenError::PermissionDenied { path },
            _ => OpenError::Os {
                path,
                source: error,
            },
        },
    }
}

pub(crate) fn open_device(path: &Path, options: &OpenOptions) -> Result<Device, OpenError> {
    let lba_bytes = options.lba_bytes;
    if !lba_bytes.is_power_of_two() || !(512..=4096).contains(&lba_bytes) {
        return Err(OpenError::InvalidOptions(format!(
            "lba_bytes {lba_bytes} must be a power of two in 512..=4096"
        )));
    }
    let metadata = match std::fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(classify(path, e)),
    };
    let (file, kind, bytes, lba_bytes) = match metadata {
        None => {
            let Some(bytes) = options.create_bytes else {
                return Err(OpenError::NotFound {
                    path: path.to_path_buf(),
                });
            };
            check_size(path, bytes, lba_bytes, options.bytes_min)?;
            let file = FsOpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .map_err(|e| classify(path, e))?;
            lock(path, &file)?;
            file.set_len(bytes).map_err(|e| classify(path, e))?;
            (file, DeviceKind::RegularFile, bytes, lba_bytes)
        }
        Some(m) if m.file_type().is_file() => {
            let file = FsOpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .map_err(|e| classify(path, e))?;
            lock(path, &file)?;
            (file, DeviceKind::RegularFile, m.len(), lba_bytes)
        }
        Some(m) if m.file_type().is_block_device() => {
            let mut file = FsOpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_DIRECT | libc::O_EXCL)
                .open(path)
                .map_err(|e| classify(path, e))?;
            let bytes = file.seek(SeekFrom::End(0)).map_err(|e| classify(path, e))?;
            let lba_bytes = logical_block_bytes(&file).map_err(|e| classify(path, e))?;
            (file, DeviceKind::BlockDevice, bytes, lba_bytes)
        }
        Some(_) => {
            return Err(OpenError::NotBlockOrFile {
                path: path.to_path_buf(),
            })
        }
    };
    check_size(path, bytes, lba_bytes, options.bytes_min)?;
    probe_direct_read(path, &file, lba_bytes)?;
    let pool = BufferPool::new(&options.pool)
        .map_err(|e| OpenError::InvalidOptions(format!("{}: buffer pool: {e}", path.display())))?;
    // The largest transfer is the largest pool slot, so any buffer the pool
    // hands out can be submitted whole.
    let transfer_bytes_max = u32::try_from(pool.slot_bytes_max()).unwrap_or(u32::MAX);
    let geometry = Geometry {
        lba_bytes,
        lba_count: bytes / u64::from(lba_bytes),
        transfer_bytes_max,
        metadata: MetadataFormat::None,
        supports_flush: true,
        supports_fua: true,
        supports_deallocate: true,
        deallocate_reads_zeroes: kind == DeviceKind::RegularFile,
    };
    Ok(Device {
        file,
        path: path.to_path_buf(),
        kind,
        geometry,
        pool,
    })
}

fn check_size(path: &Path, bytes: u64, lba_bytes: u32, bytes_min: u64) -> Result<(), OpenError> {
    if bytes < bytes_min.max(u64::from(lba_bytes)) {
        return Err(OpenError::TooSmall {
            path: path.to_path_buf(),
            bytes,
            bytes_min: bytes_min.max(u64::from(lba_bytes)),
        });
    }
    if !bytes.is_multiple_of(u64::from(lba_bytes)) {
        return Err(OpenError::NotAligned {
            path: path.to_path_buf(),
            bytes,
            lba_bytes,
        });
    }
    Ok(())
}

/// Two processes on one file-backed namespace would destroy it: take an
/// exclusive advisory lock, as O_EXCL does for block devices.
fn lock(path: &Path, file: &File) -> Result<(), OpenError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::InUse {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(classify(path, e)),
    }
}

/// Some file systems accept O_DIRECT at open and refuse it at the first I/O.
/// Read one block now so that the error names the path.
fn probe_direct_read(path: &Path, file: &File, lba_bytes: u32) -> Result<(), OpenError> {
    let align = 4096usize;
    let mut scratch = vec![0u8; align * 2];
    let skip = scratch.as_ptr().align_offset(align);
    let block = &mut scratch[skip..skip + lba_bytes as usize];
    match file.read_at(block, 0) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(OpenError::DirectIoUnsupported {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(classify(path, e)),
    }
}

fn logical_block_bytes(file: &File) -> io::Result<u32> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one c_int through the pointer, which points to
    // a live local of that type; the fd is open for the call's duration.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut bytes) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(bytes).map_err(|_| io::Error::other("negative logical block size"))
}

// Linux's BLKDISCARD and BLKZEROOUT: _IO(0x12, 119) and _IO(0x12, 127).
const BLKDISCARD: libc::Ioctl = 0x1277;
const BLKZEROOUT: libc::Ioctl = 0x127f;

/// Makes `bytes` at `offset` read back as zeroes.
pub(crate) fn zero_range(file: &File, kind: DeviceKind, offset: u64, bytes: u64) -> io::Result<()> {
    match kind {
        DeviceKind::RegularFile => fallocate(
            file,
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            bytes,
        ),
        DeviceKind::BlockDevice => range_ioctl(file, BLKZEROOUT, offset, bytes),
    }
}

/// Tells the medium that `bytes` at `offset` are no longer needed.
pub(crate) fn discard_range(
    file: &File,
    kind: DeviceKind,
    offset: u64,
    bytes: u64,
) -> io::Result<()> {
    match kind {
        DeviceKind::RegularFile => fallocate(
            file,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            bytes,
        ),
        DeviceKind::BlockDevice => range_ioctl(file, BLKDISCARD, offset, bytes),
    }
}

fn fallocate(file: &File, mode: libc::c_int, offset: u64, bytes: u64) -> io::Result<()> {
    let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    let bytes = libc::off_t::try_from(bytes).map_err(io::Error::other)?;
    // SAFETY: fallocate takes plain integers and an fd that stays open for
    // the call; it touches no memory of ours.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset, bytes) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn range_ioctl(file: &File, request: libc::Ioctl, offset: u64, bytes: u64) -> io::Result<()> {
    let range: [u64; 2] = [offset, bytes];
    // SAFETY: BLKDISCARD / BLKZEROOUT read a `[u64; 2]` {start, length} through
    // the pointer, which points to a live local of that exact type.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, range.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Maps an OS error from a data command to the block layer's error.
pub(crate) fn io_error(error: &io::Error, lba: u64) -> crate::IoError {
    match error.raw_os_error() {
        Some(libc::EILSEQ) => crate::IoError::Integrity { lba },
        Some(errno) => crate::IoError::Device { lba, errno },
        None => crate::IoError::Device {
            lba,
            errno: libc::EIO,
        },
    }
}
