//! The conformance suite on the `sync` backend, over a regular file.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use nvme::{conformance, open, Backend, OpenOptions};

#[test]
fn sync_backend_on_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let options = OpenOptions {
        backend: Backend::Sync,
        create_bytes: Some(64 << 20),
        ..OpenOptions::default()
    };
    let namespace = open(&path, &options).unwrap();
    assert!(namespace.describe().contains("sync"));
    conformance::run_all(&namespace, 0x5EED);
}
