//! Helpers shared by the engine's file-backed integration tests.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::path::Path;
use std::sync::Arc;

use engine::{format, FormatOptions};
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

/// [`file_namespace`] with a fresh, empty store on it: `segment_bytes`
/// segments and a fixed UUID. Ready for `Engine::open`.
#[allow(dead_code, reason = "not every test binary formats its own store")]
pub fn formatted_namespace(path: &Path, bytes: u64, segment_bytes: u64) -> Arc<dyn Namespace> {
    let ns = file_namespace(path, bytes);
    let mut options = FormatOptions::new([9; 16]);
    options.segment_bytes = segment_bytes;
    format(ns.as_ref(), &options).unwrap();
    ns
}

/// Runs one request on the only worker of `opened` (stepped by hand, no
/// threads) to its reply.
#[allow(dead_code, reason = "only the tests that step cores by hand use it")]
pub fn run(opened: &mut engine::Opened, id: u64, op: engine::Op) -> engine::Reply {
    opened.cores[0].accept(id, op, 0);
    for _ in 0..10_000 {
        let mut replies = Vec::new();
        opened.cores[0].step(0, &mut replies);
        if let Some((_, reply)) = replies.into_iter().find(|(r, _)| *r == id) {
            return reply;
        }
    }
    panic!("request {id} never answered");
}
