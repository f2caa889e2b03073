//! vfio-conformance: the userspace NVMe driver's own check in a guest,
//! `scripts/vfio-guest-check.sh` (docs/vfio.md): conformance on the three
//! namespace kinds, the PI checks, reset and timeout, then a second boot
//! after a bit flip from outside, which ends with the operator command
//! (`veltrix nvme list/bind`) moving the controller to vfio-pci and back.
//! Both boots must print `VFIO-CHECK passed=N failed=0`, and the second
//! `CLI-CHECK passed=N failed=0`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use super::{fresh_dir, Ctx, Run};

/// The script's own limit per boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);

/// Tools the script uses on the host beyond the tier's own prerequisites.
const SCRIPT_TOOLS: [&str; 5] = ["python3", "cpio", "depmod", "modprobe", "gzip"];

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file())
            || ["/sbin", "/usr/sbin"]
                .iter()
                .any(|dir| Path::new(dir).join(tool).is_file())
    })
}

/// The last `TAG passed=N failed=M` line of a boot log.
fn result_line(log: &Path, tag: &str) -> Option<(u32, u32)> {
    let text = crate::qemu::console_text(log);
    text.lines().rev().find_map(|line| parse_result(line, tag))
}

fn parse_result(line: &str, tag: &str) -> Option<(u32, u32)> {
    let marker = format!("{tag} passed=");
    let rest = &line[line.find(&marker)? + marker.len()..];
    let (passed, rest) = rest.split_once(" failed=")?;
    let failed: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

pub fn run(ctx: &Ctx, run: &mut Run) -> anyhow::Result<Option<String>> {
    let missing: Vec<&str> = SCRIPT_TOOLS
        .iter()
        .copied()
        .filter(|t| !on_path(t))
        .collect();
    if !missing.is_empty() {
        return Ok(Some(format!(
            "scripts/vfio-guest-check.sh needs {} on the host (apt-get install python3 cpio kmod gzip)",
            missing.join(", ")
        )));
    }
    let dir = fresh_dir(ctx, "vfio-conformance")?;
    let script = ctx.root.join("scripts/vfio-guest-check.sh");
    let output = dir.join("script.log");
    let boot_run = dir.join("boot-run.log");
    let boot_flip = dir.join("boot-flip.log");
    run.logs
        .extend([output.clone(), boot_run.clone(), boot_flip.clone()]);
    let status = run.step(
        "scripts/vfio-guest-check.sh: build, boot 1 (check), bit flip, boot 2 (verify-flip)",
        |_| {
            Command::new("bash")
                .arg(&script)
                .arg(&dir)
                .current_dir(&ctx.root)
                .env("VFIO_CHECK_TIMEOUT_S", BOOT_TIMEOUT.as_secs().to_string())
                .env("VELTRIX_CLI", &ctx.veltrix)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&output)?)
                .stderr(std::fs::File::create(dir.join("script.stderr"))?)
                .status()
                .with_context(|| format!("cannot run {}", script.display()))
        },
    )?;
    let first = result_line(&boot_run, "VFIO-CHECK");
    let second = result_line(&boot_flip, "VFIO-CHECK");
    let cli = result_line(&boot_flip, "CLI-CHECK");
    let describe = |r: Option<(u32, u32)>, tag: &str| {
        r.map_or_else(
            || format!("no {tag} line"),
            |(p, f)| format!("passed={p} failed={f}"),
        )
    };
    run.notes.push(format!(
        "boot 1 (conformance on nsid 1, 2, 3, host PI, MDTS split, reset, timeout, PI errors, CC.SHN, rebind): {}; boot 2 (bit flip from outside on both PI namespaces): {}; veltrix nvme list/bind: {}",
        describe(first, "VFIO-CHECK"),
        describe(second, "VFIO-CHECK"),
        describe(cli, "CLI-CHECK")
    ));
    match (first, second, cli) {
        (Some((p1, 0)), Some((p2, 0)), Some((p3, 0)))
            if p1 > 0 && p2 > 0 && p3 > 0 && status.success() =>
        {
            Ok(None)
        }
        _ => anyhow::bail!(
            "the vfio check failed (script exit {status}): boot 1 {}, boot 2 {}, veltrix nvme {}",
            describe(first, "VFIO-CHECK"),
            describe(second, "VFIO-CHECK"),
            describe(cli, "CLI-CHECK")
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn result_lines() {
        let parse = |line| super::parse_result(line, "VFIO-CHECK");
        assert_eq!(
            parse("[  9.1] VFIO-CHECK passed=20 failed=0\r"),
            Some((20, 0))
        );
        assert_eq!(parse("VFIO-CHECK passed=5 failed=2"), Some((5, 2)));
        assert_eq!(parse("VFIO-CHECK-EXIT 0"), None);
        assert_eq!(parse("PASS something"), None);
        assert_eq!(parse("CLI-CHECK passed=8 failed=0"), None);
        assert_eq!(
            super::parse_result("CLI-CHECK passed=8 failed=1", "CLI-CHECK"),
            Some((8, 1))
        );
    }
}
