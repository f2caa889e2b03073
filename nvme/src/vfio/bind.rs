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

/// Whether `s` is a PCI address `DDDD:BB:DD.F` (domain, bus, device,
/// function; hex digits), e.g. `0000:00:03.0`. Every function here that
/// writes to sysfs refuses anything else, so an address can never name a
/// path outside the device's directory.
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    let hex_at = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_hexdigit);
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && hex_at(0..4)
        && hex_at(5..7)
        && hex_at(8..10)
        && hex_at(11..12)
}

/// The device's directory in sysfs, once `bdf` is known to be a well-formed
/// address of an NVMe controller that exists.
fn nvme_device_dir(bdf: &str) -> io::Result<PathBuf> {
    if !is_pci_address(bdf) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{bdf}` is not a PCI address (DDDD:BB:DD.F, e.g. 0000:00:03.0)"),
        ));
    }
    let dir = device_dir(bdf);
    let class = match fs::read_to_string(dir.join("class")) {
        Ok(class) => class,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{bdf}: no such PCI device"),
            ))
        }
        Err(e) => return Err(io::Error::new(e.kind(), format!("{bdf}: {e}"))),
    };
    let class = u32::from_str_radix(class.trim().trim_start_matches("0x"), 16).unwrap_or(0);
    if class != NVME_CLASS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{bdf} is not an NVMe controller (PCI class {class:#08x}, want {NVME_CLASS:#08x})"
            ),
        ));
    }
    Ok(dir)
}

/// The kernel's block devices for the controller's namespaces
/// (`nvme0n1`, ...), while the nvme driver has it. With native multipath the
/// controller holds per-path nodes (`nvme0c0n1`) and the block device is the
/// subsystem's `nvme0n1`.
pub fn block_devices(bdf: &str) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let Ok(controllers) = fs::read_dir(nvme_device_dir(bdf)?.join("nvme")) else {
        return Ok(names);
    };
    for controller in controllers.flatten() {
        for entry in fs::read_dir(controller.path())?.flatten() {
            if let Some(name) = namespace_block_device(&entry.file_name().to_string_lossy()) {
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// `nvme0n1` for `nvme0n1` and for the multipath node `nvme0c2n1`; `None` for
/// anything else in a controller's sysfs directory.
fn namespace_block_device(entry: &str) -> Option<String> {
    let rest = entry.strip_prefix("nvme")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (subsystem, nsid) = rest.split_once('n')?;
    if !digits(nsid) {
        return None;
    }
    let subsystem = match subsystem.split_once('c') {
        Some((subsystem, path)) if digits(path) => subsystem,
        Some(_) => return None,
        None => subsystem,
    };
    digits(subsystem).then(|| format!("nvme{subsystem}n{nsid}"))
}

/// The sources in `/proc/mounts` or `/proc/swaps` text that are one of
/// `devices` or a partition of one (`/dev/nvme0n1p2`).
fn in_use(table: &str, devices: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for source in table
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(name) = source.strip_prefix("/dev/") else {
            continue;
        };
        let ours = devices.iter().any(|device| {
            name.strip_prefix(device.as_str()).is_some_and(|partition| {
                partition.is_empty()
                    || partition
                        .strip_prefix('p')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
        });
        if ours && !found.iter().any(|f| f == source) {
            found.push(source.to_string());
        }
    }
    found
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
    let dir = nvme_device_dir(bdf)?;
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
///
/// Refuses while one of the controller's namespaces (or a partition of one)
/// is mounted or used as swap: unbinding would pull the device from under a
/// file system.
pub fn bind_vfio(bdf: &str) -> io::Result<u32> {
    let devices = block_devices(bdf)?;
    let table = fs::read_to_string("/proc/mounts").unwrap_or_default()
        + &fs::read_to_string("/proc/swaps").unwrap_or_default();
    let busy = in_use(&table, &devices);
    if !busy.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            format!(
                "{bdf}: {} in use (mounted or swap); unmount before giving the controller to vfio-pci",
                busy.join(", ")
            ),
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::{in_use, is_pci_address, namespace_block_device};

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:00:04.0"));
        assert!(is_pci_address("0000:af:1f.7"));
        for bad in [
            "",
            "00:04.0",
            "0000:00:04",
            "0000:00:04.10",
            "0000:0g:04.0",
            "../../../../0",
            "0000/00:04.0",
        ] {
            assert!(!is_pci_address(bad), "{bad}");
        }
    }

    #[test]
    fn namespace_block_devices() {
        assert_eq!(
            namespace_block_device("nvme0n1").as_deref(),
            Some("nvme0n1")
        );
        assert_eq!(
            namespace_block_device("nvme1c3n12").as_deref(),
            Some("nvme1n12")
        );
        for other in [
            "nvme0",
            "nvme0n",
            "nvme0cn1",
            "nvmexn1",
            "power",
            "hwmon1",
            "nvme0n1p1",
        ] {
            assert_eq!(namespace_block_device(other), None, "{other}");
        }
    }

    #[test]
    fn mounts_and_swaps_on_the_controllers_namespaces() {
        let table = "/dev/nvme0n1p2 / ext4 rw 0 0\n\
                     /dev/nvme10n1 /data xfs rw 0 0\n\
                     proc /proc proc rw 0 0\n\
                     /dev/nvme0n12 /other ext4 rw 0 0\n\
                     /dev/nvme0n1p2 /again ext4 rw 0 0\n\
                     Filename Type Size Used Priority\n\
                     /dev/nvme0n1p3 partition 1024 0 -2\n";
        let ours = ["nvme0n1".to_string()];
        assert_eq!(in_use(table, &ours), ["/dev/nvme0n1p2", "/dev/nvme0n1p3"]);
        assert!(in_use(table, &["nvme2n1".to_string()]).is_empty());
        assert_eq!(in_use(table, &["nvme10n1".to_string()]), ["/dev/nvme10n1"]);
    }
}
