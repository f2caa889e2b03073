//! The update bundle `image build` writes beside the images: the slot's
//! files (kernel, initramfs, command line) signed with the release key
//! (`docs/upgrades.md`).
//!
//! The signing key comes from `--signing-key FILE`. Without one, the build
//! uses a development key kept in the target directory, made on first use:
//! good for tests and hwtests, never for a release (it is not secret, it is
//! merely not committed).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;
use veltrix_update::bundle::{self, decode_signing_key, encode_signing_key, encode_verifying_key};
use veltrix_update::Version;

/// Where the image keeps the keys it trusts.
pub const TRUSTED_KEYS_DIR: &str = "etc/veltrix/update-keys";
/// Where the image records its own release version.
pub const VERSION_FILE: &str = "etc/veltrix/version";
/// The files of a slot, in bundle order.
pub const SLOT_FILES: [&str; 3] = ["vmlinuz", "initramfs.img", "cmdline"];

/// A fresh Ed25519 signing key from the operating system's randomness.
pub fn generate_key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

/// Writes a new key pair: `DIR/NAME.key` (secret, mode 0600) and
/// `DIR/NAME.pub`. Refuses to overwrite a key.
pub fn write_key_pair(dir: &Path, name: &str) -> anyhow::Result<ed25519_dalek::SigningKey> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir)?;
    let secret = dir.join(format!("{name}.key"));
    let key = generate_key();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)
        .with_context(|| format!("cannot create {} (it must not exist)", secret.display()))?;
    file.write_all(encode_signing_key(&key).as_bytes())?;
    std::fs::write(
        dir.join(format!("{name}.pub")),
        encode_verifying_key(&key.verifying_key()),
    )?;
    Ok(key)
}

/// The signing key of this build: `--signing-key`, or the development key
/// in `TARGET/image-keys/` (made on first use).
pub fn signing_key(
    given: Option<&Path>,
    target: &Path,
) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let path: PathBuf = match given {
        Some(path) => path.to_path_buf(),
        None => {
            let dir = target.join("image-keys");
            let path = dir.join("development.key");
            if !path.exists() {
                write_key_pair(&dir, "development")?;
                eprintln!(
                    "image: made a development signing key {} (not for releases: use --signing-key)",
                    path.display()
                );
            }
            path
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the signing key {}", path.display()))?;
    decode_signing_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes `out/veltrix-update-VERSION.vxb` from the slot files in `out`,
/// verifies it as an appliance would, and returns its path.
pub fn write_bundle(
    out: &Path,
    version: Version,
    key: &ed25519_dalek::SigningKey,
) -> anyhow::Result<PathBuf> {
    let mut contents = Vec::new();
    for name in SLOT_FILES {
        let data = std::fs::read(out.join(name))
            .with_context(|| format!("cannot read {name} for the bundle"))?;
        contents.push((name, data));
    }
    let files: Vec<(&str, &[u8])> = contents.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    let bytes = bundle::write(version, &files, key);
    // Check what was written before anyone installs it.
    bundle::verify(&bytes, &[key.verifying_key()], version)
        .context("the bundle just written does not verify")?;
    let path = out.join(format!("veltrix-update-{version}.vxb"));
    std::fs::write(&path, &bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]
    use super::*;

    #[test]
    fn the_bundle_carries_the_slot_and_verifies_only_with_its_key() {
        let dir = std::env::temp_dir().join(format!("image-bundle-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in SLOT_FILES {
            std::fs::write(dir.join(name), format!("contents of {name}")).unwrap();
        }
        let key = signing_key(None, &dir).unwrap();
        // The development key is made once and reused.
        assert_eq!(signing_key(None, &dir).unwrap().to_bytes(), key.to_bytes());
        let version: Version = "0.3.1".parse().unwrap();
        let path = write_bundle(&dir, version, &key).unwrap();
        assert!(path.ends_with("veltrix-update-0.3.1.vxb"));
        let bytes = std::fs::read(&path).unwrap();
        let verified = bundle::verify(&bytes, &[key.verifying_key()], version).unwrap();
        let names: Vec<&str> = verified
            .files
            .iter()
            .map(|(f, _)| f.name.as_str())
            .collect();
        assert_eq!(names, SLOT_FILES);
        assert_eq!(verified.files[2].1, b"contents of cmdline");
        assert!(bundle::verify(&bytes, &[generate_key().verifying_key()], version).is_err());
        // A key file is never overwritten.
        assert!(write_key_pair(&dir.join("image-keys"), "development").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
