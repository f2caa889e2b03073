//! One NVMe controller behind VFIO: bring-up, the admin queue, Identify,
//! I/O queue creation and deletion, reset after a fatal status, and clean
//! shutdown (CC.SHN) when the last user lets go.

use std::io;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::spec::command::{admin, Cqe, Sqe, CQE_BYTES, SQE_BYTES};
use super::spec::identify::{IdentifyController, IdentifyNamespace, IDENTIFY_BYTES};
use super::spec::regs::{self, Capabilities};
use super::sys::{self, Container, Device, DmaRegion, Group, IovaSpace, Mmio};

/// Entries in the admin submission and completion queues.
const ADMIN_ENTRIES: u16 = 32;
const ADMIN_SQ_OFFSET: usize = 0;
const ADMIN_CQ_OFFSET: usize = 4096;
const ADMIN_DATA_OFFSET: usize = 8192;
const ADMIN_REGION_BYTES: usize = ADMIN_DATA_OFFSET + IDENTIFY_BYTES;
const _: () = assert!(ADMIN_ENTRIES as usize * SQE_BYTES <= ADMIN_CQ_OFFSET - ADMIN_SQ_OFFSET);
const _: () = assert!(ADMIN_ENTRIES as usize * CQE_BYTES <= ADMIN_DATA_OFFSET - ADMIN_CQ_OFFSET);

/// How long one admin command may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a normal shutdown may take before we give up on it.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The memory page size the driver configures (CC.MPS).
pub(crate) const PAGE_BYTES: u64 = 4096;
/// The most I/O queue pairs the driver asks for.
pub const IO_QUEUES_MAX: u16 = 64;
/// BAR0 bytes mapped: registers plus doorbells for every queue we may use.
const BAR0_MAP_BYTES_MIN: usize = 0x2000;

/// What the controller said about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerInfo {
    /// PCI address.
    pub bdf: String,
    /// Serial number.
    pub serial: String,
    /// Model number.
    pub model: String,
    /// Firmware revision.
    pub firmware: String,
    /// NVMe version (major, minor, tertiary).
    pub version: (u16, u8, u8),
    /// Largest transfer per command in bytes; `None` when unlimited.
    pub transfer_bytes_max: Option<u64>,
    /// Number of namespaces.
    pub namespaces: u32,
    /// Dataset Management (deallocate) is supported.
    pub dataset_management: bool,
    /// Write Zeroes is supported.
    pub write_zeroes: bool,
    /// A volatile write cache is present.
    pub volatile_write_cache: bool,
    /// I/O queue pairs granted by Set Features.
    pub io_queues: u16,
    /// Maximum entries per queue (CAP.MQES + 1).
    pub queue_entries_max: u32,
}

struct Admin {
    region: DmaRegion,
    sq_tail: u16,
    cq_head: u16,
    phase: bool,
    cid: u16,
}

/// A controller owned by this process through VFIO.
pub struct Controller {
    // Field order is drop order: registers and DMA regions before the device,
    // the group and the container they depend on.
    bar: Mmio,
    admin: Mutex<Admin>,
    caps: Capabilities,
    info: ControllerInfo,
    generation: AtomicU64,
    dead: AtomicBool,
    free_qids: Mutex<Vec<u16>>,
    pub(crate) space: IovaSpace,
    device: Device,
    _group: Group,
    pub(crate) container: Arc<Container>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("info", &self.info)
            .field("caps", &self.caps)
            .field("generation", &self.generation)
            .finish()
    }
}

fn other(what: impl std::fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

fn ascii(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

impl Controller {
    /// Opens the controller at PCI address `bdf`, which must already be bound
    /// to vfio-pci (see [`super::bind`]), resets and enables it, identifies it
    /// and asks for up to `io_queues` I/O queue pairs.
    pub fn open(bdf: &str, io_queues: u16) -> io::Result<Arc<Controller>> {
        let group_number = super::bind::iommu_group(bdf)?;
        let container = Arc::new(Container::open()?);
        let group = Group::attach(group_number, &container)?;
        let device = group.device(bdf)?;
        enable_bus_master(&device)?;
        let bar_region = device.region(sys::BAR0_REGION)?;
        let mut cap_bytes = [0u8; 8];
        device.read_region(&bar_region, regs::CAP as u64, &mut cap_bytes)?;
        let caps = Capabilities::parse(u64::from_le_bytes(cap_bytes));
        if !caps.nvm_command_set {
            return Err(other(format!(
                "{bdf}: controller lacks the NVM command set"
            )));
        }
        if !(caps.page_bytes_min..=caps.page_bytes_max).contains(&PAGE_BYTES) {
            return Err(other(format!(
                "{bdf}: controller page sizes {}..={} exclude 4 KiB",
                caps.page_bytes_min, caps.page_bytes_max
            )));
        }
        let doorbell_end = caps.cq_head_doorbell(IO_QUEUES_MAX) + 4;
        let map_bytes = doorbell_end.div_ceil(4096).max(BAR0_MAP_BYTES_MIN / 4096) * 4096;
        let bar = device.map_mmio(&bar_region, map_bytes.min(bar_region.size as usize))?;
        let space = IovaSpace::new();
        let region = DmaRegion::new(&container, &space, ADMIN_REGION_BYTES)?;
        let mut controller = Controller {
            bar,
            admin: Mutex::new(Admin {
                region,
                sq_tail: 0,
                cq_head: 0,
                phase: true,
                cid: 0,
            }),
            caps,
            info: ControllerInfo {
                bdf: bdf.to_string(),
                serial: String::new(),
                model: String::new(),
                firmware: String::new(),
                version: regs::version(0),
                transfer_bytes_max: None,
                namespaces: 0,
                dataset_management: false,
                write_zeroes: false,
                volatile_write_cache: false,
                io_queues: 0,
                queue_entries_max: caps.queue_entries_max,
            },
            generation: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            free_qids: Mutex::new(Vec::new()),
            space,
            device,
            _group: group,
            container,
        };
        let mut admin = lock(&controller.admin);
        controller.enable(&mut admin)?;
        let page = controller.identify(&mut admin, admin::CNS_CONTROLLER, 0)?;
        let id = IdentifyController::parse(&page)
            .map_err(|e| other(format!("{bdf}: identify controller: {e:?}")))?;
        let info = ControllerInfo {
            bdf: bdf.to_string(),
            serial: ascii(id.serial),
            model: ascii(id.model),
            firmware: ascii(id.firmware),
            version: regs::version(controller.bar.read32(regs::VS)),
            transfer_bytes_max: id.transfer_bytes_max(caps.page_bytes_min),
            namespaces: id.namespaces,
            dataset_management: id.dataset_management,
            write_zeroes: id.write_zeroes,
            volatile_write_cache: id.volatile_write_cache,
            io_queues: controller.set_queue_count(&mut admin, io_queues.clamp(1, IO_QUEUES_MAX))?,
            queue_entries_max: caps.queue_entries_max,
        };
        drop(admin);
        controller.info = info;
        *lock(&controller.free_qids) = (1..=controller.info.io_queues).rev().collect();
        tracing::info!(info = ?controller.info, "vfio: controller ready");
        Ok(Arc::new(controller))
    }

    /// What the controller said about itself.
    pub fn info(&self) -> &ControllerInfo {
        &self.info
    }

    pub(crate) fn caps(&self) -> &Capabilities {
        &self.caps
    }

    pub(crate) fn bar(&self) -> &Mmio {
        &self.bar
    }

    /// Bumped by every reset; a queue pair that sees it change has lost its
    /// queues and every command in them.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A reset failed: the controller is unusable until reopened.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Controller Fatal Status.
    pub(crate) fn fatal(&self) -> bool {
        let csts = self.bar.read32(regs::CSTS);
        csts == u32::MAX || csts & regs::CSTS_FATAL != 0
    }

    fn wait_ready(&self, ready: bool) -> io::Result<()> {
        let limit = Duration::from_millis(self.caps.ready_timeout_ms);
        let started = Instant::now();
        loop {
            let csts = self.bar.read32(regs::CSTS);
            if csts == u32::MAX {
                return Err(other(format!(
                    "{}: CSTS reads all ones: device gone",
                    self.info.bdf
                )));
            }
            if (csts & regs::CSTS_READY != 0) == ready {
                return Ok(());
            }
            if ready && csts & regs::CSTS_FATAL != 0 {
                return Err(other(format!(
                    "{}: controller fatal status while enabling",
                    self.info.bdf
                )));
            }
            if started.elapsed() > limit {
                return Err(other(format!(
                    "{}: CSTS.RDY did not become {} within CAP.TO ({} ms)",
                    self.info.bdf,
                    u8::from(ready),
                    self.caps.ready_timeout_ms
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Disables the controller, waits for CSTS.RDY = 0, sets up the admin
    /// queues and enables it again. Every I/O queue is gone afterwards.
    fn enable(&self, admin: &mut Admin) -> io::Result<()> {
        let cc = self.bar.read32(regs::CC);
        if cc & regs::CC_ENABLE != 0 {
            self.bar.write32(regs::CC, cc & !regs::CC_ENABLE);
        }
        self.wait_ready(false)?;
        let memory = admin.region.memory();
        memory.zero(ADMIN_SQ_OFFSET, ADMIN_DATA_OFFSET);
        admin.sq_tail = 0;
        admin.cq_head = 0;
        admin.phase = true;
        // Interrupts are never used: the driver polls.
        self.bar.write32(regs::INTMS, u32::MAX);
        self.bar.write32(
            regs::AQA,
            regs::aqa(u32::from(ADMIN_ENTRIES), u32::from(ADMIN_ENTRIES)),
        );
        self.bar
            .write64(regs::ASQ, admin.region.iova(ADMIN_SQ_OFFSET));
        self.bar
            .write64(regs::ACQ, admin.region.iova(ADMIN_CQ_OFFSET));
        fence(Ordering::SeqCst);
        self.bar.write32(regs::CC, regs::cc_enable(PAGE_BYTES));
        self.wait_ready(true)
    }

    /// Runs one admin command to completion.
    fn admin_command(&self, admin: &mut Admin, mut sqe: Sqe) -> io::Result<Cqe> {
        admin.cid = admin.cid.wrapping_add(1);
        let cid = admin.cid;
        sqe.set_cid(cid);
        let memory = admin.region.memory();
        let slot = ADMIN_SQ_OFFSET + usize::from(admin.sq_tail) * SQE_BYTES;
        for (i, dword) in sqe.dwords.iter().enumerate() {
            memory.write32(slot + 4 * i, *dword);
        }
        admin.sq_tail = (admin.sq_tail + 1) % ADMIN_ENTRIES;
        fence(Ordering::SeqCst);
        self.bar
            .write32(self.caps.sq_tail_doorbell(0), u32::from(admin.sq_tail));
        let started = Instant::now();
        loop {
            let entry = ADMIN_CQ_OFFSET + usize::from(admin.cq_head) * CQE_BYTES;
            let dw3 = memory.read32(entry + 12);
            if (dw3 & (1 << 16) != 0) == admin.phase {
                fence(Ordering::Acquire);
                let cqe = Cqe::parse([
                    memory.read32(entry),
                    memory.read32(entry + 4),
                    memory.read32(entry + 8),
                    dw3,
                ]);
                admin.cq_head += 1;
                if admin.cq_head == ADMIN_ENTRIES {
                    admin.cq_head = 0;
                    admin.phase = !admin.phase;
                }
                self.bar
                    .write32(self.caps.cq_head_doorbell(0), u32::from(admin.cq_head));
                if cqe.cid != cid {
                    // A stale completion from before a timeout: skip it.
                    continue;
                }
                if !cqe.status.is_success() {
                    return Err(other(format!(
                        "{}: admin opcode {:#04x} failed: {:?}",
                        self.info.bdf,
                        sqe.opcode(),
                        cqe.status
                    )));
                }
                return Ok(cqe);
            }
            if started.elapsed() > ADMIN_TIMEOUT {
                return Err(other(format!(
                    "{}: admin opcode {:#04x} timed out after {ADMIN_TIMEOUT:?}",
                    self.info.bdf,
                    sqe.opcode()
                )));
            }
            if self.fatal() {
                return Err(other(format!(
                    "{}: controller fatal status during admin opcode {:#04x}",
                    self.info.bdf,
                    sqe.opcode()
                )));
            }
            std::hint::spin_loop();
        }
    }

    fn identify(&self, admin: &mut Admin, cns: u32, nsid: u32) -> io::Result<Vec<u8>> {
        let mut sqe = Sqe::identify(0, cns, nsid);
        sqe.set_prp(admin.region.iova(ADMIN_DATA_OFFSET), 0);
        self.admin_command(admin, sqe)?;
        let mut page = vec![0u8; IDENTIFY_BYTES];
        admin
            .region
            .memory()
            .read_bytes(ADMIN_DATA_OFFSET, &mut page);
        Ok(page)
    }

    fn set_queue_count(&self, admin: &mut Admin, wanted: u16) -> io::Result<u16> {
        let cqe = self.admin_command(admin, Sqe::set_number_of_queues(0, wanted))?;
        let granted_sq = (cqe.result & 0xffff) as u16;
        let granted_cq = (cqe.result >> 16) as u16;
        Ok(wanted
            .min(granted_sq.saturating_add(1))
            .min(granted_cq.saturating_add(1)))
    }

    /// Identify Namespace for `nsid`.
    pub fn identify_namespace(&self, nsid: u32) -> io::Result<IdentifyNamespace> {
        let mut admin = lock(&self.admin);
        let page = self.identify(&mut admin, admin::CNS_NAMESPACE, nsid)?;
        IdentifyNamespace::parse(&page).map_err(|e| {
            other(format!(
                "{}: identify namespace {nsid}: {e:?}",
                self.info.bdf
            ))
        })
    }

    /// The active namespace IDs.
    pub fn active_namespaces(&self) -> io::Result<Vec<u32>> {
        let mut admin = lock(&self.admin);
        let page = self.identify(&mut admin, admin::CNS_ACTIVE_NAMESPACES, 0)?;
        Ok(super::spec::identify::active_namespaces(&page).collect())
    }

    pub(crate) fn take_qid(&self) -> Option<u16> {
        lock(&self.free_qids).pop()
    }

    pub(crate) fn give_qid(&self, qid: u16) {
        lock(&self.free_qids).push(qid);
    }

    /// Creates I/O completion queue and submission queue `qid`.
    pub(crate) fn create_io_queues(
        &self,
        qid: u16,
        entries: u32,
        sq_iova: u64,
        cq_iova: u64,
    ) -> io::Result<()> {
        let mut admin = lock(&self.admin);
        self.admin_command(&mut admin, Sqe::create_cq(0, qid, entries, cq_iova))?;
        if let Err(error) =
            self.admin_command(&mut admin, Sqe::create_sq(0, qid, entries, sq_iova, qid))
        {
            let _ = self.admin_command(&mut admin, Sqe::delete_queue(0, admin::DELETE_CQ, qid));
            return Err(error);
        }
        Ok(())
    }

    /// Deletes I/O submission queue then completion queue `qid`. When the
    /// submission queue's deletion completes, every command in it has
    /// completed or been aborted: the controller no longer touches its
    /// buffers.
    pub(crate) fn delete_io_queues(&self, qid: u16) -> io::Result<()> {
        let mut admin = lock(&self.admin);
        self.admin_command(&mut admin, Sqe::delete_queue(0, admin::DELETE_SQ, qid))?;
        self.admin_command(&mut admin, Sqe::delete_queue(0, admin::DELETE_CQ, qid))?;
        Ok(())
    }

    /// Resets the controller after a fatal status or a command timeout, unless
    /// another queue pair already did since `seen_generation`. Disabling the
    /// controller stops all its DMA and drops every I/O queue; each queue pair
    /// then fails its in-flight commands and recreates its queues.
    pub(crate) fn reset(&self, seen_generation: u64, why: &str) {
        let mut admin = lock(&self.admin);
        if self.generation() != seen_generation || self.is_dead() {
            return;
        }
        tracing::error!(bdf = %self.info.bdf, why, "vfio: resetting the controller");
        let result = self.enable(&mut admin).and_then(|()| {
            let granted = self.set_queue_count(&mut admin, self.info.io_queues)?;
            if granted < self.info.io_queues {
                return Err(other("fewer I/O queues granted after reset"));
            }
            Ok(())
        });
        if let Err(error) = result {
            tracing::error!(bdf = %self.info.bdf, %error, "vfio: controller reset failed; controller is dead");
            // Make sure it is at least disabled, so no DMA continues.
            let cc = self.bar.read32(regs::CC);
            self.bar.write32(regs::CC, cc & !regs::CC_ENABLE);
            self.dead.store(true, Ordering::Release);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Normal shutdown: CC.SHN = 01b, then wait for CSTS.SHST = 10b.
    fn shutdown(&self) -> io::Result<()> {
        let cc = self.bar.read32(regs::CC);
        if cc & regs::CC_ENABLE == 0 {
            return Ok(());
        }
        self.bar
            .write32(regs::CC, (cc & !regs::CC_SHN_MASK) | regs::CC_SHN_NORMAL);
        let started = Instant::now();
        loop {
            let csts = self.bar.read32(regs::CSTS);
            if csts & regs::CSTS_SHST_MASK == regs::CSTS_SHST_COMPLETE {
                return Ok(());
            }
            if started.elapsed() > SHUTDOWN_TIMEOUT || csts == u32::MAX {
                return Err(other(format!(
                    "{}: shutdown did not complete within {SHUTDOWN_TIMEOUT:?}",
                    self.info.bdf
                )));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Function-level reset through VFIO, for the operator's recovery path.
    pub fn function_reset(&self) -> io::Result<()> {
        self.device.reset()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if self.is_dead() {
            return;
        }
        match self.shutdown() {
            Ok(()) => {
                tracing::info!(bdf = %self.info.bdf, "vfio: clean shutdown (CC.SHN) complete")
            }
            Err(error) => tracing::error!(%error, "vfio: shutdown failed"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; the next user
    // re-checks the controller's state anyway.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets Memory Space Enable and Bus Master Enable in the PCI command
/// register, and disables legacy INTx (the driver polls).
fn enable_bus_master(device: &Device) -> io::Result<()> {
    let config = device.region(sys::CONFIG_REGION)?;
    let mut command = [0u8; 2];
    device.read_region(&config, 4, &mut command)?;
    let value = u16::from_le_bytes(command) | (1 << 1) | (1 << 2) | (1 << 10);
    device.write_region(&config, 4, &value.to_le_bytes())
}
