//! The sim backend through its public API: each fault at its rate and with
//! its promised effect, determinism from the seed, simulated time.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{FaultConfig, SimConfig, SimNamespace};
use crate::{Command, Completion, IoError, Namespace, QueuePair};

const BLOCK: usize = 4096;

fn sim(lba_count: u64, seed: u64, faults: FaultConfig) -> Arc<SimNamespace> {
    SimNamespace::new(SimConfig {
        faults,
        ..SimConfig::new(lba_count, seed)
    })
}

fn pattern(lba: u64, generation: u64, blocks: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(lba ^ (generation << 32));
    let mut data = vec![0u8; blocks * BLOCK];
    rng.fill(&mut data[..]);
    data
}

/// Submits one command and waits for it.
fn run(queue: &mut dyn QueuePair, command: Command) -> Completion {
    queue.submit(0, command).expect("admitted");
    queue.wait(None).expect("in flight")
}

fn write(
    ns: &SimNamespace,
    queue: &mut dyn QueuePair,
    lba: u64,
    data: &[u8],
    fua: bool,
) -> Completion {
    let mut buf = ns.buffers().alloc(data.len()).expect("buffer");
    buf.as_mut_slice().copy_from_slice(data);
    run(queue, Command::Write { lba, buf, fua })
}

fn read(
    ns: &SimNamespace,
    queue: &mut dyn QueuePair,
    lba: u64,
    blocks: usize,
) -> Result<Vec<u8>, IoError> {
    let buf = ns.buffers().alloc(blocks * BLOCK).expect("buffer");
    let done = run(queue, Command::Read { lba, buf });
    done.result.map(|()| {
        done.buf
            .expect("read returns its buffer")
            .as_slice()
            .to_vec()
    })
}

fn differing_bits(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// `count` out of `trials` at probability `p`, within five standard
/// deviations (the draws are fixed by the seed, so this is not flaky; the
/// margin only keeps a re-seeded run honest).
fn assert_rate(kind: &str, count: u64, trials: u64, p: f64) {
    let mean = trials as f64 * p;
    let margin = 5.0 * (trials as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - mean).abs() <= margin,
        "{kind}: {count} of {trials}, expected {mean} ± {margin}"
    );
}

#[test]
fn geometry_and_description() {
    let ns = sim(1000, 42, FaultConfig::default());
    let g = ns.geometry();
    assert_eq!(
        (g.lba_bytes, g.lba_count, g.transfer_bytes_max),
        (4096, 1000, 1 << 20)
    );
    assert!(
        g.supports_flush && g.supports_fua && g.supports_deallocate && g.deallocate_reads_zeroes
    );
    assert_eq!(g.metadata, crate::MetadataFormat::None);
    assert!(!ns.buffers().hugepage_backed());
    assert_eq!(ns.describe(), "sim (seed 42, faults none)");
    ns.set_faults(FaultConfig {
        misdirected_write: 0.25,
        ..FaultConfig::default()
    });
    assert_eq!(
        ns.describe(),
        "sim (seed 42, faults misdirected_write=0.25)"
    );
    assert_eq!(ns.config().faults.misdirected_write, 0.25);
}

#[test]
fn read_bitflips_flip_one_bit_at_their_rate() {
    let ns = sim(64, 1, FaultConfig::default());
    let mut queue = ns.queue_pair(1).expect("queue pair");
    for lba in 0..64 {
        assert!(write(&ns, queue.as_mut(), lba, &pattern(lba, 0, 1), false)
            .result
            .is_ok());
    }
    let p = 0.1;
    ns.set_faults(FaultConfig {
        read_bitflip: p,
        ..FaultConfig::default()
    });
    let trials = 4000;
    let mut flipped = 0;
    for i in 0..trials {
        let lba = i % 64;
        let data = read(&ns, queue.as_mut(), lba, 1).expect("bit flips still succeed");
        match differing_bits(&data, &pattern(lba, 0, 1)) {
            0 => {}
            1 => flipped += 1,
            n => panic!("{n} bits flipped in one read"),
        }
    }
    assert_eq!(ns.stats().faults.read_bitflip, flipped);
    assert_rate("read_bitflip", flipped, trials, p);
    // Transient: the medium is intact.
    for lba in 0..64 {
        assert_eq!(ns.read_volatile(lba), pattern(lba, 0, 1));
    }
}

#[test]
fn transient_errors_change_nothing_at_their_rate() {
    let p = 0.1;
    let ns = sim(
        256,
        2,
        FaultConfig {
            transient_error: p,
            ..FaultConfig::default()
        },
    );
    let mut queue = ns.queue_pair(1).expect("queue pair");
    let (mut trials, mut failed) = (0, 0);
    for generation in 0..2000u64 {
        let lba = generation % 256;
        let before = ns.read_volatile(lba);
        let done = write(
            &ns,
            queue.as_mut(),
            lba,
            &pattern(lba, generation, 1),
            false,
        );
        trials += 1;
        match done.result {
            Ok(()) => assert_eq!(ns.read_volatile(lba), pattern(lba, generation, 1)),
            Err(IoError::Device { lba: at, errno }) => {
                assert_eq!((at, errno), (lba, libc::EIO));
                assert_eq!(
                    ns.read_volatile(lba),
                    before,
                    "a failed write changes nothing"
                );
                failed += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
        trials += 1;
        match read(&ns, queue.as_mut(), lba, 1) {
            Ok(data) => assert_eq!(data, ns.read_volatile(lba)),
            Err(IoError::Device { .. }) => failed += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    let stats = ns.stats();
    assert_eq!(stats.faults.transient_error, failed);
    assert_eq!(stats.faults.total(), failed);
    assert_eq!((stats.reads, stats.writes), (2000, 2000));
    assert_rate("transient_error", failed, trials, p);
}

#[test]
fn latent_sector_errors_fail_reads_until_rewritten() {
    let p = 0.1;
    let ns = sim(
        4096,
        3,
        FaultConfig {
            latent_sector: p,
            ..FaultConfig::default()
        },
    );
    let mut queue = ns.queue_pair(1).expect("queue pair");
    let trials = 2000u64;
    for lba in 0..trials {
        let done = write(&ns, queue.as_mut(), lba, &pattern(lba, 0, 1), false);
        assert!(done.result.is_ok(), "the write itself reports success");
    }
    ns.set_faults(FaultConfig::default());
    let mut unreadable = Vec::new();
    for lba in 0..trials {
        match read(&ns, queue.as_mut(), lba, 1) {
            Ok(data) => assert_eq!(data, pattern(lba, 0, 1)),
            Err(IoError::Media { lba: at }) => {
                assert_eq!(at, lba);
                unreadable.push(lba);
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let stats = ns.stats();
    assert_eq!(stats.faults.latent_sector, unreadable.len() as u64);
    assert_eq!(stats.media_errors, unreadable.len() as u64);
    assert_rate("latent_sector", unreadable.len() as u64, trials, p);
    let bad = unreadable[0];
    // Still failing, also inside a longer read, and after a crash.
    assert_eq!(
        read(&ns, queue.as_mut(), bad, 1),
        Err(IoError::Media { lba: bad })
    );
    let start = bad.saturating_sub(1);
    assert!(matches!(
        read(&ns, queue.as_mut(), start, 3),
        Err(IoError::Media { .. })
    ));
    let crashed = ns.crash(5);
    let mut crashed_queue = crashed.queue_pair(1).expect("queue pair");
    assert_eq!(
        read(&crashed, crashed_queue.as_mut(), bad, 1),
        Err(IoError::Media { lba: bad })
    );
    // Rewritten: readable again.
    assert!(write(&ns, queue.as_mut(), bad, &pattern(bad, 1, 1), false)
        .result
        .is_ok());
    assert_eq!(read(&ns, queue.as_mut(), bad, 1), Ok(pattern(bad, 1, 1)));
    // Added by hand, cleared by write-zeroes.
    ns.add_latent_error(bad);
    assert_eq!(
        read(&ns, queue.as_mut(), bad, 1),
        Err(IoError::Media { lba: bad })
    );
    assert!(
        run(queue.as_mut(), Command::WriteZeroes { lba: bad, lbas: 1 })
            .result
            .is_ok()
    );
    assert_eq!(read(&ns, queue.as_mut(), bad, 1), Ok(vec![0; BLOCK]));
}

#[test]
fn misdirected_writes_land_nearby_and_leave_the_target_alone() {
    let p = 0.1;
    let spacing = 32u64;
    let trials = 1000u64;
    let ns = sim(
        trials * spacing,
        4,
        FaultConfig {
            misdirected_write: p,
            ..FaultConfig::default()
        },
    );
    let mut queue = ns.queue_pair(1).expect("queue pair");
    let blocks = 2;
    let mut misdirected = 0;
    for i in 0..trials {
        let lba = i * spacing + spacing / 2;
        let data = pattern(lba, 0, blocks);
        assert!(write(&ns, queue.as_mut(), lba, &data, i % 2 == 0)
            .result
            .is_ok());
        let landed: Vec<u8> = (0..blocks as u64)
            .flat_map(|b| ns.read_volatile(lba + b))
            .collect();
        if landed == data {
            continue;
        }
        misdirected += 1;
        assert_eq!(
            landed,
            vec![0; blocks * BLOCK],
            "the target keeps its old content"
        );
        let nearby = (lba - 10..lba + 10).any(|at| {
            (0..blocks as u64)
                .flat_map(|b| ns.read_volatile(at + b))
                .collect::<Vec<_>>()
                == data
        });
        assert!(nearby, "write {i} landed near its target");
    }
    assert_eq!(ns.stats().faults.misdirected_write, misdirected);
    assert_rate("misdirected_write", misdirected, trials, p);
}

#[test]
fn flush_errors_at_their_rate_settle_their_writes_for_good() {
    let p = 0.1;
    let ns = sim(
        16,
        5,
        FaultConfig {
            flush_error: p,
            ..FaultConfig::default()
        },
    );
    let mut queue = ns.queue_pair(1).expect("queue pair");
    let trials = 2000u64;
    let mut failed = 0;
    let (mut lost, mut kept) = (0, 0);
    for generation in 0..trials {
        let lba = generation % 16;
        assert!(write(
            &ns,
            queue.as_mut(),
            lba,
            &pattern(lba, generation, 1),
            false
        )
        .result
        .is_ok());
        match run(queue.as_mut(), Command::Flush).result {
            Ok(()) => assert_eq!(ns.read_durable(lba), pattern(lba, generation, 1)),
            Err(IoError::Flush { errno }) => {
                assert_eq!(errno, libc::EIO);
                failed += 1;
                // Settled now: what reads see is what is durable, whichever
                // way it went.
                let durable = ns.read_durable(lba);
                assert_eq!(ns.read_volatile(lba), durable);
                if durable == pattern(lba, generation, 1) {
                    kept += 1;
                } else {
                    lost += 1;
                }
            }
            Err(other) => panic!("{other:?}"),
        }
        // Either way nothing is left for a later flush to cover.
        assert_eq!(ns.uncovered_writes(), 0);
    }
    assert!(lost > 0 && kept > 0, "lost {lost}, kept {kept}");
    assert_eq!(ns.stats().faults.flush_error, failed);
    assert_eq!(
        ns.stats().failed_flush_writes.uncovered as u64,
        failed,
        "one write settled per failed flush"
    );
    assert_eq!(ns.stats().flushes, trials);
    assert_rate("flush_error", failed, trials, p);
}

#[test]
fn flip_bit_at_rest_changes_exactly_one_bit_everywhere() {
    let ns = sim(16, 6, FaultConfig::default());
    let mut queue = ns.queue_pair(1).expect("queue pair");
    let old = pattern(3, 0, 1);
    let new = pattern(3, 1, 1);
    assert!(write(&ns, queue.as_mut(), 3, &old, false).result.is_ok());
    assert!(run(queue.as_mut(), Command::Flush).result.is_ok());
    assert!(write(&ns, queue.as_mut(), 3, &new, false).result.is_ok());
    let bit = 8 * 1000 + 5;
    ns.flip_bit_at_rest(3, bit);
    let durable = ns.read_durable(3);
    let volatile = ns.read_volatile(3);
    assert_eq!(differing_bits(&durable, &old), 1);
    assert_eq!(durable[1000] ^ old[1000], 1 << 5);
    assert_eq!(differing_bits(&volatile, &new), 1);
    assert_eq!(volatile[1000] ^ new[1000], 1 << 5);
    assert_eq!(read(&ns, queue.as_mut(), 3, 1), Ok(volatile.clone()));
    // Whatever a crash leaves, the flip is in it (the flipped bit's sector
    // is old or new, flipped either way).
    for seed in 0..32 {
        let crashed = ns.crash(seed).read_durable(3);
        assert!(crashed[1000] == old[1000] ^ 0x20 || crashed[1000] == new[1000] ^ 0x20);
    }
    // An unwritten block holds zeroes with one bit set.
    ns.flip_bit_at_rest(9, 0);
    let mut expected = vec![0; BLOCK];
    expected[0] = 1;
    assert_eq!(
        (ns.read_durable(9), ns.read_volatile(9)),
        (expected.clone(), expected)
    );
}

#[test]
fn latency_orders_completions_and_moves_the_clock() {
    let latency_ticks_max = 100;
    let ns = sim(
        64,
        7,
        FaultConfig {
            latency_ticks_max,
            ..FaultConfig::default()
        },
    );
    let mut queue = ns.queue_pair(64).expect("queue pair");
    for token in 0..64 {
        let buf = ns.buffers().alloc(BLOCK).expect("buffer");
        queue
            .submit(token, Command::Read { lba: token, buf })
            .expect("admitted");
    }
    let mut order = Vec::new();
    let mut times = Vec::new();
    while queue.in_flight() > 0 {
        match queue.poll() {
            Some(done) => {
                order.push(done.token);
                times.push(ns.now());
            }
            None => ns.advance(1),
        }
    }
    assert!(ns.now() <= latency_ticks_max);
    assert_eq!(order.iter().copied().collect::<BTreeSet<_>>().len(), 64);
    assert_ne!(
        order,
        (0..64).collect::<Vec<_>>(),
        "latency reorders completions"
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // wait() jumps the clock to the next completion.
    let before = ns.now();
    let buf = ns.buffers().alloc(BLOCK).expect("buffer");
    queue
        .submit(1, Command::Read { lba: 0, buf })
        .expect("admitted");
    assert!(queue.wait(None).is_some());
    assert!(ns.now() >= before && ns.now() <= before + latency_ticks_max);
    assert!(queue.wait(None).is_none(), "nothing in flight");

    // Without latency: submission order, and the clock stands still.
    ns.set_faults(FaultConfig::default());
    for token in 0..16 {
        let buf = ns.buffers().alloc(BLOCK).expect("buffer");
        queue
            .submit(token, Command::Read { lba: token, buf })
            .expect("admitted");
    }
    let now = ns.now();
    let order: Vec<u64> = std::iter::from_fn(|| queue.poll().map(|c| c.token)).collect();
    assert_eq!(order, (0..16).collect::<Vec<_>>());
    assert_eq!(ns.now(), now);
}

#[test]
fn a_flush_covers_only_writes_completed_before_its_submission() {
    let ns = sim(16, 8, FaultConfig::default());
    let mut queue = ns.queue_pair(4).expect("queue pair");
    queue.submit(1, Command::Flush).expect("admitted");
    let mut buf = ns.buffers().alloc(BLOCK).expect("buffer");
    buf.as_mut_slice().fill(7);
    queue
        .submit(
            2,
            Command::Write {
                lba: 0,
                buf,
                fua: false,
            },
        )
        .expect("admitted");
    assert_eq!(queue.poll().expect("flush").token, 1);
    assert_eq!(queue.poll().expect("write").token, 2);
    assert_eq!(ns.uncovered_writes(), 1);
    // A write that completes while the flush is in flight is not covered.
    let slow_faults = FaultConfig {
        latency_ticks_max: 1000,
        ..FaultConfig::default()
    };
    let mut found = false;
    for seed in 0..64 {
        let slow = sim(16, seed, slow_faults.clone());
        let mut queue = slow.queue_pair(4).expect("queue pair");
        let buf = slow.buffers().alloc_zeroed(BLOCK).expect("buffer");
        queue
            .submit(
                1,
                Command::Write {
                    lba: 0,
                    buf,
                    fua: false,
                },
            )
            .expect("admitted");
        queue.submit(2, Command::Flush).expect("admitted");
        if queue.wait(None).expect("first").token == 1 {
            assert_eq!(queue.wait(None).expect("flush").token, 2);
            assert_eq!(slow.uncovered_writes(), 1, "seed {seed}");
            found = true;
        }
    }
    assert!(found);
}

#[test]
fn crash_leaves_the_original_as_it_was() {
    let faults = FaultConfig {
        latency_ticks_max: 5,
        read_bitflip: 0.3,
        ..FaultConfig::default()
    };
    let (a, b) = (sim(32, 10, faults.clone()), sim(32, 10, faults));
    let mut queues = [a.queue_pair(4).expect("qp"), b.queue_pair(4).expect("qp")];
    for (ns, queue) in [&a, &b].into_iter().zip(queues.iter_mut()) {
        for lba in 0..8 {
            assert!(write(ns, queue.as_mut(), lba, &pattern(lba, 0, 2), false)
                .result
                .is_ok());
        }
    }
    let crashed = a.crash(77);
    assert_eq!(crashed.uncovered_writes(), 0);
    assert_eq!(crashed.crash_summary().expect("summary").uncovered, 8);
    assert_eq!(crashed.now(), a.now());
    assert_eq!(crashed.config().seed, 77);
    assert_eq!(a.uncovered_writes(), 8);
    // `a`'s stream was not touched: it goes on exactly like its twin.
    for (ns, queue) in [&a, &b].into_iter().zip(queues.iter_mut()) {
        for lba in 0..8 {
            let _ = read(ns, queue.as_mut(), lba, 2);
        }
    }
    assert_eq!(a.stats(), b.stats());
    assert_eq!(a.now(), b.now());
}

/// Everything a run shows, in order: completions, statistics, the volatile
/// view, and some crash states.
#[derive(Debug, PartialEq)]
struct Trace {
    completions: Vec<String>,
    stats: super::SimStats,
    volatile: Vec<Vec<u8>>,
    crashes: Vec<Vec<Vec<u8>>>,
}

/// One run of a mixed workload with every fault on, across two queue pairs
/// driven from one thread.
fn trace(seed: u64) -> Trace {
    let lba_count = 48;
    let ns = sim(
        lba_count,
        seed,
        FaultConfig {
            read_bitflip: 0.05,
            latent_sector: 0.05,
            misdirected_write: 0.05,
            transient_error: 0.05,
            flush_error: 0.2,
            latency_ticks_max: 7,
        },
    );
    let mut queues = [ns.queue_pair(8).expect("qp"), ns.queue_pair(8).expect("qp")];
    // The workload itself comes from a fixed stream, not the sim's.
    let mut rng = ChaCha8Rng::seed_from_u64(0xAB);
    let mut log = Vec::new();
    let mut record = |which: usize, done: Completion, now: u64| {
        let data = done
            .buf
            .as_ref()
            .map(|b| b.as_slice().iter().map(|&x| u64::from(x)).sum::<u64>());
        log.push(format!(
            "q{which} t{} {:?} {data:?} @{now}",
            done.token, done.result
        ));
    };
    for step in 0..600u64 {
        let which = rng.random_range(0..2);
        let queue = &mut queues[which];
        if queue.in_flight() < queue.depth() {
            let lba = rng.random_range(0..lba_count - 2);
            let command = match rng.random_range(0..10) {
                0..=3 => {
                    let mut buf = ns.buffers().alloc(2 * BLOCK).expect("buffer");
                    buf.as_mut_slice().copy_from_slice(&pattern(lba, step, 2));
                    Command::Write {
                        lba,
                        buf,
                        fua: rng.random_bool(0.2),
                    }
                }
                4..=6 => Command::Read {
                    lba,
                    buf: ns.buffers().alloc(BLOCK).expect("buffer"),
                },
                7 => Command::WriteZeroes { lba, lbas: 2 },
                _ => Command::Flush,
            };
            queue.submit(step, command).expect("admitted");
        }
        match rng.random_range(0..4) {
            0 => ns.advance(rng.random_range(0..3)),
            1 => {
                if let Some(done) = queue.poll() {
                    record(which, done, ns.now());
                }
            }
            2 => {
                if let Some(done) = queue.wait(None) {
                    record(which, done, ns.now());
                }
            }
            _ => {}
        }
    }
    let volatile = (0..lba_count).map(|lba| ns.read_volatile(lba)).collect();
    let crashes = (0..4)
        .map(|crash| {
            let crashed = ns.crash(crash);
            (0..lba_count)
                .map(|lba| crashed.read_durable(lba))
                .collect()
        })
        .collect();
    Trace {
        completions: log,
        stats: ns.stats(),
        volatile,
        crashes,
    }
}

#[test]
fn the_same_seed_replays_exactly() {
    let first = trace(11);
    assert!(first.stats.faults.total() > 0 && first.completions.len() > 200);
    for kind in [
        first.stats.faults.read_bitflip,
        first.stats.faults.latent_sector,
        first.stats.faults.misdirected_write,
        first.stats.faults.transient_error,
        first.stats.faults.flush_error,
    ] {
        assert!(kind > 0, "every fault kind fired: {:?}", first.stats.faults);
    }
    let again = trace(11);
    assert_eq!(first.completions, again.completions);
    assert_eq!(first.stats, again.stats);
    assert_eq!(first.volatile, again.volatile);
    assert_eq!(first.crashes, again.crashes);
    assert_eq!(first, again);
    let other = trace(12);
    assert_ne!(
        first.completions, other.completions,
        "another seed, another run"
    );
}

#[test]
#[should_panic(expected = "sector_bytes")]
fn inconsistent_configs_are_refused() {
    let _ = SimNamespace::new(SimConfig {
        sector_bytes: 3,
        ..SimConfig::new(8, 0)
    });
}
