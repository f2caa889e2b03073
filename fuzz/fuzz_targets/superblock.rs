//! Superblocks from arbitrary bytes: never a panic; a decoded superblock
//! re-encodes to the same bytes.
#![no_main]

use engine::format::superblock::{Superblock, SUPERBLOCK_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sb) = Superblock::decode(data) {
        let mut again = [0u8; SUPERBLOCK_BYTES];
        sb.encode(&mut again);
        assert_eq!(&again[..], &data[..SUPERBLOCK_BYTES]);
    }
});
