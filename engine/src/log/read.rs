//! Reading segments for the cold walks (recovery and `inspect`): a segment's
//! header block, classified, and a whole segment, with blocks the device
//! cannot read handed back as zeroes and listed.

use nvme::{Namespace, QueuePair};

use crate::blocking::{self, BlockingError};
use crate::format::checkpoint::KIND_CHECKPOINT;
use crate::format::record::{decode_frame_header, FrameHeader};
use crate::format::segment::{SegmentHeader, KIND_LOG};
use crate::format::DecodeError;
use crate::layout::Layout;

/// What a segment's header block says the segment is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderSlot {
    /// The device could not read the block.
    Unreadable,
    /// A log segment of this store, in its place.
    Log(SegmentHeader),
    /// Part of an index checkpoint of this store.
    Checkpoint(SegmentHeader),
    /// A header of this store that names another segment.
    Misplaced(SegmentHeader),
    /// Another store's leftover: free.
    Foreign,
    /// Zeroes: never used since format, or erased by GC. Free.
    Blank,
    /// Neither zeroes nor a header that verifies. Format zeroes every
    /// header block and GC erases them with zeroes, and a header fits in
    /// one sector (so a torn write leaves the old header or the new one,
    /// never half of each): a damaged header means damaged media, and the
    /// segment may hold acknowledged data.
    Damaged(DecodeError),
}

/// Classifies a segment's header block.
pub(crate) fn classify(block: &[u8], uuid: &[u8; 16], segment: u32) -> HeaderSlot {
    let decoded = match SegmentHeader::decode_kind(block, KIND_LOG) {
        Err(DecodeError::Invalid {
            field: "segment kind",
            ..
        }) => SegmentHeader::decode_kind(block, KIND_CHECKPOINT),
        other => other,
    };
    match decoded {
        Ok(h) if h.uuid != *uuid => HeaderSlot::Foreign,
        Ok(h) if h.segment != segment => HeaderSlot::Misplaced(h),
        Ok(h) if h.kind == KIND_CHECKPOINT => HeaderSlot::Checkpoint(h),
        Ok(h) => HeaderSlot::Log(h),
        Err(_) if block.iter().all(|&b| b == 0) => HeaderSlot::Blank,
        Err(e) => HeaderSlot::Damaged(e),
    }
}

/// Reads and classifies the header block of `segment`.
pub(crate) fn read_header(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    uuid: &[u8; 16],
    segment: u32,
    block: &mut Vec<u8>,
) -> Result<HeaderSlot, BlockingError> {
    read_start(namespace, queue, layout, uuid, segment, block).map(|(slot, _)| slot)
}

/// Reads the first two blocks of `segment` in one command: its header block,
/// classified, and the frame header in its first body block if that names
/// exactly its place. In a segment with no usable log header of its own
/// (blank, foreign, another segment's, damaged), such a frame means it was
/// written as a log and its header is missing: a lost or misdirected header
/// write, or its first commit in flight at a crash. GC erases the first
/// body block of a segment it frees, so a free segment has none.
pub(crate) fn read_start(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    uuid: &[u8; 16],
    segment: u32,
    blocks: &mut Vec<u8>,
) -> Result<(HeaderSlot, Option<FrameHeader>), BlockingError> {
    let first = layout.segment_lba(segment);
    let lba_bytes = layout.lba_bytes as usize;
    let mut unreadable = Vec::new();
    blocking::read_tolerant(
        namespace,
        queue,
        first,
        2 * lba_bytes,
        blocks,
        &mut unreadable,
    )?;
    let slot = if unreadable.contains(&first) {
        HeaderSlot::Unreadable
    } else {
        classify(&blocks[..lba_bytes], uuid, segment)
    };
    let frame = if unreadable.contains(&(first + 1)) {
        None
    } else {
        decode_frame_header(&blocks[lba_bytes..])
            .ok()
            .filter(|h| h.segment == segment && h.offset == layout.lba_bytes)
    };
    Ok((slot, frame))
}

/// Reads all of `segment` into `out`. Blocks the device cannot read (after
/// retries) come back as zeroes; their byte offsets within the segment are
/// returned.
pub(crate) fn read_segment(
    namespace: &dyn Namespace,
    queue: &mut dyn QueuePair,
    layout: &Layout,
    segment: u32,
    out: &mut Vec<u8>,
) -> Result<Vec<u32>, BlockingError> {
    let first = layout.segment_lba(segment);
    let mut unreadable = Vec::new();
    blocking::read_tolerant(
        namespace,
        queue,
        first,
        layout.segment_bytes as usize,
        out,
        &mut unreadable,
    )?;
    Ok(unreadable
        .into_iter()
        .map(|lba| ((lba - first) * u64::from(layout.lba_bytes)) as u32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(segment: u32, uuid: [u8; 16], kind: u32) -> Vec<u8> {
        let mut block = vec![0u8; 4096];
        SegmentHeader {
            kind,
            uuid,
            generation: 9,
            segment,
            stream: 1,
            prev_seq: 0,
            key_id: 0,
        }
        .encode(&mut block);
        block
    }

    #[test]
    fn headers_are_classified() {
        let uuid = [1; 16];
        assert!(matches!(
            classify(&header(4, uuid, KIND_LOG), &uuid, 4),
            HeaderSlot::Log(_)
        ));
        assert!(matches!(
            classify(&header(4, uuid, KIND_CHECKPOINT), &uuid, 4),
            HeaderSlot::Checkpoint(_)
        ));
        assert!(matches!(
            classify(&header(5, uuid, KIND_LOG), &uuid, 4),
            HeaderSlot::Misplaced(_)
        ));
        assert_eq!(
            classify(&header(4, [2; 16], KIND_LOG), &uuid, 4),
            HeaderSlot::Foreign
        );
        assert_eq!(classify(&[0u8; 4096], &uuid, 4), HeaderSlot::Blank);
        for byte in [0, 20, 40] {
            let mut flipped = header(4, uuid, KIND_LOG);
            flipped[byte] ^= 0x10;
            assert!(
                matches!(classify(&flipped, &uuid, 4), HeaderSlot::Damaged(_)),
                "a flip at byte {byte} is damage"
            );
        }
    }
}
