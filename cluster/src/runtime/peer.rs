//! One connection to one peer: the hello, frames in and out, bounded
//! buffers.
//!
//! The hello (first frame each way): magic `VXC1`, the cluster id (u128,
//! little-endian) and the sender's node id (u64). A peer of another
//! cluster, or one claiming an id we do not know, is dropped.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::node::Envelope;
use crate::placement::NodeId;
use crate::wire::{self, WireError};

const MAGIC: &[u8; 4] = b"VXC1";
/// Bytes of a hello.
pub const HELLO: usize = 4 + 16 + 8;

/// The hello a node sends first.
pub fn hello(cluster: u128, me: NodeId) -> Vec<u8> {
    let mut out = Vec::with_capacity(HELLO);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&cluster.to_le_bytes());
    out.extend_from_slice(&me.to_le_bytes());
    out
}

/// The node a hello names, if it is a hello of `cluster`.
pub fn read_hello(bytes: &[u8], cluster: u128) -> Option<NodeId> {
    let bytes: &[u8; HELLO] = bytes.get(..HELLO)?.try_into().ok()?;
    if &bytes[..4] != MAGIC {
        return None;
    }
    let mut c = [0u8; 16];
    c.copy_from_slice(&bytes[4..20]);
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[20..28]);
    (u128::from_le_bytes(c) == cluster).then_some(u64::from_le_bytes(n))
}

/// A connection's state.
pub struct Conn {
    pub stream: TcpStream,
    /// The peer, once its hello arrived (outbound: known from the start).
    pub peer: Option<NodeId>,
    hello_seen: bool,
    inbound: Vec<u8>,
    outbound: Vec<u8>,
    /// Bytes of `outbound` already written.
    written: usize,
}

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("peer closed the connection")]
    Closed,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("bad frame: {0}")]
    Wire(#[from] WireError),
    #[error("bad hello")]
    Hello,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: Option<NodeId>, hello: Vec<u8>) -> Self {
        Self {
            stream,
            peer,
            hello_seen: false,
            inbound: Vec::new(),
            outbound: hello,
            written: 0,
        }
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.outbound.len() - self.written
    }

    /// Queues an envelope's frame; refuses (returns false) when that would
    /// take the queue past `limit` bytes: the caller drops the envelope, as
    /// a lossy network would, and Raft sends again.
    pub fn queue(&mut self, envelope: &Envelope, limit: usize) -> bool {
        let frame = wire::encode(envelope);
        if self.queued() + frame.len() > limit {
            return false;
        }
        if self.written > 0 && self.written == self.outbound.len() {
            self.outbound.clear();
            self.written = 0;
        }
        self.outbound.extend_from_slice(&frame);
        true
    }

    /// Writes what the socket takes now.
    pub fn flush(&mut self) -> Result<(), ConnError> {
        while self.written < self.outbound.len() {
            match self.stream.write(&self.outbound[self.written..]) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if self.written == self.outbound.len() {
            self.outbound.clear();
            self.written = 0;
        }
        Ok(())
    }

    /// Reads what has arrived; returns the whole envelopes (after the hello,
    /// which sets `peer` on an accepted connection).
    pub fn read(&mut self, cluster: u128) -> Result<Vec<Envelope>, ConnError> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(n) => {
                    self.inbound.extend_from_slice(&chunk[..n]);
                    // Never hold more than one frame's worth unparsed.
                    if self.inbound.len() > wire::MAX_FRAME + HELLO + chunk.len() {
                        return Err(WireError::TooLarge(self.inbound.len()).into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.frames(cluster)
    }

    fn frames(&mut self, cluster: u128) -> Result<Vec<Envelope>, ConnError> {
        let mut at = 0;
        if !self.hello_seen {
            if self.inbound.len() < HELLO {
                return Ok(Vec::new());
            }
            let from = read_hello(&self.inbound, cluster).ok_or(ConnError::Hello)?;
            // An outbound connection knows whom it called; the hello must
            // agree. An accepted one learns the peer from it.
            if self.peer.is_some_and(|p| p != from) {
                return Err(ConnError::Hello);
            }
            self.peer = Some(from);
            self.hello_seen = true;
            at = HELLO;
        }
        let mut out = Vec::new();
        while let Some(len) = wire::frame_len(&self.inbound[at..])? {
            if self.inbound.len() - at < len {
                break;
            }
            out.push(wire::decode(&self.inbound[at..at + len])?);
            at += len;
        }
        self.inbound.drain(..at);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_names_its_node_only_within_its_cluster() {
        let h = hello(42, 7);
        assert_eq!(h.len(), HELLO);
        assert_eq!(read_hello(&h, 42), Some(7));
        assert_eq!(read_hello(&h, 43), None, "another cluster's node");
        let mut bad = h.clone();
        bad[0] = b'X';
        assert_eq!(read_hello(&bad, 42), None, "not our protocol");
        assert_eq!(read_hello(&h[..HELLO - 1], 42), None, "a partial hello");
    }
}
