//! What a phase costs, read from `/proc`: CPU time, bytes written to the
//! block layer, resident memory. For in-process systems the process is the
//! harness itself; for servers it is the server's pid.

use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc/PID/stat`'s utime and stime. Linux
/// reports them in USER_HZ, which is 100 on every architecture it builds
/// for; reading sysconf(_SC_CLK_TCK) would need `unsafe` or a new crate.
const USER_HZ: f64 = 100.0;

/// A snapshot of one process's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    /// User + system CPU seconds of every thread so far.
    pub cpu_seconds: f64,
    /// `write_bytes` of `/proc/PID/io`: bytes this process caused to be sent
    /// to the block layer (direct I/O when submitted, buffered I/O when the
    /// page is dirtied).
    pub write_bytes: u64,
    /// `VmRSS` in bytes.
    pub rss_bytes: u64,
}

/// Which process to sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pid {
    /// The harness itself (in-process systems).
    Own,
    /// A server the harness started.
    Child(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::Own => "/proc/self".to_string(),
            Pid::Child(pid) => format!("/proc/{pid}"),
        }
    }
}

/// Reads the counters of `pid`.
pub fn sample(pid: Pid) -> Result<ProcSample> {
    let dir = pid.dir();
    let stat = std::fs::read_to_string(format!("{dir}/stat")).context("read stat")?;
    // The command name may hold spaces; fields are counted after its ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("no ')' in {dir}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3 of proc(5), so utime (14) is index 11.
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short {dir}/stat"))?
            .parse::<f64>()?)
    };
    let cpu_seconds = (ticks(11)? + ticks(12)?) / USER_HZ;
    let io = std::fs::read_to_string(format!("{dir}/io")).context("read io")?;
    let write_bytes = field(&io, "write_bytes:").unwrap_or(0);
    let status = std::fs::read_to_string(format!("{dir}/status")).context("read status")?;
    let rss_bytes = field(&status, "VmRSS:").unwrap_or(0) * 1024;
    Ok(ProcSample {
        cpu_seconds,
        write_bytes,
        rss_bytes,
    })
}

fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A latency histogram in nanoseconds, 1 µs to 100 s at 3 significant
/// digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3).expect("static histogram bounds")
}

/// Points of a latency CDF, for plots: (latency µs, fraction at or below).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Cdf(pub Vec<(f64, f64)>);

/// The CDF at fixed quantiles, denser in the tail.
pub fn cdf(histogram: &Histogram<u64>) -> Cdf {
    let mut points = Vec::new();
    if histogram.is_empty() {
        return Cdf(points);
    }
    let mut q = 0.0f64;
    while q < 0.99999 {
        points.push((histogram.value_at_quantile(q) as f64 / 1000.0, q));
        // Steps of 1/20 of what is left: 0, 0.05, 0.0975, ... up to 0.99999.
        q += ((1.0 - q) / 20.0).max(1e-6);
    }
    points.push((histogram.max() as f64 / 1000.0, 1.0));
    Cdf(points)
}
