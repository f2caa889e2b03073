//! Helpers shared by the engine's file-backed integration tests.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::path::Path;
use std::sync::Arc;

use nvme::{open, Backend, Namespace, OpenOptions};

/// A file-backed namespace on the sync backend: created sparse at `bytes`
/// when absent, opened at its size otherwise.
pub fn file_namespace(path: &Path, bytes: u64) -> Arc<dyn Namespace> {
    let options = OpenOptions {
        backend: Backend::Sync,
        create_bytes: Some(bytes),
        ..OpenOptions::default()
    };
    open(path, &options).unwrap()
}
