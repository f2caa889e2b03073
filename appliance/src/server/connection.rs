//! One client connection: its buffers, its parser, and the replies it is
//! owed, in order.

use std::collections::VecDeque;

use engine::Reply;

use crate::commands::Combine;
use crate::resp::{Parser, Protocol};
use crate::tls::Transport;

/// A command waiting for its engine replies. Replies go out in command
/// order, so a connection's slots form a queue.
pub(crate) struct Slot {
    pub seq: u32,
    /// The encoded reply once complete.
    pub ready: Option<Vec<u8>>,
    pub combine: Option<Combine>,
    pub parts: Vec<Option<Reply>>,
    pub outstanding: usize,
    /// Close the connection after this reply (QUIT, protocol errors).
    pub close_after: bool,
    /// A native-protocol request: the id and opcode its reply carries.
    pub native: Option<super::native::Pending>,
}

pub(crate) struct Connection {
    pub stream: Transport,
    pub generation: u16,
    pub read: Vec<u8>,
    pub write: Vec<u8>,
    pub parser: Parser,
    pub protocol: Protocol,
    pub name: Option<Vec<u8>>,
    pub slots: VecDeque<Slot>,
    pub next_seq: u32,
    /// No more commands are read: QUIT or a protocol error is queued.
    pub closing: bool,
    /// The peer closed its side.
    pub peer_closed: bool,
    /// The last read stopped because the read buffer was full, not because
    /// the socket was empty. Readiness is edge-triggered: no new event
    /// comes for bytes already waiting, so whoever drains the buffer must
    /// read again.
    pub read_capped: bool,
    /// A native-protocol connection (else RESP).
    pub native: Option<super::native::Session>,
    /// Who the RESP client logged in as, when users are configured.
    pub login: crate::auth::Session,
    /// The client's address, for the failed-login limit per source.
    pub peer: std::net::IpAddr,
}

impl Connection {
    /// Reply bytes not yet handed to the socket: in the write buffer, or
    /// encrypted and held by rustls.
    pub fn output_pending(&self) -> bool {
        !self.write.is_empty() || self.stream.has_pending_output()
    }

    /// Moves every finished reply at the front of the queue to the write
    /// buffer. Returns whether the connection should close once written.
    pub fn collect_ready(&mut self) -> bool {
        let mut close = false;
        while let Some(front) = self.slots.front() {
            if front.ready.is_none() {
                break;
            }
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            if let Some(bytes) = slot.ready {
                self.write.extend_from_slice(&bytes);
            }
            close |= slot.close_after;
        }
        close
    }
}
