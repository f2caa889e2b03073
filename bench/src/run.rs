//! Runs one system through its phases: fills from 1, 16 and 64 writers,
//! a bulk load of every record, then the YCSB mixes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::driver::{self, Store, StoreOptions, System};
use crate::measure::{self, Cdf, ProcSample};
use crate::workload::{key, value, Distribution, KeyChooser, Mix, KEY_BYTES};

/// Records per bulk-load batch.
const LOAD_BATCH_RECORDS: u64 = 256;

/// Distinct values each thread cycles through.
const VALUES_PER_THREAD: usize = 8;

/// What one system is put through.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// "cached" or "device": which dataset (for labels).
    pub dataset: String,
    /// Records in the dataset.
    pub records: u64,
    pub value_bytes: usize,
    /// Writers of the fill phases.
    pub fill_writers: Vec<usize>,
    /// Threads of the YCSB phases (each with one request in flight).
    pub ycsb_threads: usize,
    pub mixes: Vec<Mix>,
    pub distributions: Vec<Distribution>,
    /// Measured seconds per phase.
    pub seconds: f64,
    /// Threads of the bulk load.
    pub load_threads: usize,
}

/// One measured phase of one system: a row of the table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseResult {
    /// The system's label (or "fio").
    pub system: String,
    pub dataset: String,
    pub value_bytes: usize,
    pub mix: String,
    /// Key distribution, or "sequential" for fills and fio.
    pub distribution: String,
    /// Concurrent requests: writers, client threads or fio's queue depth.
    pub concurrency: usize,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// CPU seconds of the system's process per million operations.
    pub cpu_s_per_mop: f64,
    /// Device bytes written per user byte (key + value) put, for phases
    /// that put.
    pub write_amp: Option<f64>,
    /// Resident memory at the end of the phase, MiB.
    pub rss_mib: f64,
    /// Index bytes per key, where measurable (filled in after the last
    /// phase).
    pub index_bytes_per_key: Option<f64>,
    pub cdf: Cdf,
}

impl PhaseResult {
    /// What identifies the row across runs and systems.
    pub fn row_key(&self) -> (String, usize, String, String, usize) {
        (
            self.dataset.clone(),
            self.value_bytes,
            self.mix.clone(),
            self.distribution.clone(),
            self.concurrency,
        )
    }
}

/// Runs `plan` on a freshly opened `system` and returns its rows.
/// With `with_fio`, fio runs on the engine's namespace file (idle by then)
/// after the engine's own phases, at the YCSB phases' concurrency as its
/// queue depth.
pub fn run_system(
    system: System,
    options: &StoreOptions,
    plan: &Plan,
    with_fio: bool,
) -> Result<Vec<PhaseResult>> {
    let store: Box<dyn Store> =
        driver::open(system, options).with_context(|| format!("open {}", system.label()))?;
    let mut rows = Vec::new();
    for &writers in &plan.fill_writers {
        rows.push(phase(
            system,
            store.as_ref(),
            plan,
            Mix::Fill,
            Distribution::Uniform,
            writers,
        )?);
    }
    load(store.as_ref(), plan)?;
    for &mix in &plan.mixes {
        for &distribution in &plan.distributions {
            rows.push(phase(
                system,
                store.as_ref(),
                plan,
                mix,
                distribution,
                plan.ycsb_threads,
            )?);
        }
    }
    let fio = if with_fio && system == System::Veltrix {
        fio_rows(store.as_ref(), plan)?
    } else {
        Vec::new()
    };
    let index = store.finish(plan.records)?;
    for row in &mut rows {
        row.index_bytes_per_key = index;
    }
    rows.extend(fio);
    Ok(rows)
}

/// fio's random reads on the part of the engine's file that holds data, at
/// the size the engine reads a record in (its header, key and value rounded
/// up to 4 KiB blocks), and fio's durable 4 KiB writes at queue depth 1.
fn fio_rows(store: &dyn Store, plan: &Plan) -> Result<Vec<PhaseResult>> {
    let (Some(file), Some(span_bytes)) = (store.data_file(), store.device_bytes_written()) else {
        return Ok(Vec::new());
    };
    if !crate::fio::available() {
        crate::skipped("fio rows", "fio is not installed (apt-get install fio)");
        return Ok(Vec::new());
    }
    let record_bytes = engine::format::record::record_bytes(KEY_BYTES, plan.value_bytes) as u64;
    let block_bytes = record_bytes.div_ceil(4096) * 4096;
    let read = crate::fio::run(
        &crate::fio::FioJob {
            file: &file,
            span_bytes,
            block_bytes,
            queue_depth: plan.ycsb_threads,
            seconds: plan.seconds,
            rw: "randread",
        },
        &plan.dataset,
        plan.value_bytes,
    )?;
    let scratch = file.with_extension("fio-write");
    let write = crate::fio::run(
        &crate::fio::FioJob {
            file: &scratch,
            span_bytes: 8 << 20,
            block_bytes: 4096,
            queue_depth: 1,
            seconds: plan.seconds,
            rw: "write",
        },
        &plan.dataset,
        plan.value_bytes,
    )?;
    let _ = std::fs::remove_file(&scratch);
    Ok(vec![read, write])
}

/// Writes every record once, in durable batches, from several threads.
fn load(store: &dyn Store, plan: &Plan) -> Result<()> {
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..plan.load_threads.max(1))
            .map(|t| {
                let next = &next;
                scope.spawn(move || -> Result<()> {
                    let mut session = store.session()?;
                    loop {
                        let start = next.fetch_add(LOAD_BATCH_RECORDS, Ordering::Relaxed);
                        if start >= plan.records {
                            return Ok(());
                        }
                        let end = (start + LOAD_BATCH_RECORDS).min(plan.records);
                        let items: Vec<(Vec<u8>, Vec<u8>)> = (start..end)
                            .map(|i| (key(i).to_vec(), value(plan.value_bytes, i ^ t as u64)))
                            .collect();
                        session.put_many(&items)?;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        Ok(())
    })
}

struct ThreadOutcome {
    histogram: hdrhistogram::Histogram<u64>,
    puts: u64,
    missing: u64,
}

fn phase(
    system: System,
    store: &dyn Store,
    plan: &Plan,
    mix: Mix,
    distribution: Distribution,
    threads: usize,
) -> Result<PhaseResult> {
    let chooser = KeyChooser::new(distribution, plan.records);
    let fill_next = AtomicU64::new(0);
    let sessions: Vec<_> = (0..threads)
        .map(|_| store.session())
        .collect::<Result<_>>()?;
    let before: ProcSample = measure::sample(store.pid())?;
    let device_before = store.device_bytes_written();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(plan.seconds);
    let outcomes: Vec<ThreadOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(t, mut session)| {
                let (chooser, fill_next) = (&chooser, &fill_next);
                scope.spawn(move || -> Result<ThreadOutcome> {
                    let mut rng = SmallRng::seed_from_u64(0x5EED ^ (t as u64) << 8);
                    let values: Vec<Vec<u8>> = (0..VALUES_PER_THREAD)
                        .map(|v| value(plan.value_bytes, (t * VALUES_PER_THREAD + v) as u64))
                        .collect();
                    let mut outcome = ThreadOutcome {
                        histogram: measure::histogram(),
                        puts: 0,
                        missing: 0,
                    };
                    let mut n = 0usize;
                    loop {
                        let at = Instant::now();
                        if at >= deadline {
                            return Ok(outcome);
                        }
                        let new_value = &values[n % VALUES_PER_THREAD];
                        n += 1;
                        if mix == Mix::Fill {
                            let i = fill_next.fetch_add(1, Ordering::Relaxed) % plan.records;
                            session.put(&key(i), new_value)?;
                            outcome.puts += 1;
                        } else {
                            let k = key(chooser.next(&mut rng));
                            let read_only = rng.random_range(0..100) < mix.read_percent();
                            if (read_only || mix == Mix::F) && session.get(&k)?.is_none() {
                                outcome.missing += 1;
                            }
                            if !read_only {
                                session.put(&k, new_value)?;
                                outcome.puts += 1;
                            }
                        }
                        let nanos = at.elapsed().as_nanos() as u64;
                        outcome.histogram.saturating_record(nanos.max(1_000));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))?
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = measure::sample(store.pid())?;
    let device_after = store.device_bytes_written();
    let mut histogram = measure::histogram();
    let (mut puts, mut missing) = (0, 0);
    for outcome in &outcomes {
        histogram.add(&outcome.histogram)?;
        puts += outcome.puts;
        missing += outcome.missing;
    }
    if missing > 0 {
        bail!(
            "{}: {missing} reads of loaded keys found nothing ({} {})",
            system.label(),
            mix.name(),
            distribution.name()
        );
    }
    let ops = histogram.len();
    let user_bytes = puts * (KEY_BYTES + plan.value_bytes) as u64;
    let device_bytes = match (device_before, device_after) {
        (Some(b), Some(a)) => a - b,
        _ => after.write_bytes - before.write_bytes,
    };
    let quantile_us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(PhaseResult {
        system: system.label().to_string(),
        dataset: plan.dataset.clone(),
        value_bytes: plan.value_bytes,
        mix: mix.name().to_string(),
        distribution: if mix == Mix::Fill {
            "sequential".to_string()
        } else {
            distribution.name().to_string()
        },
        concurrency: threads,
        ops,
        seconds: elapsed,
        ops_per_s: ops as f64 / elapsed,
        p50_us: quantile_us(0.5),
        p99_us: quantile_us(0.99),
        p999_us: quantile_us(0.999),
        cpu_s_per_mop: (after.cpu_seconds - before.cpu_seconds) / (ops.max(1) as f64 / 1e6),
        write_amp: (user_bytes > 0).then(|| device_bytes as f64 / user_bytes as f64),
        rss_mib: after.rss_bytes as f64 / f64::from(1u32 << 20),
        index_bytes_per_key: None,
        cdf: measure::cdf(&histogram),
    })
}

/// Options of the harness as a whole, shared by every system.
pub fn store_options(
    dir: &std::path::Path,
    cache_bytes: u64,
    workers: usize,
    namespace_bytes: u64,
) -> StoreOptions {
    let veltrixd = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("veltrixd")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| "veltrixd".into());
    StoreOptions {
        dir: dir.to_path_buf(),
        cache_bytes,
        workers,
        namespace_bytes,
        veltrixd,
        redis_server: "redis-server".into(),
    }
}
