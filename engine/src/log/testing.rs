//! Building log frames for the log module's tests.

use crate::format::record::{
    begin_frame, encode_record, finish_frame, FrameHeader, Record, RecordKind,
};

/// A finished frame (not padded) of one put per key, with `value`, written
/// at `offset` of `segment` (generation `generation`) from `first_seq`.
pub(super) fn frame(
    segment: u32,
    generation: u64,
    offset: u32,
    first_seq: u64,
    keys: &[&[u8]],
    value: &[u8],
    seed: u32,
) -> Vec<u8> {
    let mut frame = Vec::new();
    begin_frame(&mut frame);
    for (i, key) in keys.iter().enumerate() {
        let record = Record {
            kind: RecordKind::Put,
            seq: first_seq + i as u64,
            segment,
            key,
            value,
            expire_at_ms: None,
        };
        encode_record(&mut frame, &record, seed);
    }
    let header = FrameHeader {
        frame_bytes: frame.len() as u32,
        record_count: keys.len() as u32,
        segment_generation: generation,
        segment,
        offset,
        first_seq,
    };
    finish_frame(&mut frame, &header, seed);
    frame
}
