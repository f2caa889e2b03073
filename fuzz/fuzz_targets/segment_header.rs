//! Segment headers from arbitrary bytes: never a panic; a decoded header
//! re-encodes to the same bytes.
#![no_main]

use engine::format::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = SegmentHeader::decode(data) {
        let mut again = [0u8; SEGMENT_HEADER_BYTES];
        header.encode(&mut again);
        assert_eq!(&again[..], &data[..SEGMENT_HEADER_BYTES]);
    }
});
