//! Updating the appliance in place (`docs/upgrades.md`).
//!
//! - [`bundle`]: the signed update bundle: a slot's files and a manifest
//!   (version, sizes, SHA-256 hashes) signed with Ed25519. `image build`
//!   writes one; [`bundle::verify`] is what the appliance runs before it
//!   writes a byte of a bundle to a slot.
//! - [`Version`]: the release version bundles and slots carry.
#![forbid(unsafe_code)]

pub mod bundle;
mod version;

pub use version::{Version, VersionError};
