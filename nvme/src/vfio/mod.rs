//! The `vfio` backend: the engine's own userspace NVMe driver.
//!
//! The controller is bound to vfio-pci ([`bind`]); the driver opens its VFIO
//! container (type1v2 IOMMU), group and device ([`sys`], which holds every
//! ioctl and mapping), maps BAR0, brings the controller up, identifies it and
//! its namespaces ([`Controller`]), and gives each worker its own polled I/O
//! queue pair ([`VfioQueuePair`]). DMA memory (queues, PRP lists, metadata,
//! and the namespace's [`crate::BufferPool`]) is mapped into the IOMMU at
//! IOVAs the driver chooses.
//!
//! - The NVMe definitions and parsing live in [`spec`]: pure, `core`-only,
//!   unit-tested on the host.
//! - `unsafe` lives in [`sys`] only (ioctls, mmap, volatile access).
//! - Errors: a guard or reference-tag check failure (0x282, 0x284) becomes
//!   [`crate::IoError::Integrity`] with the LBA of the failing command; a
//!   controller fatal status or a command timeout resets the controller and
//!   fails every command in flight with [`crate::IoError::Device`].
//!
//! See `docs/vfio.md` for the design, PI, and what is tested where.

pub mod bind;
mod controller;
mod namespace;
mod queue;
pub mod spec;
pub mod sys;

pub use controller::{Controller, ControllerInfo, IO_QUEUES_MAX};
pub use namespace::{PiMode, VfioNamespace, VfioOptions};
pub use queue::VfioQueuePair;
