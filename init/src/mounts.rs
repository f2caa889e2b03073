//! The kernel file systems PID 1 mounts before anything else.

use anyhow::Context;
use nix::mount::{mount, MsFlags};

/// Mounts proc, sysfs, devtmpfs and a tmpfs on /run.
pub fn mount_all() -> anyhow::Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    for (source, target, fstype, flags) in [
        ("proc", "/proc", "proc", flags | MsFlags::MS_NODEV),
        ("sysfs", "/sys", "sysfs", flags | MsFlags::MS_NODEV),
        ("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID),
        ("tmpfs", "/run", "tmpfs", flags | MsFlags::MS_NODEV),
    ] {
        std::fs::create_dir_all(target).with_context(|| format!("cannot create {target}"))?;
        match mount(Some(source), target, Some(fstype), flags, None::<&str>) {
            Ok(()) => {}
            // The kernel mounts devtmpfs itself when CONFIG_DEVTMPFS_MOUNT is set.
            Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot mount {fstype} on {target}")),
        }
    }
    std::fs::create_dir_all(crate::RUN_DIR).context("cannot create the run directory")?;
    Ok(())
}
