//! Updating the appliance in place (`docs/upgrades.md`).
//!
//! - [`bundle`]: the signed update bundle: a slot's files and a manifest
//!   (version, sizes, SHA-256 hashes) signed with Ed25519. `image build`
//!   writes one; [`bundle::verify`] is what the appliance runs before it
//!   writes a byte of a bundle to a slot.
//! - [`boot_state`]: the A/B boot-state record (active slot, tries left,
//!   last good) in two checksummed, sequence-numbered copies, and the
//!   boot-counting rules that read and advance it.
//! - [`Version`]: the release version bundles and slots carry.
#![forbid(unsafe_code)]

pub mod boot_state;
pub mod bundle;
mod version;

pub use version::{Version, VersionError};
