//! vfio against io_uring in one guest run: 4 KiB random reads at queue depth
//! 1 and 32 on the same namespace, with every io_uring mode the uring backend
//! has (plain, SQPOLL, SQPOLL+IOPOLL) through the kernel's nvme driver, then
//! with the userspace driver after rebinding the controller to vfio-pci.
//!
//! Run as root in a guest with an IOMMU and `nvme poll_queues=1`
//! (`scripts/vfio-guest-check.sh bench` does all of it):
//!
//! ```text
//! vfio_bench [SECONDS]
//! ```
//!
//! Per mode and depth it prints one `BENCH` line: completions per second,
//! CPU seconds the whole process used (getrusage RUSAGE_SELF: user + system,
//! which includes io_uring's SQPOLL thread, a thread of this process), and
//! IOPS per busy core = completions ÷ CPU seconds. Reads are spread over
//! the first 256 MiB of namespace 1, filled first so no read hits a hole.
#![allow(unsafe_code)] // getrusage

use std::time::{Duration, Instant};

use nvme::uring::UringOptions;
use nvme::vfio::{bind, VfioOptions};
use nvme::{Backend, Command, Namespace, OpenOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BLOCK_BYTES: usize = 4096;
const SPAN_BYTES: u64 = 256 << 20;
const WARMUP: Duration = Duration::from_secs(1);

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the rusage the pointer points to, a live local.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: getrusage returned 0, so it initialised the struct (which was
    // zeroed besides).
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

struct Outcome {
    iops: f64,
    cpu_s: f64,
    wall_s: f64,
    completions: u64,
}

/// Keeps `depth` random reads in flight for WARMUP + `seconds`; reaps with
/// `poll()` in a loop when `spin`, else with a blocking `wait()`.
fn randread(ns: &dyn Namespace, depth: u32, seconds: f64, spin: bool) -> Result<Outcome, String> {
    let mut queue = ns.queue_pair(depth).map_err(|e| e.to_string())?;
    let span_blocks = SPAN_BYTES.min(ns.geometry().capacity_bytes()) / BLOCK_BYTES as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(depth.into());
    for token in 0..u64::from(depth) {
        let buf = ns.buffers().alloc(BLOCK_BYTES).ok_or("buffer")?;
        let lba = rng.random_range(0..span_blocks);
        queue
            .submit(token, Command::Read { lba, buf })
            .map_err(|r| format!("{:?}", r.reason))?;
    }
    let started = Instant::now();
    let mut measuring: Option<(Instant, f64)> = None;
    let mut completions = 0u64;
    let limit = Duration::from_secs_f64(seconds);
    loop {
        let done = if spin {
            match queue.poll() {
                Some(done) => done,
                None => continue,
            }
        } else {
            queue
                .wait(Some(Duration::from_secs(10)))
                .ok_or("a read took over 10 s")?
        };
        done.result.map_err(|e| format!("read: {e}"))?;
        let buf = done.buf.ok_or("buffer back")?;
        match measuring {
            None if started.elapsed() >= WARMUP => {
                measuring = Some((Instant::now(), cpu_seconds()));
            }
            Some((since, _)) if since.elapsed() >= limit => break,
            Some(_) => completions += 1,
            None => {}
        }
        let lba = rng.random_range(0..span_blocks);
        queue
            .submit(done.token, Command::Read { lba, buf })
            .map_err(|r| format!("{:?}", r.reason))?;
    }
    let (since, cpu_before) = measuring.ok_or("never measured")?;
    let wall_s = since.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds() - cpu_before;
    // Drain, so the buffers come home before the queue drops.
    while queue.in_flight() > 0 {
        let _ = queue.wait(Some(Duration::from_secs(10)));
    }
    Ok(Outcome {
        iops: completions as f64 / wall_s,
        cpu_s,
        wall_s,
        completions,
    })
}

fn report(mode: &str, depth: u32, outcome: &Result<Outcome, String>) {
    match outcome {
        Ok(o) => println!(
            "BENCH mode={mode} qd={depth} iops={:.0} cpu_s={:.2} wall_s={:.2} busy_cores={:.2} iops_per_core={:.0} cpu_us_per_io={:.1} completions={}",
            o.iops,
            o.cpu_s,
            o.wall_s,
            o.cpu_s / o.wall_s,
            o.completions as f64 / o.cpu_s.max(1e-9),
            o.cpu_s * 1e6 / (o.completions.max(1) as f64),
            o.completions
        ),
        Err(e) => println!("BENCH mode={mode} qd={depth} error={e:?}"),
    }
}

fn block_device_for_nsid(nsid: u32) -> Option<String> {
    for entry in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("nvme") || name.contains('c') {
            continue;
        }
        let id = std::fs::read_to_string(entry.path().join("nsid")).unwrap_or_default();
        if id.trim() == nsid.to_string() {
            return Some(format!("/dev/{name}"));
        }
    }
    None
}

fn fill(ns: &dyn Namespace) -> Result<(), String> {
    let mut queue = ns.queue_pair(8).map_err(|e| e.to_string())?;
    let chunk = 1 << 20;
    let mut lba = 0;
    while lba * (BLOCK_BYTES as u64) < SPAN_BYTES {
        let mut buf = ns.buffers().alloc(chunk).ok_or("buffer")?;
        buf.as_mut_slice().fill(lba as u8 | 1);
        queue
            .submit(
                lba,
                Command::Write {
                    lba,
                    buf,
                    fua: false,
                },
            )
            .map_err(|r| format!("{:?}", r.reason))?;
        lba += (chunk / BLOCK_BYTES) as u64;
        if queue.in_flight() == queue.depth() {
            let done = queue
                .wait(Some(Duration::from_secs(30)))
                .ok_or("fill hung")?;
            done.result.map_err(|e| format!("fill: {e}"))?;
        }
    }
    while queue.in_flight() > 0 {
        let done = queue
            .wait(Some(Duration::from_secs(30)))
            .ok_or("fill hung")?;
        done.result.map_err(|e| format!("fill: {e}"))?;
    }
    queue
        .submit(0, Command::Flush)
        .map_err(|r| format!("{:?}", r.reason))?;
    queue
        .wait(Some(Duration::from_secs(30)))
        .ok_or("flush hung")?;
    Ok(())
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let Some(bdf) = bind::nvme_controllers()
        .ok()
        .and_then(|c| c.into_iter().next())
    else {
        println!("BENCH error=\"no NVMe controller\"");
        return;
    };
    if let Err(e) = bind::bind_kernel(&bdf, "nvme") {
        println!("BENCH error={:?}", format!("bind {bdf} to nvme: {e}"));
        return;
    }
    let mut device = None;
    for _ in 0..100 {
        device = block_device_for_nsid(1);
        if device.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(device) = device else {
        println!("BENCH error=\"no block device for nsid 1\"");
        return;
    };
    println!("BENCH device={device} bdf={bdf} seconds={seconds}");
    let modes = [
        ("uring", UringOptions::default(), false),
        (
            "uring-sqpoll",
            UringOptions {
                sqpoll: true,
                ..UringOptions::default()
            },
            true,
        ),
        (
            "uring-sqpoll-iopoll",
            UringOptions {
                sqpoll: true,
                iopoll: true,
                ..UringOptions::default()
            },
            true,
        ),
    ];
    let mut filled = false;
    for (name, options, spin) in modes {
        let opened = nvme::open(
            std::path::Path::new(&device),
            &OpenOptions {
                backend: Backend::Uring(options),
                ..OpenOptions::default()
            },
        );
        let ns = match opened {
            Ok(ns) => ns,
            Err(e) => {
                println!("BENCH mode={name} error={:?}", e.to_string());
                continue;
            }
        };
        if !filled {
            if let Err(e) = fill(ns.as_ref()) {
                println!("BENCH fill error={e:?}");
                return;
            }
            filled = true;
        }
        for depth in [1, 32] {
            report(name, depth, &randread(ns.as_ref(), depth, seconds, spin));
        }
    }
    // The daemon's entry point: binds to vfio-pci, brings the controller up.
    let ns = match nvme::vfio::open(&format!("vfio:{bdf}/ns1"), &VfioOptions::default()) {
        Ok(ns) => ns,
        Err(e) => {
            println!("BENCH mode=vfio error={:?}", e.to_string());
            return;
        }
    };
    for depth in [1, 32] {
        report("vfio", depth, &randread(ns.as_ref(), depth, seconds, true));
    }
    drop(ns);
    let _ = bind::bind_kernel(&bdf, "nvme");
}
