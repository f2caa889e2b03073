//! The health check of a slot on trial: veltrixd's `/readyz` answers 200
//! and its data port answers `PING` with `PONG`. Passing it marks the slot
//! good; missing the deadline reboots, so the next boot counts a try.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use veltrix_update::boot_state::Slot;

/// Default time a trial slot has to become healthy (`veltrix.trial_s=`).
pub const TRIAL_DEADLINE_DEFAULT_S: u64 = 300;
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `request` and reads the answer's first bytes.
fn ask(address: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.write_all(request).ok()?;
    let mut answer = vec![0u8; 64];
    let n = stream.read(&mut answer).ok()?;
    answer.truncate(n);
    Some(answer)
}

/// The loopback address of a configured listener (it may listen on 0.0.0.0).
fn local(address: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], address.port()))
}

/// Whether veltrixd is ready and answers on its data port.
pub fn healthy(data: SocketAddr, admin: SocketAddr) -> bool {
    let ready = ask(
        local(admin),
        b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n",
    )
    .is_some_and(|a| a.starts_with(b"HTTP/1.1 200") || a.starts_with(b"HTTP/1.0 200"));
    ready && ask(local(data), b"*1\r\n$4\r\nPING\r\n").is_some_and(|a| a.starts_with(b"+PONG"))
}

/// Watches a trial boot from its own thread: marks the slot good once
/// healthy, or reboots at the deadline.
pub fn watch_trial(slot: Slot, data: SocketAddr, admin: SocketAddr, deadline: Duration) {
    std::thread::spawn(move || {
        let started = Instant::now();
        crate::log!(
            "slot {} is on trial: it has {} s to pass its health check",
            slot.name(),
            deadline.as_secs()
        );
        while started.elapsed() < deadline {
            if healthy(data, admin) {
                if let Err(e) = crate::slots::mark_good(slot) {
                    crate::log!("cannot mark slot {} good: {e:#}; rebooting", slot.name());
                    crate::supervise::reboot();
                }
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        crate::log!(
            "slot {} failed its health check within {} s: rebooting, so the next boot counts",
            slot.name(),
            deadline.as_secs()
        );
        crate::supervise::reboot();
    });
}
