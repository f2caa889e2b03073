//! The log: where a stream appends ([`Tail`]), what a valid frame is
//! ([`frame`]), and the one walker that reads a stream back
//! ([`walk::StreamWalk`]).
//!
//! Recovery, `inspect` and GC all read logs through this module, so they
//! cannot disagree about what a frame, a seal, a clean segment switch, a
//! torn tail or damage is. It sits above `format` (the byte encodings) and
//! `layout` (where segments are) and below everything that reads or writes a
//! log; it imports nothing above it.

pub(crate) mod frame;
pub(crate) mod read;
#[cfg(test)]
mod testing;
pub(crate) mod walk;

pub(crate) use frame::valid_frame_at;
pub(crate) use walk::{Event, StreamWalk};

/// Where a stream appends next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    pub segment: u32,
    pub generation: u64,
    /// Byte offset of the next frame within the segment.
    pub offset: u32,
    /// Sequence number of the stream's last durable record.
    pub last_seq: u64,
}
