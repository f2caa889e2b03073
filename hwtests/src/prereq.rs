//! What the tier needs on the host. Run as root (CI), it installs what is
//! missing; otherwise it names exactly what is missing and how to get it.

use std::path::Path;
use std::process::Command;

/// The Rust target the init is built for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// OVMF as one file, for `-bios`.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        || Path::new("/sbin").join(program).is_file()
        || Path::new("/usr/sbin").join(program).is_file()
}

fn kernel_installed() -> bool {
    std::fs::read_dir("/boot").is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    })
}

fn musl_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == MUSL_TARGET)
        })
}

/// (what, Debian package) for everything missing.
fn missing() -> Vec<(&'static str, &'static str)> {
    let checks: [(&str, &str, bool); 13] = [
        (
            "qemu-system-x86_64",
            "qemu-system-x86",
            on_path("qemu-system-x86_64"),
        ),
        ("a kernel in /boot", "linux-image-amd64", kernel_installed()),
        (
            "OVMF (/usr/share/ovmf/OVMF.fd)",
            "ovmf",
            Path::new(OVMF).is_file(),
        ),
        (
            "static busybox",
            "busybox-static",
            Path::new("/bin/busybox").is_file(),
        ),
        (
            "systemd-boot",
            "systemd-boot-efi",
            Path::new("/usr/lib/systemd/boot/efi/systemd-bootx64.efi").is_file(),
        ),
        ("mkfs.vfat", "dosfstools", on_path("mkfs.vfat")),
        ("mcopy", "mtools", on_path("mcopy")),
        ("sfdisk", "fdisk", on_path("sfdisk")),
        ("depmod", "kmod", on_path("depmod")),
        ("strip", "binutils", on_path("strip")),
        // scripts/vfio-guest-check.sh (the vfio-conformance scenario).
        ("cpio", "cpio", on_path("cpio")),
        ("python3", "python3", on_path("python3")),
        (
            "musl-gcc (for the musl target)",
            "musl-tools",
            on_path("musl-gcc"),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, _, ok)| !ok)
        .map(|(what, package, _)| (what, package))
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure everything is there, installing it when root.
pub fn ensure() -> anyhow::Result<()> {
    let mut gone = missing();
    let musl = musl_installed();
    if gone.is_empty() && musl {
        return Ok(());
    }
    if is_root() {
        if !gone.is_empty() {
            let packages: Vec<&str> = gone.iter().map(|(_, p)| *p).collect();
            println!("hwtests: installing {}", packages.join(" "));
            let ok = Command::new("apt-get")
                .args(["update", "-qq"])
                .status()?
                .success()
                && Command::new("apt-get")
                    .args(["install", "-y", "-qq", "--no-install-recommends"])
                    .args(&packages)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()?
                    .success();
            anyhow::ensure!(ok, "apt-get install {} failed", packages.join(" "));
        }
        if !musl {
            let ok = Command::new("rustup")
                .args(["target", "add", MUSL_TARGET])
                .status()?
                .success();
            anyhow::ensure!(ok, "rustup target add {MUSL_TARGET} failed");
        }
        gone = missing();
        if gone.is_empty() && musl_installed() {
            return Ok(());
        }
    }
    let mut lines: Vec<String> = gone
        .iter()
        .map(|(what, package)| format!("  {what}: apt-get install {package}"))
        .collect();
    if !musl_installed() {
        lines.push(format!(
            "  the Rust target {MUSL_TARGET}: rustup target add {MUSL_TARGET}"
        ));
    }
    anyhow::bail!(
        "the hardware tier needs (run as root to install automatically):\n{}",
        lines.join("\n")
    )
}
