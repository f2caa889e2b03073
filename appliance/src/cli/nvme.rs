//! `veltrix nvme`: which driver has each NVMe controller, and handing one to
//! vfio-pci (for veltrixd's userspace driver, `--backend vfio`) or back to
//! the kernel's nvme driver. The sysfs work is `nvme::vfio::bind`, the same
//! code veltrixd runs when it opens a `vfio:` namespace.

use std::io::Write;

use anyhow::Context;
use nvme::vfio::bind;

/// The driver to give a controller to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// vfio-pci: the controller leaves the kernel; veltrixd drives it.
    VfioPci,
    /// The kernel's nvme driver: `/dev/nvmeXnY` come back.
    Nvme,
}

/// Parses a PCI address argument (`DDDD:BB:DD.F`).
pub fn parse_pci_address(text: &str) -> Result<String, String> {
    if bind::is_pci_address(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a PCI address (DDDD:BB:DD.F, e.g. 0000:00:03.0; `veltrix nvme list` shows them)"
        ))
    }
}

/// One line per NVMe controller: address, driver, IOMMU group, and the
/// kernel's block devices while the nvme driver has it.
pub fn list(out: &mut dyn Write) -> anyhow::Result<()> {
    let controllers = bind::nvme_controllers().context("cannot list PCI devices")?;
    if controllers.is_empty() {
        writeln!(out, "no NVMe controllers (no PCI device of class 0x010802)")?;
        return Ok(());
    }
    for bdf in controllers {
        let driver = bind::current_driver(&bdf).ok().flatten();
        let group = bind::iommu_group(&bdf).map_or("none".to_string(), |g| g.to_string());
        let devices = bind::block_devices(&bdf).unwrap_or_default();
        writeln!(
            out,
            "{bdf}  driver={}  iommu_group={group}  block_devices={}",
            driver.as_deref().unwrap_or("none"),
            if devices.is_empty() {
                "none".to_string()
            } else {
                devices.join(",")
            }
        )?;
    }
    Ok(())
}

/// Binds the controller at `bdf` to `driver` and reports where it went.
pub fn bind(bdf: &str, driver: Driver, out: &mut dyn Write) -> anyhow::Result<()> {
    match driver {
        Driver::VfioPci => {
            let group =
                bind::bind_vfio(bdf).with_context(|| format!("cannot bind {bdf} to vfio-pci"))?;
            writeln!(
                out,
                "{bdf} -> vfio-pci (/dev/vfio/{group}); serve it with veltrixd --namespace vfio:{bdf}/ns1"
            )?;
        }
        Driver::Nvme => {
            bind::bind_kernel(bdf, "nvme").with_context(|| format!("cannot bind {bdf} to nvme"))?;
            let devices = bind::block_devices(bdf).unwrap_or_default();
            writeln!(
                out,
                "{bdf} -> nvme{}",
                if devices.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", devices.join(", "))
                }
            )?;
        }
    }
    Ok(())
}
