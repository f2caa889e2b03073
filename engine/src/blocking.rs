//! Blocking reads and writes through a queue pair, for the cold paths:
//! format, open, recovery and checkpoints. The data path never uses these.
//!
//! Reads and writes may be retried: a read changes nothing, and a write
//! that is issued again puts the same bytes in the same place. A flush is
//! never retried. A failed flush may have lost any write that no earlier
//! successful flush covered, on any queue pair of the namespace, and a flush
//! that succeeds afterwards proves nothing about them (PostgreSQL's
//! "fsyncgate"). So a caller whose flush fails treats everything written
//! since the last successful flush as lost: it fails its operation, and
//! whoever comes next (a later open, the next checkpoint) rewrites what it
//! needs from what it reads back.

use nvme::{Command, IoError, Namespace, QueuePair};

/// Error from a blocking transfer.
#[derive(Debug)]
pub(crate) enum BlockingError {
    Io(IoError),
    /// The pool had no buffer, or a command was refused: a bug or
    /// misconfiguration, not a media problem.
    Refused(String),
}

impl From<BlockingError> for IoError {
    fn from(e: BlockingError) -> IoError {
        match e {
            BlockingError::Io(io) => io,
            BlockingError::Refused(why) => {
                tracing::error!("blocking I/O refused: {why}");
                IoError::Device {
                    lba: 0,
                    // EINVAL: the request itself was refused.
                    errno: 22,
                }
            }
        }
    }
}

fn run(queue: &mut dyn QueuePair, command: Command) -> Result<Option<nvme::DmaBuf>, BlockingError> {
    queue
        .submit(0, command)
        .map_err(|r| BlockingError::Refused(format!("{:?}", r.reason)))?;
    loop {
        if let Some(done) = queue.wait(None) {
            done.result.map_err(BlockingError::Io)?;
            return Ok(done.buf);
        }
    }
}

/// The largest single transfer: the namespace's limit, the pool's largest
/// buffer, whole blocks.
pub(crate) fn chunk_bytes_max(namespace: &dyn Namespace) -> usize {
    let geometry = namespace.geometry();
    let lba_bytes = geometry.lba_bytes as usize;
    let bytes = (geometry.transfer_bytes_max as usize).min(namespace.buffers().slot_bytes_max());
    bytes / lba_bytes * lba_bytes
}

/// Reads `bytes` (a multiple of the LBA size) starting at `lba`.
pub(crate) fn read(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    lba: u64,
    bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), BlockingError> {
    let lba_bytes = namespace.geometry().lba_bytes as usize;
    let chunk_max = chunk_bytes_max(namespace);
    out.clear();
    let mut done = 0usize;
    while done < bytes {
        let len = chunk_max.min(bytes - done);
        let buf = namespace
            .buffers()
            .alloc(len)
            .ok_or_else(|| BlockingError::Refused("buffer pool exhausted".into()))?;
        let at = lba + (done / lba_bytes) as u64;
        let buf = run(queue, Command::Read { lba: at, buf })?
            .ok_or_else(|| BlockingError::Refused("read returned no buffer".into()))?;
        out.extend_from_slice(buf.as_slice());
        done += len;
    }
    Ok(())
}

/// Writes `data` (a multiple of the LBA size) at `lba`, then flushes once
/// (see [`flush`]: on failure, nothing written since the last successful
/// flush is known durable).
pub(crate) fn write_durable(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    lba: u64,
    data: &[u8],
) -> Result<(), BlockingError> {
    write(namespace, queue, lba, data)?;
    flush(queue)
}

/// Writes `data` (a multiple of the LBA size) at `lba`, without a flush.
pub(crate) fn write(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    lba: u64,
    data: &[u8],
) -> Result<(), BlockingError> {
    let lba_bytes = namespace.geometry().lba_bytes as usize;
    let chunk_max = chunk_bytes_max(namespace);
    for (i, chunk) in data.chunks(chunk_max).enumerate() {
        let mut buf = namespace
            .buffers()
            .alloc(chunk.len())
            .ok_or_else(|| BlockingError::Refused("buffer pool exhausted".into()))?;
        buf.as_mut_slice().copy_from_slice(chunk);
        let at = lba + (i * chunk_max / lba_bytes) as u64;
        run(
            queue,
            Command::Write {
                lba: at,
                buf,
                fua: false,
            },
        )?;
    }
    Ok(())
}

/// Tries for a read that fails with a device error: a transient error
/// passes, a latent sector error does not.
const READ_TRIES: u32 = 3;

/// Like [`read`], retrying a device error a few times. A refused command
/// is not retried (it would be refused again).
pub(crate) fn read_retrying(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    lba: u64,
    bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), BlockingError> {
    let mut result = read(namespace, queue, lba, bytes, out);
    for _ in 1..READ_TRIES {
        match result {
            Err(BlockingError::Io(_)) => result = read(namespace, queue, lba, bytes, out),
            done => return done,
        }
    }
    result
}

/// Like [`read`], but a block that cannot be read (after a few tries) is
/// returned as zeroes and listed in `unreadable`, instead of failing the
/// whole read: recovery reports such blocks as damage and carries on.
pub(crate) fn read_tolerant(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    lba: u64,
    bytes: usize,
    out: &mut Vec<u8>,
    unreadable: &mut Vec<u64>,
) -> Result<(), BlockingError> {
    match read_retrying(namespace, queue, lba, bytes, out) {
        Err(BlockingError::Io(_)) => {}
        done => return done,
    }
    let lba_bytes = namespace.geometry().lba_bytes as usize;
    let mut block = Vec::with_capacity(lba_bytes);
    let mut whole = Vec::with_capacity(bytes);
    for i in 0..(bytes / lba_bytes) as u64 {
        match read_retrying(namespace, queue, lba + i, lba_bytes, &mut block) {
            Ok(()) => whole.extend_from_slice(&block),
            Err(BlockingError::Io(_)) => {
                unreadable.push(lba + i);
                whole.resize(whole.len() + lba_bytes, 0);
            }
            Err(refused) => return Err(refused),
        }
    }
    *out = whole;
    Ok(())
}

/// Zeroes `lbas` blocks at `lba`, retrying transient failures.
///
/// Retrying the write is sound because it proves nothing: a write-zeroes
/// issued again zeroes the same blocks, and none of them counts as durable
/// until a flush that is itself not retried ([`flush`]) succeeds after it.
pub(crate) fn zero(
    _namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    lba: u64,
    lbas: u32,
) -> Result<(), BlockingError> {
    let mut last = None;
    for _ in 0..3 {
        match run(queue, Command::WriteZeroes { lba, lbas }) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(BlockingError::Refused("no attempt".into())))
}

/// Issues one flush and waits for it.
///
/// Never retried: a failed flush may have dropped what it should have
/// covered, and a second flush that succeeds would only cover what is still
/// cached, so it proves nothing about the writes the first one failed. On
/// an error the caller must treat every write since the last successful
/// flush (through any queue pair) as lost, and never report it durable.
pub(crate) fn flush(queue: &mut dyn QueuePair) -> Result<(), BlockingError> {
    run(queue, Command::Flush).map(|_| ())
}
