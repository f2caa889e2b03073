//! Stall: `stop` the guest in the QEMU monitor for longer than the liveness
//! timeout; the host's `/livez` probe must fail; `cont` brings it back with
//! its data.

use std::time::{Duration, Instant};

use super::{fresh_dir, Ctx, Run, CLIENT_TIMEOUT, LIVENESS_TIMEOUT};
use crate::qemu::Format;
use crate::workload::{check_all, connect, len_for, put_all};

const KEYS: usize = 500;
/// How long the guest stays stopped: several liveness timeouts.
const STALL: Duration = Duration::from_secs(8);

fn live(vm: &crate::qemu::Vm) -> anyhow::Result<()> {
    let (status, _) = crate::http::get(vm.admin, "/livez", LIVENESS_TIMEOUT)?;
    anyhow::ensure!(status == 200, "/livez answered {status}");
    Ok(())
}

pub fn run(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    fresh_dir(ctx, "stall")?;
    let spec = ctx.direct("stall", Format::Plain);
    let mut vm = run.boot(&spec, "stall")?;
    let keys: Vec<(String, usize)> = (0..KEYS)
        .map(|i| (format!("stall:{i}"), len_for(i)))
        .collect();
    run.step("put keys, /livez answers", |_| {
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        put_all(&mut con, &keys, 32)?;
        live(&vm)
    })?;
    run.step(
        "stop the guest: /livez probes fail while it is stopped",
        |run| {
            vm.monitor("stop")?;
            let stopped = Instant::now();
            let mut failed = 0;
            let mut probes = 0;
            while stopped.elapsed() < STALL {
                probes += 1;
                match live(&vm) {
                    Ok(()) => anyhow::bail!("/livez answered 200 while the guest was stopped"),
                    Err(_) => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            run.notes.push(format!(
                "stopped {} s: {failed}/{probes} liveness probes failed (timeout {} ms)",
                STALL.as_secs(),
                LIVENESS_TIMEOUT.as_millis()
            ));
            Ok(())
        },
    )?;
    run.step("cont: /livez answers again", |run| {
        vm.monitor("cont")?;
        let resumed = Instant::now();
        loop {
            if live(&vm).is_ok() {
                run.notes.push(format!(
                    "live again {} ms after cont",
                    resumed.elapsed().as_millis()
                ));
                return Ok(());
            }
            anyhow::ensure!(
                resumed.elapsed() < Duration::from_secs(30),
                "/livez did not answer within 30 s of cont"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    })?;
    run.step("data intact, writes work", |_| {
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        let bad = check_all(&mut con, &keys, 100)?;
        anyhow::ensure!(
            bad.is_empty(),
            "after the stall {} keys are wrong: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
        put_all(&mut con, &[("stall:after".into(), 100)], 1)?;
        let bad = check_all(&mut con, &[("stall:after".into(), 100)], 1)?;
        anyhow::ensure!(
            bad.is_empty(),
            "a write after the stall did not read back: {bad:?}"
        );
        Ok(())
    })?;
    run.step("power off", |_| {
        vm.power_off(Duration::from_secs(60)).map(|_| ())
    })?;
    Ok(None)
}
