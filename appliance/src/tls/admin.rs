//! TLS in front of the admin port. tiny_http cannot serve over a rustls
//! stream, so with TLS on, its HTTP server listens on a Unix socket in a
//! private directory (mode 0700: only the daemon's own user can reach it,
//! and that user can read the key anyway), and this module accepts TLS on
//! the admin address and relays each connection, decrypted, to that
//! socket: one thread per connection, at most [`CONNECTIONS_MAX`] at once.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use rustls::ServerConfig;

use super::Transport;
use crate::server::ServerStats;

/// Admin connections relayed at once; more are closed at accept.
pub const CONNECTIONS_MAX: usize = 64;
/// A relayed connection with no traffic for this long is closed (this also
/// bounds a handshake that never finishes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes buffered in each direction before reading from that side pauses.
const BUFFER_BYTES_MAX: usize = 1 << 20;
/// How often the accept loop looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

const DIR_PREFIX: &str = "veltrixd-admin-";

/// A new directory only this user can enter, for the HTTP server's socket:
/// `veltrixd-admin-PID-RANDOM` in the temp directory. A clean stop removes
/// it; one left by a daemon that was killed is removed here, once its
/// process is gone.
pub fn private_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let temp = std::env::temp_dir();
    remove_orphans(&temp);
    let name = format!(
        "{DIR_PREFIX}{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let dir = temp.join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Removes the socket directories of daemons no longer running.
fn remove_orphans(temp: &Path) {
    // Without /proc, every process would look gone.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Accepts TLS connections on `listener` until `stop` is set, relaying
/// each to the HTTP server on `socket`. Runs on the calling thread.
pub fn serve(
    listener: TcpListener,
    socket: PathBuf,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!("admin TLS port: {e}");
        return;
    }
    let open = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let tcp = match listener.accept() {
            Ok((tcp, _)) => tcp,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(STOP_POLL);
                continue;
            }
            Err(e) => {
                tracing::warn!("admin TLS port: accept failed: {e}");
                std::thread::sleep(STOP_POLL);
                continue;
            }
        };
        if open.fetch_add(1, Ordering::Relaxed) >= CONNECTIONS_MAX {
            open.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let (socket, config, stats, open) = (
            socket.clone(),
            Arc::clone(&config),
            Arc::clone(&stats),
            Arc::clone(&open),
        );
        let spawned = std::thread::Builder::new()
            .name("veltrix-admin-tls".into())
            .spawn(move || {
                if let Err(e) = relay(tcp, &socket, &config) {
                    if e.kind() == ErrorKind::InvalidData {
                        stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!("admin TLS connection ended: {e}");
                }
                open.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            tracing::warn!("admin TLS port: no thread for a connection: {e}");
        }
    }
}

const CLIENT: Token = Token(0);
const HTTP: Token = Token(1);

/// One side of the relay: a stream, what is waiting to be written to it,
/// and whether it has finished sending.
struct Side<S> {
    stream: S,
    outbound: Vec<u8>,
    ended: bool,
}

impl<S: Read + Write> Side<S> {
    /// Reads what `self` sends into `to`'s outbound buffer, within its
    /// bound. Returns whether anything happened.
    fn read_into<T>(&mut self, to: &mut Side<T>) -> io::Result<bool> {
        let mut progressed = false;
        let mut chunk = [0u8; 16 << 10];
        while !self.ended && to.outbound.len() < BUFFER_BYTES_MAX {
            match self.stream.read(&mut chunk) {
                Ok(0) => self.ended = true,
                Ok(n) => to.outbound.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            progressed = true;
        }
        Ok(progressed)
    }

    /// Writes what is waiting for `self`. Returns whether anything went.
    fn write_out(&mut self) -> io::Result<bool> {
        let mut written = 0;
        while written < self.outbound.len() {
            match self.stream.write(&self.outbound[written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.outbound.drain(..written);
        match self.stream.flush() {
            Err(e) if e.kind() != ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        Ok(written > 0)
    }
}

/// Relays one TLS client to the HTTP server until either side is done.
/// A refused handshake or record is `InvalidData`.
fn relay(tcp: std::net::TcpStream, socket: &Path, config: &Arc<ServerConfig>) -> io::Result<()> {
    tcp.set_nonblocking(true)?;
    let _ = tcp.set_nodelay(true);
    let transport =
        Transport::tls(mio::net::TcpStream::from_std(tcp), config).map_err(io::Error::other)?;
    let unix = std::os::unix::net::UnixStream::connect(socket)?;
    unix.set_nonblocking(true)?;
    let mut client = Side {
        stream: transport,
        outbound: Vec::new(),
        ended: false,
    };
    let mut http = Side {
        stream: mio::net::UnixStream::from_std(unix),
        outbound: Vec::new(),
        ended: false,
    };
    let mut poll = Poll::new()?;
    let both = Interest::READABLE | Interest::WRITABLE;
    poll.registry().register(&mut client.stream, CLIENT, both)?;
    poll.registry().register(&mut http.stream, HTTP, both)?;
    let mut events = Events::with_capacity(8);
    let mut http_shut = false;
    loop {
        // Edge-triggered: move bytes until nothing moves, then wait.
        loop {
            let mut progressed = client.read_into(&mut http)?;
            progressed |= http.write_out()?;
            progressed |= http.read_into(&mut client)?;
            progressed |= client.write_out()?;
            if client.ended && http.outbound.is_empty() && !http_shut {
                // Pass the client's end on, so the server finishes too.
                let _ = http.stream.shutdown(Shutdown::Write);
                http_shut = true;
            }
            let sent = client.outbound.is_empty() && !client.stream.has_pending_output();
            if http.ended && sent {
                client.stream.close_notify();
                return Ok(());
            }
            if !progressed {
                break;
            }
        }
        poll.poll(&mut events, Some(IDLE_TIMEOUT))?;
        if events.is_empty() {
            return Err(io::Error::new(ErrorKind::TimedOut, "idle"));
        }
    }
}
