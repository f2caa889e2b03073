//! The scenarios and what they share.

mod ab_update;
mod bit_flip;
mod conformance;
mod disk_boot;
mod io_errors;
mod power_loss;
mod smoke;
mod stall;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::qemu::{Boot, Format, Spec, Vm};
use crate::report::{Outcome, Status};

/// Every scenario, in the order `all` runs them.
pub const ALL: [&str; 10] = [
    "smoke",
    "power-loss",
    "bit-flip",
    "io-errors",
    "stall",
    "disk-boot",
    "vfio-smoke",
    "vfio-power-loss",
    "vfio-conformance",
    "ab-update",
];

/// How long a boot may take to `/readyz` under TCG on a busy machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// The liveness probe's timeout: a `/livez` that does not answer within
/// this is a failed probe (docs/hwtests.md).
pub const LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of one client request.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves the command line's scenario names.
pub fn select(names: &[String]) -> anyhow::Result<Vec<&'static str>> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ALL.iter()
                .find(|s| **s == n.as_str())
                .copied()
                .with_context(|| format!("unknown scenario `{n}`; known: {}", ALL.join(", ")))
        })
        .collect()
}

/// What every scenario gets.
pub struct Ctx {
    pub vmlinuz: PathBuf,
    /// The workspace (for scripts/vfio-guest-check.sh).
    pub root: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
    pub disk_image: PathBuf,
    /// The operator CLI built with the image (for `veltrix inspect`).
    pub veltrix: PathBuf,
    pub accel: String,
    /// Scenario directories go here.
    pub work: PathBuf,
    pub power_loss_rounds: u32,
    pub seed: u64,
}

impl Ctx {
    /// Finds the image's parts and decides the accelerator.
    pub fn new(
        root: &Path,
        target: &Path,
        image: &Path,
        args: &crate::Args,
    ) -> anyhow::Result<Ctx> {
        let need = |name: &str| -> anyhow::Result<PathBuf> {
            let path = image.join(name);
            anyhow::ensure!(
                path.is_file(),
                "{} is missing: build the image (cargo run -p image -- build) or drop --no-build",
                path.display()
            );
            Ok(path)
        };
        let vmlinuz = need("vmlinuz")?;
        let cmdline = std::fs::read_to_string(need("cmdline")?)?
            .trim()
            .to_string();
        let veltrix = target.join("x86_64-unknown-linux-musl/release/veltrix");
        anyhow::ensure!(
            veltrix.is_file(),
            "{} is missing (built with the image)",
            veltrix.display()
        );
        let accel = match args.accel.as_str() {
            "auto" => probe_kvm(&vmlinuz),
            other => other.to_string(),
        };
        let seed = args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
        Ok(Ctx {
            initramfs: need("initramfs.img")?,
            disk_image: need("veltrix.img")?,
            vmlinuz,
            root: root.to_path_buf(),
            cmdline,
            veltrix,
            accel,
            work: target.join("hwtests"),
            power_loss_rounds: args.power_loss_rounds,
            seed,
        })
    }

    /// A direct-boot spec serving `format`'s namespace, in the scenario's directory.
    pub fn direct(&self, scenario: &str, format: Format) -> Spec {
        Spec {
            boot: Boot::Direct {
                vmlinuz: self.vmlinuz.clone(),
                initramfs: self.initramfs.clone(),
                cmdline: self.cmdline.clone(),
                nsid: format.nsid(),
            },
            dir: self.work.join(scenario),
            accel: self.accel.clone(),
            blkdebug: None,
            vfio: false,
        }
    }

    /// The same, served by the vfio backend (q35, intel-iommu).
    pub fn direct_vfio(&self, scenario: &str, format: Format) -> Spec {
        Spec {
            vfio: true,
            ..self.direct(scenario, format)
        }
    }
}

/// KVM only if a trial shows it works: boot the kernel with no root under
/// KVM and expect its panic (and QEMU's exit) within 20 s.
fn probe_kvm(vmlinuz: &Path) -> String {
    if !Path::new("/dev/kvm").exists() {
        println!("hwtests: no /dev/kvm: using TCG");
        return "tcg".into();
    }
    let child = std::process::Command::new("qemu-system-x86_64")
        .args([
            "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-m", "256M",
        ])
        .args([
            "-display",
            "none",
            "-nodefaults",
            "-no-reboot",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(vmlinuz)
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return "tcg".into();
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child
                .wait_with_output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            if String::from_utf8_lossy(&out).contains("Kernel panic") {
                println!("hwtests: KVM trial booted a kernel: using KVM");
                return "kvm".into();
            }
            println!("hwtests: KVM trial failed (QEMU exited without booting): using TCG");
            return "tcg".into();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    println!("hwtests: KVM trial hung for 20 s: using TCG");
    "tcg".into()
}

/// A scenario's running record: timed steps and console logs.
pub struct Run {
    started: Instant,
    pub timings: Vec<(String, Duration)>,
    pub logs: Vec<PathBuf>,
    pub notes: Vec<String>,
}

impl Run {
    fn new() -> Run {
        Run {
            started: Instant::now(),
            timings: Vec::new(),
            logs: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Runs `step`, recording how long it took under `label`.
    pub fn step<T>(
        &mut self,
        label: &str,
        step: impl FnOnce(&mut Run) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let t = Instant::now();
        let result = step(self);
        self.timings.push((label.to_string(), t.elapsed()));
        println!(
            "  {:>6.1} s  {label}{}",
            t.elapsed().as_secs_f64(),
            if result.is_err() { " (failed)" } else { "" }
        );
        result.with_context(|| format!("step `{label}`"))
    }

    /// Boots a guest and waits for readiness, keeping its console log.
    pub fn boot(&mut self, spec: &Spec, tag: &str) -> anyhow::Result<Vm> {
        let mut vm = Vm::boot(spec, tag)?;
        self.logs.push(vm.console.clone());
        let ready = vm.wait_ready(READY_TIMEOUT)?;
        self.timings
            .push((format!("boot {tag}: QEMU start to /readyz"), ready));
        println!(
            "  {:>6.1} s  boot {tag}: QEMU start to /readyz",
            ready.as_secs_f64()
        );
        Ok(vm)
    }
}

/// Runs one scenario and turns its result into an outcome.
pub fn run(ctx: &Ctx, name: &'static str) -> Outcome {
    let mut record = Run::new();
    let result: anyhow::Result<Option<String>> = match name {
        "smoke" => smoke::run(ctx, &mut record),
        "power-loss" => power_loss::run(ctx, &mut record),
        "vfio-smoke" => smoke::run_vfio(ctx, &mut record),
        "vfio-power-loss" => power_loss::run_vfio(ctx, &mut record),
        "vfio-conformance" => conformance::run(ctx, &mut record),
        "bit-flip" => bit_flip::run(ctx, &mut record),
        "io-errors" => io_errors::run(ctx, &mut record),
        "stall" => stall::run(ctx, &mut record),
        "disk-boot" => disk_boot::run(ctx, &mut record),
        "ab-update" => ab_update::run(ctx, &mut record),
        other => Err(anyhow::anyhow!("no scenario {other}")),
    };
    let (status, reason, logs) = match result {
        Ok(None) => (Status::Pass, record.notes.join("; "), Vec::new()),
        Ok(Some(why)) => (Status::Skip, why, Vec::new()),
        Err(e) => (Status::Fail, format!("{e:#}"), record.logs.clone()),
    };
    Outcome {
        name,
        status,
        reason,
        timings: record.timings,
        total: record.started.elapsed(),
        logs,
    }
}

/// Fresh backing files for a scenario.
pub fn fresh_dir(ctx: &Ctx, scenario: &str) -> anyhow::Result<PathBuf> {
    let dir = ctx.work.join(scenario);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The admin port's `/metrics` text.
pub fn metrics(vm: &Vm) -> anyhow::Result<String> {
    let (status, body) = crate::http::get(vm.admin, "/metrics", Duration::from_secs(10))?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    Ok(body)
}

/// A metric that must be present.
pub fn metric(text: &str, name: &str) -> anyhow::Result<f64> {
    crate::http::metric(text, name).with_context(|| format!("/metrics has no {name}"))
}

/// Finds the first byte offset of `needle` in a backing file (at most the
/// first `limit` bytes are searched).
pub fn find_in_file(path: &Path, needle: &[u8], limit: u64) -> anyhow::Result<Option<u64>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let chunk = 8usize << 20;
    let mut buf = vec![0u8; chunk + needle.len()];
    let mut base = 0u64;
    let mut carried = 0usize;
    while base < limit {
        let n = file.read(&mut buf[carried..])?;
        if n == 0 {
            break;
        }
        let filled = carried + n;
        if let Some(pos) = buf[..filled]
            .windows(needle.len())
            .position(|w| w == needle)
        {
            return Ok(Some(base + pos as u64));
        }
        // Keep the tail, in case the needle straddles two reads.
        let keep = needle.len().saturating_sub(1).min(filled);
        buf.copy_within(filled - keep..filled, 0);
        base += (filled - keep) as u64;
        carried = keep;
    }
    Ok(None)
}

/// Flips one bit of a file.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut byte)?;
    byte[0] ^= 1 << (bit % 8);
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&byte)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_in_file_sees_needles_across_read_boundaries() {
        let path = std::env::temp_dir().join(format!("hwtests-find-{}", std::process::id()));
        let mut data = vec![0u8; (8 << 20) + 100];
        let at = (8 << 20) - 3;
        data[at..at + 6].copy_from_slice(b"needle");
        std::fs::write(&path, &data).expect("write");
        assert_eq!(
            find_in_file(&path, b"needle", 1 << 30).expect("read"),
            Some(at as u64)
        );
        assert_eq!(find_in_file(&path, b"absent", 1 << 30).expect("read"), None);
        flip_bit(&path, at as u64, 0).expect("flip");
        assert_eq!(find_in_file(&path, b"needle", 1 << 30).expect("read"), None);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn selection_names_every_scenario_or_refuses() {
        assert_eq!(select(&[]).expect("all").len(), ALL.len());
        assert_eq!(select(&["stall".into()]).expect("one"), vec!["stall"]);
        assert!(select(&["stal".into()]).is_err());
    }
}
