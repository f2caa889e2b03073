//! Commands and completions.

use crate::buffer::DmaBuf;
use crate::error::IoError;

/// A command for a queue pair. Data commands carry the buffer, which the queue
/// owns until the command completes.
#[derive(Debug)]
pub enum Command {
    /// Read `buf.len()` bytes starting at `lba` into `buf`.
    Read {
        /// First logical block.
        lba: u64,
        /// Destination; its length sets the transfer size.
        buf: DmaBuf,
    },
    /// Write `buf.len()` bytes from `buf` starting at `lba`.
    Write {
        /// First logical block.
        lba: u64,
        /// Source; its length sets the transfer size.
        buf: DmaBuf,
        /// Force unit access: durable when it completes, no flush needed.
        fua: bool,
    },
    /// Make every write completed before this command durable.
    Flush,
    /// Write zeroes over `lbas` blocks starting at `lba`.
    WriteZeroes {
        /// First logical block.
        lba: u64,
        /// Number of blocks.
        lbas: u32,
    },
    /// Deallocate (trim) `lbas` blocks starting at `lba`.
    Deallocate {
        /// First logical block.
        lba: u64,
        /// Number of blocks.
        lbas: u32,
    },
}

impl Command {
    /// The LBA range `[first, first + count)` this command touches, if any.
    pub fn lba_range(&self, lba_bytes: u32) -> Option<(u64, u64)> {
        match self {
            Command::Read { lba, buf } | Command::Write { lba, buf, .. } => {
                Some((*lba, buf.len() as u64 / u64::from(lba_bytes)))
            }
            Command::WriteZeroes { lba, lbas } | Command::Deallocate { lba, lbas } => {
                Some((*lba, u64::from(*lbas)))
            }
            Command::Flush => None,
        }
    }

    /// Gives back the command's buffer, if it has one.
    pub fn into_buf(self) -> Option<DmaBuf> {
        match self {
            Command::Read { buf, .. } | Command::Write { buf, .. } => Some(buf),
            _ => None,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Read { .. } => "read",
            Command::Write { .. } => "write",
            Command::Flush => "flush",
            Command::WriteZeroes { .. } => "write_zeroes",
            Command::Deallocate { .. } => "deallocate",
        }
    }
}

/// The outcome of one command.
#[derive(Debug)]
pub struct Completion {
    /// The token given at submission.
    pub token: u64,
    /// Success, or why it failed.
    pub result: Result<(), IoError>,
    /// The command's buffer, handed back (reads: filled with the data).
    pub buf: Option<DmaBuf>,
}
