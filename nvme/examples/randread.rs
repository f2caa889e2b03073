//! 4 KiB random reads through the nvme crate, the block layer's half of the
//! comparison with fio (`scripts/bench-nvme.sh` runs both on one file).
//!
//! ```text
//! cargo run --release -p nvme --example randread -- \
//!     --path FILE --backend sync|uring|uring-sqpoll --qd 32 --seconds 5
//! ```
//!
//! The file must exist and be filled (reads of holes never reach the device).
//! One queue pair keeps `--qd` reads in flight at uniformly random 4 KiB-
//! aligned offsets for `--warmup-seconds`, then for `--seconds` of measuring.
//! Completions are reaped with `wait()` (`--reap block`, the default: sleep
//! in the kernel until one arrives) or by calling `poll()` in a loop
//! (`--reap spin`: as fio does with `--sqthread_poll=1`, keeping one core
//! busy, except that an empty poll yields the CPU to other runnable threads).
//! The last line is machine-readable: `RESULT key=value ...`.
//!
//! What is measured:
//! - `iops`: completions in the measured window ÷ its wall time.
//! - `p50_us`, `p99_us`, `p999_us`: from `submit()` to the completion being
//!   returned by `wait()`, as the caller sees it, in 1 µs buckets.
//! - `cpu_s`: this process's user + system CPU time over the window, from
//!   getrusage(RUSAGE_SELF). That covers every thread of the process,
//!   including the kernel threads io_uring creates inside it: the SQPOLL
//!   thread `iou-sqp-PID` and any `iou-wrk-*` workers. Interrupt and softirq
//!   time spent completing our I/O on another task's clock is not included.
//! - `sqpoll_cpu_s`: the `iou-sqp-*` thread's share, from
//!   /proc/self/task/*/stat (10 ms ticks).
//! - `iops_per_core` = completions ÷ `cpu_s`; `cpu_us_per_io` its inverse.
#![allow(unsafe_code)] // getrusage

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nvme::uring::UringOptions;
use nvme::{Backend, Command, OpenOptions, PoolClass, PoolConfig, QueuePair};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BLOCK_BYTES: usize = 4096;
/// Latency buckets: 1 µs each up to 100 ms; slower reads land in the last.
const LATENCY_BUCKETS: usize = 100_000;

#[derive(Debug)]
struct Args {
    path: PathBuf,
    backend: String,
    queue_depth: u32,
    seconds: f64,
    warmup_seconds: f64,
    sqpoll_idle_ms: u32,
    sqpoll_cpu: Option<u32>,
    seed: u64,
    spin: bool,
}

const USAGE: &str = "usage: randread --path FILE [--backend sync|uring|uring-sqpoll] [--qd N] \
[--seconds S] [--warmup-seconds S] [--sqpoll-idle-ms MS] [--sqpoll-cpu CPU] [--seed N] \
[--reap block|spin]";

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        path: PathBuf::new(),
        backend: "uring".into(),
        queue_depth: 32,
        seconds: 5.0,
        warmup_seconds: 1.0,
        sqpoll_idle_ms: 1000,
        sqpoll_cpu: None,
        seed: 1,
        spin: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--path" => args.path = PathBuf::from(value),
            "--backend" => args.backend = value,
            "--qd" => args.queue_depth = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--warmup-seconds" => args.warmup_seconds = value.parse()?,
            "--sqpoll-idle-ms" => args.sqpoll_idle_ms = value.parse()?,
            "--sqpoll-cpu" => args.sqpoll_cpu = Some(value.parse()?),
            "--seed" => args.seed = value.parse()?,
            "--reap" => {
                args.spin = match value.as_str() {
                    "spin" => true,
                    "block" => false,
                    _ => return Err(format!("--reap spin|block, not {value}").into()),
                }
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
    }
    if args.path.as_os_str().is_empty() {
        return Err(format!("--path is required\n{USAGE}").into());
    }
    if !(args.seconds > 0.0 && args.warmup_seconds >= 0.0) {
        return Err("--seconds must be positive and --warmup-seconds not negative".into());
    }
    Ok(args)
}

/// A fixed-size latency histogram: allocated once, nothing per sample.
struct Histogram {
    counts: Vec<u64>,
    samples: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; LATENCY_BUCKETS],
            samples: 0,
        }
    }

    fn record(&mut self, latency: Duration) {
        let bucket = (latency.as_micros() as usize).min(LATENCY_BUCKETS - 1);
        self.counts[bucket] += 1;
        self.samples += 1;
    }

    /// The smallest bucket at or below which `quantile` of the samples lie.
    fn quantile_us(&self, quantile: f64) -> usize {
        let rank = ((self.samples as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket;
            }
        }
        LATENCY_BUCKETS - 1
    }
}

/// User + system CPU seconds of every thread of this process.
fn process_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `struct rusage` through the pointer, which
    // points to a zeroed local of exactly that type.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return f64::NAN;
    }
    // SAFETY: getrusage returned 0, so it filled the struct (and zeroed is a
    // valid rusage anyway).
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds of this process's SQPOLL threads (`iou-sqp-*`), from
/// /proc/self/task/*/stat (utime + stime, in clock ticks of 10 ms).
fn sqpoll_cpu_seconds() -> f64 {
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid ..."; comm may hold spaces, so split at ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with("iou-sqp-") {
            continue;
        }
        // After ')': state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    ticks as f64 / TICKS_PER_SECOND
}

struct Load<'a> {
    queue: &'a mut dyn QueuePair,
    rng: ChaCha8Rng,
    lba_count: u64,
    issued_at: Vec<Instant>,
    spin: bool,
}

impl Load<'_> {
    fn submit(&mut self, token: u64, buf: nvme::DmaBuf) -> Result<(), Box<dyn Error>> {
        let lba = self.rng.random_range(0..self.lba_count);
        self.issued_at[token as usize] = Instant::now();
        self.queue
            .submit(token, Command::Read { lba, buf })
            .map_err(|refused| format!("read refused: {:?}", refused.reason))?;
        Ok(())
    }

    /// Keeps every slot busy until `until`; returns the completions seen.
    fn run(
        &mut self,
        until: Instant,
        mut histogram: Option<&mut Histogram>,
    ) -> Result<u64, Box<dyn Error>> {
        let mut completions = 0;
        loop {
            let next = if self.spin {
                self.queue.poll()
            } else {
                self.queue.wait(Some(Duration::from_secs(1)))
            };
            let Some(done) = next else {
                if self.queue.in_flight() == 0 {
                    return Err("nothing in flight".into());
                }
                if self.spin {
                    // Without this, this thread and the SQPOLL thread busy
                    // both cores of a two-core machine and starve the kernel
                    // workers that complete the reads (measured: IOPS fall
                    // from ~25k to a few hundred at QD1, fio's too).
                    std::thread::yield_now();
                }
                continue;
            };
            let now = Instant::now();
            done.result.map_err(|e| format!("read failed: {e}"))?;
            if let Some(histogram) = histogram.as_deref_mut() {
                histogram.record(now - self.issued_at[done.token as usize]);
            }
            completions += 1;
            let buf = done.buf.ok_or("a read returns its buffer")?;
            self.submit(done.token, buf)?;
            if now >= until {
                return Ok(completions);
            }
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let backend = match args.backend.as_str() {
        "sync" => Backend::Sync,
        "uring" => Backend::Uring(UringOptions::default()),
        "uring-sqpoll" => Backend::Uring(UringOptions {
            sqpoll: true,
            sqpoll_idle_ms: args.sqpoll_idle_ms,
            sqpoll_cpu: args.sqpoll_cpu,
            iopoll: false,
        }),
        other => return Err(format!("unknown backend {other}\n{USAGE}").into()),
    };
    let options = OpenOptions {
        backend,
        create_bytes: None,
        pool: PoolConfig {
            classes: vec![PoolClass {
                slot_bytes: BLOCK_BYTES,
                slots: args.queue_depth.max(1),
            }],
            hugepages: true,
        },
        ..OpenOptions::default()
    };
    let namespace = nvme::open(&args.path, &options)?;
    let geometry = namespace.geometry();
    if geometry.lba_bytes as usize != BLOCK_BYTES {
        return Err(format!(
            "{}: {}-byte blocks, expected 4096",
            args.path.display(),
            geometry.lba_bytes
        )
        .into());
    }
    let mut queue = namespace.queue_pair(args.queue_depth)?;
    let mut load = Load {
        queue: queue.as_mut(),
        rng: ChaCha8Rng::seed_from_u64(args.seed),
        lba_count: geometry.lba_count,
        issued_at: vec![Instant::now(); args.queue_depth as usize],
        spin: args.spin,
    };
    for token in 0..u64::from(args.queue_depth) {
        let buf = namespace
            .buffers()
            .alloc(BLOCK_BYTES)
            .ok_or("the pool holds one buffer per slot")?;
        load.submit(token, buf)?;
    }
    let mut histogram = Histogram::new();
    load.run(
        Instant::now() + Duration::from_secs_f64(args.warmup_seconds),
        None,
    )?;

    let cpu_before = process_cpu_seconds();
    let sqpoll_before = sqpoll_cpu_seconds();
    let started = Instant::now();
    let completions = load.run(
        started + Duration::from_secs_f64(args.seconds),
        Some(&mut histogram),
    )?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_before;
    let sqpoll_seconds = sqpoll_cpu_seconds() - sqpoll_before;
    // Let the last reads land before the namespace goes.
    while load.queue.in_flight() > 0 {
        drop(load.queue.wait(Some(Duration::from_secs(1))));
    }

    let iops = completions as f64 / wall_seconds;
    println!(
        "{}: qd {} for {:.1} s: {:.0} IOPS, p50 {} us, p99 {} us, {:.2} cores busy ({:.2} SQPOLL), {:.0} IOPS per busy core",
        namespace.describe(),
        args.queue_depth,
        wall_seconds,
        iops,
        histogram.quantile_us(0.50),
        histogram.quantile_us(0.99),
        cpu_seconds / wall_seconds,
        sqpoll_seconds / wall_seconds,
        completions as f64 / cpu_seconds,
    );
    println!(
        "RESULT backend={} reap={} qd={} seconds={:.3} ios={} iops={:.0} p50_us={} p99_us={} p999_us={} cpu_s={:.3} sqpoll_cpu_s={:.2} iops_per_core={:.0} cpu_us_per_io={:.2}",
        args.backend,
        if args.spin { "spin" } else { "block" },
        args.queue_depth,
        wall_seconds,
        completions,
        iops,
        histogram.quantile_us(0.50),
        histogram.quantile_us(0.99),
        histogram.quantile_us(0.999),
        cpu_seconds,
        sqpoll_seconds,
        completions as f64 / cpu_seconds,
        cpu_seconds * 1e6 / completions as f64,
    );
    Ok(())
}
