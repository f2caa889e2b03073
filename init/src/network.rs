//! Network setup with busybox `ip`: loopback, then the first Ethernet
//! interface (virtio-net or e1000 under QEMU) with a static address.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cmdline::Cmdline;

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new(crate::BUSYBOX)
        .arg("ip")
        .args(args)
        .status()
        .with_context(|| format!("cannot run ip {}", args.join(" ")))?;
    anyhow::ensure!(status.success(), "ip {} failed: {status}", args.join(" "));
    Ok(())
}

/// Brings up `lo` and the first other interface, with the command line's
/// address and default route.
pub fn configure(cmdline: &Cmdline) -> anyhow::Result<()> {
    ip(&["link", "set", "lo", "up"])?;
    let started = Instant::now();
    let interface = loop {
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .context("cannot list /sys/class/net")?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n != "lo")
            .collect();
        names.sort();
        if let Some(first) = names.into_iter().next() {
            break first;
        }
        if started.elapsed() > Duration::from_secs(10) {
            crate::log!("no network interface appeared within 10 s: serving on loopback only");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ip(&["addr", "add", &cmdline.ip, "dev", &interface])?;
    ip(&["link", "set", &interface, "up"])?;
    if let Some(gateway) = &cmdline.gateway {
        ip(&["route", "add", "default", "via", gateway])?;
    }
    crate::log!(
        "network: {interface} {} gateway {}",
        cmdline.ip,
        cmdline.gateway.as_deref().unwrap_or("none")
    );
    Ok(())
}
