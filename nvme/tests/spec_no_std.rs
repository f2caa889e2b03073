//! The NVMe definitions (`nvme::vfio::spec`) must build without `std`, for
//! firmware or a boot loader (DESIGN.md: "The NVMe command and register
//! definitions ... build with no_std"). This compiles the module's files as a
//! `#![no_std]` library with rustc, so a stray `std::` fails the test suite.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::path::Path;
use std::process::Command;

#[test]
fn spec_module_builds_no_std() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/vfio/spec");
    let dir = tempfile::tempdir().unwrap();
    let mut root = String::from("#![no_std]\n#![deny(warnings)]\n#![allow(dead_code)]\n");
    for module in ["command", "identify", "pi", "prp", "regs"] {
        let path = spec.join(format!("{module}.rs"));
        assert!(path.exists(), "{} is missing", path.display());
        root.push_str(&format!("#[path = {:?}]\npub mod {module};\n", path));
    }
    let root_path = dir.path().join("spec_no_std.rs");
    std::fs::write(&root_path, root).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = match Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "rlib",
            "--crate-name",
            "spec_no_std",
        ])
        .arg("--out-dir")
        .arg(dir.path())
        .arg(&root_path)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!("SKIPPED: cannot run {rustc} to compile the spec module without std: {e}");
            return;
        }
    };
    assert!(
        output.status.success(),
        "the spec module does not build as no_std:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
