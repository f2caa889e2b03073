//! Verifying a bundle before any of it is written to a slot.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{
    FileEntry, Manifest, ManifestError, BUNDLE_FORMAT, BUNDLE_MAGIC, HEADER_BYTES,
    MANIFEST_BYTES_MAX, SIGNATURE_BYTES, SIGNING_DOMAIN,
};
use crate::Version;

/// Why a bundle was refused. Each says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a bundle at all.
    #[error("not a VeltrixDB update bundle (no VXBUNDLE magic)")]
    NotABundle,
    /// A bundle format this build does not read.
    #[error("bundle format {found} is not one this appliance reads (it reads {supported}); install a release in between first")]
    UnsupportedFormat {
        /// Format found.
        found: u32,
        /// Format this build reads.
        supported: u32,
    },
    /// The file ends before the header, manifest or signature says.
    #[error("bundle is truncated: {need} bytes needed, {have} present")]
    Truncated {
        /// Bytes needed.
        need: u64,
        /// Bytes present.
        have: u64,
    },
    /// The header's fields are out of range.
    #[error("bundle header is invalid: {0}")]
    Header(String),
    /// The bundle carries no signature.
    #[error("bundle is unsigned: this appliance installs only bundles signed by a key it trusts")]
    Unsigned,
    /// The signature does not verify with any trusted key: signed by
    /// another key, or the manifest was changed after signing.
    #[error("bundle signature does not verify with any of the {trusted} trusted key(s): signed by a key this appliance does not trust, or the manifest was altered")]
    BadSignature {
        /// Keys tried.
        trusted: usize,
    },
    /// The signed manifest does not parse (its signer wrote it wrong).
    #[error("bundle manifest is invalid: {0}")]
    Manifest(#[from] ManifestError),
    /// The payload is longer or shorter than the manifest's files.
    #[error("bundle payload is {have} bytes, the signed manifest lists {need}: the bundle was altered or cut")]
    PayloadLength {
        /// Bytes the manifest lists.
        need: u64,
        /// Bytes after the signature.
        have: u64,
    },
    /// A file's bytes do not match the signed hash.
    #[error("bundle file {name} was altered: its SHA-256 is {found}, the signed manifest says {expected}")]
    Tampered {
        /// The file.
        name: String,
        /// Hash in the manifest, hex.
        expected: String,
        /// Hash of the bytes, hex.
        found: String,
    },
    /// The bundle's release is older than the one installed.
    #[error("bundle version {bundle} is older than the installed {installed}: refusing a downgrade (roll back with `veltrix update rollback` instead)")]
    Older {
        /// The bundle's version.
        bundle: Version,
        /// The running slot's version.
        installed: Version,
    },
}

/// A bundle that passed every check: its manifest and each file's bytes.
#[derive(Debug)]
pub struct Verified<'a> {
    /// The signed manifest.
    pub manifest: Manifest,
    /// Each file with its verified contents, in manifest order.
    pub files: Vec<(FileEntry, &'a [u8])>,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn need(bundle: &[u8], bytes: usize) -> Result<(), BundleError> {
    if bundle.len() < bytes {
        return Err(BundleError::Truncated {
            need: bytes as u64,
            have: bundle.len() as u64,
        });
    }
    Ok(())
}

/// The header's manifest and signature lengths, checked.
fn header(bundle: &[u8]) -> Result<(usize, usize), BundleError> {
    if bundle.len() < BUNDLE_MAGIC.len() || &bundle[..BUNDLE_MAGIC.len()] != BUNDLE_MAGIC {
        return Err(BundleError::NotABundle);
    }
    need(bundle, HEADER_BYTES)?;
    let format = u32_at(bundle, 8);
    if format != BUNDLE_FORMAT {
        return Err(BundleError::UnsupportedFormat {
            found: format,
            supported: BUNDLE_FORMAT,
        });
    }
    let manifest_bytes = u32_at(bundle, 12) as usize;
    let signature_bytes = u32_at(bundle, 16) as usize;
    if manifest_bytes == 0 || manifest_bytes > MANIFEST_BYTES_MAX {
        return Err(BundleError::Header(format!(
            "manifest of {manifest_bytes} bytes (1..={MANIFEST_BYTES_MAX})"
        )));
    }
    if u32_at(bundle, 20) != 0 {
        return Err(BundleError::Header("reserved bytes are not zero".into()));
    }
    match signature_bytes {
        0 => Err(BundleError::Unsigned),
        SIGNATURE_BYTES => Ok((manifest_bytes, signature_bytes)),
        n => Err(BundleError::Header(format!(
            "signature of {n} bytes (an Ed25519 signature is {SIGNATURE_BYTES})"
        ))),
    }
}

/// Verifies `bundle` for an appliance that trusts `trusted` and runs
/// `installed`. In order: the header; the signature over the manifest
/// (before the manifest is parsed); the manifest; the payload's length and
/// every file's SHA-256; the version, which must not be older than
/// `installed` (the same version is accepted: reinstalling it repairs the
/// other slot).
pub fn verify<'a>(
    bundle: &'a [u8],
    trusted: &[VerifyingKey],
    installed: Version,
) -> Result<Verified<'a>, BundleError> {
    let (manifest_bytes, signature_bytes) = header(bundle)?;
    let manifest_end = HEADER_BYTES + manifest_bytes;
    let payload_start = manifest_end + signature_bytes;
    need(bundle, payload_start)?;
    let manifest = &bundle[HEADER_BYTES..manifest_end];
    let mut signature = [0u8; SIGNATURE_BYTES];
    signature.copy_from_slice(&bundle[manifest_end..payload_start]);
    let signature = Signature::from_bytes(&signature);
    let mut signed = SIGNING_DOMAIN.to_vec();
    signed.extend_from_slice(manifest);
    // verify_strict: no malleable or small-order-key signatures.
    if !trusted
        .iter()
        .any(|key| key.verify_strict(&signed, &signature).is_ok())
    {
        return Err(BundleError::BadSignature {
            trusted: trusted.len(),
        });
    }
    let text = std::str::from_utf8(manifest).map_err(|_| ManifestError {
        line: 0,
        reason: "not UTF-8".into(),
    })?;
    let manifest = Manifest::parse(text)?;
    let payload = &bundle[payload_start..];
    let listed: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    if listed != payload.len() as u64 {
        return Err(BundleError::PayloadLength {
            need: listed,
            have: payload.len() as u64,
        });
    }
    let mut files = Vec::with_capacity(manifest.files.len());
    let mut at = 0usize;
    for entry in &manifest.files {
        // Fits: the sum of sizes equals the payload's length.
        let data = &payload[at..at + entry.bytes as usize];
        at += data.len();
        let digest: [u8; 32] = Sha256::digest(data).into();
        if digest != entry.sha256 {
            return Err(BundleError::Tampered {
                name: entry.name.clone(),
                expected: hex(&entry.sha256),
                found: hex(&digest),
            });
        }
        files.push((entry.clone(), data));
    }
    if manifest.version < installed {
        return Err(BundleError::Older {
            bundle: manifest.version,
            installed,
        });
    }
    Ok(Verified { manifest, files })
}

/// The length of the bundle that starts `prefix`, from its header and its
/// (not yet verified) manifest: how much of a slot partition to read before
/// calling [`verify`], which checks all of it. `prefix` must hold at least
/// the header and the manifest ([`BundleError::Truncated`] says how much).
pub fn stored_length(prefix: &[u8]) -> Result<usize, BundleError> {
    let (manifest_bytes, signature_bytes) = header(prefix)?;
    let manifest_end = HEADER_BYTES + manifest_bytes;
    need(prefix, manifest_end)?;
    let text =
        std::str::from_utf8(&prefix[HEADER_BYTES..manifest_end]).map_err(|_| ManifestError {
            line: 0,
            reason: "not UTF-8".into(),
        })?;
    let manifest = Manifest::parse(text)?;
    let payload: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    usize::try_from(payload)
        .ok()
        .and_then(|p| p.checked_add(manifest_end + signature_bytes))
        .ok_or_else(|| BundleError::Header("bundle larger than memory".into()))
}

/// The manifest of the bundle that starts `prefix`, **not verified**: for
/// showing what a slot holds (`GET /api/update`). Anything acted on goes
/// through [`verify`].
pub fn peek_manifest(prefix: &[u8]) -> Result<Manifest, BundleError> {
    let (manifest_bytes, _) = header(prefix)?;
    let manifest_end = HEADER_BYTES + manifest_bytes;
    need(prefix, manifest_end)?;
    let text =
        std::str::from_utf8(&prefix[HEADER_BYTES..manifest_end]).map_err(|_| ManifestError {
            line: 0,
            reason: "not UTF-8".into(),
        })?;
    Ok(Manifest::parse(text)?)
}
