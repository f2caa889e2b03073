//! The conformance suite on the `uring` backend: regular files and loop
//! devices, with and without SQPOLL, and IOPOLL's refusal where the kernel
//! cannot poll.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};

use nvme::uring::UringOptions;
use nvme::{conformance, open, Backend, Namespace, OpenError, OpenOptions};

fn options(uring: UringOptions, create_bytes: Option<u64>) -> OpenOptions {
    OpenOptions {
        backend: Backend::Uring(uring),
        create_bytes,
        ..OpenOptions::default()
    }
}

fn sqpoll() -> UringOptions {
    UringOptions {
        sqpoll: true,
        sqpoll_idle_ms: 50,
        ..UringOptions::default()
    }
}

/// Opens `path`; `None` (after a loud skip line) when the kernel refuses the
/// backend, which is allowed only for SQPOLL.
fn open_or_skip(path: &Path, options: &OpenOptions) -> Option<Arc<dyn Namespace>> {
    match open(path, options) {
        Ok(namespace) => Some(namespace),
        Err(error @ OpenError::BackendUnavailable { .. }) if matches!(&options.backend, Backend::Uring(u) if u.sqpoll) =>
        {
            eprintln!("SKIPPED: the kernel refuses io_uring SQPOLL here: {error}");
            None
        }
        Err(error) => panic!("open {}: {error}", path.display()),
    }
}

#[test]
fn uring_on_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let namespace = open(&path, &options(UringOptions::default(), Some(64 << 20))).unwrap();
    let description = namespace.describe();
    assert!(description.starts_with("io_uring ("), "{description}");
    assert!(!description.contains("SQPOLL"), "{description}");
    assert!(
        description.contains(path.to_str().unwrap()),
        "{description}"
    );
    conformance::run_all(&namespace, 0x0051_0001);
}

/// Held by the tests that start SQPOLL threads, so that one can tell which
/// threads are its own.
static SQPOLL_THREADS: Mutex<()> = Mutex::new(());

fn sqpoll_lock() -> MutexGuard<'static, ()> {
    SQPOLL_THREADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn uring_sqpoll_on_a_regular_file() {
    let _sqpoll = sqpoll_lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let Some(namespace) = open_or_skip(&path, &options(sqpoll(), Some(64 << 20))) else {
        return;
    };
    let description = namespace.describe();
    assert!(description.contains("SQPOLL idle 50 ms"), "{description}");
    conformance::run_all(&namespace, 0x0051_0002);
    // Every queue pair attaches to the namespace's one submission thread
    // (which exists since the open-time probe): no new thread appears.
    let before = sqpoll_threads();
    assert!(
        !before.is_empty(),
        "an SQPOLL namespace has its iou-sqp thread"
    );
    let queues: Vec<_> = (0..4).map(|_| namespace.queue_pair(8).unwrap()).collect();
    let after = sqpoll_threads();
    assert!(
        after.is_subset(&before),
        "queue pairs started their own SQPOLL threads: {before:?} -> {after:?}"
    );
    drop(queues);
}

/// With SQPOLL the kernel thread publishes the SQ head only after issuing its
/// batch, so a read can complete while its SQE still occupies the ring. A
/// queue pair of depth 1 that resubmits the moment a completion arrives
/// must never find its SQ full (this once refused with QueueFull).
#[test]
fn uring_sqpoll_resubmits_at_once_at_depth_one() {
    let _sqpoll = sqpoll_lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let Some(namespace) = open_or_skip(&path, &options(sqpoll(), Some(4 << 20))) else {
        return;
    };
    let lba_count = namespace.geometry().lba_count;
    let mut queue = namespace.queue_pair(1).unwrap();
    let mut buf = namespace.buffers().alloc(4096).unwrap();
    let started = std::time::Instant::now();
    let mut reads = 0u64;
    while started.elapsed() < std::time::Duration::from_secs(1) {
        let lba = reads % lba_count;
        queue
            .submit(reads, nvme::Command::Read { lba, buf })
            .unwrap_or_else(|refused| panic!("read {reads} refused: {:?}", refused.reason));
        // Poll without sleeping, as a caller that owns a core would, but
        // yield: with the SQPOLL thread spinning too, two busy threads on a
        // two-core machine starve the kernel workers the reads need.
        let done = loop {
            if let Some(done) = queue.poll() {
                break done;
            }
            std::thread::yield_now();
        };
        assert_eq!(done.token, reads);
        assert!(done.result.is_ok(), "{:?}", done.result);
        buf = done.buf.unwrap();
        reads += 1;
    }
    eprintln!("{reads} reads at depth 1 with SQPOLL");
}

/// Thread ids of this process's kernel SQPOLL threads (`iou-sqp-PID`).
fn sqpoll_threads() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task lists this process's threads")
        .filter_map(|task| {
            let task = task.ok()?.path();
            let comm = std::fs::read_to_string(task.join("comm")).ok()?;
            comm.starts_with("iou-sqp-")
                .then(|| task.file_name()?.to_str().map(str::to_owned))?
        })
        .collect()
}

#[test]
fn uring_options_that_need_sqpoll_are_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let uring = UringOptions {
        sqpoll_cpu: Some(0),
        ..UringOptions::default()
    };
    match open(&path, &options(uring, Some(4 << 20))) {
        Err(OpenError::InvalidOptions(why)) => assert!(why.contains("need sqpoll"), "{why}"),
        Err(other) => panic!("expected InvalidOptions, got {other}"),
        Ok(namespace) => panic!("expected InvalidOptions, opened {}", namespace.describe()),
    }
}

#[test]
fn uring_iopoll_on_a_regular_file_is_refused_clearly_or_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let uring = UringOptions {
        iopoll: true,
        ..UringOptions::default()
    };
    match open(&path, &options(uring, Some(64 << 20))) {
        Err(error @ OpenError::BackendUnavailable { .. }) => {
            let message = error.to_string();
            assert!(message.contains(path.to_str().unwrap()), "{message}");
            assert!(message.contains("IOPOLL"), "{message}");
            eprintln!("IOPOLL refused as expected: {message}");
        }
        Err(other) => panic!("IOPOLL: expected BackendUnavailable, got {other}"),
        Ok(namespace) => {
            eprintln!("IOPOLL opened on a regular file; running the suite");
            assert!(namespace.describe().contains("IOPOLL"));
            conformance::run_all(&namespace, 0x0051_0003);
        }
    }
}

/// A loop device over a file, detached on drop.
struct LoopDevice {
    device: PathBuf,
}

impl LoopDevice {
    fn attach(file: &Path) -> LoopDevice {
        let output = Process::new("losetup")
            .args(["--direct-io=on", "--sector-size", "4096", "-f", "--show"])
            .arg(file)
            .output()
            .expect("run losetup");
        assert!(
            output.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let device = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        LoopDevice { device }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let status = Process::new("losetup").arg("-d").arg(&self.device).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "WARNING: could not detach {}: {status:?}",
                self.device.display()
            );
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn have_losetup() -> bool {
    Process::new("losetup")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn uring_on_a_loop_device() {
    if !is_root() {
        eprintln!("SKIPPED: loop-device conformance needs root");
        return;
    }
    if !have_losetup() {
        eprintln!("SKIPPED: loop-device conformance needs losetup (util-linux)");
        return;
    }
    let _sqpoll = sqpoll_lock();
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("loop.img");
    std::fs::File::create(&backing)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let loop_device = LoopDevice::attach(&backing);
    for (uring, seed) in [
        (UringOptions::default(), 0x0051_0004),
        (sqpoll(), 0x0051_0005),
    ] {
        let Some(namespace) = open_or_skip(&loop_device.device, &options(uring, None)) else {
            continue;
        };
        let geometry = namespace.geometry();
        assert_eq!(geometry.lba_bytes, 4096, "the loop device's sector size");
        assert_eq!(geometry.capacity_bytes(), 64 << 20);
        assert!(namespace
            .describe()
            .contains(loop_device.device.to_str().unwrap()));
        conformance::run_all(&namespace, seed);
        // The block device is opened O_EXCL: closed before the next open.
        drop(namespace);
    }
    // IOPOLL: loop devices cannot poll; refused at open, or conforming.
    let uring = UringOptions {
        iopoll: true,
        ..UringOptions::default()
    };
    match open(&loop_device.device, &options(uring, None)) {
        Err(error @ OpenError::BackendUnavailable { .. }) => {
            assert!(error.to_string().contains("IOPOLL"), "{error}");
        }
        Err(other) => panic!("IOPOLL on a loop device: expected BackendUnavailable, got {other}"),
        Ok(namespace) => conformance::run_all(&namespace, 0x0051_0006),
    }
}

/// A read cut short by the end of the file (truncated behind the namespace's
/// back) is resubmitted for the rest, and fails with EIO when the rest reads
/// nothing, as the sync backend's read_exact_at does.
#[test]
fn a_read_cut_short_fails_like_sync() {
    let dir = tempfile::tempdir().unwrap();
    for backend in [Backend::Sync, Backend::Uring(UringOptions::default())] {
        let path = dir
            .path()
            .join(format!("short-{}.img", matches!(backend, Backend::Sync)));
        let options = OpenOptions {
            backend: backend.clone(),
            create_bytes: Some(4 << 20),
            ..OpenOptions::default()
        };
        let namespace = open(&path, &options).unwrap();
        let mut queue = namespace.queue_pair(2).unwrap();
        let mut buf = namespace.buffers().alloc(2 * 4096).unwrap();
        buf.as_mut_slice().fill(0xA5);
        let done = conformance::execute(
            queue.as_mut(),
            nvme::Command::Write {
                lba: 100,
                buf,
                fua: false,
            },
        );
        assert!(done.result.is_ok(), "{backend:?}: {:?}", done.result);
        // Keep block 100, lose block 101.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(101 * 4096)
            .unwrap();
        let buf = done.buf.unwrap();
        let done = conformance::execute(queue.as_mut(), nvme::Command::Read { lba: 100, buf });
        assert_eq!(
            done.result,
            Err(nvme::IoError::Device {
                lba: 100,
                errno: libc::EIO
            }),
            "{backend:?}"
        );
        let mut buf = done.buf.expect("a failed read hands its buffer back");
        buf.set_len(4096);
        let done = conformance::execute(queue.as_mut(), nvme::Command::Read { lba: 100, buf });
        assert!(done.result.is_ok(), "{backend:?}: {:?}", done.result);
        assert!(done.buf.unwrap().as_slice().iter().all(|&b| b == 0xA5));
    }
}
