//! I/O errors: QEMU's blkdebug fails reads of one record's sector and every
//! write once the host arms it; clients get errors, the appliance stays up,
//! error metrics move, and no acknowledged write is lost.
//!
//! Arming: blkdebug starts in state 1 and moves to state 2 on a
//! read-modify-write, which a guest writing whole 4 KiB blocks into a node
//! with 4 KiB alignment never causes; the harness causes one itself through
//! the monitor (`qemu-io -d ns1 "write ..."` of 512 bytes inside the
//! namespace's last block, which lies in a free segment) once the appliance
//! is ready. Events the guest also causes cannot arm it: the first flush, or
//! a write-zeroes, happen while the engine opens the store, and the open
//! then fails.

use std::time::Duration;

use super::{find_in_file, fresh_dir, metric, metrics, Ctx, Run, CLIENT_TIMEOUT};
use crate::qemu::Format;
use crate::workload::{check_all, connect, len_for, put_all, value_for};

const KEYS: usize = 300;
/// A key with a 64 KiB value (`len_for` gives 64 KiB to every 16th key).
const VICTIM: usize = 16;

pub fn run(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    let dir = fresh_dir(ctx, "io-errors")?;
    let plain = ctx.direct("io-errors", Format::Plain);
    let keys: Vec<(String, usize)> = (0..KEYS).map(|i| (format!("io:{i}"), len_for(i))).collect();
    let mut vm = run.boot(&plain, "write")?;
    run.step(&format!("put {KEYS} keys"), |_| {
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        put_all(&mut con, &keys, 16)
    })?;
    run.step("power off", |_| {
        vm.power_off(Duration::from_secs(60)).map(|_| ())
    })?;
    drop(vm);

    let victim = &keys[VICTIM];
    let value = value_for(&victim.0, victim.1);
    let sector = {
        let at = find_in_file(
            &plain.backing(Format::Plain),
            &value[20_000..20_064],
            512 << 20,
        )?
        .ok_or_else(|| anyhow::anyhow!("the victim's value is not in the backing file"))?;
        at / 512
    };
    // In state 2 (after the host's write-zeroes) reads of the victim's
    // sector and all writes fail with EIO.
    let rules = dir.join("blkdebug.conf");
    std::fs::write(
        &rules,
        format!(
            "[set-state]\nevent = \"pwritev_rmw_head\"\nstate = \"1\"\nnew_state = \"2\"\n\n\
             [set-state]\nevent = \"pwritev_rmw_tail\"\nstate = \"1\"\nnew_state = \"2\"\n\n\
             [inject-error]\nevent = \"read_aio\"\nstate = \"2\"\nerrno = \"5\"\nsector = \"{sector}\"\n\n\
             [inject-error]\nevent = \"write_aio\"\nstate = \"2\"\nerrno = \"5\"\n"
        ),
    )?;
    let mut faulty = plain.clone();
    faulty.blkdebug = Some((Format::Plain, rules));
    let mut vm = run.boot(&faulty, "faults")?;
    let mut acked: Vec<(String, usize)> = keys.clone();
    run.step("faults on: writes and the victim's read fail, the rest is served, the appliance stays up", |run| {
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        // Not the victim: reading it would put it in the value cache.
        let others: Vec<(String, usize)> = keys.iter().filter(|k| k.0 != victim.0).cloned().collect();
        let check = check_all(&mut con, &others, 50)?;
        anyhow::ensure!(check.is_empty(), "before arming, {} keys are wrong: {:?}", check.len(), &check[..check.len().min(5)]);
        // Writes work until the harness arms the faults.
        let unarmed = ("io:before-arming".to_string(), 100);
        put_all(&mut con, std::slice::from_ref(&unarmed), 1)
            .map_err(|e| anyhow::anyhow!("a SET failed before blkdebug was armed: {e}"))?;
        acked.push(unarmed);
        let before = metrics(&vm)?;
        let last_block = crate::qemu::NAMESPACE_FILE_BYTES - 4096;
        // The write itself fails once armed; what proves the arming is that
        // the guest's writes fail next.
        let armed = vm.monitor(&format!("qemu-io -d ns1 \"write {} 512\"", last_block + 512))?;
        let said: Vec<&str> = armed
            .lines()
            .map(|l| l.trim_matches(|c: char| c == '\r' || c.is_whitespace()))
            .filter(|l| !l.is_empty() && !l.starts_with("(qemu)") && !l.contains("qemu-io"))
            .collect();
        run.notes.push(format!(
            "blkdebug armed by a 512-byte write from the monitor ({})",
            if said.is_empty() { "no output".to_string() } else { said.join(" ") }
        ));
        let mut write_errors = 0;
        for i in 0..20 {
            let key = (format!("io:after:{i}"), 100);
            match put_all(&mut con, std::slice::from_ref(&key), 1) {
                Ok(()) => acked.push(key),
                Err(e) => {
                    write_errors += 1;
                    if write_errors == 1 {
                        run.notes.push(format!("SET after the fault: {e}"));
                    }
                }
            }
        }
        anyhow::ensure!(write_errors > 0, "no SET failed although blkdebug fails every write");
        let read = redis::cmd("GET").arg(&victim.0).query::<Option<Vec<u8>>>(&mut con);
        match read {
            Ok(Some(v)) if v == value => anyhow::bail!("the victim's read succeeded: blkdebug did not fail it"),
            Ok(Some(_)) => anyhow::bail!("a wrong value was served for the victim"),
            Ok(None) => anyhow::bail!("the victim is missing"),
            Err(e) => run.notes.push(format!("GET {} -> {e}", victim.0)),
        }
        let bad = check_all(&mut con, &others, 50)?;
        anyhow::ensure!(bad.is_empty(), "{} other keys failed under faults: {:?}", bad.len(), &bad[..bad.len().min(5)]);
        let (status, _) = crate::http::get(vm.admin, "/livez", Duration::from_secs(5))?;
        anyhow::ensure!(status == 200, "/livez answered {status}");
        let after = metrics(&vm)?;
        let moved = |name: &str| -> anyhow::Result<f64> { Ok(metric(&after, name)? - metric(&before, name)?) };
        let nvme = moved("veltrix_nvme_errors_total")?;
        let writes = moved("veltrix_write_errors_total")? + moved("veltrix_flush_errors_total")?;
        anyhow::ensure!(nvme > 0.0, "veltrix_nvme_errors_total did not move");
        anyhow::ensure!(writes > 0.0, "neither veltrix_write_errors_total nor veltrix_flush_errors_total moved");
        run.notes.push(format!("{write_errors}/20 SETs failed; nvme_errors_total +{nvme}, write+flush errors +{writes}"));
        Ok(())
    })?;
    run.step("kill the faulty guest", |_| vm.kill9())?;
    drop(vm);
    let mut vm = run.boot(&plain, "verify")?;
    run.step("faults off: every acknowledged write is there", |run| {
        let mut con = connect(vm.resp, CLIENT_TIMEOUT)?;
        let bad = check_all(&mut con, &acked, 50)?;
        anyhow::ensure!(
            bad.is_empty(),
            "{} acknowledged writes lost: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
        run.notes
            .push(format!("{} acknowledged writes present", acked.len()));
        Ok(())
    })?;
    run.step("power off", |_| {
        vm.power_off(Duration::from_secs(60)).map(|_| ())
    })?;
    Ok(None)
}
