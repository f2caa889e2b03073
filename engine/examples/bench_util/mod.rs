//! Helpers shared by the engine's benchmark examples (not an example itself:
//! Cargo only builds `examples/*.rs` and `examples/*/main.rs`).

#![allow(dead_code, reason = "each example uses a different subset")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

/// Runs `op` on `threads` threads for `seconds`, each call timed. `op` gets a
/// per-thread call counter offset by the thread index. Returns the sorted
/// latencies in ns and the elapsed seconds.
pub fn timed_threads(
    threads: usize,
    seconds: u64,
    op: impl Fn(u64) + Send + Sync + 'static,
) -> (Vec<u64>, f64) {
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (op, stop) = (Arc::clone(&op), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut n = t as u64 * 7919;
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    op(n);
                    latencies.push(at.elapsed().as_nanos() as u64);
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("benchmark thread"))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    (latencies, elapsed)
}

pub fn summary(sorted: &[u64]) -> String {
    format!(
        "p50 {} us, p99 {} us, p999 {} us",
        percentile(sorted, 0.5) / 1000,
        percentile(sorted, 0.99) / 1000,
        percentile(sorted, 0.999) / 1000
    )
}

pub fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"bench:k:");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}
