//! The Identify Controller and Identify Namespace data structures: the fields
//! the driver needs, decoded from the 4096-byte pages the controller returns.

/// Bytes in every Identify data structure.
pub const IDENTIFY_BYTES: usize = 4096;

fn le16(page: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([page[at], page[at + 1]])
}

fn le32(page: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]])
}

fn le64(page: &[u8], at: usize) -> u64 {
    u64::from(le32(page, at)) | (u64::from(le32(page, at + 4)) << 32)
}

/// ASCII field, trailing spaces and NULs dropped.
fn text(page: &[u8], range: core::ops::Range<usize>) -> &[u8] {
    let field = &page[range];
    let end = field
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    &field[..end]
}

/// Why an Identify page was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifyError {
    /// Shorter than [`IDENTIFY_BYTES`].
    Short,
    /// The namespace's current format index is past its number of formats.
    FormatIndex,
    /// The LBA data size is outside 512 B ..= 64 KiB.
    LbaSize,
    /// The namespace reports zero blocks (inactive).
    Inactive,
}

/// The Identify Controller fields the driver uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentifyController<'a> {
    /// PCI vendor ID.
    pub vendor_id: u16,
    /// Serial number.
    pub serial: &'a [u8],
    /// Model number.
    pub model: &'a [u8],
    /// Firmware revision.
    pub firmware: &'a [u8],
    /// Maximum Data Transfer Size as a power of two in units of CAP.MPSMIN;
    /// 0 means no limit.
    pub mdts: u8,
    /// Number of namespaces (the largest valid NSID).
    pub namespaces: u32,
    /// Dataset Management is supported (ONCS bit 2).
    pub dataset_management: bool,
    /// Write Zeroes is supported (ONCS bit 3).
    pub write_zeroes: bool,
    /// A volatile write cache is present (VWC bit 0).
    pub volatile_write_cache: bool,
}

impl<'a> IdentifyController<'a> {
    /// Decodes the page.
    pub fn parse(page: &'a [u8]) -> Result<IdentifyController<'a>, IdentifyError> {
        if page.len() < IDENTIFY_BYTES {
            return Err(IdentifyError::Short);
        }
        let oncs = le16(page, 520);
        Ok(IdentifyController {
            vendor_id: le16(page, 0),
            serial: text(page, 4..24),
            model: text(page, 24..64),
            firmware: text(page, 64..72),
            mdts: page[77],
            namespaces: le32(page, 516),
            dataset_management: oncs & (1 << 2) != 0,
            write_zeroes: oncs & (1 << 3) != 0,
            volatile_write_cache: page[525] & 1 != 0,
        })
    }

    /// The largest transfer in bytes, given the controller's smallest page
    /// size; `None` when unlimited.
    pub fn transfer_bytes_max(&self, page_bytes_min: u64) -> Option<u64> {
        match self.mdts {
            0 => None,
            mdts => Some(page_bytes_min << mdts.min(20)),
        }
    }
}

/// Where a namespace's end-to-end protection information sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    /// PI type 1, 2 or 3.
    pub pi_type: u8,
    /// The PI is the first eight bytes of the metadata (DPS bit 3), rather
    /// than the last eight.
    pub first_bytes: bool,
}

/// The Identify Namespace fields the driver uses, for the current format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentifyNamespace {
    /// Namespace size in logical blocks.
    pub blocks: u64,
    /// Bytes per logical block (data only).
    pub lba_bytes: u32,
    /// Metadata bytes per logical block.
    pub metadata_bytes: u16,
    /// Metadata is transferred at the end of each block's data (FLBAS bit
    /// 4), rather than through a separate buffer.
    pub extended: bool,
    /// Protection information, when enabled.
    pub protection: Option<Protection>,
    /// Deallocated blocks read back as zeroes (DLFEAT bits 2:0 = 001b).
    pub deallocate_reads_zeroes: bool,
    /// The current LBA format index.
    pub format_index: u8,
}

impl IdentifyNamespace {
    /// Decodes the page.
    pub fn parse(page: &[u8]) -> Result<IdentifyNamespace, IdentifyError> {
        if page.len() < IDENTIFY_BYTES {
            return Err(IdentifyError::Short);
        }
        let blocks = le64(page, 0);
        if blocks == 0 {
            return Err(IdentifyError::Inactive);
        }
        let formats = u32::from(page[25]) + 1;
        let flbas = page[26];
        // Bits 3:0 are the low bits of the index, 6:5 the high bits (for
        // namespaces with more than 16 formats).
        let format_index = (flbas & 0x0f) | ((flbas >> 5 & 0x03) << 4);
        if u32::from(format_index) >= formats || format_index >= 64 {
            return Err(IdentifyError::FormatIndex);
        }
        let lbaf = le32(page, 128 + 4 * usize::from(format_index));
        let metadata_bytes = lbaf as u16;
        let lba_shift = (lbaf >> 16) & 0xff;
        if !(9..=16).contains(&lba_shift) {
            return Err(IdentifyError::LbaSize);
        }
        let dps = page[29];
        let protection = match dps & 7 {
            0 => None,
            pi_type => Some(Protection {
                pi_type,
                first_bytes: dps & (1 << 3) != 0,
            }),
        };
        Ok(IdentifyNamespace {
            blocks,
            lba_bytes: 1 << lba_shift,
            metadata_bytes,
            extended: flbas & (1 << 4) != 0,
            protection,
            deallocate_reads_zeroes: page[33] & 7 == 1,
            format_index,
        })
    }
}

/// The active namespace IDs in an Identify CNS 02h page, in order.
pub fn active_namespaces(page: &[u8]) -> impl Iterator<Item = u32> + '_ {
    page.chunks_exact(4)
        .take(IDENTIFY_BYTES / 4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(|&nsid| nsid != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(page: &mut [u8], at: usize, bytes: &[u8]) {
        page[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// An Identify Controller page shaped like QEMU 7.2's.
    fn controller_page() -> Vec<u8> {
        let mut page = vec![0u8; IDENTIFY_BYTES];
        put(&mut page, 0, &0x1b36u16.to_le_bytes());
        put(&mut page, 4, b"vfio-plain          ");
        put(&mut page, 24, b"QEMU NVMe Ctrl                          ");
        put(&mut page, 64, b"7.2.19  ");
        page[77] = 7;
        put(&mut page, 516, &256u32.to_le_bytes());
        // ONCS: compare, write uncorrectable, DSM, write zeroes, save/select,
        // reservations, timestamp, verify, copy.
        put(&mut page, 520, &0x015fu16.to_le_bytes());
        page[525] = 1;
        page
    }

    #[test]
    fn controller_fields() {
        let page = controller_page();
        let id = IdentifyController::parse(&page).unwrap();
        assert_eq!(id.vendor_id, 0x1b36);
        assert_eq!(id.serial, b"vfio-plain");
        assert_eq!(id.model, b"QEMU NVMe Ctrl");
        assert_eq!(id.firmware, b"7.2.19");
        assert_eq!(id.namespaces, 256);
        assert!(id.dataset_management && id.write_zeroes && id.volatile_write_cache);
        assert_eq!(id.transfer_bytes_max(4096), Some(512 << 10));
        let mut unlimited = page.clone();
        unlimited[77] = 0;
        let id = IdentifyController::parse(&unlimited).unwrap();
        assert_eq!(id.transfer_bytes_max(4096), None);
        assert_eq!(
            IdentifyController::parse(&page[..100]),
            Err(IdentifyError::Short)
        );
    }

    /// QEMU's namespace formats: 512, 512+8, 512+16, 512+64, 4096, 4096+8,
    /// 4096+16, 4096+64.
    fn namespace_page(flbas: u8, dps: u8) -> Vec<u8> {
        let mut page = vec![0u8; IDENTIFY_BYTES];
        put(&mut page, 0, &32768u64.to_le_bytes());
        page[25] = 7;
        page[26] = flbas;
        page[27] = 3;
        page[28] = 0x1f;
        page[29] = dps;
        page[33] = 0x09; // deallocated reads zeroes, plus the guard bit
        for (i, (ms, shift)) in [
            (0, 9),
            (8, 9),
            (16, 9),
            (64, 9),
            (0, 12),
            (8, 12),
            (16, 12),
            (64, 12),
        ]
        .into_iter()
        .enumerate()
        {
            let lbaf: u32 = ms | (shift << 16);
            put(&mut page, 128 + 4 * i, &lbaf.to_le_bytes());
        }
        page
    }

    #[test]
    fn namespace_formats() {
        let plain = IdentifyNamespace::parse(&namespace_page(4, 0)).unwrap();
        assert_eq!(plain.blocks, 32768);
        assert_eq!(plain.lba_bytes, 4096);
        assert_eq!(plain.metadata_bytes, 0);
        assert!(!plain.extended);
        assert_eq!(plain.protection, None);
        assert!(plain.deallocate_reads_zeroes);

        let separate = IdentifyNamespace::parse(&namespace_page(5, 1)).unwrap();
        assert_eq!((separate.lba_bytes, separate.metadata_bytes), (4096, 8));
        assert!(!separate.extended);
        assert_eq!(
            separate.protection,
            Some(Protection {
                pi_type: 1,
                first_bytes: false
            })
        );

        let inline = IdentifyNamespace::parse(&namespace_page(0x15, 0x09)).unwrap();
        assert!(inline.extended);
        assert_eq!(inline.format_index, 5);
        assert_eq!(
            inline.protection,
            Some(Protection {
                pi_type: 1,
                first_bytes: true
            })
        );

        let small = IdentifyNamespace::parse(&namespace_page(0, 0)).unwrap();
        assert_eq!(small.lba_bytes, 512);
    }

    #[test]
    fn namespace_refusals() {
        assert_eq!(
            IdentifyNamespace::parse(&namespace_page(8, 0)),
            Err(IdentifyError::FormatIndex)
        );
        let mut inactive = namespace_page(4, 0);
        inactive[..8].fill(0);
        assert_eq!(
            IdentifyNamespace::parse(&inactive),
            Err(IdentifyError::Inactive)
        );
        let mut tiny = namespace_page(4, 0);
        put(&mut tiny, 128 + 16, &(8u32 << 16).to_le_bytes());
        assert_eq!(IdentifyNamespace::parse(&tiny), Err(IdentifyError::LbaSize));
    }

    #[test]
    fn namespace_list() {
        let mut page = vec![0u8; IDENTIFY_BYTES];
        put(&mut page, 0, &1u32.to_le_bytes());
        put(&mut page, 4, &2u32.to_le_bytes());
        put(&mut page, 8, &7u32.to_le_bytes());
        assert_eq!(active_namespaces(&page).collect::<Vec<_>>(), vec![1, 2, 7]);
    }
}
