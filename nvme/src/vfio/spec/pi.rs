//! End-to-end protection information, type 1 with the 16-bit guard (NVM
//! command set specification 5.3): the CRC-16/T10-DIF guard and the 8-byte
//! tuple (guard, application tag, reference tag, all big-endian).

/// Bytes in one PI tuple.
pub const TUPLE_BYTES: usize = 8;

const POLY: u16 = 0x8bb7;

const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// CRC-16/T10-DIF (polynomial 0x8BB7, initial value 0, not reflected, no
/// final XOR) of `data`, continuing from `crc`.
pub fn crc16_t10dif_update(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc = (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)];
    }
    crc
}

/// CRC-16/T10-DIF of `data`.
pub fn crc16_t10dif(data: &[u8]) -> u16 {
    crc16_t10dif_update(0, data)
}

/// One protection information tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// CRC-16/T10-DIF of the block's data.
    pub guard: u16,
    /// Application tag (0xFFFF disables checking of the block for type 1).
    pub application_tag: u16,
    /// Reference tag: the low 32 bits of the LBA for type 1.
    pub reference_tag: u32,
}

impl Tuple {
    /// The tuple a type-1 namespace expects for `block` stored at `lba`.
    pub fn type1(block: &[u8], lba: u64) -> Tuple {
        Tuple {
            guard: crc16_t10dif(block),
            application_tag: 0,
            reference_tag: lba as u32,
        }
    }

    /// The wire encoding.
    pub fn encode(self) -> [u8; TUPLE_BYTES] {
        let mut out = [0u8; TUPLE_BYTES];
        out[..2].copy_from_slice(&self.guard.to_be_bytes());
        out[2..4].copy_from_slice(&self.application_tag.to_be_bytes());
        out[4..].copy_from_slice(&self.reference_tag.to_be_bytes());
        out
    }

    /// Decodes the wire encoding.
    pub fn decode(bytes: [u8; TUPLE_BYTES]) -> Tuple {
        Tuple {
            guard: u16::from_be_bytes([bytes[0], bytes[1]]),
            application_tag: u16::from_be_bytes([bytes[2], bytes[3]]),
            reference_tag: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }
}

/// What a host-side check of a type-1 tuple found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TupleCheck {
    /// Guard and reference tag match.
    Good,
    /// The application tag is 0xFFFF: the block is exempt from checking
    /// (a deallocated or never-written block on many controllers).
    Exempt,
    /// The guard does not match the data (what NVMe reports as 0x282).
    GuardMismatch,
    /// The reference tag is not the LBA (0x284).
    ReferenceTagMismatch,
}

/// Checks a type-1 tuple against the block it protects.
pub fn check_type1(block: &[u8], lba: u64, tuple: Tuple) -> TupleCheck {
    if tuple.application_tag == 0xffff {
        return TupleCheck::Exempt;
    }
    if tuple.guard != crc16_t10dif(block) {
        return TupleCheck::GuardMismatch;
    }
    if tuple.reference_tag != lba as u32 {
        return TupleCheck::ReferenceTagMismatch;
    }
    TupleCheck::Good
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // The catalogue check value of CRC-16/T10-DIF.
        assert_eq!(crc16_t10dif(b"123456789"), 0xd0db);
        assert_eq!(crc16_t10dif(b""), 0);
        // A zeroed block has a zero guard: CRC with init 0 of zero bytes.
        assert_eq!(crc16_t10dif(&[0u8; 4096]), 0);
        // Incremental equals one shot.
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        let split = crc16_t10dif_update(crc16_t10dif(&data[..1000]), &data[1000..]);
        assert_eq!(split, crc16_t10dif(&data));
    }

    #[test]
    fn bit_by_bit_matches_the_table() {
        fn slow(data: &[u8]) -> u16 {
            let mut crc = 0u16;
            for &b in data {
                crc ^= u16::from(b) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 {
                        (crc << 1) ^ POLY
                    } else {
                        crc << 1
                    };
                }
            }
            crc
        }
        let data: Vec<u8> = (0..512u32).map(|i| (i * 31 + 11) as u8).collect();
        assert_eq!(crc16_t10dif(&data), slow(&data));
        assert_eq!(crc16_t10dif(&[0xff; 4096]), slow(&[0xff; 4096]));
    }

    #[test]
    fn tuples_encode_big_endian_and_check() {
        let block = [0xa5u8; 4096];
        let tuple = Tuple::type1(&block, 0x1_2345_6789);
        assert_eq!(tuple.reference_tag, 0x2345_6789);
        let bytes = tuple.encode();
        assert_eq!(&bytes[4..], &[0x23, 0x45, 0x67, 0x89]);
        assert_eq!(&bytes[..2], &tuple.guard.to_be_bytes());
        assert_eq!(Tuple::decode(bytes), tuple);
        assert_eq!(check_type1(&block, 0x1_2345_6789, tuple), TupleCheck::Good);
        let mut flipped = block;
        flipped[100] ^= 1;
        assert_eq!(
            check_type1(&flipped, 0x1_2345_6789, tuple),
            TupleCheck::GuardMismatch
        );
        assert_eq!(
            check_type1(&block, 0x1_2345_678a, tuple),
            TupleCheck::ReferenceTagMismatch
        );
        let exempt = Tuple {
            application_tag: 0xffff,
            ..tuple
        };
        assert_eq!(check_type1(&flipped, 0, exempt), TupleCheck::Exempt);
    }
}
