//! In-process engine benchmark: durable puts from many writers, gets,
//! restart time, index bytes per key, and write amplification.
//!
//! ```sh
//! cargo run --release -p engine --example engine_bench -- \
//!     --path /var/tmp/veltrix-bench.img --backend uring --workers 2 \
//!     --writers 64 --value-bytes 1024 --seconds 5
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

mod bench_util;

use bench_util::{key, summary, timed_threads};
use engine::{format, Engine, EngineConfig, FormatOptions};
use nvme::uring::UringOptions;
use nvme::{open, Backend, Namespace, OpenOptions};

struct Args {
    path: PathBuf,
    backend: String,
    workers: usize,
    writers: usize,
    readers: usize,
    value_bytes: usize,
    seconds: u64,
    size_bytes: u64,
    keys: u64,
    commit_interval_us: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        path: PathBuf::from("/var/tmp/veltrix-engine-bench.img"),
        backend: "uring".into(),
        workers: 2,
        writers: 64,
        readers: 2,
        value_bytes: 1024,
        seconds: 5,
        size_bytes: 4 << 30,
        keys: 100_000,
        commit_interval_us: EngineConfig::default().commit_interval_us,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--path" => args.path = value.into(),
            "--backend" => args.backend = value,
            "--workers" => args.workers = value.parse().expect("--workers N"),
            "--writers" => args.writers = value.parse().expect("--writers N"),
            "--readers" => args.readers = value.parse().expect("--readers N"),
            "--value-bytes" => args.value_bytes = value.parse().expect("--value-bytes N"),
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--size-bytes" => args.size_bytes = value.parse().expect("--size-bytes N"),
            "--keys" => args.keys = value.parse().expect("--keys N"),
            "--commit-interval-us" => {
                args.commit_interval_us = value.parse().expect("--commit-interval-us N")
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn namespace(args: &Args) -> Arc<dyn Namespace> {
    let backend = match args.backend.as_str() {
        "sync" => Backend::Sync,
        "uring" => Backend::Uring(UringOptions::default()),
        "sqpoll" => Backend::Uring(UringOptions {
            sqpoll: true,
            sqpoll_idle_ms: 100,
            ..UringOptions::default()
        }),
        other => panic!("unknown backend {other}"),
    };
    let options = OpenOptions {
        backend,
        create_bytes: Some(args.size_bytes),
        ..OpenOptions::default()
    };
    open(&args.path, &options).expect("open namespace")
}

/// The process's user + system CPU seconds so far (`/proc/self/stat`, in
/// clock ticks of 10 ms: coarse, but a phase of seconds spends hundreds).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')').expect("stat has a name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks = |i: usize| fields[i].parse::<u64>().expect("a tick count");
    // utime and stime are fields 14 and 15, so 11 and 12 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn main() {
    let args = parse_args();
    let _ = std::fs::remove_file(&args.path);
    let ns = namespace(&args);
    let mut options = FormatOptions::new(*b"veltrix-bench-01");
    options.segment_bytes = 8 << 20;
    format(ns.as_ref(), &options).expect("format");
    let config = EngineConfig {
        workers: args.workers,
        commit_interval_us: args.commit_interval_us,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::open(Arc::clone(&ns), &config).expect("open"));
    let value = vec![0x5Au8; args.value_bytes];

    // Durable puts from many writers.
    let next = Arc::new(AtomicU64::new(0));
    let cpu_before = process_cpu_seconds();
    let (latencies, elapsed) = {
        let (engine, next, keys) = (Arc::clone(&engine), Arc::clone(&next), args.keys);
        timed_threads(args.writers, args.seconds, move |_| {
            let i = next.fetch_add(1, Ordering::Relaxed) % keys;
            engine.put(&key(i), &value).expect("put");
        })
    };
    let puts = latencies.len() as f64;
    let cpu_us_per_put = (process_cpu_seconds() - cpu_before) * 1e6 / puts.max(1.0);
    let stats = engine.stats();
    let (_, flushes, flush_us_sum) = stats.flush_latency.snapshot();
    let batches = stats.batches.load(Ordering::Relaxed) as f64;
    let device_bytes = stats.bytes_written.load(Ordering::Relaxed) as f64;
    let user_bytes = puts * (16.0 + args.value_bytes as f64);
    println!(
        "put: {} writers, {} B values: {:.0} ops/s, {:.1} writes/flush, {}, write amplification {:.2}, \
         CPU {:.1} us per put (process), flush mean {:.0} us",
        args.writers,
        args.value_bytes,
        puts / elapsed,
        puts / batches.max(1.0),
        summary(&latencies),
        device_bytes / user_bytes,
        cpu_us_per_put,
        flush_us_sum as f64 / flushes.max(1) as f64
    );

    // Gets of the keys written, spread over them.
    let filled = next.load(Ordering::Relaxed).min(args.keys).max(1);
    let (latencies, elapsed) = {
        let engine = Arc::clone(&engine);
        timed_threads(args.readers, args.seconds, move |n| {
            let i = n.wrapping_mul(104_729) % filled;
            assert!(engine.get(&key(i)).expect("get").is_some());
        })
    };
    println!(
        "get (device, {} readers): {:.0} ops/s, {}",
        args.readers,
        latencies.len() as f64 / elapsed,
        summary(&latencies)
    );

    // Restart time.
    let records = stats.records.load(Ordering::Relaxed);
    drop(engine);
    let started = Instant::now();
    let engine = Engine::open(Arc::clone(&ns), &config).expect("reopen");
    let restart = started.elapsed().as_secs_f64();
    let report = engine.recovery_report();
    println!(
        "restart: {:.3} s for {} records ({} keys): {:.2} s per million records",
        restart,
        report.records,
        report.keys,
        restart / (report.records.max(1) as f64 / 1e6)
    );
    println!(
        "index: {} bytes for {} keys: {:.1} bytes per key",
        report.index_bytes,
        report.keys,
        report.index_bytes as f64 / report.keys.max(1) as f64
    );
    // A clean shutdown takes a checkpoint, so the restart replays only what
    // came after it (nothing, here).
    assert!(
        report.records == records || report.checkpoint.is_some(),
        "every written record is replayed or checkpointed"
    );
    drop(engine);
    let _ = std::fs::remove_file(&args.path);
}
