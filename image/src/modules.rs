//! The kernel modules the appliance needs, with their dependencies from the
//! kernel's own `modules.dep`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;

/// Modules loaded at boot, in this order (dependencies load first anyway).
/// A crct10dif implementation is named because `crc-t10dif` only asks for
/// one through a crypto lookup, and busybox modprobe ignores softdeps.
pub const BOOT_MODULES: &[&str] = &[
    "crct10dif_generic",
    "crc64_rocksoft_generic",
    // NVMe namespaces, PI included.
    "nvme",
    // The vfio backend (veltrix.backend=vfio, docs/vfio.md): vfio-pci pulls
    // in vfio, vfio-pci-core, vfio_virqfd and irqbypass; the type1 IOMMU
    // driver is only a softdep of vfio, which busybox modprobe ignores, so
    // it is named. They load on machines without an IOMMU too (binding
    // then fails, and only the vfio backend needs it).
    "vfio",
    "vfio_iommu_type1",
    "vfio-pci",
    // The boot disk of the disk image under OVMF (IDE on `pc`, AHCI on `q35`).
    "ata_piix",
    "ahci",
    "sd_mod",
    // Network under QEMU.
    "e1000",
    "virtio_pci",
    "virtio_net",
];

/// `kernel/.../name.ko` paths relative to `/lib/modules/KVER`, for every
/// module in `roots` and every module they depend on.
pub fn closure(modules_dep: &str, roots: &[&str]) -> anyhow::Result<BTreeSet<String>> {
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in modules_dep.lines() {
        let Some((module, rest)) = line.split_once(':') else {
            continue;
        };
        deps.insert(
            name_of(module),
            (
                module.to_string(),
                rest.split_whitespace().map(str::to_string).collect(),
            ),
        );
    }
    let mut out = BTreeSet::new();
    for root in roots {
        let (path, dependencies) = deps
            .get(&root.replace('-', "_"))
            .with_context(|| format!("module {root} is not in this kernel's modules.dep"))?;
        out.insert(path.clone());
        // modules.dep lists the full transitive closure on each line.
        out.extend(dependencies.iter().cloned());
    }
    Ok(out)
}

/// `kernel/lib/crc-t10dif.ko` -> `crc_t10dif`.
fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

#[cfg(test)]
mod tests {
    #[test]
    fn closure_follows_modules_dep() {
        let dep = "kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko kernel/lib/crc-t10dif.ko\nkernel/drivers/nvme/host/nvme-core.ko: kernel/lib/crc-t10dif.ko\nkernel/lib/crc-t10dif.ko:\nkernel/other.ko:\n";
        let got = super::closure(dep, &["nvme", "crc-t10dif"]).expect("closure");
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![
                "kernel/drivers/nvme/host/nvme-core.ko".to_string(),
                "kernel/drivers/nvme/host/nvme.ko".to_string(),
                "kernel/lib/crc-t10dif.ko".to_string(),
            ]
        );
        assert!(super::closure(dep, &["e1000"]).is_err());
    }
}
