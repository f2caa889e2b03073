//! Power loss: under a concurrent write load, `kill -9` QEMU at a random
//! moment; boot again on the same backing files and check that every
//! acknowledged write is there. Several rounds per run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::{fresh_dir, Ctx, Run, CLIENT_TIMEOUT};
use crate::qemu::Format;
use crate::workload::{check_all, connect, len_for, value_for};

const WRITERS: usize = 8;
/// SETs per pipeline: acknowledged together.
const PIPELINE: usize = 4;

/// Rounds of the vfio variant (each vfio boot is slower; at least three).
const VFIO_ROUNDS: u32 = 3;

pub fn run(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    fresh_dir(ctx, "power-loss")?;
    let spec = ctx.direct("power-loss", Format::Plain);
    power_loss(ctx, run, &spec, ctx.power_loss_rounds)
}

/// The same with veltrixd on the vfio backend: durability then rests on the
/// driver's NVMe Flush commands reaching the controller.
pub fn run_vfio(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    fresh_dir(ctx, "vfio-power-loss")?;
    let spec = ctx.direct_vfio("vfio-power-loss", Format::Plain);
    power_loss(ctx, run, &spec, VFIO_ROUNDS)
}

fn power_loss(
    ctx: &Ctx,
    run: &mut Run,
    spec: &crate::qemu::Spec,
    rounds: u32,
) -> anyhow::Result<Option<String>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed);
    run.notes
        .push(format!("seed {} (replay: --seed {})", ctx.seed, ctx.seed));
    let mut acked: Vec<(String, usize)> = Vec::new();
    for round in 0..=rounds {
        let mut vm = run.boot(spec, &format!("round{round}"))?;
        run.step(
            &format!(
                "round {round}: every acknowledged write so far ({}) reads back",
                acked.len()
            ),
            |_| {
                let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
                let bad = check_all(&mut con, &acked, 100)?;
                anyhow::ensure!(
                    bad.is_empty(),
                    "{} acknowledged writes lost or wrong: {:?}",
                    bad.len(),
                    &bad[..bad.len().min(5)]
                );
                Ok(())
            },
        )?;
        if round == rounds {
            vm.power_off(Duration::from_secs(60))?;
            break;
        }
        let kill_after = Duration::from_millis(rng.random_range(500..4000));
        let flushes_before = vm.flushes();
        let new = run.step(
            &format!(
                "round {round}: load, kill -9 after {} ms",
                kill_after.as_millis()
            ),
            |_| load_then_kill(&mut vm, round, kill_after),
        )?;
        anyhow::ensure!(
            !new.is_empty(),
            "round {round}: no write was acknowledged before the kill; the round proves nothing"
        );
        let flushes = match (flushes_before, vm.flushes()) {
            (Some(before), Some(after)) => {
                // The trace file is written as QEMU runs; SIGKILL may cut
                // its last lines, never its earlier ones.
                anyhow::ensure!(
                    after > before,
                    "round {round}: {} writes were acknowledged but the controller executed no NVMe Flush during the load",
                    new.len()
                );
                format!(
                    ", {} NVMe Flush commands seen by the controller",
                    after - before
                )
            }
            _ => String::new(),
        };
        run.notes.push(format!(
            "round {round}: {} acked before kill at {} ms{flushes}",
            new.len(),
            kill_after.as_millis()
        ));
        acked.extend(new);
    }
    run.notes.insert(
        0,
        format!(
            "{} rounds, {} acknowledged writes all present",
            rounds,
            acked.len()
        ),
    );
    Ok(None)
}

/// Runs the writers, kills QEMU after `kill_after`, and returns what was
/// acknowledged before the kill.
fn load_then_kill(
    vm: &mut crate::qemu::Vm,
    round: u32,
    kill_after: Duration,
) -> anyhow::Result<Vec<(String, usize)>> {
    let acked: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let resp = vm.resp;
    let errors = std::thread::scope(|scope| -> anyhow::Result<usize> {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (acked, stop) = (&acked, &stop);
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut con = connect(resp, CLIENT_TIMEOUT)?;
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let batch: Vec<(String, usize)> = (0..PIPELINE)
                            .map(|j| (format!("pl:{round}:{writer}:{}", i + j), len_for(i + j)))
                            .collect();
                        i += PIPELINE;
                        let mut pipe = redis::pipe();
                        for (key, len) in &batch {
                            pipe.cmd("SET").arg(key).arg(value_for(key, *len)).ignore();
                        }
                        pipe.query::<()>(&mut con)?;
                        // The client got OK for every SET in the batch.
                        acked
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .extend(batch);
                    }
                    Ok(())
                })
            })
            .collect();
        let started = Instant::now();
        while started.elapsed() < kill_after {
            std::thread::sleep(Duration::from_millis(10));
        }
        vm.kill9()?;
        stop.store(true, Ordering::Relaxed);
        let mut errors = 0;
        for h in handles {
            if !matches!(h.join(), Ok(Ok(()))) {
                errors += 1;
            }
        }
        Ok(errors)
    })?;
    let acked = acked
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    // Writers that were mid-request when QEMU died see an error: expected.
    let _ = errors;
    Ok(acked)
}
