//! Restart time: VeltrixDB with and without an index checkpoint, and fjall
//! on the same data in the same run.
//!
//! Loads `--keys` keys, overwrites all of them `--rounds - 1` more times (so
//! a log holds `keys × rounds` records), then measures how long an open takes
//! until the store serves (open plus one get):
//! 1. VeltrixDB with no checkpoint: recovery replays the whole log;
//! 2. VeltrixDB after `Engine::checkpoint`: recovery loads the checkpoint and
//!    replays what follows it (nothing);
//! 3. VeltrixDB after the checkpoint plus `--tail` more overwrites: the usual
//!    case of a crash some time after the last checkpoint;
//! 4. fjall (key-value separation, every write `SyncAll`) on the same keys
//!    and rounds.
//!
//! Each open runs `--opens` times; the median is reported, per million keys.
//!
//! ```sh
//! cargo run --release -p bench --bin restart -- --keys 1000000 --rounds 2
//! ```
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use bench::driver::fjall::FjallStore;
use bench::driver::{Store, StoreOptions};
use bench::workload::key;
use clap::Parser;
use engine::{format, Engine, EngineConfig, FormatOptions, RecoveryReport};
use nvme::uring::UringOptions;
use nvme::{open, Backend, Namespace, OpenOptions};

#[derive(Parser, Debug)]
#[command(about = "Restart time with and without an index checkpoint, against fjall")]
struct Args {
    /// A fresh directory for both systems' files (emptied first).
    #[arg(long, default_value = "/var/tmp/veltrix-restart-bench")]
    dir: PathBuf,
    /// Distinct keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Times every key is written.
    #[arg(long, default_value_t = 2)]
    rounds: u64,
    /// Overwrites after the checkpoint, for the third measurement.
    #[arg(long, default_value_t = 50_000)]
    tail: u64,
    /// Value length.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Concurrent writers loading VeltrixDB.
    #[arg(long, default_value_t = 64)]
    writers: u64,
    /// Opens per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    opens: usize,
    /// Size of VeltrixDB's namespace file.
    #[arg(long, default_value_t = 8 << 30)]
    namespace_bytes: u64,
}

fn namespace(args: &Args) -> Result<Arc<dyn Namespace>> {
    let options = OpenOptions {
        backend: Backend::Uring(UringOptions::default()),
        create_bytes: Some(args.namespace_bytes),
        ..OpenOptions::default()
    };
    open(&args.dir.join("veltrix.img"), &options).context("open namespace")
}

/// No automatic checkpoints and none at shutdown: the bench decides.
fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        checkpoint_records: 0,
        ..EngineConfig::default()
    }
}

fn value(args: &Args, round: u64) -> Vec<u8> {
    vec![round as u8; args.value_bytes]
}

/// Puts keys `0..count` from `--writers` threads.
fn write(engine: &Arc<Engine>, args: &Args, count: u64, round: u64) -> Result<()> {
    let threads: Vec<_> = (0..args.writers)
        .map(|w| {
            let engine = Arc::clone(engine);
            let writers = args.writers;
            let value = value(args, round);
            std::thread::spawn(move || -> Result<()> {
                let mut i = w;
                while i < count {
                    engine.put(&key(i), &value)?;
                    i += writers;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
    }
    Ok(())
}

/// The median of `opens` runs of `open`, in seconds, and the last result.
fn median<T>(opens: usize, mut open: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..opens.max(1) {
        let started = Instant::now();
        let out = open()?;
        times.push(started.elapsed().as_secs_f64());
        last = Some(out);
    }
    times.sort_by(f64::total_cmp);
    let last = last.context("opened at least once")?;
    Ok((times[times.len() / 2], last))
}

/// Opens VeltrixDB and reads one key: the time until it serves.
fn open_veltrix(args: &Args) -> Result<(f64, RecoveryReport)> {
    median(args.opens, || {
        let engine = Engine::open(namespace(args)?, &config())?;
        engine.get(&key(0))?.context("key 0 is there")?;
        Ok(engine.recovery_report().clone())
    })
}

fn line(what: &str, seconds: f64, keys: u64, detail: &str) {
    println!(
        "{what:<40} {seconds:>7.3} s  {:>7.3} s per million keys  {detail}",
        seconds / (keys as f64 / 1e6)
    );
}

fn detail(report: &RecoveryReport) -> String {
    format!(
        "(records replayed {}, segments skipped {}, checkpoint {:?})",
        report.records, report.segments_skipped, report.checkpoint
    )
}

fn fjall_options(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: dir.to_path_buf(),
        cache_bytes: 64 << 20,
        workers: 2,
        namespace_bytes: 0,
        veltrixd: PathBuf::new(),
        redis_server: PathBuf::new(),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;

    // VeltrixDB.
    let ns = namespace(&args)?;
    let mut options = FormatOptions::new(*b"veltrix-bench-03");
    options.segment_bytes = 8 << 20;
    format(ns.as_ref(), &options)?;
    let engine = Arc::new(Engine::open(ns, &config())?);
    let started = Instant::now();
    for round in 0..args.rounds {
        write(&engine, &args, args.keys, round)?;
    }
    println!(
        "VeltrixDB: loaded {} keys × {} rounds of {}-byte values in {:.1} s",
        args.keys,
        args.rounds,
        args.value_bytes,
        started.elapsed().as_secs_f64()
    );
    drop(engine);
    let (without, report) = open_veltrix(&args)?;
    line(
        "VeltrixDB, no checkpoint",
        without,
        args.keys,
        &detail(&report),
    );

    let engine = Arc::new(Engine::open(namespace(&args)?, &config())?);
    let started = Instant::now();
    engine.checkpoint()?;
    let took = started.elapsed().as_secs_f64();
    let bytes = engine
        .stats()
        .checkpoint_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "VeltrixDB checkpoint: {took:.3} s, {bytes} bytes ({:.1} bytes per key)",
        bytes as f64 / args.keys as f64
    );
    drop(engine);
    let (with, report) = open_veltrix(&args)?;
    line("VeltrixDB, checkpoint", with, args.keys, &detail(&report));

    let engine = Arc::new(Engine::open(namespace(&args)?, &config())?);
    write(&engine, &args, args.tail.min(args.keys), args.rounds)?;
    drop(engine);
    let (tail, report) = open_veltrix(&args)?;
    line(
        &format!("VeltrixDB, checkpoint + {} writes", args.tail),
        tail,
        args.keys,
        &detail(&report),
    );
    let _ = std::fs::remove_file(args.dir.join("veltrix.img"));

    // fjall, the same keys and rounds, loaded in durable batches.
    let fjall_dir = args.dir.join("fjall-store");
    let store = FjallStore::open(&fjall_options(&fjall_dir))?;
    let mut session = store.session()?;
    let started = Instant::now();
    for round in 0..args.rounds {
        let value = value(&args, round);
        let mut batch = Vec::with_capacity(1000);
        for i in 0..args.keys {
            batch.push((key(i).to_vec(), value.clone()));
            if batch.len() == 1000 || i + 1 == args.keys {
                session.put_many(&batch)?;
                batch.clear();
            }
        }
    }
    println!(
        "fjall: loaded the same in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(session);
    drop(store);
    let (fjall, ()) = median(args.opens, || {
        let store = FjallStore::open(&fjall_options(&fjall_dir))?;
        store.session()?.get(&key(0))?.context("key 0 is there")?;
        Ok(())
    })?;
    line("fjall (KV-separation, SyncAll)", fjall, args.keys, "");
    println!(
        "VeltrixDB speed-up from the checkpoint: {:.1}x (nothing after), {:.1}x (with the tail); \
         VeltrixDB with a checkpoint ÷ fjall: {:.2} (below 1 is faster)",
        without / with,
        without / tail,
        with / fjall
    );
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}
