//! A reproducible initramfs: the `newc` cpio format written by hand, so that
//! entry order (sorted by path), owners (root), inode numbers (sequential)
//! and mtimes (one fixed value) do not depend on the build machine.

use std::io::Write;

/// One archive entry.
pub enum Entry {
    /// A directory.
    Directory,
    /// A regular file with its permission bits.
    File { mode: u32, data: Vec<u8> },
    /// A character device node (for `/dev/console`, which the kernel opens
    /// before init can mount devtmpfs).
    CharDevice { major: u32, minor: u32 },
}

/// Writes `entries` (path without leading `/`, entry) in path order.
pub fn write(
    out: &mut impl Write,
    entries: &std::collections::BTreeMap<String, Entry>,
    mtime: u32,
) -> std::io::Result<()> {
    let mut written = 0usize;
    for (ino, (path, entry)) in (1u32..).zip(entries) {
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
            Entry::Directory => (0o040_755, &[], (0, 0)),
            Entry::File { mode, data } => (0o100_000 | mode, data.as_slice(), (0, 0)),
            Entry::CharDevice { major, minor } => (0o020_600, &[], (*major, *minor)),
        };
        written += header(out, ino, mode, mtime, data.len(), rdev, path)?;
        out.write_all(data)?;
        written += data.len();
        written += pad(out, written)?;
    }
    written += header(out, 0, 0, 0, 0, (0, 0), "TRAILER!!!")?;
    pad(out, written)?;
    Ok(())
}

fn header(
    out: &mut impl Write,
    ino: u32,
    mode: u32,
    mtime: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) -> std::io::Result<usize> {
    let nlink = if mode & 0o040_000 != 0 { 2 } else { 1 };
    let size = u32::try_from(size).map_err(std::io::Error::other)?;
    let name_bytes = name.len() + 1;
    let text = format!(
        "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}{dev_major:08x}{dev_minor:08x}{rdev_major:08x}{rdev_minor:08x}{name_bytes:08x}{check:08x}",
        uid = 0,
        gid = 0,
        dev_major = 0,
        dev_minor = 0,
        rdev_major = rdev.0,
        rdev_minor = rdev.1,
        check = 0,
    );
    out.write_all(text.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let written = text.len() + name_bytes;
    Ok(written + pad(out, written)?)
}

/// Pads to the next multiple of 4 bytes.
fn pad(out: &mut impl Write, written: usize) -> std::io::Result<usize> {
    let padding = (4 - written % 4) % 4;
    out.write_all(&[0; 3][..padding])?;
    Ok(padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_is_aligned_sorted_and_terminated() {
        let mut entries = std::collections::BTreeMap::new();
        entries.insert(
            "init".to_string(),
            Entry::File {
                mode: 0o755,
                data: b"x".to_vec(),
            },
        );
        entries.insert("bin".to_string(), Entry::Directory);
        let mut out = Vec::new();
        write(&mut out, &entries, 0).expect("writes");
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        let bin = text.find("bin\0").expect("bin");
        let init = text.find("init\0").expect("init");
        assert!(bin < init, "entries are in path order");
        assert!(text.contains("TRAILER!!!\0"));
        assert!(text.starts_with("070701"));
        // The same input gives the same bytes.
        let mut again = Vec::new();
        write(&mut again, &entries, 0).expect("writes");
        assert_eq!(out, again);
    }
}
