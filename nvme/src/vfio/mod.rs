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

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::OpenError;
use crate::queue::Namespace;

/// Splits a vfio namespace address, `vfio:<PCI address>[/ns<NSID>]` (for
/// example `vfio:0000:00:03.0/ns2`; the NSID defaults to 1), into the PCI
/// address and the NSID. `None` when `address` is not one.
pub fn parse_address(address: &str) -> Option<(String, u32)> {
    let rest = address.strip_prefix("vfio:")?;
    let (bdf, nsid) = match rest.split_once('/') {
        Some((bdf, ns)) => (bdf, ns.strip_prefix("ns")?.parse().ok()?),
        None => (rest, 1),
    };
    (bind::is_pci_address(bdf) && nsid >= 1).then(|| (bdf.to_string(), nsid))
}

/// Opens the namespace at a vfio address (see [`parse_address`]): binds the
/// controller to vfio-pci if it is not already, brings it up and opens the
/// namespace. The entry point for a daemon's `--namespace vfio:...`.
pub fn open(address: &str, options: &VfioOptions) -> Result<Arc<dyn Namespace>, OpenError> {
    let path = PathBuf::from(address);
    let (bdf, nsid) = parse_address(address).ok_or_else(|| {
        OpenError::InvalidOptions(format!(
            "{address}: not a vfio address (vfio:DDDD:BB:DD.F[/nsN])"
        ))
    })?;
    let unavailable = |source: std::io::Error| OpenError::BackendUnavailable {
        path: path.clone(),
        backend: "vfio",
        source,
    };
    bind::bind_vfio(&bdf).map_err(unavailable)?;
    let controller = Controller::open(&bdf, IO_QUEUES_MAX).map_err(unavailable)?;
    Ok(Arc::new(VfioNamespace::open(&controller, nsid, options)?))
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("vfio:0000:00:03.0/ns2"),
            Some(("0000:00:03.0".into(), 2))
        );
        assert_eq!(
            parse_address("vfio:0000:af:00.1"),
            Some(("0000:af:00.1".into(), 1))
        );
        for bad in [
            "/dev/nvme0n1",
            "vfio:",
            "vfio:00:03.0",
            "vfio:0000:00:03.0/ns0",
            "vfio:0000:00:03.0/2",
            "vfio:0000:00:03.0/nsx",
            "vfio:0000:00:3.0",
            "vfio:0000:00:03.10",
        ] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }
}
