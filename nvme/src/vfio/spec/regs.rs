//! Controller registers (NVMe base specification, section 3.1): offsets and
//! the bit fields the driver reads and writes. Pure values, no device access.

/// Controller Capabilities (64-bit).
pub const CAP: usize = 0x00;
/// Version.
pub const VS: usize = 0x08;
/// Interrupt Mask Set.
pub const INTMS: usize = 0x0C;
/// Controller Configuration.
pub const CC: usize = 0x14;
/// Controller Status.
pub const CSTS: usize = 0x1C;
/// Admin Queue Attributes.
pub const AQA: usize = 0x24;
/// Admin Submission Queue base address (64-bit).
pub const ASQ: usize = 0x28;
/// Admin Completion Queue base address (64-bit).
pub const ACQ: usize = 0x30;
/// First doorbell register.
pub const DOORBELL_BASE: usize = 0x1000;

/// The decoded Controller Capabilities register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Maximum Queue Entries Supported, as a count (the register is zero-based).
    pub queue_entries_max: u32,
    /// Queues must be physically contiguous.
    pub contiguous_queues_required: bool,
    /// Worst-case time for CSTS.RDY to change after CC.EN changes, in ms.
    pub ready_timeout_ms: u64,
    /// Doorbell stride in bytes (4 << CAP.DSTRD).
    pub doorbell_stride_bytes: usize,
    /// The NVM command set is supported (CAP.CSS bit 0).
    pub nvm_command_set: bool,
    /// Smallest memory page size, in bytes (2 ^ (12 + MPSMIN)).
    pub page_bytes_min: u64,
    /// Largest memory page size, in bytes.
    pub page_bytes_max: u64,
}

impl Capabilities {
    /// Decodes CAP.
    pub fn parse(cap: u64) -> Capabilities {
        let field = |shift: u32, bits: u32| (cap >> shift) & ((1u64 << bits) - 1);
        Capabilities {
            queue_entries_max: field(0, 16) as u32 + 1,
            contiguous_queues_required: field(16, 1) == 1,
            // CAP.TO is in 500 ms units; 0 would mean "no time at all", which
            // no controller means, so allow one unit.
            ready_timeout_ms: field(24, 8).max(1) * 500,
            doorbell_stride_bytes: 4usize << field(32, 4),
            nvm_command_set: field(37, 1) == 1,
            page_bytes_min: 1u64 << (12 + field(48, 4)),
            page_bytes_max: 1u64 << (12 + field(52, 4)),
        }
    }

    /// Offset of submission queue `qid`'s tail doorbell.
    pub fn sq_tail_doorbell(&self, qid: u16) -> usize {
        DOORBELL_BASE + (2 * usize::from(qid)) * self.doorbell_stride_bytes
    }

    /// Offset of completion queue `qid`'s head doorbell.
    pub fn cq_head_doorbell(&self, qid: u16) -> usize {
        DOORBELL_BASE + (2 * usize::from(qid) + 1) * self.doorbell_stride_bytes
    }
}

/// CC.EN.
pub const CC_ENABLE: u32 = 1;
/// CC.SHN = 01b: normal shutdown.
pub const CC_SHN_NORMAL: u32 = 1 << 14;
/// CC.SHN mask.
pub const CC_SHN_MASK: u32 = 3 << 14;

/// The Controller Configuration value that enables the controller with the
/// NVM command set, round-robin arbitration, `page_bytes` memory pages and
/// the standard 64-byte SQ / 16-byte CQ entries.
pub fn cc_enable(page_bytes: u64) -> u32 {
    debug_assert!(page_bytes.is_power_of_two() && page_bytes >= 4096);
    let mps = page_bytes.trailing_zeros() - 12;
    let iosqes = 6u32; // 2^6 = 64-byte submission entries
    let iocqes = 4u32; // 2^4 = 16-byte completion entries
    CC_ENABLE | (mps << 7) | (iosqes << 16) | (iocqes << 20)
}

/// CSTS.RDY.
pub const CSTS_READY: u32 = 1;
/// CSTS.CFS: controller fatal status.
pub const CSTS_FATAL: u32 = 1 << 1;
/// CSTS.SHST mask.
pub const CSTS_SHST_MASK: u32 = 3 << 2;
/// CSTS.SHST = 10b: shutdown processing complete.
pub const CSTS_SHST_COMPLETE: u32 = 2 << 2;

/// The Admin Queue Attributes value for queues of the given entry counts.
pub fn aqa(sq_entries: u32, cq_entries: u32) -> u32 {
    debug_assert!((2..=4096).contains(&sq_entries) && (2..=4096).contains(&cq_entries));
    ((cq_entries - 1) << 16) | (sq_entries - 1)
}

/// A version register as (major, minor, tertiary).
pub fn version(vs: u32) -> (u16, u8, u8) {
    ((vs >> 16) as u16, (vs >> 8) as u8, vs as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_of_qemus_controller() {
        // MQES 0x7ff, CQR, TO 0x0f, DSTRD 0, CSS NVM, MPSMIN 0, MPSMAX 4.
        let cap: u64 = 0x7ff | (1 << 16) | (0x0f << 24) | (1 << 37) | (4 << 52);
        let caps = Capabilities::parse(cap);
        assert_eq!(caps.queue_entries_max, 2048);
        assert!(caps.contiguous_queues_required);
        assert_eq!(caps.ready_timeout_ms, 7500);
        assert_eq!(caps.doorbell_stride_bytes, 4);
        assert!(caps.nvm_command_set);
        assert_eq!(caps.page_bytes_min, 4096);
        assert_eq!(caps.page_bytes_max, 64 << 10);
        assert_eq!(caps.sq_tail_doorbell(0), 0x1000);
        assert_eq!(caps.cq_head_doorbell(0), 0x1004);
        assert_eq!(caps.sq_tail_doorbell(3), 0x1018);
        assert_eq!(caps.cq_head_doorbell(3), 0x101c);
    }

    #[test]
    fn doorbell_stride_scales_offsets() {
        let caps = Capabilities::parse(2u64 << 32);
        assert_eq!(caps.doorbell_stride_bytes, 16);
        assert_eq!(caps.cq_head_doorbell(1), 0x1000 + 3 * 16);
        assert_eq!(caps.ready_timeout_ms, 500, "TO 0 is treated as one unit");
    }

    #[test]
    fn configuration_and_queue_attributes() {
        assert_eq!(cc_enable(4096), 0x0046_0001);
        assert_eq!(cc_enable(8192) >> 7 & 0xf, 1);
        assert_eq!(aqa(32, 32), 0x001f_001f);
        assert_eq!(version(0x0001_0400), (1, 4, 0));
    }
}
