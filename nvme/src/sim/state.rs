//! The namespace's shared state behind one mutex, and the execution of a
//! command at its completion.
//!
//! Everything random is drawn here, from the one stream in [`State::rng`]:
//! latencies at submission, faults at execution. Driven from one thread, the
//! sequence of submissions, polls and clock moves fixes every draw.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::crash::{self, CrashSummary};
use super::faults::{self, FaultConfig, FaultCounts};
use super::media::Media;
use crate::command::{Command, Completion};
use crate::error::IoError;
use crate::geometry::Geometry;

/// Counts of what a simulated namespace executed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Read commands executed (including failed ones).
    pub reads: u64,
    /// Write commands executed, FUA or not (including failed ones).
    pub writes: u64,
    /// Of `writes`, those with FUA.
    pub fua_writes: u64,
    /// Flush commands executed (including failed ones).
    pub flushes: u64,
    /// Write-zeroes commands executed.
    pub write_zeroes: u64,
    /// Deallocate commands executed.
    pub deallocates: u64,
    /// Bytes returned by successful reads.
    pub bytes_read: u64,
    /// Bytes stored by successful writes (write-zeroes and deallocate move
    /// no data and are not counted).
    pub bytes_written: u64,
    /// Reads failed with [`IoError::Media`] on a latent sector error.
    pub media_errors: u64,
    /// Faults injected, by kind.
    pub faults: FaultCounts,
    /// What the failed flushes did, together, to the writes they should have
    /// covered: written whole (`kept`), lost (`dropped`) or torn.
    pub failed_flush_writes: CrashSummary,
}

/// A submitted command waiting for its simulated completion time.
#[derive(Debug)]
pub(super) struct Pending {
    /// Simulated time at which it may complete.
    pub ready_at: u64,
    /// Submission order across the namespace: breaks ties.
    pub seq: u64,
    pub token: u64,
    pub command: Command,
    /// For a flush: it covers the writes numbered below this, i.e. those
    /// executed before it was submitted.
    pub covers_before: u64,
}

impl Pending {
    fn key(&self) -> (u64, u64) {
        (self.ready_at, self.seq)
    }
}

// Ordered so that a max-heap (`BinaryHeap`) pops the earliest-ready, then
// earliest-submitted, command first.
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key().cmp(&self.key())
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Pending {}

/// Everything the queue pairs of one namespace share.
#[derive(Debug)]
pub(super) struct State {
    pub geometry: Geometry,
    /// The torn-write granularity, for writes a failed flush tears.
    pub sector_bytes: usize,
    pub media: Media,
    pub rng: ChaCha8Rng,
    /// Simulated time, in ticks.
    pub now: u64,
    /// Next submission sequence number.
    pub submitted: u64,
    pub faults: FaultConfig,
    pub stats: SimStats,
}

impl State {
    /// Stamps a newly admitted command with its completion time.
    pub fn schedule(&mut self, token: u64, command: Command) -> Pending {
        let latency = faults::latency(&mut self.rng, self.faults.latency_ticks_max);
        let pending = Pending {
            ready_at: self.now.saturating_add(latency),
            seq: self.submitted,
            token,
            command,
            covers_before: self.media.writes_executed(),
        };
        self.submitted += 1;
        pending
    }

    /// Runs a command whose time has come, against the medium, with faults.
    pub fn execute(&mut self, pending: Pending) -> Completion {
        let Pending {
            token,
            command,
            covers_before,
            ..
        } = pending;
        let lba_bytes = self.geometry.lba_bytes as usize;
        let (result, buf) = match command {
            Command::Read { lba, mut buf } => {
                self.stats.reads += 1;
                let blocks = (buf.len() / lba_bytes) as u64;
                let result = if let Some(error) = self.transient(lba) {
                    Err(error)
                } else if let Some(bad) = self.media.first_latent(lba, blocks) {
                    self.stats.media_errors += 1;
                    Err(IoError::Media { lba: bad })
                } else {
                    let out = buf.as_mut_slice();
                    self.media.read(lba, out);
                    self.stats.bytes_read += out.len() as u64;
                    if faults::fires(&mut self.rng, self.faults.read_bitflip) {
                        self.stats.faults.read_bitflip += 1;
                        let bit = self.rng.random_range(0..out.len() * 8);
                        out[bit / 8] ^= 1 << (bit % 8);
                    }
                    Ok(())
                };
                (result, Some(buf))
            }
            Command::Write { lba, buf, fua } => {
                self.stats.writes += 1;
                self.stats.fua_writes += u64::from(fua);
                let result = match self.transient(lba) {
                    Some(error) => Err(error),
                    None => {
                        self.write(lba, buf.as_slice(), fua);
                        Ok(())
                    }
                };
                (result, Some(buf))
            }
            Command::Flush => {
                self.stats.flushes += 1;
                let result = if faults::fires(&mut self.rng, self.faults.flush_error) {
                    self.stats.faults.flush_error += 1;
                    self.fail_flush(covers_before);
                    Err(IoError::Flush { errno: libc::EIO })
                } else {
                    self.media.flush(covers_before);
                    Ok(())
                };
                (result, None)
            }
            Command::WriteZeroes { lba, lbas } | Command::Deallocate { lba, lbas } => {
                if matches!(command, Command::WriteZeroes { .. }) {
                    self.stats.write_zeroes += 1;
                } else {
                    self.stats.deallocates += 1;
                }
                let result = match self.transient(lba) {
                    Some(error) => Err(error),
                    None => {
                        self.media.write_zeroes(lba, u64::from(lbas));
                        Ok(())
                    }
                };
                (result, None)
            }
        };
        Completion { token, result, buf }
    }

    /// Settles, now and for good, the writes a failed flush should have
    /// covered (see the module doc): a later flush cannot make them durable.
    fn fail_flush(&mut self, covers_before: u64) {
        let lba_bytes = self.geometry.lba_bytes as usize;
        let sector_bytes = self.sector_bytes;
        let rng = &mut self.rng;
        let summary = self.media.fail_flush(covers_before, |image, writes| {
            crash::settle(image, writes, lba_bytes, sector_bytes, rng)
        });
        let total = &mut self.stats.failed_flush_writes;
        total.uncovered += summary.uncovered;
        total.kept += summary.kept;
        total.dropped += summary.dropped;
        total.torn += summary.torn;
    }

    /// Draws a transient device error.
    fn transient(&mut self, lba: u64) -> Option<IoError> {
        if faults::fires(&mut self.rng, self.faults.transient_error) {
            self.stats.faults.transient_error += 1;
            Some(IoError::Device {
                lba,
                errno: libc::EIO,
            })
        } else {
            None
        }
    }

    /// A write that succeeds as far as the caller can tell: it may land
    /// elsewhere, and may leave a latent sector error where it landed.
    fn write(&mut self, lba: u64, data: &[u8], fua: bool) {
        let blocks = (data.len() / self.geometry.lba_bytes as usize) as u64;
        let mut landed = lba;
        if faults::fires(&mut self.rng, self.faults.misdirected_write) {
            if let Some(target) =
                faults::misdirect_target(&mut self.rng, lba, blocks, self.geometry.lba_count)
            {
                self.stats.faults.misdirected_write += 1;
                landed = target;
            }
        }
        self.media.write(landed, data, fua);
        self.stats.bytes_written += data.len() as u64;
        if faults::fires(&mut self.rng, self.faults.latent_sector) {
            self.stats.faults.latent_sector += 1;
            let bad = landed + self.rng.random_range(0..blocks);
            self.media.add_latent(bad);
        }
    }
}
