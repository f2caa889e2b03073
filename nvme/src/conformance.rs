//! The conformance suite every backend passes: the same checks on `sync`,
//! `uring`, `sim` and (in the hardware tier) `vfio`.
//!
//! Each check panics with a message on failure, so it can run inside any test
//! harness. [`run_all`] runs every check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Command, Completion, DmaBuf, Namespace, QueuePair, RefuseReason};

/// How long any single wait may take before the suite calls it a hang.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Runs every check on `namespace`.
pub fn run_all(namespace: &Arc<dyn Namespace>, seed: u64) {
    geometry_is_sane(namespace.as_ref());
    round_trips(namespace.as_ref(), seed, 200);
    flush_completes(namespace.as_ref());
    write_zeroes_and_deallocate(namespace.as_ref());
    refuses_bad_requests(namespace.as_ref());
    queue_full_is_backpressure(namespace.as_ref());
    queue_pairs_on_threads(namespace, seed, 4);
}

/// Waits for exactly one completion, failing loudly on a hang.
pub fn wait_one(queue: &mut dyn QueuePair) -> Completion {
    let started = std::time::Instant::now();
    loop {
        if let Some(c) = queue.wait(Some(Duration::from_millis(100))) {
            return c;
        }
        assert!(
            queue.in_flight() > 0,
            "wait_one called with nothing in flight"
        );
        assert!(started.elapsed() < WAIT_LIMIT, "queue pair hung");
    }
}

/// Submits and waits, for one command at a time.
pub fn execute(queue: &mut dyn QueuePair, command: Command) -> Completion {
    let token = 0xC0FFEE;
    queue
        .submit(token, command)
        .unwrap_or_else(|r| panic!("submit refused: {:?}", r.reason));
    let done = wait_one(queue);
    assert_eq!(done.token, token, "completion carries the submitted token");
    done
}

fn fill_pattern(buf: &mut DmaBuf, lba: u64, generation: u64) {
    for (i, chunk) in buf.as_mut_slice().chunks_mut(8).enumerate() {
        let word = lba.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ generation ^ (i as u64);
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
}

/// The geometry is internally consistent.
pub fn geometry_is_sane(namespace: &dyn Namespace) {
    let g = namespace.geometry();
    assert!(g.lba_bytes.is_power_of_two() && g.lba_bytes >= 512);
    assert!(g.lba_count > 0);
    assert!(g.transfer_bytes_max >= g.lba_bytes);
    assert_eq!(g.transfer_bytes_max % g.lba_bytes, 0);
}

/// Random writes at random LBAs and lengths, several in flight, then every
/// written range is read back and compared with the last write to it.
pub fn round_trips(namespace: &dyn Namespace, seed: u64, writes: usize) {
    let g = namespace.geometry();
    let pool = namespace.buffers();
    let mut queue = namespace.queue_pair(16).expect("queue pair");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let lba_bytes = g.lba_bytes as usize;
    let blocks_max = (g.transfer_bytes_max as usize / lba_bytes).min(16) as u64;
    // Confine writes to a window so that overwrites happen.
    let window = g.lba_count.min(4096);
    let mut expected: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut outstanding = 0u32;
    for generation in 0..writes as u64 {
        let blocks = rng.random_range(1..=blocks_max.min(window));
        let lba = rng.random_range(0..=window - blocks);
        let mut buf = pool
            .alloc(blocks as usize * lba_bytes)
            .expect("pool has a buffer");
        fill_pattern(&mut buf, lba, generation);
        for b in 0..blocks {
            let start = b as usize * lba_bytes;
            expected.insert(lba + b, buf.as_slice()[start..start + lba_bytes].to_vec());
        }
        // Overlapping writes in flight together may land in either order, so
        // drain before each write that overlaps nothing we can order.
        while outstanding > 0 {
            let done = wait_one(queue.as_mut());
            assert!(done.result.is_ok(), "write failed: {:?}", done.result);
            outstanding -= 1;
        }
        queue
            .submit(
                generation,
                Command::Write {
                    lba,
                    buf,
                    fua: false,
                },
            )
            .expect("write admitted");
        outstanding += 1;
    }
    while outstanding > 0 {
        let done = wait_one(queue.as_mut());
        assert!(done.result.is_ok(), "write failed: {:?}", done.result);
        outstanding -= 1;
    }
    // Read back with several reads in flight at once.
    let lbas: Vec<u64> = expected.keys().copied().collect();
    for group in lbas.chunks(8) {
        for &lba in group {
            let buf = pool.alloc(lba_bytes).expect("pool has a buffer");
            queue
                .submit(lba, Command::Read { lba, buf })
                .expect("read admitted");
        }
        for _ in group {
            let done = wait_one(queue.as_mut());
            assert!(done.result.is_ok(), "read failed: {:?}", done.result);
            let buf = done.buf.expect("read returns its buffer");
            assert_eq!(
                buf.as_slice(),
                expected[&done.token].as_slice(),
                "lba {} reads back what was last written",
                done.token
            );
        }
    }
}

/// Flush and FUA writes complete successfully.
pub fn flush_completes(namespace: &dyn Namespace) {
    let g = namespace.geometry();
    let mut queue = namespace.queue_pair(4).expect("queue pair");
    let mut buf = namespace
        .buffers()
        .alloc(g.lba_bytes as usize)
        .expect("buffer");
    fill_pattern(&mut buf, 1, 1);
    let done = execute(
        queue.as_mut(),
        Command::Write {
            lba: 1,
            buf,
            fua: false,
        },
    );
    assert!(done.result.is_ok());
    let done = execute(queue.as_mut(), Command::Flush);
    assert!(done.result.is_ok(), "flush: {:?}", done.result);
    assert!(done.buf.is_none());
    if g.supports_fua {
        let buf = done_buf_or_alloc(namespace, g.lba_bytes as usize);
        let done = execute(
            queue.as_mut(),
            Command::Write {
                lba: 2,
                buf,
                fua: true,
            },
        );
        assert!(done.result.is_ok(), "FUA write: {:?}", done.result);
    }
}

fn done_buf_or_alloc(namespace: &dyn Namespace, len: usize) -> DmaBuf {
    namespace.buffers().alloc_zeroed(len).expect("buffer")
}

/// Write-zeroes reads back zeroes; deallocate succeeds, and reads back zeroes
/// where the geometry promises it.
pub fn write_zeroes_and_deallocate(namespace: &dyn Namespace) {
    let g = namespace.geometry();
    let lba_bytes = g.lba_bytes as usize;
    let mut queue = namespace.queue_pair(4).expect("queue pair");
    let base = g.lba_count / 2;
    let read = |queue: &mut dyn QueuePair, lba: u64| -> Vec<u8> {
        let buf = namespace.buffers().alloc(lba_bytes * 4).expect("buffer");
        let done = execute(queue, Command::Read { lba, buf });
        assert!(done.result.is_ok(), "read: {:?}", done.result);
        done.buf.expect("buffer back").as_slice().to_vec()
    };
    for command_zeroes in [true, false] {
        if !command_zeroes && !g.supports_deallocate {
            continue;
        }
        let mut buf = namespace.buffers().alloc(lba_bytes * 4).expect("buffer");
        fill_pattern(&mut buf, base, 7);
        let done = execute(
            queue.as_mut(),
            Command::Write {
                lba: base,
                buf,
                fua: false,
            },
        );
        assert!(done.result.is_ok());
        assert!(read(queue.as_mut(), base).iter().any(|&b| b != 0));
        let command = if command_zeroes {
            Command::WriteZeroes {
                lba: base + 1,
                lbas: 2,
            }
        } else {
            Command::Deallocate {
                lba: base + 1,
                lbas: 2,
            }
        };
        let done = execute(queue.as_mut(), command);
        assert!(done.result.is_ok(), "{:?}", done.result);
        let data = read(queue.as_mut(), base);
        assert!(
            data[..lba_bytes].iter().any(|&b| b != 0),
            "the block before the range is untouched"
        );
        assert!(
            data[3 * lba_bytes..].iter().any(|&b| b != 0),
            "the block after the range is untouched"
        );
        if command_zeroes || g.deallocate_reads_zeroes {
            assert!(
                data[lba_bytes..3 * lba_bytes].iter().all(|&b| b == 0),
                "range reads back as zeroes"
            );
        }
    }
}

fn expect_refused(queue: &mut dyn QueuePair, command: Command, reason: RefuseReason) {
    match queue.submit(1, command) {
        Ok(()) => panic!("expected {reason:?}, the command was admitted"),
        Err(refused) => assert_eq!(refused.reason, reason),
    }
}

/// Misaligned, empty, out-of-range and oversized requests are refused with
/// their command handed back, and the queue still works afterwards.
pub fn refuses_bad_requests(namespace: &dyn Namespace) {
    let g = namespace.geometry();
    let lba_bytes = g.lba_bytes as usize;
    let pool = namespace.buffers();
    let mut queue = namespace.queue_pair(4).expect("queue pair");
    let q = queue.as_mut();
    let buf = pool.alloc(lba_bytes + 1).expect("buffer");
    expect_refused(q, Command::Read { lba: 0, buf }, RefuseReason::Misaligned);
    let buf = pool.alloc(0).expect("buffer");
    expect_refused(
        q,
        Command::Write {
            lba: 0,
            buf,
            fua: false,
        },
        RefuseReason::Misaligned,
    );
    let buf = pool.alloc(lba_bytes).expect("buffer");
    expect_refused(
        q,
        Command::Read {
            lba: g.lba_count,
            buf,
        },
        RefuseReason::OutOfRange,
    );
    let buf = pool.alloc(lba_bytes * 2).expect("buffer");
    expect_refused(
        q,
        Command::Write {
            lba: g.lba_count - 1,
            buf,
            fua: false,
        },
        RefuseReason::OutOfRange,
    );
    let buf = pool.alloc(lba_bytes).expect("buffer");
    expect_refused(
        q,
        Command::Read { lba: u64::MAX, buf },
        RefuseReason::OutOfRange,
    );
    expect_refused(
        q,
        Command::WriteZeroes {
            lba: g.lba_count - 1,
            lbas: 2,
        },
        RefuseReason::OutOfRange,
    );
    expect_refused(
        q,
        Command::WriteZeroes { lba: 0, lbas: 0 },
        RefuseReason::Misaligned,
    );
    assert_eq!(q.in_flight(), 0, "refused commands are not in flight");
    // A refusal hands the buffer back: it is usable for the retry.
    let buf = pool.alloc(lba_bytes).expect("buffer");
    let refused = q
        .submit(
            1,
            Command::Read {
                lba: g.lba_count,
                buf,
            },
        )
        .expect_err("out of range");
    let buf = refused.command.into_buf().expect("buffer handed back");
    let done = execute(q, Command::Read { lba: 0, buf });
    assert!(done.result.is_ok());
}

/// A full queue refuses with `QueueFull`, and accepts again once drained.
pub fn queue_full_is_backpressure(namespace: &dyn Namespace) {
    let g = namespace.geometry();
    let depth = 8;
    let mut queue = namespace.queue_pair(depth).expect("queue pair");
    for i in 0..depth {
        let buf = namespace
            .buffers()
            .alloc(g.lba_bytes as usize)
            .expect("buffer");
        queue
            .submit(
                u64::from(i),
                Command::Read {
                    lba: u64::from(i),
                    buf,
                },
            )
            .expect("within depth");
    }
    assert_eq!(queue.in_flight(), depth);
    let buf = namespace
        .buffers()
        .alloc(g.lba_bytes as usize)
        .expect("buffer");
    let refused = queue
        .submit(99, Command::Read { lba: 0, buf })
        .expect_err("past depth");
    assert_eq!(refused.reason, RefuseReason::QueueFull);
    let mut tokens = Vec::new();
    for _ in 0..depth {
        let done = wait_one(queue.as_mut());
        assert!(done.result.is_ok());
        tokens.push(done.token);
    }
    tokens.sort_unstable();
    assert_eq!(tokens, (0..u64::from(depth)).collect::<Vec<_>>());
    assert_eq!(queue.in_flight(), 0);
    assert!(queue.wait(Some(Duration::from_millis(1))).is_none());
    queue
        .submit(100, refused.command)
        .expect("room again after draining");
    assert_eq!(wait_one(queue.as_mut()).token, 100);
}

/// Several threads, each with its own queue pair, write and verify disjoint
/// regions at the same time.
pub fn queue_pairs_on_threads(namespace: &Arc<dyn Namespace>, seed: u64, threads: u64) {
    let g = namespace.geometry();
    let region = (g.lba_count / threads).min(1024);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let namespace = Arc::clone(namespace);
            scope.spawn(move || {
                let lba_bytes = g.lba_bytes as usize;
                let mut queue = namespace.queue_pair(8).expect("queue pair");
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ t);
                let base = t * region;
                for generation in 0..64u64 {
                    let lba = base + rng.random_range(0..region);
                    let mut buf = namespace.buffers().alloc(lba_bytes).expect("buffer");
                    fill_pattern(&mut buf, lba, generation + t * 1000);
                    let expected = buf.as_slice().to_vec();
                    let done = execute(
                        queue.as_mut(),
                        Command::Write {
                            lba,
                            buf,
                            fua: false,
                        },
                    );
                    assert!(done.result.is_ok());
                    let buf = done.buf.expect("buffer back");
                    let done = execute(queue.as_mut(), Command::Read { lba, buf });
                    assert!(done.result.is_ok());
                    assert_eq!(done.buf.expect("buffer back").as_slice(), expected);
                }
            });
        }
    });
}
