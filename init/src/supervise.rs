//! Running veltrixd: start it, restart it when it dies (counting restarts,
//! with a growing delay), stop it and power off on request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// What to run.
pub struct Launch {
    /// The daemon's path.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The longest wait between a death and the next start.
    pub restart_delay_max: Duration,
}

/// How long veltrixd gets to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// A run at least this long resets the restart delay.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Registers the power-off signals, and turns Ctrl-Alt-Del into SIGINT
/// (instead of an immediate reboot) so it powers off cleanly too.
pub fn install_signal_handlers() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        nix::libc::SIGPWR,
        signal_hook::consts::SIGUSR2,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    // Not PID 1 (a test run on the host): the kernel refuses, which is fine.
    let _ = nix::sys::reboot::set_cad_enabled(false);
    Ok(stop)
}

fn spawn(launch: &Launch) -> Option<Pid> {
    match std::process::Command::new(&launch.program)
        .args(&launch.args)
        .spawn()
    {
        Ok(child) => i32::try_from(child.id()).ok().map(Pid::from_raw),
        Err(e) => {
            crate::log!("cannot start {}: {e}", launch.program);
            None
        }
    }
}

/// Reaps every exited process; returns the status of `daemon` if it was one.
fn reap(daemon: Option<Pid>) -> Option<WaitStatus> {
    let mut daemon_status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return daemon_status,
            Ok(status) => {
                if status.pid().is_some() && status.pid() == daemon {
                    daemon_status = Some(status);
                }
            }
        }
    }
}

/// Supervises the daemon until a stop is requested, then stops it.
pub fn run(launch: &Launch, stop: &AtomicBool) {
    let mut restarts: u64 = 0;
    let mut delay = Duration::from_secs(1);
    let mut daemon = spawn(launch);
    let mut started = Instant::now();
    let mut next_start: Option<Instant> = None;
    if let Some(pid) = daemon {
        crate::log!("veltrixd started (pid {pid}, restarts {restarts})");
    }
    while !stop.load(Ordering::Relaxed) {
        if let Some(status) = reap(daemon) {
            restarts += 1;
            let ran = started.elapsed();
            if ran >= HEALTHY_RUN {
                delay = Duration::from_secs(1);
            }
            crate::log!(
                "veltrixd exited after {} ms: {status:?}; restart {restarts} in {} ms",
                ran.as_millis(),
                delay.as_millis()
            );
            let _ = std::fs::write(
                format!("{}/restarts", crate::RUN_DIR),
                format!("{restarts}\n"),
            );
            daemon = None;
            next_start = Some(Instant::now() + delay);
            delay = (delay * 2).min(launch.restart_delay_max);
        }
        if daemon.is_none() && next_start.is_none_or(|at| Instant::now() >= at) {
            daemon = spawn(launch);
            started = Instant::now();
            next_start = if daemon.is_some() {
                crate::log!(
                    "veltrixd started (pid {}, restarts {restarts})",
                    daemon.map_or(0, Pid::as_raw)
                );
                None
            } else {
                Some(Instant::now() + delay)
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::log!("power-off requested: stopping veltrixd (restarts so far: {restarts})");
    if let Some(pid) = daemon {
        stop_daemon(pid);
    }
}

fn stop_daemon(pid: Pid) {
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = reap(Some(pid)) {
            crate::log!("veltrixd stopped: {status:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::log!(
        "veltrixd did not stop within {} s: killing it",
        STOP_TIMEOUT.as_secs()
    );
    let _ = kill(pid, Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(200));
    let _ = reap(Some(pid));
}

/// Flushes the file systems and reboots; never returns. A slot on trial
/// that fails reboots rather than powers off, so that the next boot counts
/// its try and, with none left, falls back (`docs/upgrades.md`).
pub fn reboot() -> ! {
    nix::unistd::sync();
    crate::log!("rebooting");
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT) {
        Ok(never) => match never {},
        Err(e) => {
            crate::log!("reboot failed: {e}; powering off instead");
            power_off();
        }
    }
}

/// Flushes the file systems and powers off; never returns.
pub fn power_off() -> ! {
    nix::unistd::sync();
    crate::log!("powering off");
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF) {
        Ok(never) => match never {},
        Err(e) => {
            crate::log!("power-off failed: {e}; halting here");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
}
