//! Writing a bundle (what `image build` does).

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::{
    FileEntry, Manifest, BUNDLE_FORMAT, BUNDLE_MAGIC, HEADER_BYTES, SIGNATURE_BYTES, SIGNING_DOMAIN,
};
use crate::Version;

/// The manifest of `files` (name, contents) at `version`.
fn manifest_of(version: Version, files: &[(&str, &[u8])]) -> Manifest {
    Manifest {
        version,
        files: files
            .iter()
            .map(|(name, data)| FileEntry {
                name: (*name).to_string(),
                bytes: data.len() as u64,
                sha256: Sha256::digest(data).into(),
            })
            .collect(),
    }
}

fn assemble(manifest: &[u8], signature: &[u8], files: &[(&str, &[u8])]) -> Vec<u8> {
    let payload: usize = files.iter().map(|(_, data)| data.len()).sum();
    let mut out = Vec::with_capacity(HEADER_BYTES + manifest.len() + signature.len() + payload);
    out.extend_from_slice(BUNDLE_MAGIC);
    out.extend_from_slice(&BUNDLE_FORMAT.to_le_bytes());
    out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    out.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(manifest);
    out.extend_from_slice(signature);
    for (_, data) in files {
        out.extend_from_slice(data);
    }
    out
}

/// A bundle of `files` (name, contents; names as [`Manifest::parse`]
/// accepts them) at `version`, signed with `key`.
pub fn write(version: Version, files: &[(&str, &[u8])], key: &SigningKey) -> Vec<u8> {
    let manifest = manifest_of(version, files).encode();
    let mut signed = SIGNING_DOMAIN.to_vec();
    signed.extend_from_slice(manifest.as_bytes());
    let signature = key.sign(&signed).to_bytes();
    assert_eq!(signature.len(), SIGNATURE_BYTES);
    assemble(manifest.as_bytes(), &signature, files)
}

/// The same bundle without a signature: what a build without a signing key
/// could produce. Every appliance refuses it; it exists so that the
/// refusal is tested and says "unsigned", not "corrupt".
pub fn write_unsigned(version: Version, files: &[(&str, &[u8])]) -> Vec<u8> {
    let manifest = manifest_of(version, files).encode();
    assemble(manifest.as_bytes(), &[], files)
}
