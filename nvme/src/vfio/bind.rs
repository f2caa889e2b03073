//! Binding a PCI NVMe controller to vfio-pci and back to the kernel's nvme
//! driver, through sysfs. The operator command and the appliance's init call
//! these; they need root.
//!
//! Binding follows the kernel's documented sequence: set `driver_override`,
//! unbind from the current driver, then ask the PCI core to probe again
//! (`drivers_probe`), which now matches only the override.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// PCI class code of an NVMe controller (mass storage, NVM, NVMe).
pub const NVME_CLASS: u32 = 0x01_08_02;
/// How long to wait for a driver to bind or for `/dev/vfio/N` to appear.
const BIND_TIMEOUT: Duration = Duration::from_secs(10);

fn device_dir(bdf: &str) -> PathBuf {
    Path::new(PCI_DEVICES).join(bdf)
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The PCI addresses of every NVMe controller, sorted.
pub fn nvme_controllers() -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(PCI_DEVICES)? {
        let entry = entry?;
        let class = fs::read_to_string(entry.path().join("class")).unwrap_or_default();
        let class = u32::from_str_radix(class.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        if class == NVME_CLASS {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    Ok(found)
}

/// The driver the device is bound to, if any.
pub fn current_driver(bdf: &str) -> io::Result<Option<String>> {
    match fs::read_link(device_dir(bdf).join("driver")) {
        Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The device's IOMMU group number.
pub fn iommu_group(bdf: &str) -> io::Result<u32> {
    let link = fs::read_link(device_dir(bdf).join("iommu_group")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{bdf}: no IOMMU group ({e}); boot with intel_iommu=on (or amd_iommu=on) on a machine with an IOMMU"),
        )
    })?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other(format!("{bdf}: odd iommu_group link {}", link.display())))
}

fn rebind(bdf: &str, driver: &str, override_value: &str) -> io::Result<()> {
    let dir = device_dir(bdf);
    if !dir.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{bdf}: no such PCI device"),
        ));
    }
    if current_driver(bdf)?.as_deref() == Some(driver) {
        return Ok(());
    }
    write(&dir.join("driver_override"), override_value)?;
    if current_driver(bdf)?.is_some() {
        write(&dir.join("driver/unbind"), bdf)?;
    }
    // drivers_probe fails with an error when no driver matches; the check
    // below reports that better.
    let _ = write(Path::new("/sys/bus/pci/drivers_probe"), bdf);
    let started = Instant::now();
    while current_driver(bdf)?.as_deref() != Some(driver) {
        if started.elapsed() > BIND_TIMEOUT {
            return Err(io::Error::other(format!(
                "{bdf}: did not bind to {driver} within {BIND_TIMEOUT:?} (is the {driver} module loaded?)"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Binds the controller at `bdf` to vfio-pci and waits for its group's
/// `/dev/vfio/N`. Returns the group number. Already bound is fine.
pub fn bind_vfio(bdf: &str) -> io::Result<u32> {
    rebind(bdf, "vfio-pci", "vfio-pci")?;
    let group = iommu_group(bdf)?;
    let node = PathBuf::from(format!("/dev/vfio/{group}"));
    let started = Instant::now();
    while !node.exists() {
        if started.elapsed() > BIND_TIMEOUT {
            return Err(io::Error::other(format!(
                "{bdf}: {} did not appear",
                node.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(group)
}

/// Hands the controller at `bdf` back to the kernel's `driver` (normally
/// `nvme`): clears the override, unbinds from vfio-pci and probes again.
pub fn bind_kernel(bdf: &str, driver: &str) -> io::Result<()> {
    // An empty override (a lone newline) restores normal matching.
    rebind(bdf, driver, "\n")
}
