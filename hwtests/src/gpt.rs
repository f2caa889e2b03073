//! Finds a partition of a GPT disk image by name, from the host: what the
//! A/B scenario needs to write a slot or read the boot-state record the way
//! an installer on the appliance would.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;

const SECTOR: u64 = 512;

/// The byte offset and length of the partition named `name`.
pub fn partition(image: &Path, name: &str) -> anyhow::Result<(u64, u64)> {
    let mut file = std::fs::File::open(image)?;
    let mut header = [0u8; 92];
    file.seek(SeekFrom::Start(SECTOR))?;
    file.read_exact(&mut header)?;
    anyhow::ensure!(&header[..8] == b"EFI PART", "{}: no GPT", image.display());
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]));
    let entries_lba = u64_at(&header, 72);
    let (count, entry_bytes) = (u32_at(&header, 80), u32_at(&header, 84) as usize);
    let mut entries = vec![0u8; count as usize * entry_bytes];
    file.seek(SeekFrom::Start(entries_lba * SECTOR))?;
    file.read_exact(&mut entries)?;
    entries
        .chunks(entry_bytes)
        .find(|entry| {
            let units: Vec<u16> = entry[56..128]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect();
            String::from_utf16_lossy(&units) == name
        })
        .map(|entry| {
            let (first, last) = (u64_at(entry, 32), u64_at(entry, 40));
            (first * SECTOR, (last + 1 - first) * SECTOR)
        })
        .with_context(|| format!("{}: no partition named {name}", image.display()))
}
