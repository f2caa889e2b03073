//! A/B slots (`docs/upgrades.md`): the boot-state record on its partition,
//! the boot selector that picks a slot by the boot-counting rules and
//! enters it, and marking the running slot good.
//!
//! The selector runs when the command line says `veltrix.stage=select`
//! (the disk image's boot entry): it reads the record, takes a trial
//! slot's try durably, verifies the slot's bundle (signature and hashes),
//! unpacks its initramfs into `/slot` and executes its `/init` there, as
//! PID 1, with `VELTRIX_SLOT` and `VELTRIX_TRIAL` in its environment. The
//! kernel stays the one the loader started: a bundle's kernel is carried
//! and verified but not booted yet (that needs kexec).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use veltrix_update::boot_state::{self, BootState, Loaded, Slot, COPY_BYTES};
use veltrix_update::bundle;

/// The GPT name of the boot-state record's partition.
pub const BOOT_STATE_PARTITION: &str = "veltrix-boot-state";
/// The environment variable naming the slot the selector entered.
pub const SLOT_ENV: &str = "VELTRIX_SLOT";
/// Set to `1` when the slot entered is on trial.
pub const TRIAL_ENV: &str = "VELTRIX_TRIAL";
/// Where the selector unpacks the chosen slot.
const SLOT_ROOT: &str = "/slot";
/// Where the image puts the public keys it trusts.
const TRUSTED_KEYS_DIR: &str = "/etc/veltrix/update-keys";

/// The GPT name of a slot's partition.
pub fn slot_partition(slot: Slot) -> String {
    format!("veltrix-slot-{}", slot.name())
}

/// The slot named by `a` or `b`.
pub fn parse_slot(name: &str) -> Option<Slot> {
    match name {
        "a" => Some(Slot::A),
        "b" => Some(Slot::B),
        _ => None,
    }
}

fn partition(label: &str) -> anyhow::Result<PathBuf> {
    crate::devices::find_partition(Path::new("/sys/block"), label)
}

/// Reads the record; both copies damaged (never a torn write) is logged
/// and read as the factory state, which boots slot A.
pub fn read_record(device: &Path) -> anyhow::Result<Loaded> {
    let mut bytes = vec![0u8; 2 * COPY_BYTES];
    File::open(device)
        .and_then(|f| f.read_exact_at(&mut bytes, 0))
        .with_context(|| format!("cannot read the boot state on {}", device.display()))?;
    match boot_state::read(&bytes) {
        Ok(loaded) => Ok(loaded),
        Err(e) => {
            crate::log!("boot state unreadable ({e}): falling back to the factory state (slot A)");
            Ok(Loaded {
                state: BootState::factory(),
                sequence: 0,
                copy: None,
            })
        }
    }
}

/// Puts `state` in force after `loaded`: writes the copy not in force and
/// flushes the device before returning.
pub fn write_record(device: &Path, loaded: &Loaded, state: &BootState) -> anyhow::Result<()> {
    let (offset, bytes) = boot_state::write_next(loaded, state);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .with_context(|| format!("cannot open {} to write the boot state", device.display()))?;
    file.write_all_at(&bytes, offset as u64)?;
    file.sync_all().context("cannot flush the boot state")?;
    Ok(())
}

fn trusted_keys() -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(TRUSTED_KEYS_DIR).context("no trusted update keys")? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        keys.push(
            bundle::decode_verifying_key(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        );
    }
    Ok(keys)
}

/// Reads and verifies the bundle in `slot`'s partition; returns its
/// initramfs and version.
fn load_slot(
    slot: Slot,
    trusted: &[ed25519_dalek::VerifyingKey],
) -> anyhow::Result<(Vec<u8>, String)> {
    let device = partition(&slot_partition(slot))?;
    let file = File::open(&device)?;
    let mut prefix = vec![0u8; 128 << 10];
    file.read_exact_at(&mut prefix, 0)?;
    let length = bundle::stored_length(&prefix).context("no bundle in the slot")?;
    let mut bytes = vec![0u8; length];
    file.read_exact_at(&mut bytes, 0)
        .context("the slot's bundle runs past its partition")?;
    let oldest = veltrix_update::Version {
        major: 0,
        minor: 0,
        patch: 0,
    };
    // Booting checks the signature and hashes again (bit rot, a torn
    // install); the version was checked when the bundle was installed.
    let verified = bundle::verify(&bytes, trusted, oldest)?;
    let initramfs = verified
        .files
        .iter()
        .find(|(f, _)| f.name == "initramfs.img")
        .map(|(_, data)| data.to_vec())
        .context("the bundle has no initramfs.img")?;
    Ok((initramfs, verified.manifest.version.to_string()))
}

/// The boot selector: never returns (it executes the slot's init).
pub fn select_and_enter() -> anyhow::Result<std::convert::Infallible> {
    let device = partition(BOOT_STATE_PARTITION)?;
    let trusted = trusted_keys()?;
    let mut loaded = read_record(&device)?;
    crate::log!(
        "boot state: {:?} (sequence {})",
        loaded.state,
        loaded.sequence
    );
    loop {
        let decision = loaded.state.boot();
        if let Some(next) = decision.write {
            write_record(&device, &loaded, &next)?;
            loaded = read_record(&device)?;
        }
        if let Some(given_up) = decision.gave_up {
            crate::log!(
                "slot {} used up its tries without passing its health check: back to slot {}",
                given_up.name(),
                decision.slot.name()
            );
        }
        let trial = if decision.trial {
            format!(
                " on trial, {} tries left after this boot",
                loaded.state.tries_left
            )
        } else {
            " (last good)".into()
        };
        match load_slot(decision.slot, &trusted) {
            Ok((initramfs, version)) => {
                crate::log!(
                    "booting slot {} version {version}{trial}",
                    decision.slot.name()
                );
                return enter(decision.slot, decision.trial, &initramfs);
            }
            Err(e) if decision.trial => {
                crate::log!("slot {} refused: {e:#}; giving it up", decision.slot.name());
                let back = loaded
                    .state
                    .abandon_trial()
                    .context("no trial to abandon")?;
                write_record(&device, &loaded, &back)?;
                loaded = read_record(&device)?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "the last good slot {} cannot be booted",
                        decision.slot.name()
                    )
                })
            }
        }
    }
}

/// Unpacks the slot and executes its init as this process (PID 1).
fn enter(slot: Slot, trial: bool, initramfs: &[u8]) -> anyhow::Result<std::convert::Infallible> {
    std::fs::create_dir_all(SLOT_ROOT)?;
    let entries = crate::cpio_unpack::unpack(initramfs, Path::new(SLOT_ROOT))?;
    crate::log!(
        "slot {} unpacked ({entries} entries): entering it",
        slot.name()
    );
    nix::unistd::chroot(SLOT_ROOT).context("cannot chroot into the slot")?;
    std::env::set_current_dir("/")?;
    let error = std::process::Command::new("/init")
        .env(SLOT_ENV, slot.name())
        .env(TRIAL_ENV, if trial { "1" } else { "0" })
        .exec();
    Err(error).context("cannot execute the slot's /init")
}

/// Marks the running slot good in the record (after its health check).
pub fn mark_good(slot: Slot) -> anyhow::Result<()> {
    let device = partition(BOOT_STATE_PARTITION)?;
    let loaded = read_record(&device)?;
    match loaded.state.mark_good(slot) {
        Some(next) => {
            write_record(&device, &loaded, &next)?;
            crate::log!("slot {} passed its health check: marked good", slot.name());
        }
        None => crate::log!(
            "slot {} passed its health check; the boot state {:?} needs no change",
            slot.name(),
            loaded.state
        ),
    }
    Ok(())
}
