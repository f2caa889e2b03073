//! Smoke: 10,000 keys with values up to 64 KiB through RESP on the plain
//! namespace, a metrics scrape, and the status naming each namespace's I/O
//! path; then a shorter pass on each PI namespace.

use std::time::Duration;

use super::{fresh_dir, metric, metrics, Ctx, Run, CLIENT_TIMEOUT};
use crate::qemu::{Format, Vm};
use crate::workload::{check_all, connect, len_for, put_all};

const KEYS: usize = 10_000;
const PI_KEYS: usize = 500;
const WRITERS: usize = 4;

pub fn run(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    smoke(ctx, run, "smoke", false)
}

/// The same checks with veltrixd on the vfio backend, on each namespace.
pub fn run_vfio(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    smoke(ctx, run, "vfio-smoke", true)
}

fn smoke(ctx: &Ctx, run: &mut Run, scenario: &str, vfio: bool) -> anyhow::Result<Option<String>> {
    fresh_dir(ctx, scenario)?;
    for format in Format::ALL {
        let count = if format == Format::Plain {
            KEYS
        } else {
            PI_KEYS
        };
        let spec = if vfio {
            ctx.direct_vfio(scenario, format)
        } else {
            ctx.direct(scenario, format)
        };
        let mut vm = run.boot(&spec, &format!("nsid{}", format.nsid()))?;
        let keys: Vec<(String, usize)> = (0..count)
            .map(|i| (format!("smoke:{}:{i}", format.nsid()), len_for(i)))
            .collect();
        let bytes: usize = keys.iter().map(|k| k.1).sum();
        run.step(
            &format!("{}: put {count} keys ({} MiB)", format.label(), bytes >> 20),
            |_| put_parallel(&vm, &keys),
        )?;
        run.step(
            &format!("{}: get and compare {count} keys", format.label()),
            |_| {
                let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
                let bad = check_all(&mut con, &keys, 100)?;
                anyhow::ensure!(
                    bad.is_empty(),
                    "{} keys read back wrong: {:?}",
                    bad.len(),
                    &bad[..bad.len().min(5)]
                );
                let size: usize = redis::cmd("DBSIZE").query(&mut con)?;
                anyhow::ensure!(size == count, "DBSIZE says {size}, expected {count}");
                Ok(())
            },
        )?;
        run.step(
            &format!("{}: /metrics and /api/status", format.label()),
            |run| {
                let text = metrics(&vm)?;
                let records = metric(&text, "veltrix_records_written_total")?;
                anyhow::ensure!(
                    records >= count as f64,
                    "veltrix_records_written_total is {records}, below {count}"
                );
                let ops = metric(&text, "veltrix_ops_total")?;
                anyhow::ensure!(
                    ops >= 2.0 * count as f64,
                    "veltrix_ops_total is {ops}, below {}",
                    2 * count
                );
                let corrupt = metric(&text, "veltrix_corruption_detected_total")?;
                anyhow::ensure!(
                    corrupt == 0.0,
                    "veltrix_corruption_detected_total is {corrupt}"
                );
                let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
                let (status, body) =
                    crate::http::get(vm.admin, "/api/status", Duration::from_secs(10))?;
                anyhow::ensure!(status == 200, "/api/status answered {status}");
                if vfio {
                    anyhow::ensure!(
                        body.contains("vfio (userspace NVMe")
                            && body.contains(&format!(" nsid {}", format.nsid()))
                            && !body.contains("/dev/nvme"),
                        "/api/status does not report the vfio backend on nsid {}: {body}",
                        format.nsid()
                    );
                } else {
                    anyhow::ensure!(
                        body.contains("io_uring (SQPOLL") && body.contains(" on /dev/nvme"),
                        "/api/status does not report io_uring SQPOLL on an NVMe block device: {body}"
                    );
                }
                let namespaces = body
                    .split("\"namespaces\":")
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .trim_end_matches('}');
                run.notes.push(format!(
                    "nsid {}: {count} keys, {families} metric families, namespaces {namespaces}",
                    format.nsid()
                ));
                Ok(())
            },
        )?;
        run.step(&format!("{}: power off on request", format.label()), |_| {
            vm.power_off(Duration::from_secs(60))?;
            anyhow::ensure!(
                vm.console_contains("veltrixd stopped"),
                "the console does not show veltrixd stopping before power-off"
            );
            Ok(())
        })?;
    }
    Ok(None)
}

fn put_parallel(vm: &Vm, keys: &[(String, usize)]) -> anyhow::Result<()> {
    let per = keys.len().div_ceil(WRITERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
                    put_all(&mut con, chunk, 32)
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        Ok(())
    })
}
