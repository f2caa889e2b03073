//! Unpacks a `newc` cpio archive (an initramfs) into a directory: what the
//! boot selector does with the chosen slot's initramfs before it enters it.
//! Archives may be concatenated, as the kernel allows; a later entry
//! replaces an earlier one of the same path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use anyhow::{bail, Context};

const MAGIC: &[u8; 6] = b"070701";
const HEADER_BYTES: usize = 110;
const TRAILER: &str = "TRAILER!!!";

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn field(header: &[u8], index: usize) -> anyhow::Result<u32> {
    let at = 6 + 8 * index;
    let text = std::str::from_utf8(&header[at..at + 8]).context("cpio header is not ASCII")?;
    u32::from_str_radix(text, 16).with_context(|| format!("cpio header field {text:?}"))
}

/// Unpacks every entry of `archive` under `root`; returns the entries made.
pub fn unpack(archive: &[u8], root: &Path) -> anyhow::Result<usize> {
    let mut at = 0;
    let mut count = 0;
    while at < archive.len() {
        // Zero padding between concatenated archives.
        if archive[at] == 0 {
            at += 1;
            continue;
        }
        let Some(header) = archive.get(at..at + HEADER_BYTES) else {
            bail!("cpio archive truncated in a header at byte {at}");
        };
        if &header[..6] != MAGIC {
            bail!("not a newc cpio entry at byte {at}");
        }
        let mode = field(header, 1)?;
        let file_bytes = field(header, 6)? as usize;
        let (rdev_major, rdev_minor) = (field(header, 9)?, field(header, 10)?);
        let name_bytes = field(header, 11)? as usize;
        let name_start = at + HEADER_BYTES;
        let data_start = pad4(name_start + name_bytes);
        let data_end = data_start + file_bytes;
        if name_bytes == 0 || data_end > archive.len() {
            bail!("cpio entry at byte {at} runs past the archive");
        }
        let name = std::str::from_utf8(&archive[name_start..name_start + name_bytes - 1])
            .context("cpio entry name is not UTF-8")?;
        at = pad4(data_end);
        if name == TRAILER {
            continue;
        }
        let relative = Path::new(name);
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            bail!("cpio entry {name:?} leaves the root");
        }
        make(
            root,
            relative,
            mode,
            &archive[data_start..data_end],
            (rdev_major, rdev_minor),
        )
        .with_context(|| format!("cannot unpack {name}"))?;
        count += 1;
    }
    Ok(count)
}

fn make(
    root: &Path,
    relative: &Path,
    mode: u32,
    data: &[u8],
    rdev: (u32, u32),
) -> anyhow::Result<()> {
    let path = root.join(relative);
    let permissions = std::fs::Permissions::from_mode(mode & 0o7777);
    match mode & 0o170000 {
        0o040000 => {
            std::fs::create_dir_all(&path)?;
            std::fs::set_permissions(&path, permissions)?;
        }
        0o100000 => {
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, data)?;
            std::fs::set_permissions(&path, permissions)?;
        }
        0o120000 => {
            let _ = std::fs::remove_file(&path);
            let target = std::str::from_utf8(data).context("symlink target")?;
            std::os::unix::fs::symlink(target, &path)?;
        }
        0o020000 => {
            let _ = std::fs::remove_file(&path);
            let device = nix::sys::stat::makedev(u64::from(rdev.0), u64::from(rdev.1));
            nix::sys::stat::mknod(
                &path,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(mode & 0o7777),
                device,
            )?;
        }
        other => bail!("cpio entry of type {other:#o} is not supported"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]
    use super::*;

    /// One newc entry, as the image's writer lays it out.
    fn entry(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            1,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        )
        .into_bytes();
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(pad4(out.len()), 0);
        out.extend_from_slice(data);
        out.resize(pad4(out.len()), 0);
        out
    }

    #[test]
    fn unpacks_concatenated_archives_and_later_entries_win() {
        let root = std::env::temp_dir().join(format!("cpio-unpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut archive = entry("etc", 0o040755, b"");
        archive.extend(entry("etc/veltrix.toml", 0o100644, b"first"));
        archive.extend(entry("init", 0o100755, b"#!"));
        archive.extend(entry(TRAILER, 0, b""));
        archive.extend([0u8; 12]);
        archive.extend(entry("etc/veltrix.toml", 0o100644, b"second"));
        archive.extend(entry(TRAILER, 0, b""));
        assert_eq!(unpack(&archive, &root).unwrap(), 4);
        assert_eq!(
            std::fs::read(root.join("etc/veltrix.toml")).unwrap(),
            b"second"
        );
        let mode = std::fs::metadata(root.join("init"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_escapes_and_truncation() {
        let root = std::env::temp_dir().join(format!("cpio-escape-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        assert!(unpack(&entry("../evil", 0o100644, b"x"), &root).is_err());
        assert!(unpack(&entry("/abs", 0o100644, b"x"), &root).is_err());
        let whole = entry("file", 0o100644, b"0123456789");
        assert!(unpack(&whole[..whole.len() - 8], &root).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
