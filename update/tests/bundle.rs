//! The bundle verifier refuses every bundle it must, each with its own
//! error, and accepts a good one. Keys are generated here, at test time.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use rand::RngCore;
use veltrix_update::bundle::{self, BundleError, HEADER_BYTES, SIGNING_DOMAIN};
use veltrix_update::Version;

fn fresh_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

fn version(text: &str) -> Version {
    text.parse().unwrap()
}

const KERNEL: &[u8] = b"a kernel, of sorts";
const INITRAMFS: &[u8] = b"an initramfs with an init and a veltrixd in it";

fn files() -> [(&'static str, &'static [u8]); 2] {
    [("vmlinuz", KERNEL), ("initramfs.img", INITRAMFS)]
}

fn signed(key: &SigningKey, at: &str) -> Vec<u8> {
    bundle::write(version(at), &files(), key)
}

fn refusal(bytes: &[u8], key: &SigningKey, installed: &str) -> BundleError {
    match bundle::verify(bytes, &[key.verifying_key()], version(installed)) {
        Ok(_) => panic!("a bundle that must be refused was accepted"),
        Err(e) => e,
    }
}

#[test]
fn a_signed_bundle_verifies_with_its_files() {
    let key = fresh_key();
    let bytes = signed(&key, "0.2.0");
    let verified = bundle::verify(&bytes, &[key.verifying_key()], version("0.1.0")).unwrap();
    assert_eq!(verified.manifest.version, version("0.2.0"));
    let names: Vec<&str> = verified
        .files
        .iter()
        .map(|(f, _)| f.name.as_str())
        .collect();
    assert_eq!(names, ["vmlinuz", "initramfs.img"]);
    assert_eq!(verified.files[0].1, KERNEL);
    assert_eq!(verified.files[1].1, INITRAMFS);
    // The same version again is accepted (repairs the other slot); a key
    // among several trusted ones is found.
    let other = fresh_key();
    let trusted = [other.verifying_key(), key.verifying_key()];
    assert!(bundle::verify(&bytes, &trusted, version("0.2.0")).is_ok());
}

#[test]
fn an_unsigned_bundle_is_refused_as_unsigned() {
    let key = fresh_key();
    let bytes = bundle::write_unsigned(version("0.2.0"), &files());
    let error = refusal(&bytes, &key, "0.1.0");
    assert_eq!(error, BundleError::Unsigned);
    assert!(error.to_string().contains("unsigned"), "{error}");
}

#[test]
fn a_bundle_signed_by_another_key_is_refused() {
    let (ours, theirs) = (fresh_key(), fresh_key());
    let error = refusal(&signed(&theirs, "0.2.0"), &ours, "0.1.0");
    assert_eq!(error, BundleError::BadSignature { trusted: 1 });
    // No trusted key at all: nothing verifies.
    let bytes = signed(&ours, "0.2.0");
    assert!(matches!(
        bundle::verify(&bytes, &[], version("0.1.0")),
        Err(BundleError::BadSignature { trusted: 0 })
    ));
}

#[test]
fn a_changed_manifest_breaks_the_signature() {
    let key = fresh_key();
    let bytes = signed(&key, "0.2.0");
    let text = String::from_utf8_lossy(&bytes[HEADER_BYTES..]).into_owned();
    // Raise the version in the signed text, same length.
    let at = HEADER_BYTES + text.find("version 0.2.0").unwrap() + "version ".len();
    let mut changed = bytes.clone();
    changed[at] = b'9';
    assert_eq!(
        refusal(&changed, &key, "0.1.0"),
        BundleError::BadSignature { trusted: 1 }
    );
}

#[test]
fn a_changed_file_is_named() {
    let key = fresh_key();
    let bytes = signed(&key, "0.2.0");
    for (name, offset_from_end) in [("initramfs.img", 1), ("vmlinuz", INITRAMFS.len() + 1)] {
        let mut changed = bytes.clone();
        let at = changed.len() - offset_from_end;
        changed[at] ^= 0x20;
        match refusal(&changed, &key, "0.1.0") {
            BundleError::Tampered { name: found, .. } => assert_eq!(found, name),
            other => panic!("{name}: refused as {other}"),
        }
    }
}

#[test]
fn a_cut_or_padded_payload_is_refused() {
    let key = fresh_key();
    let bytes = signed(&key, "0.2.0");
    let cut = &bytes[..bytes.len() - 1];
    assert!(matches!(
        refusal(cut, &key, "0.1.0"),
        BundleError::PayloadLength { .. }
    ));
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(matches!(
        refusal(&padded, &key, "0.1.0"),
        BundleError::PayloadLength { .. }
    ));
    assert!(matches!(
        refusal(&bytes[..30], &key, "0.1.0"),
        BundleError::Truncated { .. }
    ));
    assert_eq!(
        refusal(b"GIF89a...", &key, "0.1.0"),
        BundleError::NotABundle
    );
}

#[test]
fn an_older_bundle_is_refused_as_a_downgrade() {
    let key = fresh_key();
    let bytes = signed(&key, "0.2.0");
    let error = refusal(&bytes, &key, "0.10.0");
    assert_eq!(
        error,
        BundleError::Older {
            bundle: version("0.2.0"),
            installed: version("0.10.0")
        }
    );
    assert!(
        error.to_string().contains("older than the installed"),
        "{error}"
    );
}

/// A signature the same key made over the manifest without the domain
/// prefix (as another protocol might) is not a bundle signature.
#[test]
fn a_signature_without_the_domain_is_refused() {
    let key = fresh_key();
    let mut bytes = signed(&key, "0.2.0");
    let manifest_bytes = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let manifest = bytes[HEADER_BYTES..HEADER_BYTES + manifest_bytes].to_vec();
    assert!(!manifest.starts_with(SIGNING_DOMAIN));
    let bare = key.sign(&manifest).to_bytes();
    let at = HEADER_BYTES + manifest_bytes;
    bytes[at..at + 64].copy_from_slice(&bare);
    assert_eq!(
        refusal(&bytes, &key, "0.1.0"),
        BundleError::BadSignature { trusted: 1 }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever single bit of a bundle changes, it is refused.
    #[test]
    fn any_single_bit_flip_is_refused(bit in 0usize..8 * 400) {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut bytes = signed(&key, "0.2.0");
        let bit = bit % (8 * bytes.len());
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(bundle::verify(&bytes, &[key.verifying_key()], version("0.1.0")).is_err());
    }
}

/// The length a slot reader takes from the header and manifest is the
/// bundle's, so the bundle read back from a larger partition verifies.
#[test]
fn stored_length_finds_the_end_in_a_partition() {
    let key = fresh_key();
    let bytes = signed(&key, "0.2.0");
    let mut partition = bytes.clone();
    partition.resize(bytes.len() + 4096, 0);
    let length = bundle::stored_length(&partition).unwrap();
    assert_eq!(length, bytes.len());
    assert!(bundle::verify(
        &partition[..length],
        &[key.verifying_key()],
        version("0.1.0")
    )
    .is_ok());
    assert!(matches!(
        bundle::stored_length(&bytes[..HEADER_BYTES + 3]),
        Err(BundleError::Truncated { .. })
    ));
    assert_eq!(
        bundle::stored_length(&[0u8; 100]),
        Err(BundleError::NotABundle)
    );
}
