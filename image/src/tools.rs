//! What the build needs from the machine, checked before anything runs, so
//! a missing piece is named with the package that provides it.

use std::path::{Path, PathBuf};

/// A host file or program the build needs, and where it comes from.
struct Need {
    what: &'static str,
    found: Option<PathBuf>,
    package: &'static str,
}

fn program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The newest `/boot/vmlinuz-*` whose modules are installed.
pub fn kernel() -> Option<(PathBuf, String)> {
    let mut found: Vec<(PathBuf, String)> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("vmlinuz-")?.to_string();
            Path::new("/lib/modules")
                .join(&version)
                .join("modules.dep")
                .is_file()
                .then(|| (e.path(), version))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The host tools the image build uses.
pub struct Tools {
    /// The kernel image and its version.
    pub kernel: (PathBuf, String),
    /// A statically linked busybox (modprobe, ip).
    pub busybox: PathBuf,
    /// systemd-boot's EFI binary.
    pub systemd_boot: PathBuf,
}

/// Checks everything at once; the error lists each missing piece and the
/// Debian package (or rustup target) that provides it.
pub fn check() -> anyhow::Result<Tools> {
    let kernel = kernel();
    let busybox = Path::new("/bin/busybox");
    let systemd_boot = Path::new("/usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    let needs = [
        Need {
            what: "a kernel (/boot/vmlinuz-*) with its modules",
            found: kernel.as_ref().map(|k| k.0.clone()),
            package: "linux-image-amd64",
        },
        Need {
            what: "static busybox (/bin/busybox)",
            found: busybox.is_file().then(|| busybox.to_path_buf()),
            package: "busybox-static",
        },
        Need {
            what: "depmod",
            found: program("depmod")
                .or_else(|| Some(PathBuf::from("/sbin/depmod")).filter(|p| p.is_file())),
            package: "kmod",
        },
        Need {
            what: "systemd-boot (systemd-bootx64.efi)",
            found: systemd_boot.is_file().then(|| systemd_boot.to_path_buf()),
            package: "systemd-boot-efi",
        },
        Need {
            what: "mkfs.vfat",
            found: program("mkfs.vfat")
                .or_else(|| Some(PathBuf::from("/sbin/mkfs.vfat")).filter(|p| p.is_file())),
            package: "dosfstools",
        },
        Need {
            what: "mcopy and mmd",
            found: program("mcopy"),
            package: "mtools",
        },
        Need {
            what: "sfdisk",
            found: program("sfdisk")
                .or_else(|| Some(PathBuf::from("/sbin/sfdisk")).filter(|p| p.is_file())),
            package: "fdisk",
        },
        Need {
            what: "strip",
            found: program("strip"),
            package: "binutils",
        },
    ];
    let missing: Vec<String> = needs
        .iter()
        .filter(|n| n.found.is_none())
        .map(|n| format!("  {} (Debian package `{}`)", n.what, n.package))
        .collect();
    if !missing.is_empty() {
        let packages: Vec<&str> = needs
            .iter()
            .filter(|n| n.found.is_none())
            .map(|n| n.package)
            .collect();
        anyhow::bail!(
            "missing for the image build:\n{}\ninstall with: apt-get install --no-install-recommends {}",
            missing.join("\n"),
            packages.join(" ")
        );
    }
    let kernel = kernel.ok_or_else(|| anyhow::anyhow!("no kernel"))?;
    Ok(Tools {
        kernel,
        busybox: busybox.to_path_buf(),
        systemd_boot: systemd_boot.to_path_buf(),
    })
}

/// Checks that a rustup target is installed.
pub fn check_rust_target(target: &str) -> anyhow::Result<()> {
    let output = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match output {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == target) => {
            Ok(())
        }
        Ok(_) => anyhow::bail!(
            "the Rust target {target} is missing: rustup target add {target} (and apt-get install musl-tools)"
        ),
        // No rustup: let cargo say whether the target works.
        Err(_) => Ok(()),
    }
}
