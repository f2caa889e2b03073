//! The conformance suite on the vfio backend, on a real (or emulated) NVMe
//! controller.
//!
//! It needs root, an IOMMU and a controller whose data may be destroyed, so
//! it runs only when `VELTRIX_VFIO_BDF` names one (e.g. `0000:00:03.0`);
//! otherwise it prints `SKIPPED`. The controller is bound to vfio-pci, every
//! active namespace is checked, and the controller goes back to `nvme`.
//! The hardware tier runs the same suite, and more, inside a QEMU guest:
//! `scripts/vfio-guest-check.sh`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::sync::Arc;

use nvme::vfio::{bind, Controller, PiMode, VfioNamespace, VfioOptions};
use nvme::{conformance, MetadataFormat, Namespace};

#[test]
fn vfio_backend_on_a_controller() {
    let Ok(bdf) = std::env::var("VELTRIX_VFIO_BDF") else {
        eprintln!(
            "SKIPPED: vfio conformance needs VELTRIX_VFIO_BDF=<PCI address of a disposable NVMe controller>, root and an IOMMU; \
             the hardware tier runs it in a guest (scripts/vfio-guest-check.sh)"
        );
        return;
    };
    bind::bind_vfio(&bdf).unwrap();
    let controller = Controller::open(&bdf, 8).unwrap();
    for nsid in controller.active_namespaces().unwrap() {
        let namespace: Arc<dyn Namespace> =
            Arc::new(VfioNamespace::open(&controller, nsid, &VfioOptions::default()).unwrap());
        eprintln!("conformance on {}", namespace.describe());
        conformance::run_all(&namespace, 0x5EED ^ u64::from(nsid));
        if let MetadataFormat::Protected {
            extended: false, ..
        } = namespace.geometry().metadata
        {
            let options = VfioOptions {
                pi_mode: PiMode::Host,
                ..VfioOptions::default()
            };
            let namespace: Arc<dyn Namespace> =
                Arc::new(VfioNamespace::open(&controller, nsid, &options).unwrap());
            eprintln!("conformance on {}", namespace.describe());
            conformance::run_all(&namespace, 0xBEEF ^ u64::from(nsid));
        }
    }
    drop(controller);
    bind::bind_kernel(&bdf, "nvme").unwrap();
}
