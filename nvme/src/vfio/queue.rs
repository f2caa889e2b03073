//! An I/O queue pair of the vfio backend: one NVMe submission queue and one
//! completion queue in IOMMU-mapped memory, polled, with interrupts off.
//!
//! - A command occupies one of `depth` slots from submission until its
//!   completion is returned; the slot owns the command and its buffer.
//! - A slot may need several NVMe commands (a transfer larger than MDTS, a
//!   Write Zeroes of more than 65536 blocks). It issues up to `pieces_max`
//!   at once, each with command identifier `slot * pieces_max + k`, and the
//!   completion of piece k issues the next piece on the same identifier. The
//!   SQ has `depth * pieces_max + 1` entries, so it never overflows.
//! - Every NVMe identifier has its own PRP list page(s). Every slot has, for
//!   host-side protection information, a metadata area for its whole
//!   transfer, so a read's tuples are all there when its last piece is done.
//! - A read's buffer is looked at (host PI verification) only once every
//!   piece of it has completed: no reference into memory the device may
//!   still write.
//! - Completions are found by the phase tag; the CQ head doorbell is written
//!   once per poll that consumed entries, the SQ tail doorbell once per
//!   submit or poll that queued entries.
//! - Every `HEALTH_CHECK_INTERVAL` while polling (and in `wait`), the queue
//!   checks CSTS.CFS and its commands' deadlines. Either problem resets the
//!   controller, which fails every command in flight on every queue pair with
//!   an error: none of them is ever reported as a success.

use std::collections::VecDeque;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::namespace::{NsShared, PiMode};
use super::spec::command::{
    self as cmd, nvm, ProtectionInfo, Sqe, StatusClass, CQE_BYTES, SQE_BYTES,
};
use super::spec::pi::{self, Tuple, TupleCheck, TUPLE_BYTES};
use super::spec::prp::{self, Piece, Split};
use super::sys::DmaRegion;
use crate::command::{Command, Completion};
use crate::error::{IoError, OpenError, RefuseReason, Refused};
use crate::queue::{self, QueuePair};

const PAGE: usize = 4096;
/// Empty polls between two looks at the clock for a health check.
const HEALTH_CHECK_EVERY: u32 = 1024;
/// Time between two health checks (CSTS.CFS and deadlines) while polling.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(10);
/// The most NVMe commands one slot has in flight at once.
pub(crate) const PIECES_MAX: u32 = 8;
/// Blocks per Write Zeroes command (its NLB field is 16 bits).
const WRITE_ZEROES_BLOCKS_MAX: u32 = 65536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Write { fua: bool },
    Flush,
    WriteZeroes,
    Deallocate,
}

struct Slot {
    token: u64,
    command: Command,
    op: Op,
    first_lba: u64,
    split: Split,
    outstanding: u32,
    error: Option<IoError>,
    deadline: Instant,
}

/// Memory layout of one queue pair's DMA region.
#[derive(Clone, Copy, Debug)]
struct Layout {
    sq_entries: u32,
    cq_offset: usize,
    prp_offset: usize,
    prp_bytes_per_cid: usize,
    metadata_offset: usize,
    metadata_bytes_per_slot: usize,
    bytes: usize,
}

impl Layout {
    fn new(slots: u32, cids: u32, piece_bytes: u64, metadata_bytes_per_slot: usize) -> Layout {
        let sq_entries = cids + 1;
        let sq_bytes = (sq_entries as usize * SQE_BYTES).div_ceil(PAGE) * PAGE;
        let cq_bytes = (sq_entries as usize * CQE_BYTES).div_ceil(PAGE) * PAGE;
        let list_slots = prp::list_slots_needed(piece_bytes, PAGE as u64);
        // At least a page: Dataset Management puts its range there too.
        let prp_bytes_per_cid = (list_slots * 8).div_ceil(PAGE).max(1) * PAGE;
        let cq_offset = sq_bytes;
        let prp_offset = cq_offset + cq_bytes;
        let metadata_offset = prp_offset + prp_bytes_per_cid * cids as usize;
        let bytes = metadata_offset + metadata_bytes_per_slot * slots as usize;
        Layout {
            sq_entries,
            cq_offset,
            prp_offset,
            prp_bytes_per_cid,
            metadata_offset,
            metadata_bytes_per_slot,
            bytes: bytes.div_ceil(PAGE) * PAGE,
        }
    }
}

/// A queue pair of the vfio backend.
pub struct VfioQueuePair {
    shared: Arc<NsShared>,
    region: DmaRegion,
    layout: Layout,
    qid: u16,
    /// The controller generation whose queues we hold.
    generation: u64,
    /// The controller is dead: every command fails at once.
    broken: bool,
    /// Our queues were deleted (or never existed in the controller).
    queues_live: bool,
    depth: u32,
    pieces_max: u32,
    sq_tail: u32,
    cq_head: u32,
    phase: bool,
    sq_dirty: bool,
    slots: Vec<Option<Slot>>,
    free_slots: Vec<u32>,
    /// The piece each NVMe command identifier carries, while in flight.
    pieces: Vec<Option<Piece>>,
    occupied: u32,
    ready: VecDeque<Completion>,
    empty_polls: u32,
    last_health_check: Instant,
    /// Fault injection for the hardware tier: the next host-PI write carries
    /// a wrong guard.
    corrupt_next_guard: bool,
    /// Fault injection: the next host-PI write carries a reference tag that
    /// is not its LBA, as a misdirected write would.
    corrupt_next_reference_tag: bool,
    /// Fault injection: the next submission does not ring the doorbell, so
    /// the controller never sees it and it must time out.
    lose_next_doorbell: bool,
}

impl std::fmt::Debug for VfioQueuePair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioQueuePair")
            .field("qid", &self.qid)
            .field("depth", &self.depth)
            .field("occupied", &self.occupied)
            .finish()
    }
}

impl VfioQueuePair {
    pub(crate) fn new(shared: Arc<NsShared>, depth: u32) -> Result<VfioQueuePair, OpenError> {
        queue::check_depth(depth)?;
        let ctrl = &shared.ctrl;
        let unavailable = |why: String| shared.unavailable(why);
        let entries_max = ctrl.info().queue_entries_max;
        if depth + 1 > entries_max {
            return Err(OpenError::InvalidOptions(format!(
                "queue depth {depth} exceeds the controller's {} queue entries",
                entries_max
            )));
        }
        let lba_bytes = u64::from(shared.geometry.lba_bytes);
        let piece_bytes = u64::from(shared.blocks_per_piece) * lba_bytes;
        let wanted = u64::from(shared.geometry.transfer_bytes_max)
            .div_ceil(piece_bytes)
            .clamp(1, u64::from(PIECES_MAX)) as u32;
        let pieces_max = wanted.min(((entries_max - 1) / depth).max(1));
        let cids = depth * pieces_max;
        let metadata_bytes_per_slot = if shared.host_metadata() {
            let blocks = shared.geometry.transfer_bytes_max / shared.geometry.lba_bytes;
            (blocks as usize * TUPLE_BYTES).div_ceil(64) * 64
        } else {
            0
        };
        let layout = Layout::new(depth, cids, piece_bytes, metadata_bytes_per_slot);
        let region = DmaRegion::new(&ctrl.container, &ctrl.space, layout.bytes)
            .map_err(|e| unavailable(format!("queue memory: {e}")))?;
        let qid = ctrl.take_qid().ok_or_else(|| {
            unavailable(format!(
                "all {} I/O queue pairs the controller granted are in use",
                ctrl.info().io_queues
            ))
        })?;
        let generation = ctrl.generation();
        let mut queue = VfioQueuePair {
            shared: Arc::clone(&shared),
            region,
            layout,
            qid,
            generation,
            broken: false,
            queues_live: false,
            depth,
            pieces_max,
            sq_tail: 0,
            cq_head: 0,
            phase: true,
            sq_dirty: false,
            slots: (0..depth).map(|_| None).collect(),
            free_slots: (0..depth).rev().collect(),
            pieces: vec![None; cids as usize],
            occupied: 0,
            ready: VecDeque::with_capacity(depth as usize),
            empty_polls: 0,
            last_health_check: Instant::now(),
            corrupt_next_guard: false,
            corrupt_next_reference_tag: false,
            lose_next_doorbell: false,
        };
        if let Err(e) = queue.create_queues() {
            ctrl.give_qid(qid);
            queue.qid = 0;
            return Err(unavailable(format!("create I/O queue pair {qid}: {e}")));
        }
        Ok(queue)
    }

    fn create_queues(&mut self) -> std::io::Result<()> {
        let cq_bytes = self.layout.prp_offset - self.layout.cq_offset;
        self.region.memory().zero(self.layout.cq_offset, cq_bytes);
        self.sq_tail = 0;
        self.cq_head = 0;
        self.phase = true;
        self.sq_dirty = false;
        self.shared.ctrl.create_io_queues(
            self.qid,
            self.layout.sq_entries,
            self.region.iova(0),
            self.region.iova(self.layout.cq_offset),
        )?;
        self.queues_live = true;
        Ok(())
    }

    /// The NVMe queue identifier.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// Fault injection: the next write on a namespace with host-generated
    /// protection information carries a guard that does not match its data,
    /// so the controller must refuse it (status 0x282). For the hardware
    /// tier's PI checks.
    pub fn corrupt_next_guard(&mut self) {
        self.corrupt_next_guard = true;
    }

    /// Fault injection: the next write on a namespace with host-generated
    /// protection information carries a reference tag one past its LBA, so
    /// the controller must refuse it (status 0x284).
    pub fn corrupt_next_reference_tag(&mut self) {
        self.corrupt_next_reference_tag = true;
    }

    /// Fault injection: the next command is queued without ringing the
    /// doorbell, as if the controller had lost it. It stays unanswered until
    /// its deadline, when the queue pair resets the controller and fails it
    /// with `ETIMEDOUT`. For the hardware tier's timeout check.
    pub fn lose_next_doorbell(&mut self) {
        self.lose_next_doorbell = true;
    }

    /// Fault injection: resets the controller now, as a fatal status or a
    /// timeout would, with whatever is in flight. Every queue pair of the
    /// controller fails its in-flight commands and recreates its queues.
    pub fn inject_controller_reset(&mut self) {
        self.shared
            .ctrl
            .reset(self.generation, "injected by the hardware tier");
    }

    fn sq_doorbell(&self) {
        fence(Ordering::SeqCst);
        let caps = self.shared.ctrl.caps();
        self.shared
            .ctrl
            .bar()
            .write32(caps.sq_tail_doorbell(self.qid), self.sq_tail);
    }

    fn cq_doorbell(&self) {
        let caps = self.shared.ctrl.caps();
        self.shared
            .ctrl
            .bar()
            .write32(caps.cq_head_doorbell(self.qid), self.cq_head);
    }

    fn push_sqe(&mut self, sqe: &Sqe) {
        let memory = self.region.memory();
        let at = self.sq_tail as usize * SQE_BYTES;
        for (i, dword) in sqe.dwords.iter().enumerate() {
            memory.write32(at + 4 * i, *dword);
        }
        self.sq_tail = (self.sq_tail + 1) % self.layout.sq_entries;
        self.sq_dirty = true;
    }

    fn pi_flags(&self, op: Op) -> ProtectionInfo {
        let Some(mode) = self.shared.pi_mode() else {
            return ProtectionInfo::default();
        };
        let checks = ProtectionInfo {
            action: false,
            check_guard: true,
            check_application_tag: false,
            check_reference_tag: true,
        };
        match (op, mode) {
            // Write Zeroes has no data to protect on the host: the controller
            // generates PI for the zeroes.
            (Op::WriteZeroes, _) => ProtectionInfo {
                action: true,
                ..ProtectionInfo::default()
            },
            (_, PiMode::Controller) => ProtectionInfo {
                action: true,
                ..checks
            },
            (_, PiMode::Host) => checks,
        }
    }

    /// Builds and queues the NVMe command for `piece` of slot `index` on
    /// identifier `cid`.
    fn issue(&mut self, index: u32, cid: u16, piece: Piece) {
        let nsid = self.shared.nsid;
        let lba_bytes = u64::from(self.shared.geometry.lba_bytes);
        let Some(slot) = self.slots[index as usize].as_ref() else {
            unreachable!("issue on an empty slot");
        };
        let op = slot.op;
        let prp_area = self.layout.prp_offset + usize::from(cid) * self.layout.prp_bytes_per_cid;
        let metadata_area = self.layout.metadata_offset
            + index as usize * self.layout.metadata_bytes_per_slot
            + (piece.byte_offset / lba_bytes) as usize * TUPLE_BYTES;
        let memory = self.region.memory();
        let pi_flags = self.pi_flags(op);
        let mut corrupt = false;
        let sqe = match (op, &slot.command) {
            (Op::Read, Command::Read { buf, .. })
            | (Op::Write { .. }, Command::Write { buf, .. }) => {
                let (opcode, fua) = match op {
                    Op::Write { fua } => (nvm::WRITE, fua),
                    _ => (nvm::READ, false),
                };
                let mut sqe =
                    Sqe::read_write(opcode, cid, nsid, piece.lba, piece.blocks, fua, pi_flags);
                let data_iova = self.shared.mapping.iova(buf) + piece.byte_offset;
                let bytes = u64::from(piece.blocks) * lba_bytes;
                let list_slots = self.layout.prp_bytes_per_cid / 8;
                let prp = prp::build(
                    data_iova,
                    bytes,
                    PAGE as u64,
                    self.region.iova(prp_area),
                    list_slots,
                    |i, value| memory.write64(prp_area + 8 * i, value),
                );
                let prp = match prp {
                    Ok(prp) => prp,
                    // The layout sized the lists for the largest piece.
                    Err(e) => unreachable!("PRP list for {bytes} bytes: {e:?}"),
                };
                sqe.set_prp(prp.prp1, prp.prp2);
                if self.shared.pi_mode().is_some() {
                    sqe.set_tags(piece.lba as u32, 0, 0);
                }
                if self.shared.host_metadata() {
                    sqe.set_metadata(self.region.iova(metadata_area));
                    if let Op::Write { .. } = op {
                        let data = buf.as_slice();
                        let start = piece.byte_offset as usize;
                        for b in 0..piece.blocks as usize {
                            let from = start + b * lba_bytes as usize;
                            let block = &data[from..from + lba_bytes as usize];
                            let mut tuple = Tuple::type1(block, piece.lba + b as u64);
                            if b == 0 && self.corrupt_next_guard {
                                tuple.guard ^= 0x5a5a;
                                corrupt = true;
                            }
                            if b == 0 && self.corrupt_next_reference_tag {
                                tuple.reference_tag = tuple.reference_tag.wrapping_add(1);
                                corrupt = true;
                            }
                            memory.write64(
                                metadata_area + b * TUPLE_BYTES,
                                u64::from_ne_bytes(tuple.encode()),
                            );
                        }
                    }
                }
                sqe
            }
            (Op::WriteZeroes, _) => {
                let mut sqe = Sqe::write_zeroes(cid, nsid, piece.lba, piece.blocks, pi_flags);
                if self.shared.pi_mode().is_some() {
                    sqe.set_tags(piece.lba as u32, 0, 0);
                }
                sqe
            }
            (Op::Deallocate, _) => {
                for (i, dword) in cmd::dsm_range(piece.lba, piece.blocks).iter().enumerate() {
                    memory.write32(prp_area + 4 * i, *dword);
                }
                let mut sqe = Sqe::deallocate(cid, nsid, 1);
                sqe.set_prp(self.region.iova(prp_area), 0);
                sqe
            }
            (Op::Flush, _) => Sqe::flush(cid, nsid),
            _ => unreachable!("slot op and command disagree"),
        };
        if corrupt {
            self.corrupt_next_guard = false;
            self.corrupt_next_reference_tag = false;
        }
        self.pieces[usize::from(cid)] = Some(piece);
        if let Some(slot) = self.slots[index as usize].as_mut() {
            slot.outstanding += 1;
        }
        self.push_sqe(&sqe);
    }

    /// Issues the slot's next piece on `cid`, if any is left.
    fn issue_next(&mut self, index: u32, cid: u16) -> bool {
        let next = match self.slots[index as usize].as_mut() {
            Some(slot) if slot.error.is_none() => slot.split.next(),
            _ => None,
        };
        match next {
            Some(piece) => {
                self.issue(index, cid, piece);
                true
            }
            None => false,
        }
    }

    fn finish(&mut self, index: u32) {
        if let Some(slot) = self.slots[index as usize].as_ref() {
            if slot.op == Op::Read && slot.error.is_none() && self.shared.host_metadata() {
                let error = self.verify_read(index);
                if let Some(slot) = self.slots[index as usize].as_mut() {
                    slot.error = error;
                }
            }
        }
        let Some(slot) = self.slots[index as usize].take() else {
            return;
        };
        self.free_slots.push(index);
        self.occupied -= 1;
        self.ready.push_back(Completion {
            token: slot.token,
            result: slot.error.map_or(Ok(()), Err),
            buf: slot.command.into_buf(),
        });
    }

    /// Checks a finished host-PI read's tuples in software, after the
    /// controller already checked them (PRCHK): the second look costs a CRC
    /// per block and catches a controller that skipped its check. Called only
    /// when no piece of the read is in flight.
    fn verify_read(&self, index: u32) -> Option<IoError> {
        let slot = self.slots[index as usize].as_ref()?;
        debug_assert_eq!(slot.outstanding, 0);
        let Command::Read { buf, lba } = &slot.command else {
            return None;
        };
        let lba_bytes = self.shared.geometry.lba_bytes as usize;
        let metadata_area =
            self.layout.metadata_offset + index as usize * self.layout.metadata_bytes_per_slot;
        let data = buf.as_slice();
        for (b, block) in data.chunks_exact(lba_bytes).enumerate() {
            let raw = self
                .region
                .memory()
                .read64(metadata_area + b * TUPLE_BYTES)
                .to_ne_bytes();
            let lba = lba + b as u64;
            match pi::check_type1(block, lba, Tuple::decode(raw)) {
                TupleCheck::Good | TupleCheck::Exempt => {}
                TupleCheck::GuardMismatch | TupleCheck::ReferenceTagMismatch => {
                    return Some(IoError::Integrity { lba })
                }
            }
        }
        None
    }

    /// Consumes every new completion entry. Returns whether any was found.
    fn reap(&mut self) -> bool {
        let mut found = false;
        loop {
            let entry = self.layout.cq_offset + self.cq_head as usize * CQE_BYTES;
            let memory = self.region.memory();
            let dw3 = memory.read32(entry + 12);
            if (dw3 & (1 << 16) != 0) != self.phase {
                break;
            }
            // The entry is ours: read the rest only after seeing the phase.
            fence(Ordering::Acquire);
            let cqe = cmd::Cqe::parse([memory.read32(entry), 0, memory.read32(entry + 8), dw3]);
            found = true;
            self.cq_head += 1;
            if self.cq_head == self.layout.sq_entries {
                self.cq_head = 0;
                self.phase = !self.phase;
            }
            let cid = cqe.cid;
            let Some(piece) = self.pieces.get_mut(usize::from(cid)).and_then(Option::take) else {
                tracing::error!(
                    qid = self.qid,
                    cid,
                    "vfio: completion for no command; ignored"
                );
                continue;
            };
            let index = u32::from(cid) / self.pieces_max;
            let op = match self.slots[index as usize].as_ref() {
                Some(slot) => slot.op,
                None => continue,
            };
            let error = match cqe.status.class() {
                StatusClass::Success => None,
                StatusClass::Integrity => {
                    tracing::warn!(qid = self.qid, cid, status = ?cqe.status, ?op, lba = piece.lba, blocks = piece.blocks, "vfio: protection information check failed");
                    Some(IoError::Integrity { lba: piece.lba })
                }
                StatusClass::Media => Some(IoError::Media { lba: piece.lba }),
                StatusClass::Failed => {
                    tracing::warn!(qid = self.qid, cid, status = ?cqe.status, ?op, lba = piece.lba, "vfio: command failed");
                    Some(match op {
                        Op::Flush => IoError::Flush { errno: libc::EIO },
                        _ => IoError::Device {
                            lba: piece.lba,
                            errno: libc::EIO,
                        },
                    })
                }
            };
            let done = {
                let Some(slot) = self.slots[index as usize].as_mut() else {
                    continue;
                };
                slot.outstanding -= 1;
                if slot.error.is_none() {
                    slot.error = error;
                }
                slot.outstanding
            };
            let reissued = self.issue_next(index, cid);
            if done == 0 && !reissued {
                self.finish(index);
            }
        }
        if found {
            self.cq_doorbell();
        }
        found
    }

    /// The controller was reset (by us or another queue pair): every command
    /// in our queues is lost. Fail them all, then recreate the queues.
    fn recover(&mut self) {
        let generation = self.shared.ctrl.generation();
        for index in 0..self.depth {
            if let Some(slot) = self.slots[index as usize].as_mut() {
                if slot.error.is_none() {
                    slot.error = Some(match slot.op {
                        Op::Flush => IoError::Flush { errno: libc::EIO },
                        _ => IoError::Device {
                            lba: slot.first_lba,
                            errno: libc::EIO,
                        },
                    });
                }
                self.finish(index);
            }
        }
        self.pieces.iter_mut().for_each(|p| *p = None);
        self.queues_live = false;
        self.generation = generation;
        if self.shared.ctrl.is_dead() {
            self.broken = true;
            return;
        }
        if let Err(error) = self.create_queues() {
            tracing::error!(qid = self.qid, %error, "vfio: recreating queues after reset failed");
            self.broken = true;
        }
    }

    /// Fatal status and deadlines.
    fn check_health(&mut self) {
        let ctrl = Arc::clone(&self.shared.ctrl);
        if ctrl.generation() != self.generation {
            self.recover();
            return;
        }
        if self.broken || self.occupied == 0 {
            return;
        }
        if ctrl.fatal() {
            ctrl.reset(self.generation, "controller fatal status (CSTS.CFS)");
            self.recover();
            return;
        }
        let now = Instant::now();
        let mut expired = false;
        for slot in self.slots.iter_mut().flatten() {
            if slot.deadline <= now {
                expired = true;
                slot.error.get_or_insert(match slot.op {
                    Op::Flush => IoError::Flush {
                        errno: libc::ETIMEDOUT,
                    },
                    _ => IoError::Device {
                        lba: slot.first_lba,
                        errno: libc::ETIMEDOUT,
                    },
                });
            }
        }
        if expired {
            ctrl.reset(self.generation, "command timeout");
            self.recover();
        }
    }
}

fn op_of(command: &Command) -> (Op, u64, u64) {
    match command {
        Command::Read { lba, .. } => (Op::Read, *lba, 0),
        Command::Write { lba, fua, .. } => (Op::Write { fua: *fua }, *lba, 0),
        Command::Flush => (Op::Flush, 0, 1),
        Command::WriteZeroes { lba, lbas } => (Op::WriteZeroes, *lba, u64::from(*lbas)),
        Command::Deallocate { lba, lbas } => (Op::Deallocate, *lba, u64::from(*lbas)),
    }
}

impl QueuePair for VfioQueuePair {
    fn depth(&self) -> u32 {
        self.depth
    }

    fn in_flight(&self) -> u32 {
        self.occupied + self.ready.len() as u32
    }

    fn submit(&mut self, token: u64, command: Command) -> Result<(), Refused> {
        let command = queue::admit(&self.shared.geometry, self.in_flight(), self.depth, command)?;
        if let Some(buf) = match &command {
            Command::Read { buf, .. } | Command::Write { buf, .. } => Some(buf),
            _ => None,
        } {
            if !self.shared.mapping.owns(buf) {
                // Only the namespace's own pool is mapped for DMA.
                return Err(Refused {
                    reason: RefuseReason::Unsupported,
                    command,
                });
            }
        }
        if self.shared.ctrl.generation() != self.generation {
            self.recover();
        }
        let lba_bytes = self.shared.geometry.lba_bytes;
        let (op, first_lba, blocks) = op_of(&command);
        let blocks = match &command {
            Command::Read { buf, .. } | Command::Write { buf, .. } => {
                buf.len() as u64 / u64::from(lba_bytes)
            }
            _ => blocks,
        };
        let blocks_max = match op {
            Op::Read | Op::Write { .. } => self.shared.blocks_per_piece,
            Op::WriteZeroes => WRITE_ZEROES_BLOCKS_MAX,
            Op::Deallocate => u32::MAX,
            Op::Flush => 1,
        };
        let Some(index) = self.free_slots.pop() else {
            unreachable!("admit checked the depth");
        };
        self.occupied += 1;
        self.slots[index as usize] = Some(Slot {
            token,
            command,
            op,
            first_lba,
            split: Split::new(first_lba, blocks, lba_bytes, blocks_max),
            outstanding: 0,
            error: None,
            deadline: Instant::now() + self.shared.command_timeout,
        });
        if self.broken {
            if let Some(slot) = self.slots[index as usize].as_mut() {
                slot.error = Some(IoError::Device {
                    lba: first_lba,
                    errno: libc::ENODEV,
                });
            }
            self.finish(index);
            return Ok(());
        }
        for k in 0..self.pieces_max {
            let cid = (index * self.pieces_max + k) as u16;
            if !self.issue_next(index, cid) {
                break;
            }
        }
        if self.lose_next_doorbell {
            self.lose_next_doorbell = false;
            return Ok(());
        }
        self.sq_doorbell();
        self.sq_dirty = false;
        Ok(())
    }

    fn poll(&mut self) -> Option<Completion> {
        if let Some(done) = self.ready.pop_front() {
            return Some(done);
        }
        if self.occupied == 0 {
            return None;
        }
        // After a reset, entries still in the old CQ are not trusted: every
        // unreaped command fails, even one the controller had finished.
        if self.shared.ctrl.generation() != self.generation {
            self.recover();
            return self.ready.pop_front();
        }
        if self.reap() {
            self.empty_polls = 0;
            if self.sq_dirty {
                self.sq_doorbell();
                self.sq_dirty = false;
            }
        } else {
            self.empty_polls += 1;
            if self.empty_polls >= HEALTH_CHECK_EVERY {
                self.empty_polls = 0;
                // Reading CSTS is an MMIO read (a trap into the hypervisor
                // under emulation): at most every HEALTH_CHECK_INTERVAL.
                let now = Instant::now();
                if now.duration_since(self.last_health_check) >= HEALTH_CHECK_INTERVAL {
                    self.last_health_check = now;
                    self.check_health();
                }
            }
        }
        self.ready.pop_front()
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Option<Completion> {
        if self.in_flight() == 0 {
            return None;
        }
        let started = Instant::now();
        let mut last_check = started;
        let mut spins = 0u32;
        loop {
            if let Some(done) = self.poll() {
                return Some(done);
            }
            spins += 1;
            if spins.is_multiple_of(64) {
                let now = Instant::now();
                if timeout.is_some_and(|t| now.duration_since(started) >= t) {
                    return None;
                }
                if now.duration_since(last_check) >= Duration::from_millis(10) {
                    last_check = now;
                    self.check_health();
                }
                // Polling is the point, but on a shared core let others run.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

impl Drop for VfioQueuePair {
    fn drop(&mut self) {
        if self.qid == 0 {
            return;
        }
        let ctrl = Arc::clone(&self.shared.ctrl);
        let mut qid_free = true;
        if self.queues_live && ctrl.generation() == self.generation && !ctrl.is_dead() {
            // Deleting the SQ completes or aborts everything in it, so the
            // slots' buffers are the device's no longer.
            if let Err(error) = ctrl.delete_io_queues(self.qid) {
                tracing::error!(qid = self.qid, %error, "vfio: deleting queues failed; resetting");
                ctrl.reset(self.generation, "queue deletion failed");
                qid_free = !ctrl.is_dead();
            }
        }
        if qid_free {
            ctrl.give_qid(self.qid);
        }
        // The slots (and their buffers) and then the region drop here; the
        // region unmaps its IOVA range before freeing its memory.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_fits_every_identifier() {
        // Depth 32, two pieces each, 512 KiB pieces (128 list entries),
        // host metadata for 128 blocks.
        let layout = Layout::new(32, 64, 512 << 10, 256 * 8);
        assert_eq!(layout.sq_entries, 65);
        assert_eq!(layout.cq_offset, 2 * PAGE, "65 entries of 64 bytes");
        assert_eq!(layout.prp_offset, 3 * PAGE, "65 entries of 16 bytes");
        assert_eq!(layout.prp_bytes_per_cid, PAGE);
        assert_eq!(layout.metadata_offset, layout.prp_offset + 64 * PAGE);
        assert_eq!(layout.bytes, layout.metadata_offset + 32 * 2048);
        assert_eq!(layout.bytes % PAGE, 0);
        // A 4 MiB piece needs a chained list of two pages.
        let big = Layout::new(1, 1, 4 << 20, 0);
        assert_eq!(big.prp_bytes_per_cid, 2 * PAGE);
    }
}
