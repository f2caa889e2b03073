//! The update operations on the appliance's disk: status, install and
//! rollback, over the boot-state record and the two slot partitions
//! (`docs/upgrades.md`). Paths come from [`Disk`], so tests run them on
//! plain files.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use veltrix_update::boot_state::{self, BootState, Loaded, Slot, COPY_BYTES, TRIES_DEFAULT};
use veltrix_update::{bundle, Version};

/// Where this appliance keeps what updates need.
pub struct Disk {
    /// The boot-state record's partition.
    pub boot_state: PathBuf,
    /// Slot A's and slot B's partitions.
    pub slots: [PathBuf; 2],
    /// The slot veltrixd runs from (`VELTRIX_SLOT`).
    pub running: Slot,
    /// The running release (`/etc/veltrix/version`).
    pub installed: Version,
    /// The keys bundles must be signed with (`/etc/veltrix/update-keys/`).
    pub trusted: Vec<ed25519_dalek::VerifyingKey>,
}

/// What a slot holds, as its manifest says (not verified: for display).
pub struct SlotView {
    pub slot: Slot,
    pub version: Option<Version>,
}

/// `GET /api/update`.
pub struct Status {
    pub running: Slot,
    pub installed: Version,
    pub loaded: Loaded,
    pub slots: Vec<SlotView>,
}

fn slot_path(disk: &Disk, slot: Slot) -> &Path {
    &disk.slots[usize::from(slot == Slot::B)]
}

/// Reads the record (an unreadable one is an error here: the selector
/// falls back at boot, an operator action must not guess).
pub fn read_record(disk: &Disk) -> anyhow::Result<Loaded> {
    let mut bytes = vec![0u8; 2 * COPY_BYTES];
    File::open(&disk.boot_state)
        .and_then(|f| f.read_exact_at(&mut bytes, 0))
        .with_context(|| format!("cannot read {}", disk.boot_state.display()))?;
    Ok(boot_state::read(&bytes)?)
}

fn write_record(disk: &Disk, loaded: &Loaded, state: &BootState) -> anyhow::Result<()> {
    let (offset, bytes) = boot_state::write_next(loaded, state);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&disk.boot_state)?;
    file.write_all_at(&bytes, offset as u64)?;
    file.sync_all().context("cannot flush the boot state")?;
    Ok(())
}

/// The first `bytes` of a partition (fewer if it is smaller).
fn read_head(path: &Path, bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    File::open(path)?.take(bytes).read_to_end(&mut head)?;
    Ok(head)
}

/// Enough of a slot for a bundle's header and manifest.
const HEAD_BYTES: u64 = 128 << 10;

fn peek(path: &Path) -> Option<Version> {
    let prefix = read_head(path, HEAD_BYTES).ok()?;
    bundle::peek_manifest(&prefix).ok().map(|m| m.version)
}

pub fn status(disk: &Disk) -> anyhow::Result<Status> {
    Ok(Status {
        running: disk.running,
        installed: disk.installed,
        loaded: read_record(disk)?,
        slots: [Slot::A, Slot::B]
            .into_iter()
            .map(|slot| SlotView {
                slot,
                version: peek(slot_path(disk, slot)),
            })
            .collect(),
    })
}

/// The size of a partition or file.
fn capacity(path: &Path) -> anyhow::Result<u64> {
    use std::io::Seek;
    let mut file = File::open(path)?;
    Ok(file.seek(std::io::SeekFrom::End(0))?)
}

/// Verifies `bytes` as a bundle for this appliance, writes it into the slot
/// that is not the last good one, reads it back and verifies it again, and
/// only then puts that slot on trial for the next boot. Returns the slot
/// and the bundle's version.
pub fn install(disk: &Disk, bytes: &[u8]) -> anyhow::Result<(Slot, Version)> {
    let verified = bundle::verify(bytes, &disk.trusted, disk.installed)?;
    let version = verified.manifest.version;
    let loaded = read_record(disk)?;
    if loaded.state.on_trial() {
        bail!(
            "slot {} is on trial: wait until it is marked good, or roll it back, before installing",
            loaded.state.active.name()
        );
    }
    let target = loaded.state.last_good.other();
    let path = slot_path(disk, target);
    let room = capacity(path)?;
    if bytes.len() as u64 > room {
        bail!(
            "the bundle ({} bytes) is larger than slot {} ({room} bytes)",
            bytes.len(),
            target.name()
        );
    }
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all_at(bytes, 0)?;
    file.sync_all().context("cannot flush the slot")?;
    let mut back = vec![0u8; bytes.len()];
    File::open(path)?.read_exact_at(&mut back, 0)?;
    bundle::verify(&back, &disk.trusted, disk.installed)
        .context("the slot does not read back what was written")?;
    let next = loaded
        .state
        .install(target, TRIES_DEFAULT)
        .map_err(|e| anyhow::anyhow!(e))?;
    write_record(disk, &loaded, &next)?;
    tracing::info!(
        "update {version} installed into slot {}: on trial at the next boot",
        target.name()
    );
    Ok((target, version))
}

/// Rolls back: a slot on trial is given up (the last good slot boots next);
/// with none on trial, the other slot's release is put on trial (after its
/// bundle verifies), so the next boot goes back to it. Returns the slot
/// the next boot starts.
pub fn rollback(disk: &Disk) -> anyhow::Result<Slot> {
    let loaded = read_record(disk)?;
    let next = match loaded.state.abandon_trial() {
        Some(next) => next,
        None => {
            let other = loaded.state.last_good.other();
            let path = slot_path(disk, other);
            let prefix = read_head(path, HEAD_BYTES)?;
            let length = bundle::stored_length(&prefix).with_context(|| {
                format!("slot {} holds no bundle to roll back to", other.name())
            })?;
            let mut bytes = vec![0u8; length];
            File::open(path)?.read_exact_at(&mut bytes, 0)?;
            let oldest = Version {
                major: 0,
                minor: 0,
                patch: 0,
            };
            bundle::verify(&bytes, &disk.trusted, oldest)
                .with_context(|| format!("slot {}'s bundle does not verify", other.name()))?;
            loaded
                .state
                .install(other, TRIES_DEFAULT)
                .map_err(|e| anyhow::anyhow!(e))?
        }
    };
    write_record(disk, &loaded, &next)?;
    tracing::info!(
        "rollback requested: the next boot starts slot {}",
        next.active.name()
    );
    Ok(next.active)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]
    use super::*;

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[5; 32])
    }

    fn disk(dir: &Path) -> Disk {
        let part = |name: &str, bytes: u64| {
            let path = dir.join(name);
            File::create(&path).unwrap().set_len(bytes).unwrap();
            path
        };
        Disk {
            boot_state: part("boot-state", 1 << 20),
            slots: [part("slot-a", 1 << 20), part("slot-b", 1 << 20)],
            running: Slot::A,
            installed: "0.1.0".parse().unwrap(),
            trusted: vec![key().verifying_key()],
        }
    }

    fn bundle_at(version: &str) -> Vec<u8> {
        bundle::write(
            version.parse().unwrap(),
            &[("initramfs.img", b"init")],
            &key(),
        )
    }

    #[test]
    fn install_goes_to_the_other_slot_on_trial_and_refuses_what_it_must() {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk(dir.path());
        assert_eq!(install(&disk, &bundle_at("0.2.0")).unwrap().0, Slot::B);
        let state = read_record(&disk).unwrap().state;
        assert_eq!(
            (state.active, state.last_good, state.tries_left),
            (Slot::B, Slot::A, TRIES_DEFAULT)
        );
        let shown = status(&disk).unwrap();
        assert_eq!(shown.slots[1].version, Some("0.2.0".parse().unwrap()));
        // A second install while one is on trial is refused.
        let error = install(&disk, &bundle_at("0.2.1")).unwrap_err();
        assert!(error.to_string().contains("on trial"), "{error}");
        // Older than installed, unsigned, tampered: refused, and nothing changes.
        let before = std::fs::read(&disk.boot_state).unwrap();
        rollback(&disk).unwrap();
        assert!(install(&disk, &bundle_at("0.0.9"))
            .unwrap_err()
            .to_string()
            .contains("older"));
        let unsigned =
            bundle::write_unsigned("0.2.0".parse().unwrap(), &[("initramfs.img", b"init")]);
        assert!(install(&disk, &unsigned)
            .unwrap_err()
            .to_string()
            .contains("unsigned"));
        let mut tampered = bundle_at("0.2.0");
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(install(&disk, &tampered)
            .unwrap_err()
            .to_string()
            .contains("altered"));
        assert_ne!(
            std::fs::read(&disk.boot_state).unwrap(),
            before,
            "the rollback was written"
        );
    }

    #[test]
    fn rollback_gives_up_a_trial_or_goes_back_to_the_other_release() {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk(dir.path());
        assert!(rollback(&disk).is_err(), "nothing in slot B to go back to");
        install(&disk, &bundle_at("0.2.0")).unwrap();
        assert_eq!(rollback(&disk).unwrap(), Slot::A, "the trial is given up");
        assert_eq!(read_record(&disk).unwrap().state, BootState::factory());
        // With B marked good, a rollback puts A's release on trial.
        let loaded = read_record(&disk).unwrap();
        let good_b = BootState {
            active: Slot::B,
            tries_left: 0,
            last_good: Slot::B,
        };
        write_record(&disk, &loaded, &good_b).unwrap();
        std::fs::write(&disk.slots[0], bundle_at("0.1.0")).unwrap();
        assert_eq!(rollback(&disk).unwrap(), Slot::A);
        let state = read_record(&disk).unwrap().state;
        assert_eq!((state.active, state.last_good), (Slot::A, Slot::B));
    }
}
