//! Frames and records from arbitrary bytes: never a panic, and whatever
//! verifies decodes into records that lie inside the frame.
#![no_main]

use engine::format::record::{decode_record, frame_records, verify_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_record(data, 0);
    if let Ok(header) = verify_frame(data, 0) {
        let frame = &data[..header.frame_bytes as usize];
        for item in frame_records(frame, 0) {
            match item {
                Ok((at, record)) => assert!(at + record.key.len() + record.value.len() <= frame.len()),
                Err(_) => break,
            }
        }
    }
});
