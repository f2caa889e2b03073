//! Submission and completion queue entries, the opcodes the driver issues,
//! and the status codes it interprets (NVMe base specification 4.2, 4.6;
//! NVM command set specification 3). Pure values, no device access.

/// Bytes per submission queue entry.
pub const SQE_BYTES: usize = 64;
/// Bytes per completion queue entry.
pub const CQE_BYTES: usize = 16;

/// Admin command opcodes.
pub mod admin {
    /// Delete I/O Submission Queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Delete I/O Completion Queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Identify CNS: the namespace data structure for NSID.
    pub const CNS_NAMESPACE: u32 = 0x00;
    /// Identify CNS: the controller data structure.
    pub const CNS_CONTROLLER: u32 = 0x01;
    /// Identify CNS: the active namespace ID list.
    pub const CNS_ACTIVE_NAMESPACES: u32 = 0x02;
    /// Feature: Number of Queues.
    pub const FEATURE_NUMBER_OF_QUEUES: u32 = 0x07;
}

/// NVM command set opcodes.
pub mod nvm {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset Management.
    pub const DATASET_MANAGEMENT: u8 = 0x09;
}

/// Protection information action and checks (CDW12 bits 29:26 of Read,
/// Write and Write Zeroes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtectionInfo {
    /// PRACT: the controller inserts PI on writes and strips it on reads.
    pub action: bool,
    /// PRCHK bit 2: check the guard.
    pub check_guard: bool,
    /// PRCHK bit 1: check the application tag.
    pub check_application_tag: bool,
    /// PRCHK bit 0: check the reference tag.
    pub check_reference_tag: bool,
}

impl ProtectionInfo {
    fn cdw12_bits(self) -> u32 {
        (u32::from(self.action) << 29)
            | (u32::from(self.check_guard) << 28)
            | (u32::from(self.check_application_tag) << 27)
            | (u32::from(self.check_reference_tag) << 26)
    }
}

/// A submission queue entry as sixteen dwords, built field by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sqe {
    /// The dwords, in queue order.
    pub dwords: [u32; 16],
}

impl Sqe {
    /// An entry with opcode, command identifier and namespace.
    pub fn new(opcode: u8, cid: u16, nsid: u32) -> Sqe {
        let mut sqe = Sqe::default();
        sqe.dwords[0] = u32::from(opcode) | (u32::from(cid) << 16);
        sqe.dwords[1] = nsid;
        sqe
    }

    /// The command identifier.
    pub fn cid(&self) -> u16 {
        (self.dwords[0] >> 16) as u16
    }

    /// Sets the command identifier.
    pub fn set_cid(&mut self, cid: u16) {
        self.dwords[0] = (self.dwords[0] & 0xffff) | (u32::from(cid) << 16);
    }

    /// The opcode.
    pub fn opcode(&self) -> u8 {
        self.dwords[0] as u8
    }

    /// Sets the metadata pointer (MPTR).
    pub fn set_metadata(&mut self, iova: u64) {
        self.dwords[4] = iova as u32;
        self.dwords[5] = (iova >> 32) as u32;
    }

    /// Sets PRP entry 1 and 2.
    pub fn set_prp(&mut self, prp1: u64, prp2: u64) {
        self.dwords[6] = prp1 as u32;
        self.dwords[7] = (prp1 >> 32) as u32;
        self.dwords[8] = prp2 as u32;
        self.dwords[9] = (prp2 >> 32) as u32;
    }

    /// PRP entry 1.
    pub fn prp1(&self) -> u64 {
        u64::from(self.dwords[6]) | (u64::from(self.dwords[7]) << 32)
    }

    /// PRP entry 2.
    pub fn prp2(&self) -> u64 {
        u64::from(self.dwords[8]) | (u64::from(self.dwords[9]) << 32)
    }

    /// Identify with the given CNS (PRP1 set separately).
    pub fn identify(cid: u16, cns: u32, nsid: u32) -> Sqe {
        let mut sqe = Sqe::new(admin::IDENTIFY, cid, nsid);
        sqe.dwords[10] = cns;
        sqe
    }

    /// Set Features / Number of Queues, asking for `queues` I/O submission and
    /// as many completion queues.
    pub fn set_number_of_queues(cid: u16, queues: u16) -> Sqe {
        debug_assert!(queues >= 1);
        let mut sqe = Sqe::new(admin::SET_FEATURES, cid, 0);
        sqe.dwords[10] = admin::FEATURE_NUMBER_OF_QUEUES;
        let zero_based = u32::from(queues - 1);
        sqe.dwords[11] = (zero_based << 16) | zero_based;
        sqe
    }

    /// Create I/O Completion Queue `qid` of `entries` entries at `iova`,
    /// physically contiguous, interrupts off (the driver polls).
    pub fn create_cq(cid: u16, qid: u16, entries: u32, iova: u64) -> Sqe {
        let mut sqe = Sqe::new(admin::CREATE_CQ, cid, 0);
        sqe.set_prp(iova, 0);
        sqe.dwords[10] = ((entries - 1) << 16) | u32::from(qid);
        sqe.dwords[11] = 1; // PC=1, IEN=0
        sqe
    }

    /// Create I/O Submission Queue `qid` of `entries` entries at `iova`,
    /// completing to CQ `cqid`.
    pub fn create_sq(cid: u16, qid: u16, entries: u32, iova: u64, cqid: u16) -> Sqe {
        let mut sqe = Sqe::new(admin::CREATE_SQ, cid, 0);
        sqe.set_prp(iova, 0);
        sqe.dwords[10] = ((entries - 1) << 16) | u32::from(qid);
        sqe.dwords[11] = (u32::from(cqid) << 16) | 1; // PC=1, priority urgent (ignored by RR)
        sqe
    }

    /// Delete I/O Submission (`opcode` = DELETE_SQ) or Completion Queue.
    pub fn delete_queue(cid: u16, opcode: u8, qid: u16) -> Sqe {
        let mut sqe = Sqe::new(opcode, cid, 0);
        sqe.dwords[10] = u32::from(qid);
        sqe
    }

    /// Read or Write of `blocks` (1..=65536) starting at `lba`.
    pub fn read_write(
        opcode: u8,
        cid: u16,
        nsid: u32,
        lba: u64,
        blocks: u32,
        fua: bool,
        pi: ProtectionInfo,
    ) -> Sqe {
        debug_assert!((1..=65536).contains(&blocks));
        let mut sqe = Sqe::new(opcode, cid, nsid);
        sqe.dwords[10] = lba as u32;
        sqe.dwords[11] = (lba >> 32) as u32;
        sqe.dwords[12] = (blocks - 1) | (u32::from(fua) << 30) | pi.cdw12_bits();
        sqe
    }

    /// Sets the expected initial logical block reference tag (CDW14) and
    /// application tag and mask (CDW15), for PI checks.
    pub fn set_tags(&mut self, reference_tag: u32, application_tag: u16, mask: u16) {
        self.dwords[14] = reference_tag;
        self.dwords[15] = (u32::from(mask) << 16) | u32::from(application_tag);
    }

    /// Write Zeroes of `blocks` (1..=65536) starting at `lba`.
    pub fn write_zeroes(cid: u16, nsid: u32, lba: u64, blocks: u32, pi: ProtectionInfo) -> Sqe {
        let mut sqe = Sqe::read_write(nvm::WRITE_ZEROES, cid, nsid, lba, blocks, false, pi);
        sqe.dwords[12] &= !(1 << 30);
        sqe
    }

    /// Dataset Management with attribute Deallocate, of `ranges` (1..=256)
    /// range entries at PRP1.
    pub fn deallocate(cid: u16, nsid: u32, ranges: u32) -> Sqe {
        debug_assert!((1..=256).contains(&ranges));
        let mut sqe = Sqe::new(nvm::DATASET_MANAGEMENT, cid, nsid);
        sqe.dwords[10] = ranges - 1;
        sqe.dwords[11] = 1 << 2; // AD
        sqe
    }

    /// Flush.
    pub fn flush(cid: u16, nsid: u32) -> Sqe {
        Sqe::new(nvm::FLUSH, cid, nsid)
    }
}

/// Bytes per Dataset Management range entry.
pub const DSM_RANGE_BYTES: usize = 16;

/// One Dataset Management range: context attributes 0, `blocks` blocks from
/// `lba`, as four dwords.
pub fn dsm_range(lba: u64, blocks: u32) -> [u32; 4] {
    [0, blocks, lba as u32, (lba >> 32) as u32]
}

/// A completion queue entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cqe {
    /// Command-specific dword 0.
    pub result: u32,
    /// Submission queue head pointer at the time of completion.
    pub sq_head: u16,
    /// Submission queue the command came from.
    pub sq_id: u16,
    /// The command's identifier.
    pub cid: u16,
    /// The phase tag.
    pub phase: bool,
    /// The status field (SCT, SC, CRD, More, DNR): bits 31:17 of dword 3,
    /// shifted down by 17.
    pub status: Status,
}

impl Cqe {
    /// Decodes the four dwords of an entry.
    pub fn parse(dwords: [u32; 4]) -> Cqe {
        Cqe {
            result: dwords[0],
            sq_head: dwords[2] as u16,
            sq_id: (dwords[2] >> 16) as u16,
            cid: dwords[3] as u16,
            phase: dwords[3] & (1 << 16) != 0,
            status: Status(((dwords[3] >> 17) & 0x7fff) as u16),
        }
    }
}

/// An NVMe status field: SC in bits 7:0, SCT in 10:8, CRD in 12:11, More in
/// 13, DNR in 14.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Status(pub u16);

/// Status code type 0: generic command status.
pub const SCT_GENERIC: u8 = 0;
/// Status code type 2: media and data integrity errors.
pub const SCT_MEDIA: u8 = 2;

/// What a status means to the block layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    /// Successful completion.
    Success,
    /// End-to-end guard, application tag or reference tag check failed
    /// (0x282, 0x283, 0x284): the data is corrupt.
    Integrity,
    /// Unrecovered read error (0x281): a latent sector error.
    Media,
    /// Anything else.
    Failed,
}

impl Status {
    /// Status code.
    pub fn code(self) -> u8 {
        self.0 as u8
    }

    /// Status code type.
    pub fn code_type(self) -> u8 {
        ((self.0 >> 8) & 7) as u8
    }

    /// Do Not Retry.
    pub fn do_not_retry(self) -> bool {
        self.0 & (1 << 14) != 0
    }

    /// SCT and SC as the customary three-hex-digit value (0x282 is SCT 2,
    /// SC 0x82).
    pub fn value(self) -> u16 {
        (u16::from(self.code_type()) << 8) | u16::from(self.code())
    }

    /// Whether the command succeeded.
    pub fn is_success(self) -> bool {
        self.value() == 0
    }

    /// What the status means to the block layer.
    pub fn class(self) -> StatusClass {
        match (self.code_type(), self.code()) {
            (SCT_GENERIC, 0x00) => StatusClass::Success,
            (SCT_MEDIA, 0x82..=0x84) => StatusClass::Integrity,
            (SCT_MEDIA, 0x81) => StatusClass::Media,
            _ => StatusClass::Failed,
        }
    }
}

impl core::fmt::Debug for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Status({:#05x}", self.value())?;
        if self.do_not_retry() {
            write!(f, ", DNR")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_dwords() {
        let pi = ProtectionInfo {
            action: false,
            check_guard: true,
            check_application_tag: false,
            check_reference_tag: true,
        };
        let mut sqe = Sqe::read_write(nvm::WRITE, 0x1234, 1, 0x1_0000_0002, 8, true, pi);
        sqe.set_prp(0x1000, 0x2000);
        sqe.set_metadata(0x3_0000_0000);
        sqe.set_tags(2, 0, 0);
        assert_eq!(sqe.dwords[0], 0x1234_0001);
        assert_eq!(sqe.cid(), 0x1234);
        assert_eq!(sqe.opcode(), nvm::WRITE);
        assert_eq!(sqe.dwords[1], 1);
        assert_eq!(sqe.dwords[4], 0);
        assert_eq!(sqe.dwords[5], 3);
        assert_eq!((sqe.prp1(), sqe.prp2()), (0x1000, 0x2000));
        assert_eq!(sqe.dwords[10], 2);
        assert_eq!(sqe.dwords[11], 1);
        // NLB 7 (zero-based), FUA, PRCHK guard + reference tag.
        assert_eq!(sqe.dwords[12], 7 | (1 << 30) | (1 << 28) | (1 << 26));
        assert_eq!(sqe.dwords[14], 2);
        sqe.set_cid(7);
        assert_eq!(sqe.dwords[0], 0x0007_0001);
    }

    #[test]
    fn admin_dwords() {
        let cq = Sqe::create_cq(1, 3, 64, 0x8000);
        assert_eq!(cq.dwords[10], (63 << 16) | 3);
        assert_eq!(cq.dwords[11], 1);
        let sq = Sqe::create_sq(2, 3, 64, 0x9000, 3);
        assert_eq!(sq.dwords[11], (3 << 16) | 1);
        assert_eq!(Sqe::set_number_of_queues(0, 4).dwords[11], 0x0003_0003);
        assert_eq!(Sqe::identify(0, admin::CNS_CONTROLLER, 0).dwords[10], 1);
        let wz = Sqe::write_zeroes(
            0,
            1,
            5,
            3,
            ProtectionInfo {
                action: true,
                ..ProtectionInfo::default()
            },
        );
        assert_eq!(wz.dwords[12], 2 | (1 << 29));
        let dsm = Sqe::deallocate(0, 1, 1);
        assert_eq!((dsm.dwords[10], dsm.dwords[11]), (0, 4));
        assert_eq!(dsm_range(0x1_0000_0005, 9), [0, 9, 5, 1]);
    }

    #[test]
    fn completion_and_status() {
        // Guard check error (SCT 2, SC 0x82) with DNR, phase 1, cid 9.
        let dw3 = 9 | (1 << 16) | ((0x282u32 | (1 << 14)) << 17);
        let cqe = Cqe::parse([0xdead, 0, (2 << 16) | 5, dw3]);
        assert_eq!(cqe.cid, 9);
        assert!(cqe.phase);
        assert_eq!((cqe.sq_id, cqe.sq_head), (2, 5));
        assert_eq!(cqe.result, 0xdead);
        assert_eq!(cqe.status.value(), 0x282);
        assert!(cqe.status.do_not_retry());
        assert_eq!(cqe.status.class(), StatusClass::Integrity);
        assert_eq!(Status(0x284).class(), StatusClass::Integrity);
        assert_eq!(Status(0x283).class(), StatusClass::Integrity);
        assert_eq!(Status(0x281).class(), StatusClass::Media);
        assert_eq!(Status(0x280).class(), StatusClass::Failed);
        assert_eq!(Status(0).class(), StatusClass::Success);
        assert_eq!(Status(0x0002).class(), StatusClass::Failed);
        assert_eq!(Status(1 << 14).class(), StatusClass::Success, "DNR alone");
        assert_eq!(
            format!("{:?}", Status(0x282 | (1 << 14))),
            "Status(0x282, DNR)"
        );
    }
}
