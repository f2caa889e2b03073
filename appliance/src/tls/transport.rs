//! A data-port connection's byte stream: the nonblocking socket itself, or a
//! rustls server connection driven over it. The event loop reads and writes
//! plaintext through [`Read`] and [`Write`] either way, and registers the
//! transport with mio as it would the socket.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{event, Interest, Registry, Token};
use rustls::{ServerConfig, ServerConnection};

pub(crate) struct Transport {
    socket: TcpStream,
    /// `None` on a plain-text port.
    tls: Option<Box<ServerConnection>>,
}

impl Transport {
    pub fn plain(socket: TcpStream) -> Transport {
        Transport { socket, tls: None }
    }

    /// A server-side TLS connection over `socket`; the handshake happens as
    /// the event loop reads.
    pub fn tls(socket: TcpStream, config: &Arc<ServerConfig>) -> Result<Transport, rustls::Error> {
        let connection = ServerConnection::new(Arc::clone(config))?;
        Ok(Transport {
            socket,
            tls: Some(Box::new(connection)),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Encrypted bytes rustls holds that the socket has not taken yet.
    pub fn has_pending_output(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Says goodbye the TLS way (close_notify), as far as the socket takes
    /// it without blocking.
    pub fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = push(tls, &mut self.socket);
        }
    }
}

/// Hands rustls's pending records to the socket until it has none left or
/// the socket would block.
fn push(tls: &mut ServerConnection, socket: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(socket) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock
}

impl Read for Transport {
    /// Plaintext, as a socket's read: `Ok(0)` once the peer has closed
    /// (with or without close_notify: pipelined commands before it still
    /// run), `WouldBlock` when nothing more can be read now. A record or
    /// handshake rustls refuses (plain text, an untrusted or missing client
    /// certificate) is `InvalidData`, after its alert is sent.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.socket.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if !would_block(&e) => return Err(e),
                Err(_) => {}
            }
            let received = match tls.read_tls(&mut self.socket) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let processed = tls.process_new_packets();
            // Handshake messages or an alert may be waiting; what the socket
            // does not take now goes out at the event loop's next flush.
            match push(tls, &mut self.socket) {
                Err(e) if !would_block(&e) && processed.is_ok() => return Err(e),
                _ => {}
            }
            if let Err(refused) = processed {
                return Err(io::Error::new(ErrorKind::InvalidData, refused));
            }
            if received == 0 {
                // The peer closed its side: what is still buffered, then EOF.
                return match tls.reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(_) => Ok(0),
                };
            }
        }
    }
}

impl Write for Transport {
    /// Takes plaintext only once rustls's earlier records have gone to the
    /// socket, so rustls buffers at most one write's worth (its buffer
    /// limit, 64 KiB): the event loop's write buffer is the backlog.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.socket.write(buf);
        };
        push(tls, &mut self.socket)?;
        let taken = tls.writer().write(buf)?;
        if taken == 0 && !buf.is_empty() {
            // rustls's buffer is full while the handshake is unfinished.
            return Err(ErrorKind::WouldBlock.into());
        }
        match push(tls, &mut self.socket) {
            Err(e) if !would_block(&e) => Err(e),
            _ => Ok(taken),
        }
    }

    /// Sends rustls's pending records; `WouldBlock` if some are left.
    fn flush(&mut self) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => push(tls, &mut self.socket),
            None => Ok(()),
        }
    }
}

impl event::Source for Transport {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.socket.deregister(registry)
    }
}
