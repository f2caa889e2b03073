//! Bit flip: with the guest powered off, flip one bit of a value inside a
//! sealed VLog segment in a backing file; boot; the read of that key is
//! detected as corrupt, counted, reported and never served, and every other
//! key still reads. On the PI namespaces (separate and inline metadata) the
//! controller itself fails the read with a guard error (0x282), which must
//! map to the same corruption error.

use std::time::Duration;

use super::{find_in_file, flip_bit, fresh_dir, metric, metrics, Ctx, Run, CLIENT_TIMEOUT};
use crate::qemu::Format;
use crate::workload::{check_all, connect, put_all, value_for};

const VALUE_BYTES: usize = 64 << 10;
/// Enough 64 KiB values after the victim that every worker's log stream
/// leaves the victim's 8 MiB segment, which seals it (2 workers: 16 MiB each).
const FILLER_KEYS: usize = 500;

pub fn run(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    fresh_dir(ctx, "bit-flip")?;
    for format in Format::ALL {
        one(ctx, run, format)?;
    }
    Ok(None)
}

fn one(ctx: &Ctx, run: &mut Run, format: Format) -> anyhow::Result<()> {
    let nsid = format.nsid();
    let spec = ctx.direct("bit-flip", format);
    let victim = (format!("bitflip:{nsid}:victim"), VALUE_BYTES);
    let filler: Vec<(String, usize)> = (0..FILLER_KEYS)
        .map(|i| (format!("bitflip:{nsid}:{i}"), VALUE_BYTES))
        .collect();
    let mut vm = run.boot(&spec, &format!("nsid{nsid}-write"))?;
    run.step(
        &format!(
            "{}: write the victim, then {} MiB after it",
            format.label(),
            (FILLER_KEYS * VALUE_BYTES) >> 20
        ),
        |_| {
            let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
            put_all(&mut con, std::slice::from_ref(&victim), 1)?;
            put_all(&mut con, &filler, 16)
        },
    )?;
    run.step("power off", |_| {
        vm.power_off(Duration::from_secs(60)).map(|_| ())
    })?;
    drop(vm);

    let backing = spec.backing(format);
    let value = value_for(&victim.0, victim.1);
    let offset = run.step(
        "find the victim's value in the backing file, flip one bit",
        |_| {
            let marker = &value[30_000..30_064];
            let found = find_in_file(&backing, marker, 512 << 20)?.ok_or_else(|| {
                anyhow::anyhow!("the victim's value is not in {}", backing.display())
            })?;
            flip_bit(&backing, found + 17, 3)?;
            Ok(found + 17)
        },
    )?;
    run.step("offline `veltrix inspect` locates the damage", |run| {
        let out = std::process::Command::new(&ctx.veltrix)
            .arg("inspect")
            .arg(&backing)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.code() == Some(2),
            "inspect exited {:?}, expected 2 (corruption): {text}",
            out.status.code()
        );
        let line = text
            .lines()
            .find(|l| l.contains("CORRUPT") && l.contains(&victim.0))
            .ok_or_else(|| anyhow::anyhow!("inspect does not name the victim key: {text}"))?;
        run.notes.push(format!(
            "nsid {nsid}: bit flipped at file offset {offset} (LBA {}); inspect: {}",
            offset / 4096,
            line.trim()
        ));
        Ok(())
    })?;

    let mut vm = run.boot(&spec, &format!("nsid{nsid}-read"))?;
    run.step(&format!("{}: the victim's read fails as corrupt, twice; metrics count it", format.label()), |run| {
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        let mut messages = Vec::new();
        for _ in 0..2 {
            match redis::cmd("GET").arg(&victim.0).query::<Option<Vec<u8>>>(&mut con) {
                Ok(Some(v)) => anyhow::bail!("the corrupt value was served ({} bytes, equal to the original: {})", v.len(), v == value),
                Ok(None) => anyhow::bail!("the victim key is missing instead of reported corrupt"),
                Err(e) => messages.push(e.to_string()),
            }
        }
        let message = &messages[0];
        anyhow::ensure!(message.to_ascii_lowercase().contains("corrupt"), "the error does not say corruption: {message}");
        if format != Format::Plain {
            anyhow::ensure!(
                message.contains("protection-information"),
                "on a PI namespace the read should fail in the controller's guard check, but the error is: {message}"
            );
            let console = crate::qemu::console_text(&vm.console);
            let kernel = console
                .lines()
                .find(|l| l.contains("Guard Check") || l.contains("sc 0x82"))
                .map(str::trim);
            run.notes.push(format!("nsid {nsid}: kernel log: {}", kernel.unwrap_or("(no NVMe error line on the console)")));
        }
        let text = metrics(&vm)?;
        let detected = metric(&text, "veltrix_corruption_detected_total")?;
        anyhow::ensure!(detected >= 1.0, "veltrix_corruption_detected_total is {detected}");
        let locations = metric(&text, "veltrix_corruption_locations")?;
        anyhow::ensure!(locations >= 1.0, "veltrix_corruption_locations is {locations}");
        run.notes.push(format!("nsid {nsid}: GET {} -> {message}; corruption_detected_total {detected}", victim.0));
        Ok(())
    })?;
    run.step("every other key still reads correctly", |_| {
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        let bad = check_all(&mut con, &filler, 50)?;
        anyhow::ensure!(
            bad.is_empty(),
            "{} other keys are wrong: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
        Ok(())
    })?;
    run.step("power off", |_| {
        vm.power_off(Duration::from_secs(60)).map(|_| ())
    })?;
    Ok(())
}
