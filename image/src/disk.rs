//! The raw disk image: GPT, an EFI system partition with systemd-boot, the
//! kernel and the initramfs (the boot selector's, `docs/upgrades.md`), a
//! config partition holding the config text, the A/B boot-state record's
//! partition (blank: the factory state, slot A good) and two slot
//! partitions, A holding this build's update bundle and B empty.
//! Built without root: mtools writes the FAT file system into a file,
//! sfdisk writes the partition table into another, and the two are joined.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

const MIB: u64 = 1 << 20;
/// The EFI system partition: a kernel and an initramfs of about 10 MiB each.
const ESP_BYTES: u64 = 64 * MIB;
/// The config partition: one config file (at most 64 KiB) padded with zeros.
const CONFIG_PART_BYTES: u64 = MIB;
/// The boot-state record: two 4 KiB copies, the rest unused.
const BOOT_STATE_BYTES: u64 = MIB;
/// A slot: one update bundle (about 19 MiB today) and room to grow.
pub const SLOT_BYTES: u64 = 48 * MIB;
const ESP_START: u64 = MIB;
const CONFIG_START: u64 = ESP_START + ESP_BYTES;
/// Appended after the config partition, so that it keeps its offset.
pub const BOOT_STATE_START: u64 = CONFIG_START + CONFIG_PART_BYTES;
pub const SLOT_A_START: u64 = BOOT_STATE_START + BOOT_STATE_BYTES;
pub const SLOT_B_START: u64 = SLOT_A_START + SLOT_BYTES;
/// Room after the last partition for the backup GPT.
const IMAGE_BYTES: u64 = SLOT_B_START + SLOT_BYTES + MIB;

/// The partition name the init looks for (`veltrix.config=` on the command line).
pub const CONFIG_PARTITION_NAME: &str = "veltrix-config";

/// What goes on the disk.
pub struct Disk<'a> {
    pub vmlinuz: &'a Path,
    pub initramfs: &'a Path,
    pub cmdline: &'a str,
    pub config_text: &'a str,
    pub systemd_boot: &'a Path,
    /// The update bundle slot A starts with.
    pub bundle: &'a Path,
    /// Fixed mtime for every file and directory (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{shown} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Builds `veltrix.img` in `work` and returns its path.
pub fn build(disk: &Disk<'_>, work: &Path) -> anyhow::Result<PathBuf> {
    let esp = work.join("esp.fat");
    let staging = work.join("esp");
    let _ = std::fs::remove_file(&esp);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let epoch = disk.epoch.to_string();

    let files: Vec<(String, Vec<u8>)> = vec![
        ("EFI/BOOT/BOOTX64.EFI".into(), std::fs::read(disk.systemd_boot)?),
        (
            "loader/loader.conf".into(),
            b"default veltrix.conf\ntimeout 0\nconsole-mode keep\neditor no\n".to_vec(),
        ),
        (
            "loader/entries/veltrix.conf".into(),
            format!(
                "title VeltrixDB appliance\nlinux /veltrix/vmlinuz\ninitrd /veltrix/initramfs.img\noptions {} veltrix.config={CONFIG_PARTITION_NAME} veltrix.stage=select\n",
                disk.cmdline
            )
            .into_bytes(),
        ),
        ("veltrix/vmlinuz".into(), std::fs::read(disk.vmlinuz)?),
        ("veltrix/initramfs.img".into(), std::fs::read(disk.initramfs)?),
    ];

    run(Command::new("mkfs.vfat")
        .env("SOURCE_DATE_EPOCH", &epoch)
        .args(["-C", "--invariant", "-i", "56454c54", "-n", "VELTRIX-ESP"])
        .arg(&esp)
        .arg((ESP_BYTES / 1024).to_string()))?;
    for dir in ["EFI", "EFI/BOOT", "loader", "loader/entries", "veltrix"] {
        run(Command::new("mmd")
            .env("SOURCE_DATE_EPOCH", &epoch)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&esp)
            .arg(format!("::/{dir}")))?;
    }
    for (name, data) in &files {
        let source = staging.join(name.replace('/', "_"));
        std::fs::write(&source, data)?;
        run(Command::new("touch")
            .arg("-d")
            .arg(format!("@{epoch}"))
            .arg(&source))?;
        run(Command::new("mcopy")
            .env("SOURCE_DATE_EPOCH", &epoch)
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-m", "-i"])
            .arg(&esp)
            .arg(&source)
            .arg(format!("::/{name}")))?;
    }

    let image = work.join("veltrix.img");
    let _ = std::fs::remove_file(&image);
    {
        let file = std::fs::File::create(&image)?;
        file.set_len(IMAGE_BYTES)?;
    }
    // Fixed GUIDs: the same inputs give the same image.
    let script = format!(
        "label: gpt\nlabel-id: 56454C54-5249-5844-0000-000000000001\nunit: sectors\nfirst-lba: 2048\n\
         start={}, size={}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=56454C54-5249-5844-0000-0000000000E1, name=\"EFI system partition\"\n\
         start={}, size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=56454C54-5249-5844-0000-0000000000C1, name=\"{CONFIG_PARTITION_NAME}\"\n\
         start={}, size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=56454C54-5249-5844-0000-0000000000B5, name=\"veltrix-boot-state\"\n\
         start={}, size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=56454C54-5249-5844-0000-0000000000A1, name=\"veltrix-slot-a\"\n\
         start={}, size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=56454C54-5249-5844-0000-0000000000B1, name=\"veltrix-slot-b\"\n",
        ESP_START / 512,
        ESP_BYTES / 512,
        CONFIG_START / 512,
        CONFIG_PART_BYTES / 512,
        BOOT_STATE_START / 512,
        BOOT_STATE_BYTES / 512,
        SLOT_A_START / 512,
        SLOT_BYTES / 512,
        SLOT_B_START / 512,
        SLOT_BYTES / 512,
    );
    let mut child = Command::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel", "--quiet"])
        .arg(&image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run sfdisk")?;
    child
        .stdin
        .take()
        .context("sfdisk has no stdin")?
        .write_all(script.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "sfdisk failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );

    let mut file = std::fs::OpenOptions::new().write(true).open(&image)?;
    file.seek(SeekFrom::Start(ESP_START))?;
    file.write_all(&std::fs::read(&esp)?)?;
    anyhow::ensure!(
        (disk.config_text.len() as u64) < CONFIG_PART_BYTES,
        "the config is larger than its partition"
    );
    file.seek(SeekFrom::Start(CONFIG_START))?;
    file.write_all(disk.config_text.as_bytes())?;
    let bundle = std::fs::read(disk.bundle)?;
    anyhow::ensure!(
        (bundle.len() as u64) <= SLOT_BYTES,
        "the update bundle ({} bytes) is larger than a slot",
        bundle.len()
    );
    file.seek(SeekFrom::Start(SLOT_A_START))?;
    file.write_all(&bundle)?;
    file.sync_all()?;
    let _ = std::fs::remove_file(&esp);
    let _ = std::fs::remove_dir_all(&staging);
    Ok(image)
}
