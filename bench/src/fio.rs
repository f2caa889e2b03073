//! The device's own bound: fio on the engine's namespace file.

use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::measure::Cdf;
use crate::run::PhaseResult;

/// Whether fio is on the PATH.
pub fn available() -> bool {
    Command::new("fio")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What one fio job is asked to do.
#[derive(Clone, Debug)]
pub struct FioJob<'a> {
    pub file: &'a Path,
    /// Bytes of the file from its start to use: the part the engine wrote,
    /// since a read of a hole in a sparse file never reaches the device.
    pub span_bytes: u64,
    pub block_bytes: u64,
    pub queue_depth: usize,
    pub seconds: f64,
    /// "randread", or "write" for durable writes (fdatasync after each).
    pub rw: &'static str,
}

/// Runs fio with io_uring and O_DIRECT and reads its JSON into a row.
pub fn run(job: &FioJob, dataset: &str, value_bytes: usize) -> Result<PhaseResult> {
    let span = (job.span_bytes / job.block_bytes).max(16) * job.block_bytes;
    let mut command = Command::new("fio");
    command
        .arg("--name=bench")
        .arg(format!("--filename={}", job.file.display()))
        .arg(format!("--rw={}", job.rw))
        .arg(format!("--bs={}", job.block_bytes))
        .arg(format!("--size={span}"))
        .arg("--direct=1")
        .arg(format!("--runtime={:.1}", job.seconds.max(0.5)))
        .arg("--time_based")
        .arg("--lat_percentiles=1")
        .arg("--percentile_list=50:99:99.9")
        .arg("--output-format=json");
    if job.rw == "write" {
        // One durable write at a time, as a single writer's put is.
        command.arg("--ioengine=psync").arg("--fdatasync=1");
    } else {
        command
            .arg("--ioengine=io_uring")
            .arg(format!("--iodepth={}", job.queue_depth));
    }
    let output = command.output().context("run fio")?;
    if !output.status.success() {
        bail!(
            "fio failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let json: Value = serde_json::from_slice(&output.stdout).context("fio's JSON")?;
    let job_json = &json["jobs"][0];
    let side = if job.rw == "write" { "write" } else { "read" };
    let stats = &job_json[side];
    let number = |v: &Value| v.as_f64().ok_or_else(|| anyhow!("fio JSON lacks a number"));
    let iops = number(&stats["iops"])?;
    let ops = number(&stats["total_ios"])?;
    let runtime_s = number(&job_json["job_runtime"])? / 1000.0;
    let percentile =
        |p: &str| -> Result<f64> { Ok(number(&stats["lat_ns"]["percentile"][p])? / 1000.0) };
    let cpu_percent = number(&job_json["usr_cpu"])? + number(&job_json["sys_cpu"])?;
    Ok(PhaseResult {
        system: "fio".to_string(),
        dataset: dataset.to_string(),
        value_bytes,
        mix: if job.rw == "write" {
            "fill".to_string()
        } else {
            "YCSB-C".to_string()
        },
        distribution: if job.rw == "write" {
            "sequential".to_string()
        } else {
            "uniform".to_string()
        },
        concurrency: job.queue_depth,
        ops: ops as u64,
        seconds: runtime_s,
        ops_per_s: iops,
        p50_us: percentile("50.000000")?,
        p99_us: percentile("99.000000")?,
        p999_us: percentile("99.900000")?,
        cpu_s_per_mop: cpu_percent / 100.0 * runtime_s / (ops.max(1.0) / 1e6),
        write_amp: None,
        rss_mib: 0.0,
        index_bytes_per_key: None,
        cdf: Cdf::default(),
    })
}
