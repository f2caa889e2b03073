//! The update bundle: one file holding a slot's contents and a signed
//! manifest (`docs/upgrades.md`, "The bundle").
//!
//! ```text
//! offset  bytes  field
//!      0      8  magic "VXBUNDLE"
//!      8      4  bundle format (1)
//!     12      4  manifest bytes (at most MANIFEST_BYTES_MAX)
//!     16      4  signature bytes: 64 (Ed25519), or 0 for an unsigned bundle
//!     20      4  reserved, zero
//!     24      m  the manifest (UTF-8 text, below)
//!   24+m      s  the signature, over SIGNING_DOMAIN followed by the manifest
//! 24+m+s    ...  the files, in manifest order, back to back, nothing after
//! ```
//!
//! Integers are little-endian. The manifest is text, one field a line:
//!
//! ```text
//! veltrix-update 1
//! version 0.2.0
//! file vmlinuz 8123456 <sha256 hex>
//! file initramfs.img 41234567 <sha256 hex>
//! ```
//!
//! The signature covers the manifest, and the manifest covers every file by
//! size and SHA-256, so one signature check and one hash per file prove the
//! whole bundle. The verifier checks the signature before it parses the
//! manifest: nothing unsigned is interpreted.

mod keys;
mod manifest;
mod verify;
mod write;

pub use keys::{
    decode_signing_key, decode_verifying_key, encode_signing_key, encode_verifying_key,
};
pub use manifest::{FileEntry, Manifest, ManifestError};
pub use verify::{peek_manifest, stored_length, verify, BundleError, Verified};
pub use write::{write, write_unsigned};

/// The bundle's magic.
pub const BUNDLE_MAGIC: &[u8; 8] = b"VXBUNDLE";
/// The bundle format this build writes and reads.
pub const BUNDLE_FORMAT: u32 = 1;
/// Bytes of the fixed header before the manifest.
pub const HEADER_BYTES: usize = 24;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;
/// Longest manifest accepted (a manifest lists a handful of files).
pub const MANIFEST_BYTES_MAX: usize = 64 << 10;
/// Largest file a bundle may carry (a slot holds a kernel and an initramfs).
pub const FILE_BYTES_MAX: u64 = 1 << 30;
/// Most files a manifest may list.
pub const FILES_MAX: usize = 16;
/// Prefixed to the manifest before signing, so that a signature made for
/// anything else with the same key never verifies as a bundle's.
pub const SIGNING_DOMAIN: &[u8] = b"veltrix update manifest v1\0";
