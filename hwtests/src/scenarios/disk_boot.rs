//! The disk image boots under OVMF (only `-drive file=veltrix.img` plus the
//! firmware), reads its config from the config partition, and serves.

use std::time::Duration;

use super::{fresh_dir, Ctx, Run, CLIENT_TIMEOUT};
use crate::qemu::{Boot, Spec};
use crate::workload::{check_all, connect, len_for, put_all};

const KEYS: usize = 1000;

pub fn run(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    let dir = fresh_dir(ctx, "disk-boot")?;
    let ovmf = std::path::PathBuf::from(crate::prereq::OVMF);
    // A copy: the firmware and the boot loader may write to their disk.
    let image = dir.join("veltrix.img");
    std::fs::copy(&ctx.disk_image, &image)?;
    let spec = Spec {
        boot: Boot::Disk { image, ovmf },
        dir,
        accel: ctx.accel.clone(),
        blkdebug: None,
        vfio: false,
    };
    let mut vm = run.boot(&spec, "ovmf")?;
    run.step("config came from the config partition", |_| {
        anyhow::ensure!(
            vm.console_contains("config from partition \"veltrix-config\""),
            "the console does not show the config partition being read"
        );
        Ok(())
    })?;
    let keys: Vec<(String, usize)> = (0..KEYS)
        .map(|i| (format!("disk:{i}"), len_for(i)))
        .collect();
    run.step("put and get keys, status", |run| {
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        put_all(&mut con, &keys, 32)?;
        let bad = check_all(&mut con, &keys, 100)?;
        anyhow::ensure!(
            bad.is_empty(),
            "{} keys wrong: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
        let (_, body) = crate::http::get(vm.admin, "/api/status", Duration::from_secs(10))?;
        anyhow::ensure!(
            body.contains("io_uring (SQPOLL") && body.contains(" on /dev/nvme"),
            "status: {body}"
        );
        run.notes.push(format!(
            "OVMF + systemd-boot booted veltrix.img and served {KEYS} keys"
        ));
        Ok(())
    })?;
    run.step("power off", |_| {
        vm.power_off(Duration::from_secs(60)).map(|_| ())
    })?;
    Ok(None)
}
