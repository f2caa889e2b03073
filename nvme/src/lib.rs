//! The VeltrixDB block layer.
//!
//! One abstraction, several backends. The engine sees storage only through
//! [`Namespace`] and [`QueuePair`]: never a file path, never an io_uring type.
//!
//! - A [`Namespace`] reports its [`Geometry`] (LBA size, capacity, metadata
//!   format, largest transfer, optional commands), owns a [`BufferPool`] of
//!   DMA-able buffers allocated when it was opened, and hands out queue pairs.
//! - A [`QueuePair`] is owned by one thread and bounded in depth. Commands are
//!   submitted with a caller token; completions come back with that token and a
//!   status. A submission past the depth is refused ([`RefuseReason::QueueFull`])
//!   and the command, with its buffer, is handed back to the caller.
//! - The queue owns a command's buffer while it is in flight and returns it in
//!   the [`Completion`].
//!
//! Backends:
//! - [`sync`]: pread / pwrite / fdatasync with O_DIRECT. The baseline.
//! - [`uring`]: io_uring with registered files and buffers, optional SQPOLL.
//! - [`sim`]: in memory, deterministic from a seed, with a crash-state model
//!   and fault injection. The engine's simulator runs on it.
//! - [`vfio`] (Linux): the userspace NVMe driver over VFIO, polled queue
//!   pairs, hardware protection information.
//!
//! `unsafe` is confined to [`buffer`] (the mmap'd pool), [`device`] (block
//! device ioctls) and the backends (in vfio, to its `sys` module).

#![deny(missing_docs)]

pub mod buffer;
mod command;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod device;
mod error;
mod geometry;
mod queue;
pub mod sim;

pub mod sync;
pub mod uring;
#[cfg(target_os = "linux")]
pub mod vfio;

pub use buffer::{BufferPool, DmaBuf, PoolClass, PoolConfig};
pub use command::{Command, Completion};
pub use device::{open, Backend, OpenOptions};
pub use error::{IoError, OpenError, RefuseReason, Refused};
pub use geometry::{Geometry, MetadataFormat};
pub use queue::{Namespace, QueuePair, QUEUE_DEPTH_MAX};
