//! Finding block devices by what they are, never by kernel name: NVMe
//! namespaces by controller serial and NSID, partitions by GPT name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long devices may take to appear after their driver loads.
const APPEAR_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits for the NVMe namespace `nsid` of the controller whose serial is
/// `serial`, and returns its block device (`/dev/nvmeXnY`).
pub fn find_namespace(sys_block: &Path, serial: &str, nsid: u32) -> anyhow::Result<PathBuf> {
    wait_for(
        || namespace_once(sys_block, serial, nsid),
        &format!("NVMe namespace {nsid} of the controller with serial {serial:?}"),
        || describe_nvme(sys_block),
    )
}

/// Waits for the GPT partition named `label` and returns its block device.
pub fn find_partition(sys_block: &Path, label: &str) -> anyhow::Result<PathBuf> {
    wait_for(
        || partition_once(sys_block, label),
        &format!("the partition named {label:?}"),
        || String::from("(no partition with that name)"),
    )
}

fn wait_for(
    mut probe: impl FnMut() -> anyhow::Result<Option<PathBuf>>,
    what: &str,
    seen: impl Fn() -> String,
) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    loop {
        if let Some(device) = probe()? {
            // devtmpfs creates the node right after the uevent; wait for it too.
            if device.exists() {
                crate::log!(
                    "found {what} at {} after {} ms",
                    device.display(),
                    started.elapsed().as_millis()
                );
                return Ok(device);
            }
        }
        if started.elapsed() > APPEAR_TIMEOUT {
            anyhow::bail!(
                "{what} did not appear within {} s; NVMe namespaces seen: {}",
                APPEAR_TIMEOUT.as_secs(),
                seen()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a `/sys/block` entry is a visible NVMe namespace (`nvmeXnY`), not
/// a hidden multipath path (`nvmeXcYnZ`).
pub fn is_nvme_namespace(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("nvme") else {
        return false;
    };
    let Some((controller, namespace)) = rest.split_once('n') else {
        return false;
    };
    !controller.is_empty()
        && controller.bytes().all(|b| b.is_ascii_digit())
        && !namespace.is_empty()
        && namespace.bytes().all(|b| b.is_ascii_digit())
}

/// The PCI address (`DDDD:BB:DD.F`) of the controller of the namespace
/// `name` (`nvmeXnY`): `/sys/block/NAME/device` is the controller, and its
/// `device` link resolves to the PCI device, whose directory name is the
/// address.
pub fn controller_pci_address(sys_block: &Path, name: &str) -> anyhow::Result<String> {
    let link = sys_block.join(name).join("device/device");
    let pci = std::fs::canonicalize(&link)
        .with_context(|| format!("cannot resolve {}", link.display()))?;
    let bdf = pci
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    anyhow::ensure!(
        is_pci_address(&bdf),
        "{} resolves to {}, which is not a PCI address (DDDD:BB:DD.F)",
        link.display(),
        pci.display()
    );
    Ok(bdf)
}

/// Whether `s` is a PCI address `DDDD:BB:DD.F` (hex digits). The same rule
/// as `nvme::vfio::bind::is_pci_address`, repeated so that PID 1 does not
/// link the block layer (and its io_uring and VFIO code) for ten lines.
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

/// The vfio namespace address veltrixd opens: `vfio:BDF/nsN`.
pub fn vfio_address(bdf: &str, nsid: u32) -> String {
    format!("vfio:{bdf}/ns{nsid}")
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

fn namespace_once(sys_block: &Path, serial: &str, nsid: u32) -> anyhow::Result<Option<PathBuf>> {
    for name in sorted_entries(sys_block)? {
        if !is_nvme_namespace(&name) {
            continue;
        }
        let entry = sys_block.join(&name);
        let this_serial = read_trimmed(&entry.join("device/serial"));
        let this_nsid = read_trimmed(&entry.join("nsid")).and_then(|n| n.parse::<u32>().ok());
        if this_serial.as_deref() == Some(serial) && this_nsid == Some(nsid) {
            return Ok(Some(PathBuf::from("/dev").join(name)));
        }
    }
    Ok(None)
}

fn describe_nvme(sys_block: &Path) -> String {
    let names = sorted_entries(sys_block).unwrap_or_default();
    let seen: Vec<String> = names
        .iter()
        .filter(|n| is_nvme_namespace(n))
        .map(|n| {
            let entry = sys_block.join(n);
            format!(
                "{n} (serial {:?}, nsid {})",
                read_trimmed(&entry.join("device/serial")).unwrap_or_default(),
                read_trimmed(&entry.join("nsid")).unwrap_or_default()
            )
        })
        .collect();
    if seen.is_empty() {
        "none".into()
    } else {
        seen.join(", ")
    }
}

fn partition_once(sys_block: &Path, label: &str) -> anyhow::Result<Option<PathBuf>> {
    // Partitions are subdirectories of their disk: /sys/block/sda/sda2/uevent.
    for disk in sorted_entries(sys_block)? {
        let disk_dir = sys_block.join(&disk);
        for part in sorted_entries(&disk_dir).unwrap_or_default() {
            if !part.starts_with(&disk) {
                continue;
            }
            let Ok(uevent) = std::fs::read_to_string(disk_dir.join(&part).join("uevent")) else {
                continue;
            };
            if uevent
                .lines()
                .any(|l| l.strip_prefix("PARTNAME=") == Some(label))
            {
                return Ok(Some(PathBuf::from("/dev").join(part)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipath_entries_are_not_namespaces() {
        assert!(is_nvme_namespace("nvme0n1"));
        assert!(is_nvme_namespace("nvme12n3"));
        assert!(!is_nvme_namespace("nvme0c0n1"));
        assert!(!is_nvme_namespace("nvme0"));
        assert!(!is_nvme_namespace("sda"));
        assert!(!is_nvme_namespace("nvme0n1p1"));
    }

    fn fake_namespace(root: &Path, name: &str, serial: &str, nsid: u32) {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("device")).expect("mkdir");
        std::fs::write(dir.join("device/serial"), format!("{serial}    \n")).expect("write");
        std::fs::write(dir.join("nsid"), format!("{nsid}\n")).expect("write");
    }

    #[test]
    fn finds_by_serial_and_nsid_not_by_name() {
        let root = std::env::temp_dir().join(format!("veltrix-init-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // Probe order put the second controller first, and Y is not the NSID.
        fake_namespace(&root, "nvme0n1", "other", 1);
        fake_namespace(&root, "nvme1n1", "vx0001", 1);
        fake_namespace(&root, "nvme1n2", "vx0001", 3);
        fake_namespace(&root, "nvme1c1n2", "vx0001", 2);
        let found = namespace_once(&root, "vx0001", 3).expect("lists");
        assert_eq!(found, Some(PathBuf::from("/dev/nvme1n2")));
        assert_eq!(namespace_once(&root, "vx0001", 2).expect("lists"), None);
        assert!(describe_nvme(&root).contains("nvme1n2 (serial \"vx0001\", nsid 3)"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn pci_address_of_a_namespace_from_sysfs_links() {
        let root = std::env::temp_dir().join(format!("veltrix-init-pci-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // Shaped like sysfs: /sys/block/nvme0n1/device -> the controller
        // (devices/pci0000:00/0000:00:04.0/nvme/nvme0), whose `device` link
        // points at the PCI device.
        let pci = root.join("devices/pci0000:00/0000:00:04.0");
        let ctrl = pci.join("nvme/nvme0");
        std::fs::create_dir_all(&ctrl).expect("mkdir");
        std::os::unix::fs::symlink("../../../0000:00:04.0", ctrl.join("device")).expect("link");
        let block = root.join("block");
        std::fs::create_dir_all(block.join("nvme0n1")).expect("mkdir");
        std::os::unix::fs::symlink(&ctrl, block.join("nvme0n1/device")).expect("link");
        assert_eq!(
            controller_pci_address(&block, "nvme0n1").expect("resolves"),
            "0000:00:04.0"
        );
        assert!(controller_pci_address(&block, "nvme1n1").is_err());
        // A link that does not end at a PCI device is refused.
        std::fs::create_dir_all(block.join("nvme2n1/device")).expect("mkdir");
        std::fs::create_dir_all(root.join("virtual/nvme-fabrics")).expect("mkdir");
        std::os::unix::fs::symlink(
            root.join("virtual/nvme-fabrics"),
            block.join("nvme2n1/device/device"),
        )
        .expect("link");
        assert!(controller_pci_address(&block, "nvme2n1").is_err());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn pci_addresses_and_vfio_addresses() {
        assert!(is_pci_address("0000:00:04.0"));
        assert!(is_pci_address("0000:af:1f.7"));
        for bad in [
            "",
            "00:04.0",
            "0000:00:04",
            "0000:00:04.10",
            "0000-00:04.0",
            "000g:00:04.0",
        ] {
            assert!(!is_pci_address(bad), "{bad}");
        }
        assert_eq!(vfio_address("0000:00:04.0", 3), "vfio:0000:00:04.0/ns3");
    }
}
