//! veltrix-init: PID 1 of the VeltrixDB appliance image.
//!
//! It mounts the kernel's file systems, loads the modules the image lists,
//! finds the configured namespace by NVMe controller serial and NSID (never
//! by kernel name), configures the network, then starts veltrixd and
//! restarts it whenever it dies, counting restarts. SIGTERM, SIGINT
//! (Ctrl-Alt-Del), SIGPWR and SIGUSR2 ask it to stop veltrixd cleanly and
//! power off. See `docs/image.md`.

#![forbid(unsafe_code)]

mod cmdline;
mod config;
mod devices;
mod modules;
mod mounts;
mod network;
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
    match boot() {
        Ok(launch) => supervise::run(&launch, &stop),
        Err(e) => {
            log!("boot failed: {e:#}");
            log!("powering off in 2 s");
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    supervise::power_off();
}

/// Everything up to the first start of veltrixd.
fn boot() -> anyhow::Result<supervise::Launch> {
    mounts::mount_all()?;
    let cmdline = cmdline::Cmdline::read()?;
    log!("kernel command line: {}", cmdline.raw);
    modules::load_all(MODULES_FILE)?;
    let text = config::read_text(&cmdline)?;
    let resolved = config::resolve(&text, &cmdline)?;
    network::configure(&cmdline)?;
    Ok(supervise::Launch {
        program: VELTRIXD.into(),
        args: vec!["--config".into(), resolved.config_path],
        restart_delay_max: Duration::from_secs(10),
    })
}
