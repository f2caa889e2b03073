//! veltrixd with the vfio backend (the userspace NVMe driver) on the host:
//! bad addresses and missing devices give a clear error and exit status 1,
//! never a panic. Serving from a real controller needs a guest with an
//! IOMMU: the hardware tier's `vfio-*` scenarios (docs/hwtests.md).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::process::{Command, Output};

fn veltrixd(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_veltrixd"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--native-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap()
}

fn refused(args: &[&str], expected: &str) {
    let o = veltrixd(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn malformed_vfio_addresses_are_refused_clearly() {
    for bad in [
        "vfio:",
        "vfio:00:04.0",
        "vfio:0000:00:04.0/ns0",
        "vfio:0000:00:04.0/1",
        "vfio:zzzz:00:04.0/ns1",
    ] {
        refused(
            &["--namespace", bad],
            "is not a vfio namespace address: expected vfio:DDDD:BB:DD.F[/nsN]",
        );
        refused(
            &["--backend", "vfio", "--namespace", bad],
            "is not a vfio namespace address",
        );
    }
}

#[test]
fn backend_vfio_needs_a_vfio_address() {
    refused(
        &["--backend", "vfio", "--namespace", "/dev/nvme0n1"],
        "backend vfio needs a vfio namespace address",
    );
    // The embedded default (a file) cannot be served by the vfio backend.
    refused(&["--backend", "vfio"], "is not a vfio namespace address");
}

#[test]
fn a_missing_controller_is_an_error_not_a_panic() {
    // No machine has a PCI device at ffff:ff:1f.7.
    refused(
        &["--namespace", "vfio:ffff:ff:1f.7/ns1"],
        "the vfio backend cannot use vfio:ffff:ff:1f.7/ns1: ffff:ff:1f.7: no such PCI device",
    );
}

#[test]
fn the_config_file_may_choose_vfio() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("veltrix.toml");
    std::fs::write(
        &config,
        "[[namespace]]\npath = \"vfio:ffff:ff:1f.7/ns2\"\nbackend = \"vfio\"\n",
    )
    .unwrap();
    refused(
        &["--config", config.to_str().unwrap()],
        "ffff:ff:1f.7: no such PCI device",
    );
}

#[test]
fn serving_from_a_real_controller_runs_in_the_hardware_tier() {
    // The device path needs an IOMMU and a controller bound to vfio-pci:
    // `cargo run -p hwtests -- vfio-smoke vfio-power-loss`.
    println!(
        "SKIPPED: veltrixd on a real vfio device cannot run on the host; see the hardware tier's vfio-smoke"
    );
}
