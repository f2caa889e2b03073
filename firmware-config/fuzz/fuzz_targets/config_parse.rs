//! Fuzzes `firmware_config::parse` with arbitrary bytes.
//!
//! Run with `cargo +nightly fuzz run config_parse` from `firmware-config/`.
//! The crate's `tests/properties.rs` runs the same body over random inputs
//! on stable, so CI exercises it without cargo-fuzz.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/config_parse.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::run(data));
