//! A node's groups on a file: the durable [`Disk`] veltrixd's cluster mode
//! runs on until the Raft log becomes the engine's log.
//!
//! The journal is one append-only file. Each [`Disk::persist`] appends one
//! frame holding every write of the node step and makes it durable with
//! one `fdatasync`: the group commit of all the node's groups. Opening
//! replays the frames into memory ([`MemDisk`]), and serving never reads
//! the file.
//!
//! Frame (little-endian): magic `VXJ1` (u32), payload length (u32),
//! CRC-32C of the payload (u32), CRC-32C of the 12 bytes before (u32),
//! then the payload: the number of writes (u32) and each write (see
//! [`encode_write`]). The header's own checksum makes its length
//! trustworthy, so a frame that runs past the end of the file is a write
//! a crash cut short, never a damaged length.
//!
//! What opening does with a frame that does not verify:
//! - nothing after it but zeros, a header cut short, or a verified header
//!   whose payload runs past the end: the remains of the write in flight
//!   at a crash. It was never acknowledged; the file is cut there;
//! - a damaged payload that ends exactly at the end of the file: either
//!   the write in flight at the crash or the last acknowledged one damaged
//!   since; with one copy they look the same. It is cut, and said so at
//!   warn level (as the engine does with its log's last frame);
//! - anything else (a damaged frame with frames after it, a payload that
//!   verifies but does not decode): corruption. Opening fails and names
//!   the offset; nothing is served from a journal that lost a frame in
//!   its middle.
//!
//! The journal is rewritten once it has grown to four times its size
//! after the last rewrite and past `rewrite_floor` bytes, off the node's
//! loop (building the image of a busy node's groups took 240 ms, longer
//! than an election timeout), in three stages:
//! 1. *the cut*, in `persist`: a copy of every group's log as it is
//!    after the step's frame (the snapshots' images are shared, not
//!    copied), handed to a thread;
//! 2. *the image*, on that thread: every group's log in one frame, written
//!    to `journal.vxj.new` and synced. Meanwhile the loop keeps appending
//!    its frames to the journal (which stays whole and authoritative) and
//!    keeps a copy of each (the tail);
//! 3. *the switch*, in the first `persist` after the thread is done: the
//!    tail appended to the new file and synced, the new file renamed over
//!    the journal, the directory synced; appends go on in the new file.
//!
//! A crash at any point leaves a journal that holds every durable frame:
//! before the rename, the old file (a leftover `journal.vxj.new` is
//! deleted at open); after it, the image and the tail, which replay to
//! the same groups.
//!
//! A failed write or sync is not retried: after a failed `fdatasync` the
//! kernel may have dropped the pages, so nothing written since the last
//! good sync can be trusted. The node stops (panics, naming the file);
//! a restart replays what is durable.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use prost::Message as _;
#[cfg(test)]
use raft::prelude::{Entry, HardState};

use crate::bytes::Reader;
use crate::layout::GroupId;
use crate::storage::{Disk, GroupLog, LogWrite, MemDisk};

const MAGIC: u32 = u32::from_le_bytes(*b"VXJ1");
const HEADER_BYTES: usize = 16;
/// The journal's file name in its directory.
pub const JOURNAL_FILE: &str = "journal.vxj";
const REWRITE_FILE: &str = "journal.vxj.new";
/// The lock file that keeps two processes off one journal.
const LOCK_FILE: &str = "journal.lock";
/// Largest frame a journal may hold (a snapshot image of a whole group
/// travels in one).
pub const FRAME_BYTES_MAX: usize = 1 << 30;
/// Frames appended during a rewrite are kept in memory up to this many
/// bytes; past it, the next step waits for the image to be written.
const REWRITE_TAIL_BYTES_MAX: usize = 64 << 20;

const HAS_INSTALL: u8 = 1;
const HAS_HARD_STATE: u8 = 2;
const HAS_COMPACT: u8 = 4;
const HAS_CREATE: u8 = 8;
const DESTROY: u8 = 16;

/// Why a journal cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: another process has the journal open")]
    InUse { path: PathBuf },
    #[error("{path}: corrupt frame at byte {offset}: {reason}; refusing to open (nothing is served from a journal missing a frame in its middle)")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// What opening found at the end of the journal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Frames replayed.
    pub frames: u64,
    /// Bytes cut from the end (a write a crash cut short), if any.
    pub cut_bytes: u64,
    /// The last frame's payload did not verify and was cut: the write in
    /// flight at a crash, or the last acknowledged one damaged since.
    pub cut_damaged_last_frame: bool,
}

/// A node's groups in a journal file.
pub struct JournalDisk {
    dir: PathBuf,
    file: File,
    _lock: File,
    memory: MemDisk,
    len: u64,
    /// Size right after the last rewrite (or open).
    base_len: u64,
    rewrite_floor: u64,
    /// A rewrite whose image is being written, if any.
    rewrite: Option<Rewrite>,
    /// Bytes appended, for the write-amplification figure.
    pub bytes_written: u64,
    pub frames_written: u64,
    /// Where the tests crash a rewrite.
    #[cfg(test)]
    kill_at: Option<Stage>,
}

/// A rewrite in progress: the thread writing the image, and the frames
/// appended to the journal since its cut.
struct Rewrite {
    image: JoinHandle<std::io::Result<(File, u64)>>,
    tail: Vec<u8>,
}

/// The points of a rewrite's switch (the tests crash it at each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    ImageSynced,
    TailWritten,
    TailSynced,
    Renamed,
}

impl JournalDisk {
    /// Opens (or creates) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<(Self, OpenReport), JournalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(JournalError::InUse { path: lock_path });
        }
        // A rewrite that a crash interrupted before its rename: the old
        // journal is still whole.
        let _ = std::fs::remove_file(dir.join(REWRITE_FILE));
        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        let (memory, report, good) =
            replay(&bytes).map_err(|(offset, reason)| JournalError::Corrupt {
                path: path.clone(),
                offset,
                reason,
            })?;
        if good < bytes.len() as u64 {
            file.set_len(good).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        let disk = Self {
            dir: dir.to_path_buf(),
            file,
            _lock: lock,
            memory,
            len: good,
            base_len: good,
            rewrite_floor: 64 << 20,
            rewrite: None,
            bytes_written: 0,
            frames_written: 0,
            #[cfg(test)]
            kill_at: None,
        };
        Ok((disk, report))
    }

    /// Rewrites once the journal passes `bytes` and four times its size
    /// after the last rewrite (tests make it small).
    pub fn set_rewrite_floor(&mut self, bytes: u64) {
        self.rewrite_floor = bytes;
    }

    /// The journal's size now.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the journal holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    fn append(&mut self, frame: &[u8]) -> std::io::Result<()> {
        // `write_all` at the end; the file was opened without O_APPEND so
        // that a cut tail is overwritten, so seek first.
        use std::io::Seek;
        self.file.seek(std::io::SeekFrom::Start(self.len))?;
        self.file.write_all(frame)?;
        self.file.sync_data()?;
        self.len += frame.len() as u64;
        self.bytes_written += frame.len() as u64;
        self.frames_written += 1;
        Ok(())
    }

    /// After a frame was appended: keeps it for the rewrite in progress
    /// and switches to the new file once its image is written, or starts
    /// a rewrite when the journal has grown enough.
    fn drive_rewrite(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match &mut self.rewrite {
            Some(rewrite) => {
                rewrite.tail.extend_from_slice(frame);
                if rewrite.image.is_finished() || rewrite.tail.len() > REWRITE_TAIL_BYTES_MAX {
                    self.switch()?;
                }
            }
            None if self.len > self.rewrite_floor && self.len > self.base_len.saturating_mul(4) => {
                self.start_rewrite()?;
            }
            None => {}
        }
        Ok(())
    }

    /// The cut: a copy of every group's log as persisted so far, written
    /// as one frame into a new file by a thread of its own.
    fn start_rewrite(&mut self) -> std::io::Result<()> {
        assert!(self.rewrite.is_none(), "one rewrite at a time");
        let cut = self.memory.clone();
        let path = self.dir.join(REWRITE_FILE);
        let image = std::thread::Builder::new()
            .name("veltrix-journal-rewrite".into())
            .spawn(move || write_image(&path, &cut))?;
        self.rewrite = Some(Rewrite {
            image,
            tail: Vec::new(),
        });
        Ok(())
    }

    /// The switch: waits for the image (done already unless the tail grew
    /// past its bound), appends the tail to it, and puts it in the
    /// journal's place.
    fn switch(&mut self) -> std::io::Result<()> {
        let Some(rewrite) = self.rewrite.take() else {
            return Ok(());
        };
        let (mut new, image_len) = rewrite
            .image
            .join()
            .map_err(|_| std::io::Error::other("the rewrite's thread panicked"))??;
        if self.killed(Stage::ImageSynced) {
            return Ok(());
        }
        use std::io::Seek;
        new.seek(std::io::SeekFrom::Start(image_len))?;
        new.write_all(&rewrite.tail)?;
        if self.killed(Stage::TailWritten) {
            return Ok(());
        }
        new.sync_data()?;
        if self.killed(Stage::TailSynced) {
            return Ok(());
        }
        std::fs::rename(self.dir.join(REWRITE_FILE), self.path())?;
        if self.killed(Stage::Renamed) {
            return Ok(());
        }
        File::open(&self.dir)?.sync_all()?;
        let tail_len = rewrite.tail.len() as u64;
        self.file = new;
        self.len = image_len + tail_len;
        self.base_len = self.len;
        self.bytes_written += image_len + tail_len;
        Ok(())
    }

    #[cfg(test)]
    fn killed(&self, stage: Stage) -> bool {
        self.kill_at == Some(stage)
    }

    #[cfg(not(test))]
    fn killed(&self, _: Stage) -> bool {
        false
    }

    /// Rewrites the journal now and waits for it.
    #[cfg(test)]
    fn rewrite(&mut self) -> std::io::Result<()> {
        self.start_rewrite()?;
        self.switch()
    }
}

impl Drop for JournalDisk {
    /// A rewrite's thread is not left writing its file behind a closed
    /// journal (a reopen would race it); the image is abandoned.
    fn drop(&mut self) {
        if let Some(rewrite) = self.rewrite.take() {
            let _ = rewrite.image.join();
        }
    }
}

/// Every group's log in `memory` as one frame, in a new file at `path`,
/// synced. Returns the file and the frame's length.
fn write_image(path: &Path, memory: &MemDisk) -> std::io::Result<(File, u64)> {
    let writes: Vec<LogWrite> = memory
        .hosted()
        .into_iter()
        .filter_map(|group| {
            let log = memory.load(group)?;
            Some(LogWrite {
                group,
                create: Some(log.replica()),
                install: Some(log.snapshot_ref().clone()),
                entries: log.stored_entries().to_vec(),
                hard_state: Some(log.hard_state().clone()),
                ..LogWrite::default()
            })
        })
        .collect();
    let frame = encode_frame(&writes);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    file.write_all(&frame)?;
    file.sync_all()?;
    Ok((file, frame.len() as u64))
}

impl Disk for JournalDisk {
    fn load(&self, group: GroupId) -> Option<GroupLog> {
        self.memory.load(group)
    }

    fn hosted(&self) -> Vec<GroupId> {
        self.memory.hosted()
    }

    fn is_fresh(&self) -> bool {
        self.memory.is_fresh()
    }

    fn written(&self) -> (u64, u64) {
        (self.bytes_written, self.frames_written)
    }

    fn persist(&mut self, writes: &[LogWrite]) {
        let frame = encode_frame(writes);
        if let Err(e) = self.append(&frame) {
            panic!(
                "cluster journal {}: a write or sync failed ({e}); stopping the node: \
                 what was written since the last good sync cannot be trusted",
                self.path().display()
            );
        }
        self.memory.persist(writes);
        if let Err(e) = self.drive_rewrite(&frame) {
            panic!(
                "cluster journal {}: rewriting it failed ({e}); stopping the node",
                self.path().display()
            );
        }
    }
}

/// One frame holding `writes`.
fn encode_frame(writes: &[LogWrite]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for write in writes {
        encode_write(write, &mut payload);
    }
    let mut frame = Vec::with_capacity(HEADER_BYTES + payload.len());
    frame.extend_from_slice(&MAGIC.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&frame);
    frame.extend_from_slice(&header_crc.to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// A write: group (u32), flags (u8), then what the flags say is there, in
/// this order: the installed snapshot, the entries (always: a count, then
/// each), the hard state, the compacting snapshot, the created replica id
/// (u64). Protobuf messages (raft-rs's own encoding) are prefixed with
/// their length (u32).
fn encode_write(write: &LogWrite, out: &mut Vec<u8>) {
    let flags = (write.install.is_some() as u8 * HAS_INSTALL)
        | (write.hard_state.is_some() as u8 * HAS_HARD_STATE)
        | (write.compact.is_some() as u8 * HAS_COMPACT)
        | (write.create.is_some() as u8 * HAS_CREATE)
        | (write.destroy as u8 * DESTROY);
    out.extend_from_slice(&write.group.to_le_bytes());
    out.push(flags);
    let message = |m: &dyn Fn(&mut Vec<u8>), out: &mut Vec<u8>| {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        m(out);
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    };
    if let Some(s) = &write.install {
        message(&|o| s.encode(o).expect("a Vec grows"), out);
    }
    out.extend_from_slice(&(write.entries.len() as u32).to_le_bytes());
    for e in &write.entries {
        message(&|o| e.encode(o).expect("a Vec grows"), out);
    }
    if let Some(h) = &write.hard_state {
        message(&|o| h.encode(o).expect("a Vec grows"), out);
    }
    if let Some(s) = &write.compact {
        message(&|o| s.encode(o).expect("a Vec grows"), out);
    }
    if let Some(r) = write.create {
        out.extend_from_slice(&r.to_le_bytes());
    }
}

fn decode_writes(payload: &[u8]) -> Result<Vec<LogWrite>, String> {
    let mut r = Reader::new(payload);
    let count = r.u32().ok_or("no write count")?;
    let mut writes = Vec::new();
    for i in 0..count {
        let cut = || format!("write {i} is cut short");
        let group = r.u32().ok_or_else(cut)?;
        let flags = r.u8().ok_or_else(cut)?;
        if flags & !(HAS_INSTALL | HAS_HARD_STATE | HAS_COMPACT | HAS_CREATE | DESTROY) != 0 {
            return Err(format!("write {i} has unknown flags {flags:#x}"));
        }
        let mut write = LogWrite {
            group,
            destroy: flags & DESTROY != 0,
            ..LogWrite::default()
        };
        if flags & HAS_INSTALL != 0 {
            write.install = Some(message(&mut r, i, "snapshot")?);
        }
        let entries = r.u32().ok_or_else(cut)?;
        for _ in 0..entries {
            write.entries.push(message(&mut r, i, "entry")?);
        }
        if flags & HAS_HARD_STATE != 0 {
            write.hard_state = Some(message(&mut r, i, "hard state")?);
        }
        if flags & HAS_COMPACT != 0 {
            write.compact = Some(message(&mut r, i, "snapshot")?);
        }
        if flags & HAS_CREATE != 0 {
            write.create = Some(r.u64().ok_or_else(cut)?);
        }
        writes.push(write);
    }
    if !r.rest().is_empty() {
        return Err(format!("{} bytes after the last write", r.rest().len()));
    }
    Ok(writes)
}

/// A length-prefixed protobuf message of write `i`.
fn message<M: prost::Message + Default>(
    r: &mut Reader<'_>,
    i: u32,
    what: &str,
) -> Result<M, String> {
    let bytes = r
        .u32()
        .and_then(|len| r.take(len as usize))
        .ok_or_else(|| format!("write {i}: the {what} is cut short"))?;
    M::decode(bytes).map_err(|e| format!("write {i}: the {what} does not decode: {e}"))
}

/// Replays a journal's bytes: the disk they describe, what was found at
/// the end, and how many bytes are good. `Err((offset, reason))` is
/// corruption.
fn replay(bytes: &[u8]) -> Result<(MemDisk, OpenReport, u64), (u64, String)> {
    let mut memory = MemDisk::default();
    let mut report = OpenReport::default();
    let mut at = 0usize;
    let zeros = |from: usize| bytes[from..].iter().all(|&b| b == 0);
    while at < bytes.len() {
        let cut = |report: &mut OpenReport| report.cut_bytes = (bytes.len() - at) as u64;
        let rest = &bytes[at..];
        if rest.len() < HEADER_BYTES {
            cut(&mut report);
            break;
        }
        let field = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let header_ok = field(0) == MAGIC && crc32c::crc32c(&rest[..12]) == field(12);
        if !header_ok {
            if zeros(at) {
                cut(&mut report);
                break;
            }
            return Err((at as u64, "the frame header does not verify".into()));
        }
        let len = field(4) as usize;
        if len > FRAME_BYTES_MAX {
            return Err((at as u64, format!("a frame of {len} bytes")));
        }
        if rest.len() - HEADER_BYTES < len {
            cut(&mut report);
            break;
        }
        let payload = &rest[HEADER_BYTES..HEADER_BYTES + len];
        let end = at + HEADER_BYTES + len;
        if crc32c::crc32c(payload) != field(8) {
            if end == bytes.len() {
                report.cut_damaged_last_frame = true;
                cut(&mut report);
                break;
            }
            return Err((at as u64, "the payload does not verify".into()));
        }
        let writes = decode_writes(payload).map_err(|reason| (at as u64, reason))?;
        memory.replay(&writes);
        report.frames += 1;
        at = end;
    }
    let good = bytes.len() as u64 - report.cut_bytes;
    Ok((memory, report, good))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::GroupLog;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec(),
            ..Entry::default()
        }
    }

    fn some_writes() -> Vec<Vec<LogWrite>> {
        let boot = GroupLog::bootstrap(vec![1 << 16 | 1, 2 << 16 | 1, 3 << 16 | 1]);
        vec![
            vec![LogWrite {
                group: 3,
                install: Some(boot.snapshot_ref().clone()),
                create: Some(1 << 16 | 1),
                ..LogWrite::default()
            }],
            vec![LogWrite {
                group: 3,
                entries: vec![entry(6, 6, b"a"), entry(7, 6, b"b")],
                hard_state: Some(HardState {
                    term: 6,
                    vote: 1 << 16 | 1,
                    commit: 6,
                }),
                ..LogWrite::default()
            }],
            vec![
                LogWrite {
                    group: 3,
                    entries: vec![entry(7, 7, b"c")],
                    ..LogWrite::default()
                },
                LogWrite {
                    group: 9,
                    create: Some(1 << 16 | 2),
                    ..LogWrite::default()
                },
            ],
        ]
    }

    fn written(dir: &Path) -> Vec<u64> {
        let (mut disk, _) = JournalDisk::open(dir).expect("opens");
        let mut ends = Vec::new();
        for writes in some_writes() {
            disk.persist(&writes);
            ends.push(disk.len());
        }
        ends
    }

    fn state(disk: &JournalDisk) -> Vec<(GroupId, u64, u64, usize)> {
        disk.hosted()
            .into_iter()
            .map(|g| {
                let log = disk.load(g).expect("hosted");
                (g, log.replica(), log.hard_state().commit, log.entries_len())
            })
            .collect()
    }

    #[test]
    fn reopens_to_what_was_persisted() {
        let dir = tempdir();
        written(&dir);
        let (disk, report) = JournalDisk::open(&dir).expect("reopens");
        assert_eq!(report.frames, 3);
        assert_eq!(report.cut_bytes, 0);
        assert!(!disk.is_fresh());
        // Group 3: entry 7 overwritten by term 7's; group 9 empty.
        assert_eq!(
            state(&disk),
            vec![(3, 1 << 16 | 1, 6, 2), (9, 1 << 16 | 2, 0, 0)]
        );
        let log = disk.load(3).expect("hosted");
        assert_eq!(raft::Storage::term(&log, 7).ok(), Some(7));
    }

    #[test]
    fn a_cut_tail_is_dropped_and_everything_before_kept() {
        let dir = tempdir();
        let ends = written(&dir);
        let path = dir.join(JOURNAL_FILE);
        // Every cut inside the last frame keeps the first two.
        for cut in ends[1]..ends[2] {
            let full = std::fs::read(&path).expect("reads");
            let copy = tempdir();
            std::fs::write(copy.join(JOURNAL_FILE), &full[..cut as usize]).expect("writes");
            let (disk, report) = JournalDisk::open(&copy).expect("opens a cut journal");
            assert_eq!(report.frames, 2, "cut at {cut}");
            assert_eq!(report.cut_bytes, cut - ends[1]);
            assert_eq!(state(&disk), vec![(3, 1 << 16 | 1, 6, 2)]);
            // It appends after what it kept.
            drop(disk);
            let (_, again) = JournalDisk::open(&copy).expect("reopens");
            assert_eq!(again.cut_bytes, 0);
        }
    }

    #[test]
    fn zeros_after_the_last_frame_are_a_cut_write() {
        let dir = tempdir();
        let ends = written(&dir);
        let path = dir.join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).expect("reads");
        bytes.extend_from_slice(&[0; 4096]);
        std::fs::write(&path, &bytes).expect("writes");
        let (_, report) = JournalDisk::open(&dir).expect("opens");
        assert_eq!((report.frames, report.cut_bytes), (3, 4096));
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), ends[2]);
    }

    #[test]
    fn a_flipped_bit_before_the_last_frame_refuses_to_open() {
        let dir = tempdir();
        let ends = written(&dir);
        let path = dir.join(JOURNAL_FILE);
        let full = std::fs::read(&path).expect("reads");
        for byte in 0..ends[1] as usize {
            let mut bad = full.clone();
            bad[byte] ^= 0x10;
            let copy = tempdir();
            std::fs::write(copy.join(JOURNAL_FILE), &bad).expect("writes");
            match JournalDisk::open(&copy) {
                Err(JournalError::Corrupt { offset, .. }) => {
                    assert!(offset <= byte as u64, "byte {byte} named offset {offset}")
                }
                Err(e) => panic!("byte {byte}: {e}"),
                Ok(_) => panic!("a flip at byte {byte} opened"),
            }
        }
    }

    #[test]
    fn a_flipped_bit_in_the_last_frame_is_cut_and_reported() {
        let dir = tempdir();
        let ends = written(&dir);
        let path = dir.join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).expect("reads");
        bytes[ends[1] as usize + HEADER_BYTES + 3] ^= 1;
        std::fs::write(&path, &bytes).expect("writes");
        let (disk, report) = JournalDisk::open(&dir).expect("opens");
        assert!(report.cut_damaged_last_frame);
        assert_eq!(report.frames, 2);
        assert_eq!(state(&disk), vec![(3, 1 << 16 | 1, 6, 2)]);
    }

    #[test]
    fn a_rewrite_keeps_every_group_and_shrinks_the_file() {
        let dir = tempdir();
        let (mut disk, _) = JournalDisk::open(&dir).expect("opens");
        disk.set_rewrite_floor(1);
        let mut before = Vec::new();
        for writes in some_writes() {
            disk.persist(&writes);
            before = state(&disk);
        }
        disk.switch().expect("the rewrite finishes");
        assert!(disk.bytes_written > disk.len(), "a rewrite happened");
        drop(disk);
        let (disk, report) = JournalDisk::open(&dir).expect("reopens");
        assert_eq!(state(&disk), before);
        assert!(report.frames >= 1);
    }

    #[test]
    fn a_log_missing_committed_entries_is_refused_by_its_group() {
        let mut log = GroupLog::bootstrap(vec![1 << 16 | 1, 2 << 16 | 1, 3 << 16 | 1]);
        log.apply(&LogWrite {
            create: Some(1 << 16 | 1),
            hard_state: Some(HardState {
                term: 6,
                vote: 0,
                commit: 9,
            }),
            ..LogWrite::default()
        });
        let opened = crate::group::Group::open(0, 1, log, Default::default(), 1);
        let error = opened.err().expect("refused").to_string();
        assert!(error.contains("are missing from the disk"), "{error}");
    }

    #[test]
    fn a_second_process_is_refused() {
        let dir = tempdir();
        let (_disk, _) = JournalDisk::open(&dir).expect("opens");
        assert!(matches!(
            JournalDisk::open(&dir),
            Err(JournalError::InUse { .. })
        ));
    }

    #[test]
    fn a_node_that_left_every_group_is_not_fresh_after_a_rewrite() {
        let dir = tempdir();
        let (mut disk, _) = JournalDisk::open(&dir).expect("opens");
        disk.persist(&some_writes()[0]);
        disk.persist(&[LogWrite {
            group: 3,
            destroy: true,
            ..LogWrite::default()
        }]);
        disk.rewrite().expect("rewrites");
        drop(disk);
        let (disk, report) = JournalDisk::open(&dir).expect("reopens");
        assert_eq!(report.frames, 1, "the rewrite's frame alone");
        assert!(disk.hosted().is_empty());
        assert!(!disk.is_fresh());
    }

    /// Everything a group's log holds, for comparing journals exactly.
    type FullState = Vec<(GroupId, u64, HardState, u64, Vec<(u64, u64, Vec<u8>)>)>;

    fn full_state(disk: &JournalDisk) -> FullState {
        disk.hosted()
            .into_iter()
            .map(|g| {
                let log = disk.load(g).expect("hosted");
                let entries = log
                    .stored_entries()
                    .iter()
                    .map(|e| (e.index, e.term, e.data.clone()))
                    .collect();
                let hard_state = log.hard_state().clone();
                (g, log.replica(), hard_state, log.snapshot_index(), entries)
            })
            .collect()
    }

    /// Starts a rewrite after the first writes and waits until its image
    /// is written, so that the next persist switches.
    fn rewrite_started(dir: &Path) -> JournalDisk {
        let (mut disk, _) = JournalDisk::open(dir).expect("opens");
        disk.set_rewrite_floor(u64::MAX);
        disk.persist(&some_writes()[0]);
        disk.persist(&some_writes()[1]);
        disk.start_rewrite().expect("starts");
        while !disk.rewrite.as_ref().is_some_and(|r| r.image.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        disk
    }

    #[test]
    fn frames_appended_during_a_rewrite_follow_its_image() {
        let dir = tempdir();
        let mut disk = rewrite_started(&dir);
        // This frame goes to the old journal and the tail; the image is
        // written, so the switch happens in this persist.
        disk.persist(&some_writes()[2]);
        assert!(disk.rewrite.is_none(), "switched");
        let expected = full_state(&disk);
        drop(disk);
        let (disk, report) = JournalDisk::open(&dir).expect("reopens");
        assert_eq!(report.frames, 2, "the image and the one frame of the tail");
        assert_eq!(full_state(&disk), expected);
        assert!(!dir.join(REWRITE_FILE).exists());
    }

    #[test]
    fn a_crash_at_any_stage_of_a_rewrite_loses_no_durable_frame() {
        for stage in [
            Stage::ImageSynced,
            Stage::TailWritten,
            Stage::TailSynced,
            Stage::Renamed,
        ] {
            let dir = tempdir();
            let mut disk = rewrite_started(&dir);
            disk.kill_at = Some(stage);
            disk.persist(&some_writes()[2]);
            let expected = full_state(&disk);
            // The crash: the journal is dropped where the switch stopped.
            drop(disk);
            let (mut disk, report) = JournalDisk::open(&dir).expect("reopens");
            assert_eq!(full_state(&disk), expected, "crashed after {stage:?}");
            let frames = if stage == Stage::Renamed { 2 } else { 3 };
            assert_eq!(report.frames, frames, "crashed after {stage:?}");
            assert!(!dir.join(REWRITE_FILE).exists());
            // It goes on appending after what it recovered.
            let more = vec![LogWrite {
                group: 3,
                entries: vec![entry(8, 7, b"d")],
                ..LogWrite::default()
            }];
            disk.persist(&more);
            let expected = full_state(&disk);
            drop(disk);
            let (disk, _) = JournalDisk::open(&dir).expect("reopens again");
            assert_eq!(full_state(&disk), expected, "crashed after {stage:?}");
            assert_eq!(disk.load(3).expect("hosted").entries_len(), 3);
        }
    }

    #[test]
    fn an_image_a_crash_cut_short_is_deleted_at_open() {
        let dir = tempdir();
        written(&dir);
        let (disk, _) = JournalDisk::open(&dir).expect("opens");
        let expected = full_state(&disk);
        let scratch = tempdir().join("image");
        write_image(&scratch, &disk.memory).expect("writes an image");
        drop(disk);
        let image = std::fs::read(&scratch).expect("reads");
        for cut in [
            0,
            1,
            HEADER_BYTES,
            image.len() / 2,
            image.len() - 1,
            image.len(),
        ] {
            std::fs::write(dir.join(REWRITE_FILE), &image[..cut]).expect("writes");
            let (disk, report) = JournalDisk::open(&dir).expect("opens");
            assert_eq!(report.frames, 3, "cut at {cut}");
            assert_eq!(full_state(&disk), expected, "cut at {cut}");
            assert!(!dir.join(REWRITE_FILE).exists(), "cut at {cut}");
        }
    }

    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "veltrix-journal-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creates");
        dir
    }
}
