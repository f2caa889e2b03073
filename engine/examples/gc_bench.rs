//! GC benchmarks: tail latency of gets while GC is idle and during a GC
//! storm, write amplification of a steady overwrite workload with GC
//! running, and an overwrite run of many times the namespace's capacity
//! with free space sampled throughout.
//!
//! ```sh
//! cargo run --release -p engine --example gc_bench -- --phase all
//! ```
//!
//! Phases (`--phase latency|space|all`):
//! - **latency**: fill a namespace to `--fill` of its capacity with
//!   `--value-bytes` values, overwrite `--overwrite` of the keys (garbage
//!   in every segment), then run readers (random gets, no value cache: every
//!   get reads the device) and rate-limited overwriters for `--window`
//!   seconds with GC idle, then again during a GC storm.
//! - **space**: on a small namespace holding `--space-live` live data,
//!   overwrite random keys from `--writers` threads until `--multiple` times
//!   the capacity has been written; report free segments over time and
//!   write amplification (log bytes written, GC's relocations included, per
//!   user byte).

mod bench_util;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_util::{key, summary};
use engine::{format, Engine, EngineConfig, EngineError, FormatOptions};
use nvme::uring::UringOptions;
use nvme::{open, Backend, Namespace, OpenOptions};

struct Args {
    phase: String,
    dir: PathBuf,
    size_bytes: u64,
    segment_bytes: u64,
    value_bytes: usize,
    fill: f64,
    overwrite: f64,
    readers: usize,
    write_rate: u64,
    window: u64,
    space_size_bytes: u64,
    space_segment_bytes: u64,
    space_live: f64,
    multiple: u64,
    writers: usize,
    gc_io_share: u8,
}

fn parse_args() -> Args {
    let mut args = Args {
        phase: "all".into(),
        dir: PathBuf::from("/var/tmp"),
        size_bytes: 2 << 30,
        segment_bytes: 8 << 20,
        value_bytes: 4096,
        fill: 0.7,
        overwrite: 0.2,
        readers: 4,
        write_rate: 1000,
        window: 15,
        space_size_bytes: 256 << 20,
        space_segment_bytes: 4 << 20,
        space_live: 0.5,
        multiple: 10,
        writers: 16,
        gc_io_share: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--phase" => args.phase = value,
            "--dir" => args.dir = value.into(),
            "--size-bytes" => args.size_bytes = value.parse().expect("--size-bytes N"),
            "--segment-bytes" => args.segment_bytes = value.parse().expect("--segment-bytes N"),
            "--value-bytes" => args.value_bytes = value.parse().expect("--value-bytes N"),
            "--fill" => args.fill = value.parse().expect("--fill F"),
            "--overwrite" => args.overwrite = value.parse().expect("--overwrite F"),
            "--readers" => args.readers = value.parse().expect("--readers N"),
            "--write-rate" => args.write_rate = value.parse().expect("--write-rate N"),
            "--window" => args.window = value.parse().expect("--window S"),
            "--space-size-bytes" => {
                args.space_size_bytes = value.parse().expect("--space-size-bytes N")
            }
            "--space-live" => args.space_live = value.parse().expect("--space-live F"),
            "--multiple" => args.multiple = value.parse().expect("--multiple N"),
            "--writers" => args.writers = value.parse().expect("--writers N"),
            "--gc-io-share" => args.gc_io_share = value.parse().expect("--gc-io-share N"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn fresh_engine(path: &PathBuf, size: u64, segment: u64, args: &Args) -> Engine {
    let _ = std::fs::remove_file(path);
    let options = OpenOptions {
        backend: Backend::Uring(UringOptions::default()),
        create_bytes: Some(size),
        ..OpenOptions::default()
    };
    let ns: Arc<dyn Namespace> = open(path, &options).expect("open namespace");
    let mut format_options = FormatOptions::new(*b"veltrix-gc-bench");
    format_options.segment_bytes = segment;
    format(ns.as_ref(), &format_options).expect("format");
    let config = EngineConfig {
        workers: 2,
        // Every get reads the device: the cache would hide GC's effect.
        cache_bytes: 0,
        gc_io_share: args.gc_io_share,
        // 4 MiB segments cannot hold the default 4 MiB value limit.
        value_bytes_max: 1 << 20,
        ..EngineConfig::default()
    };
    Engine::open(ns, &config).expect("open engine")
}

/// Puts keys `0..keys` (or random ones when `random`), `threads` at a time.
fn write_keys(engine: &Arc<Engine>, keys: u64, count: u64, threads: u64, value: &Arc<Vec<u8>>) {
    let next = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (engine, next, value) = (Arc::clone(engine), Arc::clone(&next), Arc::clone(value));
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let k = if count == keys { i } else { spread(i) % keys };
                engine.put(&key(k), &value).expect("put");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer");
    }
}

/// A cheap deterministic scramble of `i` (splitmix64).
fn spread(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random gets from `readers` threads and overwrites at `rate` per second
/// for `seconds`. Returns the sorted get latencies in ns.
fn read_overwrite(
    engine: &Arc<Engine>,
    keys: u64,
    readers: usize,
    rate: u64,
    seconds: u64,
    value: &Arc<Vec<u8>>,
) -> Vec<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..readers)
        .map(|t| {
            let (engine, stop) = (Arc::clone(engine), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut n = (t as u64 + 1) << 40;
                while !stop.load(Ordering::Relaxed) {
                    let k = spread(n) % keys;
                    n += 1;
                    let at = Instant::now();
                    let got = engine.get(&key(k)).expect("get");
                    latencies.push(at.elapsed().as_nanos() as u64);
                    assert!(got.is_some(), "key {k} lost");
                }
                latencies
            })
        })
        .collect();
    let writer = {
        let (engine, stop, value) = (Arc::clone(engine), Arc::clone(&stop), Arc::clone(value));
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut done = 0u64;
            let mut n = 1u64 << 50;
            while !stop.load(Ordering::Relaxed) {
                let due = started.elapsed().as_secs_f64() * rate as f64;
                if (done as f64) < due {
                    engine.put(&key(spread(n) % keys), &value).expect("put");
                    n += 1;
                    done += 1;
                } else {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let mut latencies: Vec<u64> = readers
        .into_iter()
        .flat_map(|h| h.join().expect("reader"))
        .collect();
    latencies.sort_unstable();
    latencies
}

fn gc_counters(engine: &Engine) -> (u64, u64, u64) {
    let s = engine.stats();
    (
        s.gc_runs.load(Ordering::Relaxed),
        s.gc_segments_freed.load(Ordering::Relaxed),
        s.gc_records_relocated.load(Ordering::Relaxed),
    )
}

fn latency_phase(args: &Args) {
    let path = args.dir.join("veltrix-gc-bench-latency.img");
    let engine = Arc::new(fresh_engine(
        &path,
        args.size_bytes,
        args.segment_bytes,
        args,
    ));
    let value = Arc::new(vec![0x5Au8; args.value_bytes]);
    let space = engine.space();
    let capacity = u64::from(space.segments) * space.segment_bytes;
    let record = (24 + 16 + args.value_bytes) as u64;
    let keys = (capacity as f64 * args.fill / record as f64) as u64;
    let started = Instant::now();
    write_keys(&engine, keys, keys, 64, &value);
    let overwrites = (keys as f64 * args.overwrite) as u64;
    write_keys(&engine, keys, overwrites, 64, &value);
    let space = engine.space();
    println!(
        "latency: {keys} keys of {} B ({:.0}% of {} MiB live), {overwrites} overwritten, in {:.1} s; {} of {} segments free (reserve {}); GC so far {:?}",
        args.value_bytes,
        space.live_bytes as f64 * 100.0 / capacity as f64,
        capacity >> 20,
        started.elapsed().as_secs_f64(),
        space.free,
        space.segments,
        space.reserve,
        gc_counters(&engine),
    );
    let before = gc_counters(&engine);
    let idle = read_overwrite(
        &engine,
        keys,
        args.readers,
        args.write_rate,
        args.window,
        &value,
    );
    let during_idle = gc_counters(&engine);
    println!(
        "  GC idle:  {} gets/s, {} (GC runs in window: {})",
        idle.len() as u64 / args.window,
        summary(&idle),
        during_idle.0 - before.0
    );
    engine.gc_storm();
    let storm = read_overwrite(
        &engine,
        keys,
        args.readers,
        args.write_rate,
        args.window,
        &value,
    );
    let after = gc_counters(&engine);
    let p99 = |v: &[u64]| bench_util::percentile(v, 0.99) as f64;
    println!(
        "  GC storm: {} gets/s, {} (victims started {}, segments freed {}, records relocated {}); storm P99 / idle P99 = {:.2}",
        storm.len() as u64 / args.window,
        summary(&storm),
        after.0 - during_idle.0,
        after.1 - during_idle.1,
        after.2 - during_idle.2,
        p99(&storm) / p99(&idle)
    );
    drop(engine);
    let _ = std::fs::remove_file(&path);
}

fn space_phase(args: &Args) {
    let path = args.dir.join("veltrix-gc-bench-space.img");
    let engine = Arc::new(fresh_engine(
        &path,
        args.space_size_bytes,
        args.space_segment_bytes,
        args,
    ));
    let value = Arc::new(vec![0xA5u8; args.value_bytes]);
    let space = engine.space();
    let capacity = u64::from(space.segments) * space.segment_bytes;
    let record = (16 + args.value_bytes) as u64;
    let keys = (capacity as f64 * args.space_live / (record + 24) as f64) as u64;
    write_keys(&engine, keys, keys, 16, &value);
    let log_before = engine.stats().bytes_written.load(Ordering::Relaxed);
    let freed_before = gc_counters(&engine).1;
    let target = args.multiple * capacity / record;
    let done = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..args.writers)
        .map(|t| {
            let (engine, done, refused, value) = (
                Arc::clone(&engine),
                Arc::clone(&done),
                Arc::clone(&refused),
                Arc::clone(&value),
            );
            std::thread::spawn(move || {
                let mut n = (t as u64 + 7) << 40;
                while done.load(Ordering::Relaxed) < target {
                    match engine.put(&key(spread(n) % keys), &value) {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(EngineError::OutOfSpace) => {
                            // Counted, and retried after a pause: GC makes room.
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("put: {e}"),
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let mut free_samples = Vec::new();
    while done.load(Ordering::Relaxed) < target {
        std::thread::sleep(Duration::from_millis(500));
        free_samples.push(engine.space().free);
    }
    for w in writers {
        w.join().expect("writer");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let puts = done.load(Ordering::Relaxed);
    let user = puts * record;
    let log = engine.stats().bytes_written.load(Ordering::Relaxed) - log_before;
    let freed = gc_counters(&engine).1 - freed_before;
    // GC's header erases: one block per freed segment.
    let erase = freed * 4096;
    let late = &free_samples[free_samples.len() / 2..];
    let space = engine.space();
    println!(
        "space: {keys} keys of {} B ({:.0}% of {} MiB live); {puts} overwrites = {:.1}× capacity in {elapsed:.1} s ({:.0} puts/s) from {} writers",
        args.value_bytes,
        space.live_bytes as f64 * 100.0 / capacity as f64,
        capacity >> 20,
        user as f64 / capacity as f64,
        puts as f64 / elapsed,
        args.writers,
    );
    println!(
        "  free segments (of {}, reserve {}): first half min {} max {}, second half min {} max {}; segments freed by GC {freed}; writes refused as out of space {}",
        space.segments,
        space.reserve,
        free_samples[..free_samples.len() / 2].iter().min().copied().unwrap_or(0),
        free_samples[..free_samples.len() / 2].iter().max().copied().unwrap_or(0),
        late.iter().min().copied().unwrap_or(0),
        late.iter().max().copied().unwrap_or(0),
        refused.load(Ordering::Relaxed),
    );
    println!(
        "  write amplification (log + GC bytes per user byte): {:.2}",
        (log + erase) as f64 / user as f64
    );
    drop(engine);
    let _ = std::fs::remove_file(&path);
}

fn main() {
    let args = parse_args();
    if args.phase == "latency" || args.phase == "all" {
        latency_phase(&args);
    }
    if args.phase == "space" || args.phase == "all" {
        space_phase(&args);
    }
}
