//! The benchmark harness: VeltrixDB against its peers, one interface for
//! every system ([`driver`]), YCSB-shaped workloads ([`workload`]), costs
//! read from `/proc` ([`measure`]), fio as the device's bound ([`fio`]), a
//! Markdown table with ratios and goals ([`report`]) and SVG plots
//! ([`plot`]).
#![forbid(unsafe_code)]

pub mod driver;
pub mod fio;
pub mod measure;
pub mod plot;
pub mod report;
pub mod run;
pub mod workload;

/// Prints a loud line for a part of the benchmark that cannot run here.
pub fn skipped(what: &str, why: &str) {
    eprintln!("SKIPPED: {what}: {why}");
}
