//! The conformance suite on the `sim` backend: with no faults, and with
//! simulated latency (commands completing out of submission order).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::sync::Arc;

use nvme::sim::{FaultConfig, SimConfig, SimNamespace};
use nvme::{conformance, Namespace};

fn namespace(seed: u64, faults: FaultConfig) -> Arc<dyn Namespace> {
    let config = SimConfig {
        faults,
        ..SimConfig::new(16 << 10, seed)
    };
    SimNamespace::new(config)
}

#[test]
fn sim_backend_without_faults() {
    let namespace = namespace(0x5EED, FaultConfig::default());
    assert_eq!(namespace.describe(), "sim (seed 24301, faults none)");
    conformance::run_all(&namespace, 0x5EED);
}

#[test]
fn sim_backend_with_latency() {
    let faults = FaultConfig {
        latency_ticks_max: 50,
        ..FaultConfig::default()
    };
    let namespace = namespace(7, faults);
    assert!(namespace.describe().contains("latency_ticks_max=50"));
    conformance::run_all(&namespace, 0x5EED);
}

#[test]
fn sim_backend_with_small_sectors_and_blocks() {
    let config = SimConfig {
        lba_bytes: 512,
        sector_bytes: 512,
        transfer_bytes_max: 64 << 10,
        faults: FaultConfig {
            latency_ticks_max: 3,
            ..FaultConfig::default()
        },
        ..SimConfig::new(1 << 16, 3)
    };
    let namespace: Arc<dyn Namespace> = SimNamespace::new(config);
    conformance::run_all(&namespace, 11);
}
