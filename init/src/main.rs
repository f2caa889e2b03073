//! veltrix-init: PID 1 of the VeltrixDB appliance image.
//!
//! It mounts the kernel's file systems, loads the modules the image lists,
//! finds the configured namespace by NVMe controller serial and NSID (never
//! by kernel name), configures the network, then starts veltrixd and
//! restarts it whenever it dies, counting restarts. SIGTERM, SIGINT
//! (Ctrl-Alt-Del), SIGPWR and SIGUSR2 ask it to stop veltrixd cleanly and
//! power off. See `docs/image.md`.
//!
//! With `veltrix.stage=select` it first acts as the A/B slot selector
//! (`slots.rs`, `docs/upgrades.md`) and executes the chosen slot's init,
//! which then runs as above and, on a trial boot, marks the slot good once
//! veltrixd is healthy (`health.rs`).

#![forbid(unsafe_code)]

mod cmdline;
mod config;
mod cpio_unpack;
mod devices;
mod health;
mod modules;
mod mounts;
mod network;
mod slots;
mod supervise;

use std::time::Duration;

/// Prints one line to the console, prefixed so the harness can find it.
macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("veltrix-init: {}", format_args!($($arg)*))
    };
}
pub(crate) use log;

/// Where the image builder puts the module list, the config and veltrixd.
pub(crate) const MODULES_FILE: &str = "/etc/veltrix/modules";
pub(crate) const CONFIG_FILE: &str = "/etc/veltrix/veltrix.toml";
pub(crate) const RUN_DIR: &str = "/run/veltrix";
pub(crate) const VELTRIXD: &str = "/bin/veltrixd";
pub(crate) const BUSYBOX: &str = "/bin/busybox";

fn main() {
    let stop = match supervise::install_signal_handlers() {
        Ok(stop) => stop,
        Err(e) => {
            log!("cannot install signal handlers: {e:#}");
            supervise::power_off();
        }
    };
    // Set by the slot selector when it entered this slot.
    let slot = std::env::var(slots::SLOT_ENV)
        .ok()
        .and_then(|name| slots::parse_slot(&name));
    let trial = slot.is_some() && std::env::var(slots::TRIAL_ENV).as_deref() == Ok("1");
    match boot(slot.is_some()) {
        Ok((launch, health)) => {
            if let (Some(slot), true) = (slot, trial) {
                health::watch_trial(slot, health.data, health.admin, health.deadline);
            }
            supervise::run(&launch, &stop);
        }
        Err(e) if trial => {
            log!("boot failed: {e:#}");
            log!("this slot is on trial: rebooting in 2 s, so the next boot counts");
            std::thread::sleep(Duration::from_secs(2));
            supervise::reboot();
        }
        Err(e) => {
            log!("boot failed: {e:#}");
            log!("powering off in 2 s");
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    supervise::power_off();
}

/// Where the health check of a trial boot looks, and how long it waits.
struct HealthCheck {
    data: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    deadline: Duration,
}

/// Everything up to the first start of veltrixd (after the slot selector,
/// when this boot has one and no slot was entered yet).
fn boot(in_slot: bool) -> anyhow::Result<(supervise::Launch, HealthCheck)> {
    mounts::mount_all()?;
    let cmdline = cmdline::Cmdline::read()?;
    log!("kernel command line: {}", cmdline.raw);
    modules::load_all(MODULES_FILE)?;
    if cmdline.select_slot && !in_slot {
        match slots::select_and_enter()? {}
    }
    let text = config::read_text(&cmdline)?;
    let resolved = config::resolve(&text, &cmdline)?;
    let parsed = firmware_config::parse(&text).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    network::configure(&cmdline)?;
    let launch = supervise::Launch {
        program: VELTRIXD.into(),
        args: vec!["--config".into(), resolved.config_path],
        restart_delay_max: Duration::from_secs(10),
    };
    let health = HealthCheck {
        data: parsed.server.listen,
        admin: parsed.server.admin_listen,
        deadline: Duration::from_secs(cmdline.trial_s),
    };
    Ok((launch, health))
}
