//! Hit ratio and throughput of the engine's value cache (LIRS, with and
//! without the small-value tweak) against LRU (ours), W-TinyLFU (moka) and
//! S3-FIFO (quick_cache), on the same traces, bounded by the same bytes
//! (every policy charges key bytes + value bytes).
//!
//! ```text
//! cargo run --release -p engine --example cache_bench -- [--runs 3] [--keys 1000000] [--ops 2000000]
//! ```
//!
//! Each access is read-through: a get that misses inserts the value. A put
//! (the small/large workload's burst) inserts unconditionally, as the
//! engine's write-through does. The first third of each trace warms the
//! cache and is not counted. Hit ratios and ops/s are medians over runs; each
//! run draws a fresh trace from its own seed.

#![allow(
    clippy::unwrap_used,
    reason = "benchmark code: a panic is the failure report"
)]

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use engine::cache::{Lirs, LirsConfig, Lru, ValueCache};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const KEY_BYTES: usize = 8;
const SMALL_BYTES: usize = 100;
const LARGE_BYTES: usize = 64 << 10;

/// One request of a trace.
#[derive(Clone, Copy)]
struct Request {
    key: u64,
    large: bool,
    put: bool,
    /// Counted in the hot-set hit ratio.
    hot: bool,
    /// Counted at all (false during warm-up).
    measured: bool,
}

/// What a policy under test must do.
trait Policy {
    fn get(&mut self, key: &[u8]) -> bool;
    fn insert(&mut self, key: &[u8], value: Arc<[u8]>, charge: usize);
}

impl<C: ValueCache<Arc<[u8]>>> Policy for C {
    fn get(&mut self, key: &[u8]) -> bool {
        ValueCache::get(self, key).is_some()
    }
    fn insert(&mut self, key: &[u8], value: Arc<[u8]>, charge: usize) {
        ValueCache::insert(self, key, value, charge);
    }
}

struct Moka(moka::sync::Cache<Vec<u8>, Arc<[u8]>>);

impl Policy for Moka {
    fn get(&mut self, key: &[u8]) -> bool {
        self.0.get(key).is_some()
    }
    fn insert(&mut self, key: &[u8], value: Arc<[u8]>, _: usize) {
        self.0.insert(key.to_vec(), value);
    }
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Vec<u8>, Arc<[u8]>> for Weight {
    fn weight(&self, key: &Vec<u8>, value: &Arc<[u8]>) -> u64 {
        (key.len() + value.len()) as u64
    }
}

struct S3Fifo(quick_cache::unsync::Cache<Vec<u8>, Arc<[u8]>, Weight>);

impl Policy for S3Fifo {
    fn get(&mut self, key: &[u8]) -> bool {
        self.0.get(key).is_some()
    }
    fn insert(&mut self, key: &[u8], value: Arc<[u8]>, _: usize) {
        self.0.insert(key.to_vec(), value);
    }
}

const POLICIES: [&str; 5] = [
    "LIRS + tweak (ours)",
    "LIRS plain (ours)",
    "LRU (ours)",
    "W-TinyLFU (moka 0.12)",
    "S3-FIFO (quick_cache 0.7)",
];

/// LIRS settings from the command line (defaults: the engine's).
#[derive(Clone, Copy)]
struct Tuning {
    hir_percent: u8,
    nonresident_ratio: usize,
}

fn policy(name: &str, capacity_bytes: usize, items: usize, tuning: Tuning) -> Box<dyn Policy> {
    let entry_bytes_max = capacity_bytes / 8;
    let lirs = LirsConfig {
        hir_percent: tuning.hir_percent,
        nonresident_ratio: tuning.nonresident_ratio,
        ..LirsConfig::new(capacity_bytes)
    };
    match name {
        "LIRS + tweak (ours)" => Box::new(Lirs::<Arc<[u8]>>::new(&lirs)),
        "LIRS plain (ours)" => Box::new(Lirs::<Arc<[u8]>>::new(&LirsConfig {
            small_bytes_max: 0,
            ..lirs
        })),
        "LRU (ours)" => Box::new(Lru::<Arc<[u8]>>::new(capacity_bytes, entry_bytes_max)),
        "W-TinyLFU (moka 0.12)" => Box::new(Moka(
            moka::sync::Cache::builder()
                .max_capacity(capacity_bytes as u64)
                .weigher(|k: &Vec<u8>, v: &Arc<[u8]>| (k.len() + v.len()) as u32)
                .build(),
        )),
        "S3-FIFO (quick_cache 0.7)" => Box::new(S3Fifo(quick_cache::unsync::Cache::with_weighter(
            items,
            capacity_bytes as u64,
            Weight,
        ))),
        other => panic!("unknown policy {other}"),
    }
}

/// Zipf over ranks 1..=n with exponent `s`, by inverting the CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / (rank as f64).powf(s);
            cdf.push(sum);
        }
        for p in &mut cdf {
            *p /= sum;
        }
        Zipf { cdf }
    }

    /// A rank in 0..n, 0 the most popular.
    fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&p| p < u).min(self.cdf.len() - 1) as u64
    }
}

/// Spreads ranks over the key space (a bijection on u64).
fn scatter(rank: u64, salt: u64) -> u64 {
    rank.wrapping_add(salt)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

struct Workload {
    name: String,
    /// Every value the same size: Belady's MIN is the optimum.
    uniform: bool,
    capacity_bytes: usize,
    items: usize,
    build: Box<dyn Fn(u64) -> Vec<Request>>,
}

fn zipf_workload(keys: usize, ops: usize, s: f64) -> Workload {
    let zipf = Arc::new(Zipf::new(keys, s));
    Workload {
        name: format!("Zipf {s}"),
        uniform: true,
        capacity_bytes: keys / 10 * (KEY_BYTES + SMALL_BYTES),
        items: keys / 10,
        build: Box::new(move |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..ops)
                .map(|i| Request {
                    key: scatter(zipf.sample(&mut rng), seed),
                    large: false,
                    put: false,
                    hot: false,
                    measured: i >= ops / 3,
                })
                .collect()
        }),
    }
}

/// Half the gets go to a hot set (uniform over half the cache's entries),
/// half to a sequential scan that never repeats a key.
fn scan_workload(keys: usize, ops: usize) -> Workload {
    let items = keys / 10;
    let hot = items / 2;
    Workload {
        name: "scan + hot set".into(),
        uniform: true,
        capacity_bytes: items * (KEY_BYTES + SMALL_BYTES),
        items,
        build: Box::new(move |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut next_scan = 1u64 << 40;
            (0..ops)
                .map(|i| {
                    let is_hot = rng.random_bool(0.5);
                    let key = if is_hot {
                        scatter(rng.random_range(0..hot as u64), seed)
                    } else {
                        next_scan += 1;
                        scatter(next_scan, seed)
                    };
                    Request {
                        key,
                        large: false,
                        put: false,
                        hot: is_hot,
                        measured: i >= ops / 3,
                    }
                })
                .collect()
        }),
    }
}

/// A hot set of 20,000 small values (about half the cache) read uniformly,
/// interrupted by bursts of 64 KiB values: each large value is put, four hot
/// gets pass, then it is read back once. Every burst writes 16 MiB, four
/// times the cache.
fn small_large_workload() -> Workload {
    let hot = 20_000u64;
    let rounds = 24;
    let hot_gets_per_round = 50_000;
    let burst = 256u64;
    Workload {
        name: "small hot set + 64 KiB bursts".into(),
        uniform: false,
        capacity_bytes: 4 << 20,
        items: 40_000,
        build: Box::new(move |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut trace = Vec::new();
            let mut next_large = 1u64 << 40;
            for round in 0..rounds {
                let measured = round >= rounds / 3;
                let hot_get = |rng: &mut ChaCha8Rng| Request {
                    key: scatter(rng.random_range(0..hot), seed),
                    large: false,
                    put: false,
                    hot: true,
                    measured,
                };
                for _ in 0..hot_gets_per_round {
                    trace.push(hot_get(&mut rng));
                }
                for _ in 0..burst {
                    next_large += 1;
                    let large = Request {
                        key: scatter(next_large, seed),
                        large: true,
                        put: true,
                        hot: false,
                        measured,
                    };
                    trace.push(large);
                    for _ in 0..4 {
                        trace.push(hot_get(&mut rng));
                    }
                    trace.push(Request {
                        put: false,
                        ..large
                    });
                }
            }
            trace
        }),
    }
}

#[derive(Default, Clone, Copy)]
struct Outcome {
    hit_ratio: f64,
    hot_hit_ratio: f64,
    ops_per_s: f64,
}

fn replay(policy: &mut dyn Policy, trace: &[Request]) -> Outcome {
    let small: Arc<[u8]> = Arc::from(vec![0x11u8; SMALL_BYTES]);
    let large: Arc<[u8]> = Arc::from(vec![0x22u8; LARGE_BYTES]);
    let (mut gets, mut hits, mut hot_gets, mut hot_hits) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for request in trace {
        let key = request.key.to_be_bytes();
        let value = if request.large { &large } else { &small };
        let charge = KEY_BYTES + value.len();
        if request.put {
            policy.insert(&key, Arc::clone(value), charge);
            continue;
        }
        let hit = policy.get(&key);
        if !hit {
            policy.insert(&key, Arc::clone(value), charge);
        }
        if request.measured {
            gets += 1;
            hits += u64::from(hit);
            if request.hot {
                hot_gets += 1;
                hot_hits += u64::from(hit);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Outcome {
        hit_ratio: hits as f64 / gets.max(1) as f64,
        hot_hit_ratio: hot_hits as f64 / hot_gets.max(1) as f64,
        ops_per_s: trace.len() as f64 / seconds,
    }
}

/// Belady's MIN with bypass: the offline optimum for entries of one size,
/// holding `capacity_items`. Returns the measured hit ratio.
fn belady(trace: &[Request], capacity_items: usize) -> f64 {
    let mut next = vec![usize::MAX; trace.len()];
    let mut last: HashMap<u64, usize> = HashMap::new();
    for (i, request) in trace.iter().enumerate().rev() {
        next[i] = last.insert(request.key, i).unwrap_or(usize::MAX);
    }
    let mut cached: HashMap<u64, usize> = HashMap::new();
    let mut furthest: BinaryHeap<(usize, u64)> = BinaryHeap::new();
    let (mut gets, mut hits) = (0u64, 0u64);
    for (i, request) in trace.iter().enumerate() {
        let hit = cached.contains_key(&request.key);
        if request.measured {
            gets += 1;
            hits += u64::from(hit);
        }
        if !hit && cached.len() >= capacity_items {
            // The cached key used furthest in the future (skipping stale
            // heap entries), unless the newcomer is used even later.
            while let Some(&(at, key)) = furthest.peek() {
                if cached.get(&key) == Some(&at) {
                    break;
                }
                furthest.pop();
            }
            match furthest.peek() {
                Some(&(at, key)) if at > next[i] => {
                    furthest.pop();
                    cached.remove(&key);
                }
                _ => continue,
            }
        }
        cached.insert(request.key, next[i]);
        furthest.push((next[i], request.key));
    }
    hits as f64 / gets.max(1) as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = arg(&args, "--runs", 3);
    let keys = arg(&args, "--keys", 1_000_000);
    let ops = arg(&args, "--ops", 2_000_000);
    let defaults = LirsConfig::new(0);
    let tuning = Tuning {
        hir_percent: arg(&args, "--hir-percent", usize::from(defaults.hir_percent)) as u8,
        nonresident_ratio: arg(&args, "--nonresident-ratio", defaults.nonresident_ratio),
    };
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let workloads = vec![
        zipf_workload(keys, ops, 0.9),
        zipf_workload(keys, ops, 0.99),
        zipf_workload(keys, ops, 1.2),
        scan_workload(keys, ops),
        small_large_workload(),
    ];
    println!(
        "runs {runs}, keys {keys}, ops per Zipf/scan trace {ops} (first third warms up), \
         LIRS hir_percent {} nonresident_ratio {}\n",
        tuning.hir_percent, tuning.nonresident_ratio
    );
    println!("| workload | policy | hit % | hot-set hit % | Mops/s |");
    println!("|---|---|---:|---:|---:|");
    for workload in &workloads {
        if only
            .as_ref()
            .is_some_and(|o| !workload.name.contains(o.as_str()))
        {
            continue;
        }
        let mut outcomes: Vec<Vec<Outcome>> = vec![Vec::new(); POLICIES.len()];
        let mut optimum = Vec::new();
        for run in 0..runs {
            let trace = (workload.build)(run as u64 + 1);
            if workload.uniform {
                optimum.push(belady(&trace, workload.items));
            }
            // Rotate the order each run, so no policy always runs first.
            for k in 0..POLICIES.len() {
                let p = (k + run) % POLICIES.len();
                let mut cache =
                    policy(POLICIES[p], workload.capacity_bytes, workload.items, tuning);
                outcomes[p].push(replay(cache.as_mut(), &trace));
            }
        }
        for (p, name) in POLICIES.iter().enumerate() {
            let runs = &outcomes[p];
            let hit = median(runs.iter().map(|o| o.hit_ratio).collect());
            let hot = median(runs.iter().map(|o| o.hot_hit_ratio).collect());
            let speed = median(runs.iter().map(|o| o.ops_per_s).collect());
            let hot = if runs.iter().any(|o| o.hot_hit_ratio > 0.0) {
                format!("{:.2}", hot * 100.0)
            } else {
                "–".into()
            };
            println!(
                "| {} | {name} | {:.2} | {hot} | {:.2} |",
                workload.name,
                hit * 100.0,
                speed / 1e6
            );
        }
        if !optimum.is_empty() {
            println!(
                "| {} | Belady MIN (offline optimum) | {:.2} | | |",
                workload.name,
                median(optimum) * 100.0
            );
        }
    }
}
