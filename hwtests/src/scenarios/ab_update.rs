//! A/B slots under QEMU (`docs/upgrades.md`): the disk image boots through
//! the slot selector into slot A; a tampered bundle in slot B is refused on
//! the box and slot A boots; a good bundle in slot B boots on trial, passes
//! its health check and is marked good, with the data kept; a bundle whose
//! veltrixd never becomes healthy is tried its two times and the appliance
//! falls back to slot B by itself.
//!
//! The good bundle is installed through the appliance, with the operator
//! CLI (`veltrix update install`, the admin port), which must first refuse
//! a tampered, an unsigned and an older bundle; `veltrix update rollback`
//! gives up an install on trial. For the refusal at boot and the failing
//! bundle, the harness writes the slot partition and the boot-state record
//! of the disk image itself, as an installer would.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use veltrix_update::boot_state::{self, BootState, Slot, COPY_BYTES};
use veltrix_update::{bundle, Version};

use super::{fresh_dir, Ctx, Run, CLIENT_TIMEOUT};
use crate::qemu::{Boot, Spec, Vm};
use crate::workload::{check_all, connect, len_for, put_all};

const KEYS: usize = 300;
/// Seconds a trial slot gets to become healthy (short: a failing trial
/// waits all of it, twice).
const TRIAL_S: u64 = 40;
/// Boots the failing bundle gets.
const FAILING_TRIES: u8 = 2;

fn version(text: &str) -> anyhow::Result<Version> {
    Ok(text.parse()?)
}

struct Appliance {
    disk: PathBuf,
    spec: Spec,
    key: ed25519_dalek::SigningKey,
    slot_files: Vec<(&'static str, Vec<u8>)>,
}

impl Appliance {
    fn record(&self) -> anyhow::Result<boot_state::Loaded> {
        let (offset, _) = crate::gpt::partition(&self.disk, "veltrix-boot-state")?;
        let mut bytes = vec![0u8; 2 * COPY_BYTES];
        let file = std::fs::File::open(&self.disk)?;
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, offset)?;
        Ok(boot_state::read(&bytes)?)
    }

    fn write_record(&self, state: &BootState) -> anyhow::Result<()> {
        let loaded = self.record()?;
        let (offset, _) = crate::gpt::partition(&self.disk, "veltrix-boot-state")?;
        let (at, bytes) = boot_state::write_next(&loaded, state);
        let mut file = std::fs::OpenOptions::new().write(true).open(&self.disk)?;
        file.seek(SeekFrom::Start(offset + at as u64))?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        Ok(())
    }

    /// A bundle of the built slot at `at`, its initramfs with `extra`
    /// (newc entries) appended.
    fn bundle(&self, at: &str, extra: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut files = self.slot_files.clone();
        if let Some((_, initramfs)) = files.iter_mut().find(|(n, _)| *n == "initramfs.img") {
            initramfs.extend_from_slice(extra);
        }
        let view: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        Ok(bundle::write(version(at)?, &view, &self.key))
    }

    /// What `veltrix update install` will do: write the bundle into the
    /// slot that is not the last good one, then put it on trial.
    fn install(&self, bundle_bytes: &[u8], tries: u8) -> anyhow::Result<Slot> {
        let state = self.record()?.state;
        let slot = state.last_good.other();
        let name = format!("veltrix-slot-{}", slot.name());
        let (offset, bytes) = crate::gpt::partition(&self.disk, &name)?;
        anyhow::ensure!(
            (bundle_bytes.len() as u64) <= bytes,
            "bundle larger than {name}"
        );
        let mut file = std::fs::OpenOptions::new().write(true).open(&self.disk)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bundle_bytes)?;
        file.sync_all()?;
        let next = state.install(slot, tries).map_err(|e| anyhow::anyhow!(e))?;
        self.write_record(&next)?;
        Ok(slot)
    }
}

/// One newc entry (for a bundle whose initramfs replaces a file).
fn newc(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    let pad = |v: &mut Vec<u8>| v.resize(v.len().div_ceil(4) * 4, 0);
    let mut out = format!(
        "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
        900,
        mode,
        0,
        0,
        1,
        0,
        data.len(),
        0,
        0,
        0,
        0,
        name.len() + 1,
        0
    )
    .into_bytes();
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(&mut out);
    out.extend_from_slice(data);
    pad(&mut out);
    out
}

/// A veltrixd that never becomes ready: it exits at once, every time.
fn failing_daemon() -> Vec<u8> {
    let mut extra = newc("bin/veltrixd", 0o100755, b"#!/bin/busybox sh\nexit 1\n");
    extra.extend(newc("TRAILER!!!", 0, b""));
    extra
}

fn boot_until_ready(run: &mut Run, app: &Appliance, tag: &str) -> anyhow::Result<Vm> {
    run.boot(&app.spec, tag)
}

fn expect_console(vm: &Vm, needle: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        vm.console_contains(needle),
        "the console does not show {needle:?}"
    );
    Ok(())
}

fn wait_console(vm: &Vm, needle: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while !vm.console_contains(needle) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the console did not show {needle:?} within {} s",
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Runs the operator CLI against the guest's admin port; returns its
/// success, stdout and stderr.
fn veltrix(ctx: &Ctx, vm: &Vm, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let output = std::process::Command::new(&ctx.veltrix)
        .arg("--admin")
        .arg(vm.admin.to_string())
        .args(args)
        .output()
        .context("cannot run veltrix")?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// `veltrix update install` of `bytes` must fail, naming `reason`.
fn refused(ctx: &Ctx, vm: &Vm, dir: &Path, bytes: &[u8], reason: &str) -> anyhow::Result<()> {
    let path = dir.join("refused.vxb");
    std::fs::write(&path, bytes)?;
    let (ok, out, err) = veltrix(ctx, vm, &["update", "install", &path.to_string_lossy()])?;
    anyhow::ensure!(
        !ok,
        "an install that must be refused ({reason}) succeeded: {out}"
    );
    anyhow::ensure!(
        err.contains(reason),
        "refused, but not for {reason:?}: {err}"
    );
    Ok(())
}

fn check_keys(vm: &Vm, keys: &[(String, usize)]) -> anyhow::Result<()> {
    let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
    let bad = check_all(&mut con, keys, 100)?;
    anyhow::ensure!(
        bad.is_empty(),
        "{} keys wrong: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    Ok(())
}

fn expect_state(app: &Appliance, active: Slot, last_good: Slot) -> anyhow::Result<()> {
    let state = app.record()?.state;
    anyhow::ensure!(
        state.active == active && state.last_good == last_good,
        "boot state {state:?}, expected active {active:?} and last good {last_good:?}"
    );
    Ok(())
}

fn setup(ctx: &Ctx, dir: &Path) -> anyhow::Result<Appliance> {
    let disk = dir.join("veltrix.img");
    std::fs::copy(&ctx.disk_image, &disk)?;
    let image_dir = ctx.disk_image.parent().context("image directory")?;
    let key_path = image_dir
        .parent()
        .context("target directory")?
        .join("image-keys/development.key");
    let key_text = std::fs::read_to_string(&key_path)
        .with_context(|| format!("the image's development key {}", key_path.display()))?;
    let key = bundle::decode_signing_key(&key_text).map_err(|e| anyhow::anyhow!(e))?;
    let mut slot_files = Vec::new();
    for name in ["vmlinuz", "initramfs.img", "cmdline"] {
        slot_files.push((name, std::fs::read(image_dir.join(name))?));
    }
    let spec = Spec {
        boot: Boot::Slots {
            vmlinuz: ctx.vmlinuz.clone(),
            initramfs: ctx.initramfs.clone(),
            cmdline: ctx.cmdline.clone(),
            disk: disk.clone(),
            trial_s: TRIAL_S,
        },
        dir: dir.to_path_buf(),
        accel: ctx.accel.clone(),
        blkdebug: None,
        vfio: false,
    };
    Ok(Appliance {
        disk,
        spec,
        key,
        slot_files,
    })
}

pub fn run(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    let dir = fresh_dir(ctx, "ab-update")?;
    let app = setup(ctx, &dir)?;
    let keys: Vec<(String, usize)> = (0..KEYS).map(|i| (format!("ab:{i}"), len_for(i))).collect();

    let mut vm = boot_until_ready(run, &app, "a")?;
    run.step("slot A boots as the last good slot; write keys", |_| {
        expect_console(&vm, "booting slot a version 0.1.0 (last good)")?;
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        put_all(&mut con, &keys, 32)?;
        check_keys(&vm, &keys)
    })?;
    run.step("power off", |_| {
        vm.power_off(Duration::from_secs(60)).map(|_| ())
    })?;

    let good = app.bundle("0.2.0", &[])?;
    run.step("a tampered bundle in slot B is refused on the box", |run| {
        bundle::verify(&good, &[app.key.verifying_key()], version("0.1.0")?)
            .context("the good bundle does not verify on the host")?;
        let mut tampered = good.clone();
        let last = tampered.len() - 100;
        tampered[last] ^= 1;
        anyhow::ensure!(
            app.install(&tampered, 3)? == Slot::B,
            "installed into slot A"
        );
        let mut vm = boot_until_ready(run, &app, "tampered")?;
        expect_console(&vm, "slot b refused")?;
        expect_console(&vm, "was altered")?;
        expect_console(&vm, "booting slot a version 0.1.0 (last good)")?;
        check_keys(&vm, &keys)?;
        vm.power_off(Duration::from_secs(60))?;
        expect_state(&app, Slot::A, Slot::A)
    })?;

    run.step(
        "veltrix update: refusals, install, rollback, install",
        |run| {
            let mut vm = boot_until_ready(run, &app, "install")?;
            let mut tampered = good.clone();
            let last = tampered.len() - 100;
            tampered[last] ^= 1;
            refused(ctx, &vm, &dir, &tampered, "was altered")?;
            let files: Vec<(&str, &[u8])> = app
                .slot_files
                .iter()
                .map(|(n, d)| (*n, d.as_slice()))
                .collect();
            refused(
                ctx,
                &vm,
                &dir,
                &bundle::write_unsigned(version("0.2.0")?, &files),
                "unsigned",
            )?;
            refused(
                ctx,
                &vm,
                &dir,
                &app.bundle("0.0.1", &[])?,
                "older than the installed 0.1.0",
            )?;
            let path = dir.join("veltrix-update-0.2.0.vxb");
            std::fs::write(&path, &good)?;
            let path_text = path.to_string_lossy().into_owned();
            let install = ["update", "install", path_text.as_str()];
            let (ok, out, err) = veltrix(ctx, &vm, &install)?;
            anyhow::ensure!(
                ok && out.contains("\"installed\":\"0.2.0\",\"slot\":\"b\""),
                "install: {out}{err}"
            );
            let (ok, out, _) = veltrix(ctx, &vm, &["update", "status"])?;
            anyhow::ensure!(
                ok && out.contains("\"on_trial\":true") && out.contains("\"b\":\"0.2.0\""),
                "status: {out}"
            );
            let (ok, out, err) = veltrix(ctx, &vm, &["update", "rollback"])?;
            anyhow::ensure!(
                ok && out.contains("\"next_boot\":\"a\""),
                "rollback: {out}{err}"
            );
            expect_state(&app, Slot::A, Slot::A)?;
            let (ok, out, err) = veltrix(ctx, &vm, &install)?;
            anyhow::ensure!(ok, "second install: {out}{err}");
            vm.power_off(Duration::from_secs(60))?;
            let state = app.record()?.state;
            anyhow::ensure!(
                state.active == Slot::B && state.tries_left == 3,
                "after install: {state:?}"
            );
            run.notes.push(
                "veltrix update refused tampered, unsigned and older bundles on the box".into(),
            );
            Ok(())
        },
    )?;

    run.step(
        "the installed bundle boots on trial and is marked good",
        |run| {
            let mut vm = boot_until_ready(run, &app, "b-trial")?;
            expect_console(&vm, "booting slot b version 0.2.0 on trial, 2 tries left")?;
            wait_console(
                &vm,
                "slot b passed its health check: marked good",
                Duration::from_secs(60),
            )?;
            check_keys(&vm, &keys)?;
            vm.power_off(Duration::from_secs(60))?;
            expect_state(&app, Slot::B, Slot::B)?;
            let mut vm = boot_until_ready(run, &app, "b-good")?;
            expect_console(&vm, "booting slot b version 0.2.0 (last good)")?;
            vm.power_off(Duration::from_secs(60)).map(|_| ())
        },
    )?;

    run.step("a bundle that never gets healthy is rolled back by itself", |run| {
        let failing = app.bundle("0.3.0", &failing_daemon())?;
        anyhow::ensure!(app.install(&failing, FAILING_TRIES)? == Slot::A, "installed into slot B");
        for try_number in 1..=FAILING_TRIES {
            let tag = format!("failing-{try_number}");
            let mut vm = Vm::boot(&app.spec, &tag)?;
            run.logs.push(vm.console.clone());
            let rebooted = vm.wait_exit(Duration::from_secs(TRIAL_S + 120))?;
            let left = FAILING_TRIES - try_number;
            expect_console(&vm, &format!("booting slot a version 0.3.0 on trial, {left} tries left"))?;
            expect_console(&vm, "slot a failed its health check")?;
            println!("  {:>6.1} s  boot {tag}: trial boot to its reboot", rebooted.as_secs_f64());
        }
        let mut vm = boot_until_ready(run, &app, "rolled-back")?;
        expect_console(&vm, "slot a used up its tries without passing its health check: back to slot b")?;
        expect_console(&vm, "booting slot b version 0.2.0 (last good)")?;
        check_keys(&vm, &keys)?;
        vm.power_off(Duration::from_secs(60))?;
        expect_state(&app, Slot::B, Slot::B)?;
        run.notes.push(format!(
            "slot A → tampered B refused → B 0.2.0 trial marked good → A 0.3.0 failed {FAILING_TRIES} trials → back on B, {KEYS} keys kept"
        ));
        Ok(())
    })?;
    run.step("a power cut during an install boots cleanly", |run| {
        power_cut_during_install(ctx, run, &app, &dir, &keys)
    })?;
    Ok(None)
}

/// Installs 0.2.1 through the CLI and kills QEMU at a seeded moment while
/// it runs. The next boot must come up either on the last good slot (the
/// cut came before the record was written) or on the new slot on trial
/// (after), with every key there; never anything else.
fn power_cut_during_install(
    ctx: &Ctx,
    run: &mut Run,
    app: &Appliance,
    dir: &Path,
    keys: &[(String, usize)],
) -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed);
    let cut_after = Duration::from_millis(rng.random_range(300..2_500));
    let mut vm = boot_until_ready(run, app, "cut")?;
    let path = dir.join("veltrix-update-0.2.1.vxb");
    std::fs::write(&path, app.bundle("0.2.1", &[])?)?;
    let mut child = std::process::Command::new(&ctx.veltrix)
        .arg("--admin")
        .arg(vm.admin.to_string())
        .args(["update", "install"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(cut_after);
    let finished_first = child.try_wait()?.is_some();
    vm.kill9()?;
    let _ = child.kill();
    let _ = child.wait();
    let mut vm = boot_until_ready(run, app, "after-cut")?;
    let state = app.record()?.state;
    let outcome = if vm.console_contains("booting slot b version 0.2.0 (last good)") {
        anyhow::ensure!(
            state
                == BootState {
                    active: Slot::B,
                    tries_left: 0,
                    last_good: Slot::B
                },
            "{state:?}"
        );
        "before the record: slot B (last good) booted"
    } else if vm.console_contains("booting slot a version 0.2.1 on trial") {
        wait_console(
            &vm,
            "slot a passed its health check: marked good",
            Duration::from_secs(90),
        )?;
        "after the record: slot A 0.2.1 booted on trial and was marked good"
    } else {
        anyhow::bail!(
            "the boot after the cut started neither the last good slot nor the new one on trial"
        );
    };
    check_keys(&vm, keys)?;
    vm.power_off(Duration::from_secs(60))?;
    run.notes.push(format!(
        "power cut {} ms into the install (seed {}, the CLI had {}finished): {outcome}",
        cut_after.as_millis(),
        ctx.seed,
        if finished_first { "" } else { "not " }
    ));
    Ok(())
}
