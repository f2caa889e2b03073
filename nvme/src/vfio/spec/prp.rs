//! Physical Region Page entries (NVMe base specification 4.3) and the split
//! of a transfer into commands no larger than the controller's MDTS.

/// Why a PRP description could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrpError {
    /// The page size is not a power of two of at least 4 KiB.
    PageSize,
    /// The data address is not dword-aligned, or the list is not page-aligned.
    Alignment,
    /// The transfer needs more list entries than the list area holds.
    ListTooSmall,
    /// Zero bytes.
    Empty,
}

/// PRP1 and PRP2 for a command, and how many list slots were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prp {
    /// PRP entry 1: the data's first address.
    pub prp1: u64,
    /// PRP entry 2: zero, the second page, or the list's address.
    pub prp2: u64,
    /// Slots of the list area used (entries plus chain pointers).
    pub list_slots: usize,
}

/// List slots (8-byte entries, chain pointers included) a transfer of
/// `bytes` starting page-aligned needs, for list pages of `page_bytes`.
pub fn list_slots_needed(bytes: u64, page_bytes: u64) -> usize {
    let pages = bytes.div_ceil(page_bytes) as usize;
    if pages <= 2 {
        return 0;
    }
    let entries = pages - 1;
    let per_page = (page_bytes / 8) as usize;
    // Every full list page but the last gives one slot to the chain pointer.
    let mut slots = 0;
    let mut left = entries;
    while left > per_page {
        slots += per_page;
        left -= per_page - 1;
    }
    slots + left
}

/// Describes `bytes` of IOVA-contiguous data at `data_iova` with PRPs.
///
/// When a list is needed, `put(slot, value)` is called for each 8-byte list
/// slot in order; slot `i` lives at `list_iova + 8 * i`, and `list_slots` slots
/// are available (whole pages, so chain pointers land at page ends).
pub fn build(
    data_iova: u64,
    bytes: u64,
    page_bytes: u64,
    list_iova: u64,
    list_slots: usize,
    mut put: impl FnMut(usize, u64),
) -> Result<Prp, PrpError> {
    if !page_bytes.is_power_of_two() || page_bytes < 4096 {
        return Err(PrpError::PageSize);
    }
    if !data_iova.is_multiple_of(4) || !list_iova.is_multiple_of(page_bytes) {
        return Err(PrpError::Alignment);
    }
    if bytes == 0 {
        return Err(PrpError::Empty);
    }
    let first_bytes = page_bytes - data_iova % page_bytes;
    if bytes <= first_bytes {
        return Ok(Prp {
            prp1: data_iova,
            prp2: 0,
            list_slots: 0,
        });
    }
    let next_page = data_iova - data_iova % page_bytes + page_bytes;
    let pages_after = (bytes - first_bytes).div_ceil(page_bytes);
    if pages_after == 1 {
        return Ok(Prp {
            prp1: data_iova,
            prp2: next_page,
            list_slots: 0,
        });
    }
    let per_page = (page_bytes / 8) as usize;
    let mut slot = 0usize;
    for i in 0..pages_after {
        let left = pages_after - i;
        // The last slot of a list page chains to the next page, unless
        // exactly one entry is left, which takes the slot itself.
        if slot % per_page == per_page - 1 && left > 1 {
            if slot + 1 >= list_slots {
                return Err(PrpError::ListTooSmall);
            }
            put(slot, list_iova + (slot as u64 + 1) * 8);
            slot += 1;
        }
        if slot >= list_slots {
            return Err(PrpError::ListTooSmall);
        }
        put(slot, next_page + i * page_bytes);
        slot += 1;
    }
    Ok(Prp {
        prp1: data_iova,
        prp2: list_iova,
        list_slots: slot,
    })
}

/// One command's share of a larger transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// First block of the piece.
    pub lba: u64,
    /// Blocks in the piece.
    pub blocks: u32,
    /// Offset of the piece's first byte in the whole transfer's buffer.
    pub byte_offset: u64,
}

/// Cuts a range of blocks into pieces of at most `blocks_max` blocks each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    lba: u64,
    blocks_left: u64,
    byte_offset: u64,
    lba_bytes: u32,
    blocks_max: u32,
}

impl Split {
    /// A split of `blocks` blocks from `lba`, `blocks_max` (at least 1) at a
    /// time.
    pub fn new(lba: u64, blocks: u64, lba_bytes: u32, blocks_max: u32) -> Split {
        Split {
            lba,
            blocks_left: blocks,
            byte_offset: 0,
            lba_bytes,
            blocks_max: blocks_max.max(1),
        }
    }

    /// Blocks not yet handed out.
    pub fn blocks_left(&self) -> u64 {
        self.blocks_left
    }
}

impl Iterator for Split {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.blocks_left == 0 {
            return None;
        }
        let blocks = self.blocks_left.min(u64::from(self.blocks_max)) as u32;
        let piece = Piece {
            lba: self.lba,
            blocks,
            byte_offset: self.byte_offset,
        };
        self.lba += u64::from(blocks);
        self.blocks_left -= u64::from(blocks);
        self.byte_offset += u64::from(blocks) * u64::from(self.lba_bytes);
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    fn build_vec(data: u64, bytes: u64, list_pages: usize) -> Result<(Prp, Vec<u64>), PrpError> {
        let slots = list_pages * (PAGE as usize / 8);
        let mut list = vec![0u64; slots];
        let prp = build(data, bytes, PAGE, 0x10_0000, slots, |i, v| list[i] = v)?;
        list.truncate(prp.list_slots);
        Ok((prp, list))
    }

    #[test]
    fn one_and_two_pages_need_no_list() {
        let (prp, list) = build_vec(0x4000, 4096, 1).unwrap();
        assert_eq!((prp.prp1, prp.prp2), (0x4000, 0));
        assert!(list.is_empty());
        let (prp, _) = build_vec(0x4000, 512, 1).unwrap();
        assert_eq!(prp.prp2, 0);
        let (prp, list) = build_vec(0x4000, 8192, 1).unwrap();
        assert_eq!((prp.prp1, prp.prp2), (0x4000, 0x5000));
        assert!(list.is_empty());
        // An offset first page: 0x4800 + 4 KiB spans two pages.
        let (prp, _) = build_vec(0x4800, 4096, 1).unwrap();
        assert_eq!((prp.prp1, prp.prp2), (0x4800, 0x5000));
        assert_eq!(list_slots_needed(8192, PAGE), 0);
    }

    #[test]
    fn three_pages_use_a_list() {
        let (prp, list) = build_vec(0x4000, 3 * 4096, 1).unwrap();
        assert_eq!((prp.prp1, prp.prp2), (0x4000, 0x10_0000));
        assert_eq!(list, vec![0x5000, 0x6000]);
        assert_eq!(list_slots_needed(3 * 4096, PAGE), 2);
    }

    #[test]
    fn a_full_list_page_holds_512_entries_without_chaining() {
        // 513 pages: PRP1 + 512 list entries, exactly one list page.
        let bytes = 513 * PAGE;
        let (prp, list) = build_vec(0, bytes, 1).unwrap();
        assert_eq!(prp.list_slots, 512);
        assert_eq!(list[511], 512 * PAGE);
        assert_eq!(list_slots_needed(bytes, PAGE), 512);
    }

    #[test]
    fn long_lists_chain_at_page_ends() {
        // 514 pages: 513 entries, so the first list page ends in a chain.
        let bytes = 514 * PAGE;
        let (prp, list) = build_vec(0, bytes, 2).unwrap();
        assert_eq!(prp.list_slots, 514);
        assert_eq!(list[510], 511 * PAGE);
        assert_eq!(
            list[511],
            0x10_0000 + PAGE,
            "chain pointer to the next list page"
        );
        assert_eq!(list[512], 512 * PAGE);
        assert_eq!(list[513], 513 * PAGE);
        assert_eq!(list_slots_needed(bytes, PAGE), 514);
        // And it refuses a list area that is a page short.
        assert_eq!(build_vec(0, bytes, 1), Err(PrpError::ListTooSmall));
    }

    #[test]
    fn every_entry_is_the_next_page() {
        for pages in 3..1200u64 {
            let bytes = pages * PAGE;
            let needed = list_slots_needed(bytes, PAGE);
            let (prp, list) = build_vec(0x20_0000, bytes, needed.div_ceil(512)).unwrap();
            assert_eq!(prp.list_slots, needed, "{pages} pages");
            let data: Vec<u64> = list
                .iter()
                .enumerate()
                .filter(|(i, _)| !(i % 512 == 511 && *i + 1 < list.len()))
                .map(|(_, &v)| v)
                .collect();
            let expected: Vec<u64> = (1..pages).map(|p| 0x20_0000 + p * PAGE).collect();
            assert_eq!(data, expected, "{pages} pages");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(build_vec(0x4002, 4096, 1), Err(PrpError::Alignment));
        assert_eq!(build_vec(0x4000, 0, 1), Err(PrpError::Empty));
        assert_eq!(
            build(0, 4096, 2048, 0, 0, |_, _| {}),
            Err(PrpError::PageSize)
        );
        assert_eq!(
            build(0, 3 * 4096, 4096, 0x800, 8, |_, _| {}),
            Err(PrpError::Alignment)
        );
    }

    #[test]
    fn splits_respect_the_limit() {
        let pieces: Vec<Piece> = Split::new(10, 300, 4096, 128).collect();
        assert_eq!(
            pieces,
            vec![
                Piece {
                    lba: 10,
                    blocks: 128,
                    byte_offset: 0
                },
                Piece {
                    lba: 138,
                    blocks: 128,
                    byte_offset: 128 * 4096
                },
                Piece {
                    lba: 266,
                    blocks: 44,
                    byte_offset: 256 * 4096
                },
            ]
        );
        assert_eq!(Split::new(0, 128, 512, 128).count(), 1);
        assert_eq!(Split::new(0, 0, 512, 128).count(), 0);
        assert_eq!(
            Split::new(0, 3, 512, 0).count(),
            3,
            "a zero limit means one block"
        );
        let mut split = Split::new(0, 200, 4096, 64);
        split.next();
        assert_eq!(split.blocks_left(), 136);
    }
}
