//! The boot-state record on the `veltrix-boot-state` partition: two copies,
//! at byte 0 and at byte [`COPY_BYTES`], written alternately.
//!
//! A copy (little-endian, [`RECORD_BYTES`] bytes, the rest of its 4 KiB
//! block zero):
//!
//! | offset | bytes | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `VXBOOTST` |
//! | 8 | 4 | record format (1) |
//! | 12 | 4 | crc32c of bytes 8..12 and 16..64 |
//! | 16 | 8 | sequence: the copy with the higher one is in force |
//! | 24 | 1 | active slot (0 A, 1 B) |
//! | 25 | 1 | tries left |
//! | 26 | 1 | last good slot |
//! | 27 | 37 | reserved, zero |
//!
//! A new state is always written into the copy **not** in force, with the
//! next sequence number, so a write torn anywhere leaves the copy in force
//! untouched: the next read finds the old state or the new one, nothing
//! else. Each copy has its own 4 KiB block, so no torn block spans both.

use super::rules::{BootState, Slot, TRIES_MAX};

/// Bytes of one encoded copy.
pub const RECORD_BYTES: usize = 64;
/// Distance between the two copies (one 4 KiB block each).
pub const COPY_BYTES: usize = 4096;
const MAGIC: &[u8; 8] = b"VXBOOTST";
const RECORD_FORMAT: u32 = 1;

/// Why the record could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than two copies.
    #[error("boot-state partition too small: {have} bytes, two copies need {need}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// Both copies were written and neither verifies: damage beyond a torn
    /// write (which only ever touches one copy).
    #[error("both boot-state copies are damaged: copy 0: {first}; copy 1: {second}")]
    BothDamaged {
        /// Why copy 0 was refused.
        first: String,
        /// Why copy 1 was refused.
        second: String,
    },
}

/// The state read, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The state in force.
    pub state: BootState,
    /// Its sequence number (0 when the partition was never written).
    pub sequence: u64,
    /// The copy in force (0 or 1); `None` when neither copy was ever
    /// written, and the state is [`BootState::factory`].
    pub copy: Option<usize>,
}

fn encode(state: &BootState, sequence: u64) -> [u8; RECORD_BYTES] {
    let mut b = [0u8; RECORD_BYTES];
    b[0..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&RECORD_FORMAT.to_le_bytes());
    b[16..24].copy_from_slice(&sequence.to_le_bytes());
    b[24] = state.active.code();
    b[25] = state.tries_left;
    b[26] = state.last_good.code();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[8..12]), &b[16..]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// One copy: `Ok(None)` when never written (no magic).
fn decode(b: &[u8]) -> Result<Option<(BootState, u64)>, String> {
    if &b[0..8] != MAGIC {
        return if b[..RECORD_BYTES].iter().all(|&x| x == 0) {
            Ok(None)
        } else {
            Err("no magic".into())
        };
    }
    let stored = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&b[8..12]), &b[16..RECORD_BYTES]);
    if stored != computed {
        return Err(format!("crc {stored:#010x}, computed {computed:#010x}"));
    }
    let format = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if format != RECORD_FORMAT {
        return Err(format!(
            "record format {format} (this build reads {RECORD_FORMAT})"
        ));
    }
    if b[27..RECORD_BYTES].iter().any(|&x| x != 0) {
        return Err("reserved bytes not zero".into());
    }
    let slot = |code| Slot::from_code(code).ok_or_else(|| format!("slot code {code}"));
    let state = BootState {
        active: slot(b[24])?,
        tries_left: b[25],
        last_good: slot(b[26])?,
    };
    if state.tries_left > TRIES_MAX {
        return Err(format!("tries left {} > {TRIES_MAX}", state.tries_left));
    }
    let mut sequence = [0u8; 8];
    sequence.copy_from_slice(&b[16..24]);
    Ok(Some((state, u64::from_le_bytes(sequence))))
}

/// Reads the state in force from the partition's first `2 × COPY_BYTES`
/// bytes: the valid copy with the higher sequence; the factory state when
/// neither copy was ever written; one valid copy when the other is damaged
/// (a torn write).
pub fn read(partition: &[u8]) -> Result<Loaded, RecordError> {
    if partition.len() < 2 * COPY_BYTES {
        return Err(RecordError::Truncated {
            need: 2 * COPY_BYTES,
            have: partition.len(),
        });
    }
    let first = decode(&partition[..COPY_BYTES]);
    let second = decode(&partition[COPY_BYTES..2 * COPY_BYTES]);
    let loaded = |(state, sequence): (BootState, u64), copy| Loaded {
        state,
        sequence,
        copy: Some(copy),
    };
    match (first, second) {
        (Ok(Some(a)), Ok(Some(b))) => Ok(if b.1 > a.1 {
            loaded(b, 1)
        } else {
            loaded(a, 0)
        }),
        (Ok(Some(a)), _) => Ok(loaded(a, 0)),
        (_, Ok(Some(b))) => Ok(loaded(b, 1)),
        (Ok(None), Ok(None)) => Ok(Loaded {
            state: BootState::factory(),
            sequence: 0,
            copy: None,
        }),
        // One copy never written and the other damaged: the first write
        // of the record was torn, and the factory state was in force.
        (Ok(None), Err(_)) | (Err(_), Ok(None)) => Ok(Loaded {
            state: BootState::factory(),
            sequence: 0,
            copy: None,
        }),
        (Err(first), Err(second)) => Err(RecordError::BothDamaged { first, second }),
    }
}

/// Where and what to write to put `state` in force after `loaded`: the byte
/// offset of the copy not in force, and its new contents (the next
/// sequence number). Write it, flush, and only then act on the new state.
pub fn write_next(loaded: &Loaded, state: &BootState) -> (usize, [u8; RECORD_BYTES]) {
    let copy = match loaded.copy {
        Some(in_force) => 1 - in_force,
        None => 0,
    };
    (copy * COPY_BYTES, encode(state, loaded.sequence + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_state() -> impl Strategy<Value = BootState> {
        (any::<bool>(), 0..=TRIES_MAX, any::<bool>()).prop_map(|(a, tries, g)| BootState {
            active: if a { Slot::A } else { Slot::B },
            tries_left: tries,
            last_good: if g { Slot::A } else { Slot::B },
        })
    }

    fn apply(partition: &mut [u8], (at, bytes): (usize, [u8; RECORD_BYTES])) {
        partition[at..at + RECORD_BYTES].copy_from_slice(&bytes);
    }

    #[test]
    fn a_blank_partition_is_the_factory_state() {
        let loaded = read(&[0u8; 2 * COPY_BYTES]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((loaded.state, loaded.copy), (BootState::factory(), None));
        assert!(read(&[0u8; COPY_BYTES]).is_err());
    }

    #[test]
    fn both_copies_damaged_is_an_error_not_a_guess() {
        let mut partition = vec![0u8; 2 * COPY_BYTES];
        let blank = read(&partition).unwrap_or_else(|e| panic!("{e}"));
        apply(&mut partition, write_next(&blank, &BootState::factory()));
        let once = read(&partition).unwrap_or_else(|e| panic!("{e}"));
        apply(&mut partition, write_next(&once, &BootState::factory()));
        partition[20] ^= 1;
        partition[COPY_BYTES + 20] ^= 1;
        assert!(matches!(
            read(&partition),
            Err(RecordError::BothDamaged { .. })
        ));
    }

    proptest! {
        /// Any state written is the state read, from the other copy.
        #[test]
        fn writes_alternate_and_round_trip(states in proptest::collection::vec(arb_state(), 1..10)) {
            let mut partition = vec![0u8; 2 * COPY_BYTES];
            let mut last_copy = None;
            for state in states {
                let loaded = read(&partition).unwrap_or_else(|e| panic!("{e}"));
                apply(&mut partition, write_next(&loaded, &state));
                let now = read(&partition).unwrap_or_else(|e| panic!("{e}"));
                prop_assert_eq!(now.state, state);
                prop_assert_ne!(now.copy, last_copy);
                last_copy = now.copy;
            }
        }

        /// A write torn anywhere (its first `cut` bytes new, the rest old,
        /// or garbage after them) leaves the previous state or the new one
        /// in force: never an error, never a third state.
        #[test]
        fn a_torn_write_leaves_the_old_state_or_the_new(
            history in proptest::collection::vec(arb_state(), 0..6),
            next in arb_state(),
            cut in 0usize..=RECORD_BYTES,
            garbage in any::<bool>(),
            noise in any::<u8>(),
        ) {
            let mut partition = vec![0u8; 2 * COPY_BYTES];
            for state in &history {
                let loaded = read(&partition).unwrap_or_else(|e| panic!("{e}"));
                apply(&mut partition, write_next(&loaded, state));
            }
            let before = read(&partition).unwrap_or_else(|e| panic!("{e}"));
            let (at, bytes) = write_next(&before, &next);
            partition[at..at + cut].copy_from_slice(&bytes[..cut]);
            if garbage {
                for x in &mut partition[at + cut..at + RECORD_BYTES] {
                    *x ^= noise;
                }
            }
            let after = read(&partition);
            prop_assert!(after.is_ok(), "{:?}", after);
            let state = after.unwrap_or_else(|e| panic!("{e}")).state;
            prop_assert!(state == before.state || state == next, "{:?}", state);
        }

        /// Any single bit flipped in the copy in force is caught: the other
        /// copy (older) or the factory state is read, never a changed state.
        #[test]
        fn a_flipped_bit_is_never_read_as_a_state(
            states in proptest::collection::vec(arb_state(), 1..5),
            bit in 0usize..RECORD_BYTES * 8,
        ) {
            let mut partition = vec![0u8; 2 * COPY_BYTES];
            let mut written = vec![BootState::factory()];
            for state in &states {
                let loaded = read(&partition).unwrap_or_else(|e| panic!("{e}"));
                apply(&mut partition, write_next(&loaded, state));
                written.push(*state);
            }
            let in_force = read(&partition).unwrap_or_else(|e| panic!("{e}")).copy.unwrap_or(0);
            partition[in_force * COPY_BYTES + bit / 8] ^= 1 << (bit % 8);
            if let Ok(loaded) = read(&partition) {
                let earlier = &written[..written.len() - 1];
                prop_assert!(earlier.contains(&loaded.state), "{:?}", loaded.state);
            }
        }
    }
}
