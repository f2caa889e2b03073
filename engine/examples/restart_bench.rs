//! Restart time with and without an index checkpoint.
//!
//! Loads `--keys` keys, overwrites all of them `--rounds - 1` more times (so
//! the log holds `keys × rounds` records), then reopens the store:
//! 1. with no checkpoint: recovery replays the whole log;
//! 2. after `Engine::checkpoint`: recovery loads the checkpoint and replays
//!    only what follows it (nothing here);
//! 3. after the checkpoint plus `--tail` more overwrites: the usual case of
//!    a crash some time after the last checkpoint.
//!
//! Each open runs `--opens` times; the median is reported, per million keys.
//!
//! ```sh
//! cargo run --release -p engine --example restart_bench -- \
//!     --path /var/tmp/veltrix-restart.img --keys 1000000 --rounds 2
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

mod bench_util;

use bench_util::key;
use engine::{format, Engine, EngineConfig, FormatOptions, RecoveryReport};
use nvme::uring::UringOptions;
use nvme::{open, Backend, Namespace, OpenOptions};

struct Args {
    path: PathBuf,
    keys: u64,
    rounds: u64,
    tail: u64,
    value_bytes: usize,
    writers: u64,
    opens: usize,
    size_bytes: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        path: PathBuf::from("/var/tmp/veltrix-restart-bench.img"),
        keys: 1_000_000,
        rounds: 2,
        tail: 50_000,
        value_bytes: 256,
        writers: 64,
        opens: 3,
        size_bytes: 8 << 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--path" => args.path = value.into(),
            "--keys" => args.keys = value.parse().expect("--keys N"),
            "--rounds" => args.rounds = value.parse().expect("--rounds N"),
            "--tail" => args.tail = value.parse().expect("--tail N"),
            "--value-bytes" => args.value_bytes = value.parse().expect("--value-bytes N"),
            "--writers" => args.writers = value.parse().expect("--writers N"),
            "--opens" => args.opens = value.parse().expect("--opens N"),
            "--size-bytes" => args.size_bytes = value.parse().expect("--size-bytes N"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn namespace(args: &Args) -> Arc<dyn Namespace> {
    let options = OpenOptions {
        backend: Backend::Uring(UringOptions::default()),
        create_bytes: Some(args.size_bytes),
        ..OpenOptions::default()
    };
    open(&args.path, &options).expect("open namespace")
}

/// No automatic checkpoints and none at shutdown: the bench decides.
fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        checkpoint_records: 0,
        ..EngineConfig::default()
    }
}

/// Puts keys `0..count` (of `total`, spread so every writer has its own).
fn write(engine: &Arc<Engine>, args: &Args, count: u64, round: u64) {
    let threads: Vec<_> = (0..args.writers)
        .map(|w| {
            let engine = Arc::clone(engine);
            let writers = args.writers;
            let value = vec![round as u8; args.value_bytes];
            std::thread::spawn(move || {
                let mut i = w;
                while i < count {
                    engine.put(&key(i), &value).expect("put");
                    i += writers;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
}

/// Opens the store `opens` times; returns the median seconds and the last
/// report.
fn time_opens(args: &Args) -> (f64, RecoveryReport) {
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..args.opens {
        let ns = namespace(args);
        let started = Instant::now();
        let engine = Engine::open(ns, &config()).expect("reopen");
        times.push(started.elapsed().as_secs_f64());
        report = Some(engine.recovery_report().clone());
        drop(engine);
    }
    times.sort_by(f64::total_cmp);
    (
        times[times.len() / 2],
        report.expect("opened at least once"),
    )
}

fn line(what: &str, seconds: f64, report: &RecoveryReport, keys: u64) {
    println!(
        "{what:<34} {seconds:>7.3} s  {:>7.3} s per million keys  (records replayed {}, segments skipped {}, checkpoint {:?})",
        seconds / (keys as f64 / 1e6),
        report.records,
        report.segments_skipped,
        report.checkpoint
    );
}

fn main() {
    let args = parse_args();
    let _ = std::fs::remove_file(&args.path);
    let ns = namespace(&args);
    let mut options = FormatOptions::new(*b"veltrix-bench-03");
    options.segment_bytes = 8 << 20;
    format(ns.as_ref(), &options).expect("format");
    let engine = Arc::new(Engine::open(ns, &config()).expect("open"));
    let started = Instant::now();
    for round in 0..args.rounds {
        write(&engine, &args, args.keys, round);
    }
    println!(
        "loaded {} keys × {} rounds of {}-byte values in {:.1} s",
        args.keys,
        args.rounds,
        args.value_bytes,
        started.elapsed().as_secs_f64()
    );
    drop(engine);

    let (without, report) = time_opens(&args);
    line("no checkpoint (whole log)", without, &report, args.keys);

    let engine = Arc::new(Engine::open(namespace(&args), &config()).expect("open"));
    let started = Instant::now();
    engine.checkpoint().expect("checkpoint");
    let took = started.elapsed().as_secs_f64();
    let bytes = engine
        .stats()
        .checkpoint_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "checkpoint: {took:.3} s, {bytes} bytes ({:.1} bytes per key)",
        bytes as f64 / args.keys as f64
    );
    drop(engine);
    let (with, report) = time_opens(&args);
    line("checkpoint, nothing after it", with, &report, args.keys);

    let engine = Arc::new(Engine::open(namespace(&args), &config()).expect("open"));
    write(&engine, &args, args.tail.min(args.keys), args.rounds);
    drop(engine);
    let (tail, report) = time_opens(&args);
    line(
        &format!("checkpoint + {} writes after it", args.tail),
        tail,
        &report,
        args.keys,
    );
    println!(
        "speed-up: {:.1}x (nothing after), {:.1}x (with the tail)",
        without / with,
        without / tail
    );
    let _ = std::fs::remove_file(&args.path);
}
