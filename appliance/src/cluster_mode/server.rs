//! The cluster member's RESP data port: a thread per connection, each
//! reading commands with the data port's parser and answering them in
//! order (pipelined commands included).
//!
//! Threads, not the engine's event loops: a request waits for its group's
//! Raft round, and the node's own loop does the batching (every request
//! that arrives during a step goes out in that step's one flush). The
//! connection count is bounded by `connections_max`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::dispatch::Session;
use super::Member;
use crate::resp::{encode, Limits, Parser};

const READ_CHUNK_BYTES: usize = 64 << 10;

/// The running data port.
pub struct DataPort {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The address actually bound.
    pub listen: SocketAddr,
}

impl DataPort {
    /// Binds `listen` and serves it.
    pub fn start(
        member: Arc<Member>,
        listen: SocketAddr,
        connections_max: usize,
        limits: Limits,
    ) -> anyhow::Result<DataPort> {
        let listener = TcpListener::bind(listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        listener.set_nonblocking(true)?;
        let listen = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("veltrix-cluster-accept".into())
                .spawn(move || loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accept(stream, &member, &open, connections_max, limits, &stop)
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                })?
        };
        Ok(DataPort {
            stop,
            thread: Some(thread),
            listen,
        })
    }

    /// Stops accepting; open connections end when their clients close.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DataPort {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept(
    mut stream: TcpStream,
    member: &Arc<Member>,
    open: &Arc<AtomicUsize>,
    connections_max: usize,
    limits: Limits,
    stop: &Arc<AtomicBool>,
) {
    if open.fetch_add(1, Ordering::Relaxed) >= connections_max {
        open.fetch_sub(1, Ordering::Relaxed);
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n");
        return;
    }
    let (member, open, stop) = (Arc::clone(member), Arc::clone(open), Arc::clone(stop));
    let spawned = std::thread::Builder::new()
        .name("veltrix-cluster-conn".into())
        .spawn(move || {
            serve(stream, &member, limits, &stop);
            open.fetch_sub(1, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start a connection thread: {e}");
    }
}

/// Reads and answers commands until the client closes, breaks the
/// protocol, or says QUIT.
fn serve(mut stream: TcpStream, member: &Member, limits: Limits, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    // Wake now and then to notice a stopping daemon.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut parser = Parser::new(limits);
    let mut session = Session::new(member);
    let mut buf: Vec<u8> = Vec::new();
    let mut args = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        // Answer every whole command in the buffer, then write once.
        loop {
            match parser.parse(&mut buf, &mut args) {
                Ok(Some(consumed)) => {
                    if !args.is_empty() {
                        let argv: Vec<&[u8]> = crate::resp::arg_bytes(&buf, &args).collect();
                        let close = session.execute(&argv, &mut out);
                        if close {
                            let _ = stream.write_all(&out);
                            return;
                        }
                    }
                    buf.drain(..consumed);
                }
                Ok(None) => break,
                Err(e) => {
                    encode::protocol_error(&mut out, &e);
                    let _ = stream.write_all(&out);
                    return;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
