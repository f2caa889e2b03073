//! Index checkpoints: the root block that names a checkpoint, and the
//! checkpoint body (every shard's keys and value pointers, plus the segment
//! table) that it covers. See `docs/format/checkpoint.md`.

use super::{check_crc_seeded, need, u16_at, u32_at, u64_at, DecodeError};
use crate::index::{Art, ValuePointer};
use crate::shard::SHARD_COUNT;

/// "VXCKPT01" as a little-endian u64.
pub const ROOT_MAGIC: u64 = u64::from_le_bytes(*b"VXCKPT01");
/// The checkpoint format this build writes (and the newest it reads).
/// Version 2 added key deadlines to the body; version 1 bodies still load.
pub const CHECKPOINT_VERSION: u32 = 2;
/// In a version 2 body, this bit of a key's length says an 8-byte
/// deadline follows its pointer (a key is at most 1024 bytes, so version 1
/// never set it).
const KEY_EXPIRES_BIT: u16 = 0x8000;
/// Bytes of the root before its segment list.
pub const ROOT_FIXED_BYTES: usize = 64;
/// The two root slots: blocks 2 and 3 of segment 0, after the superblocks.
pub const ROOT_LBAS: [u64; 2] = [2, 3];
/// Segment kind of a segment holding part of a checkpoint body.
pub const KIND_CHECKPOINT: u32 = 2;
/// Bytes per entry of the segment table in the body.
const TABLE_ENTRY_BYTES: usize = 31;

/// A checkpoint root: which segments hold the body, and its checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// Checkpoint number; the newest valid root wins. Root slot
    /// `generation % 2` holds it.
    pub generation: u64,
    /// Length of the body.
    pub body_bytes: u64,
    /// crc32c of the body, from the store's seed.
    pub body_crc: u32,
    /// The lowest per-shard watermark: every record at or below it is in
    /// the checkpoint (for the shard it belongs to).
    pub watermark_min: u64,
    /// The engine's next sequence number when the body was taken.
    pub next_seq: u64,
    /// Segments holding the body, in order.
    pub segments: Vec<u32>,
    /// The body's format version ([`CHECKPOINT_VERSION`] when written by
    /// this build).
    pub version: u32,
}

impl Root {
    /// Most segments a root of `lba_bytes` can list.
    pub fn segments_max(lba_bytes: usize) -> usize {
        (lba_bytes - ROOT_FIXED_BYTES) / 4
    }

    /// Encodes into `out` (one block, zeroed past the root).
    pub fn encode(&self, out: &mut [u8], seed: u32) {
        out.fill(0);
        out[0..8].copy_from_slice(&ROOT_MAGIC.to_le_bytes());
        out[12..16].copy_from_slice(&self.version.to_le_bytes());
        out[16..24].copy_from_slice(&self.generation.to_le_bytes());
        out[24..32].copy_from_slice(&self.body_bytes.to_le_bytes());
        out[32..36].copy_from_slice(&self.body_crc.to_le_bytes());
        out[36..40].copy_from_slice(&(self.segments.len() as u32).to_le_bytes());
        out[40..48].copy_from_slice(&self.watermark_min.to_le_bytes());
        out[48..56].copy_from_slice(&self.next_seq.to_le_bytes());
        for (i, s) in self.segments.iter().enumerate() {
            let at = ROOT_FIXED_BYTES + 4 * i;
            out[at..at + 4].copy_from_slice(&s.to_le_bytes());
        }
        let end = ROOT_FIXED_BYTES + 4 * self.segments.len();
        let crc = crc32c::crc32c_append(seed, &out[12..end]);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes and verifies a root block. `BadMagic`: the slot was never
    /// written (or holds something else entirely).
    pub fn decode(block: &[u8], seed: u32) -> Result<Root, DecodeError> {
        need(block, ROOT_FIXED_BYTES)?;
        let magic = u64_at(block, 0);
        if magic != ROOT_MAGIC {
            return Err(DecodeError::BadMagic { found: magic });
        }
        let count = u32_at(block, 36) as usize;
        if count > Self::segments_max(block.len()) {
            return Err(DecodeError::Invalid {
                field: "checkpoint segment count",
                value: count as u64,
            });
        }
        let end = ROOT_FIXED_BYTES + 4 * count;
        check_crc_seeded(u32_at(block, 8), seed, &[&block[12..end]])?;
        let version = u32_at(block, 12);
        if version == 0 || version > CHECKPOINT_VERSION {
            return Err(DecodeError::NewerVersion {
                found: version,
                supported: CHECKPOINT_VERSION,
            });
        }
        Ok(Root {
            generation: u64_at(block, 16),
            body_bytes: u64_at(block, 24),
            body_crc: u32_at(block, 32),
            watermark_min: u64_at(block, 40),
            next_seq: u64_at(block, 48),
            segments: (0..count)
                .map(|i| u32_at(block, ROOT_FIXED_BYTES + 4 * i))
                .collect(),
            version,
        })
    }
}

/// What the checkpoint knew about a log segment in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// The segment.
    pub segment: u32,
    /// Its stream.
    pub stream: u16,
    /// Its generation: a segment reused since is not this entry.
    pub generation: u64,
    /// Lower bound of its sequence numbers.
    pub min_seq: u64,
    /// Its last sequence number.
    pub last_seq: u64,
    /// Its end is marked by a durable seal.
    pub sealed: bool,
    /// Its stream had moved at least two segments past it: nothing will be
    /// appended to it, and its seal (if any) is durable.
    pub closed: bool,
}

/// Appends one shard's section to a checkpoint body (version 2): its
/// watermark, then every key with its pointer, and its deadline when it
/// has one.
pub fn encode_shard(out: &mut Vec<u8>, watermark: u64, index: &Art) {
    out.extend_from_slice(&watermark.to_le_bytes());
    out.extend_from_slice(&(index.len() as u32).to_le_bytes());
    let mut pointer = [0u8; ValuePointer::BYTES];
    index.for_each(|key, value| {
        let deadline = index.deadline(key);
        let flag = if deadline.is_some() {
            KEY_EXPIRES_BIT
        } else {
            0
        };
        out.extend_from_slice(&(key.len() as u16 | flag).to_le_bytes());
        out.extend_from_slice(key);
        value.encode(&mut pointer);
        out.extend_from_slice(&pointer);
        if let Some(deadline) = deadline {
            out.extend_from_slice(&deadline.to_le_bytes());
        }
    });
}

/// Appends the segment table, closing a body whose shard sections are
/// already in `out` (after [`begin_body`]).
pub fn encode_table(out: &mut Vec<u8>, table: &[TableEntry]) {
    out.extend_from_slice(&(table.len() as u32).to_le_bytes());
    for e in table {
        out.extend_from_slice(&e.segment.to_le_bytes());
        out.extend_from_slice(&e.stream.to_le_bytes());
        out.extend_from_slice(&e.generation.to_le_bytes());
        out.extend_from_slice(&e.min_seq.to_le_bytes());
        out.extend_from_slice(&e.last_seq.to_le_bytes());
        out.push(u8::from(e.sealed) | (u8::from(e.closed) << 1));
    }
}

/// Starts a body: the shard count.
pub fn begin_body(out: &mut Vec<u8>) {
    out.extend_from_slice(&u32::from(SHARD_COUNT).to_le_bytes());
}

/// A decoded checkpoint body.
pub struct Body {
    /// Per shard: every record of the shard at or below this sequence
    /// number is reflected in its index.
    pub watermarks: Vec<u64>,
    /// Per shard: the index as of its watermark.
    pub index: Vec<Art>,
    /// The segment table.
    pub table: Vec<TableEntry>,
}

/// Decodes a body of format `version` (the root's) whose crc already
/// held. Never panics on bad input.
pub fn decode_body(b: &[u8], version: u32) -> Result<Body, DecodeError> {
    let invalid = |field: &'static str, value: usize| DecodeError::Invalid {
        field,
        value: value as u64,
    };
    let mut at = 0usize;
    let take = |at: &mut usize, len: usize| -> Result<usize, DecodeError> {
        need(&b[(*at).min(b.len())..], len)?;
        let start = *at;
        *at += len;
        Ok(start)
    };
    let shards = u32_at(b, take(&mut at, 4)?) as usize;
    if shards != usize::from(SHARD_COUNT) {
        return Err(invalid("checkpoint shard count", shards));
    }
    let mut watermarks = Vec::with_capacity(shards);
    let mut index = Vec::with_capacity(shards);
    for _ in 0..shards {
        watermarks.push(u64_at(b, take(&mut at, 8)?));
        let count = u32_at(b, take(&mut at, 4)?) as usize;
        let mut art = Art::new();
        for _ in 0..count {
            let raw = u16_at(b, take(&mut at, 2)?);
            // Version 1 had no deadlines: there the bit is a bad length.
            let expires = version >= 2 && raw & KEY_EXPIRES_BIT != 0;
            let key_len = usize::from(if version >= 2 {
                raw & !KEY_EXPIRES_BIT
            } else {
                raw
            });
            if key_len == 0 || key_len > crate::index::KEY_BYTES_MAX {
                return Err(invalid("checkpoint key length", key_len));
            }
            let key = take(&mut at, key_len)?;
            let pointer = take(&mut at, ValuePointer::BYTES)?;
            let deadline = match expires {
                true => Some(u64_at(b, take(&mut at, 8)?)),
                false => None,
            };
            art.insert_expiring(
                &b[key..key + key_len],
                ValuePointer::decode(&b[pointer..pointer + ValuePointer::BYTES]),
                deadline,
            );
        }
        index.push(art);
    }
    let count = u32_at(b, take(&mut at, 4)?) as usize;
    let mut table = Vec::with_capacity(count.min(b.len() / TABLE_ENTRY_BYTES));
    for _ in 0..count {
        let e = take(&mut at, TABLE_ENTRY_BYTES)?;
        let flags = b[e + 30];
        table.push(TableEntry {
            segment: u32_at(b, e),
            stream: u16_at(b, e + 4),
            generation: u64_at(b, e + 6),
            min_seq: u64_at(b, e + 14),
            last_seq: u64_at(b, e + 22),
            sealed: flags & 1 != 0,
            closed: flags & 2 != 0,
        });
    }
    if at != b.len() {
        return Err(invalid("checkpoint trailing bytes", b.len() - at));
    }
    Ok(Body {
        watermarks,
        index,
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn root() -> Root {
        Root {
            generation: 7,
            body_bytes: 12345,
            body_crc: 0xdead_beef,
            watermark_min: 99,
            next_seq: 120,
            segments: vec![5, 9, 2],
            version: CHECKPOINT_VERSION,
        }
    }

    #[test]
    fn root_round_trips_and_rejects_another_store() {
        let mut block = vec![0u8; 4096];
        root().encode(&mut block, 11);
        assert_eq!(Root::decode(&block, 11), Ok(root()));
        assert!(matches!(
            Root::decode(&block, 12),
            Err(DecodeError::Checksum { .. })
        ));
        assert!(matches!(
            Root::decode(&[0u8; 4096], 11),
            Err(DecodeError::BadMagic { .. })
        ));
    }

    #[test]
    fn body_round_trips() {
        let mut body = Vec::new();
        begin_body(&mut body);
        for shard in 0..SHARD_COUNT {
            let mut art = Art::new();
            if shard % 100 == 3 {
                for k in 0..5u32 {
                    art.insert_expiring(
                        format!("key-{shard}-{k}").as_bytes(),
                        ValuePointer {
                            segment: k,
                            offset: 4096,
                            length: 77,
                            sequence_low: k + 1,
                        },
                        (k % 2 == 1).then_some(1_700_000_000_000 + u64::from(k)),
                    );
                }
            }
            encode_shard(&mut body, u64::from(shard) + 10, &art);
        }
        let table = vec![TableEntry {
            segment: 3,
            stream: 1,
            generation: 44,
            min_seq: 5,
            last_seq: 80,
            sealed: true,
            closed: false,
        }];
        encode_table(&mut body, &table);
        let decoded = decode_body(&body, CHECKPOINT_VERSION).expect("decodes");
        assert_eq!(decoded.table, table);
        assert_eq!(decoded.watermarks[1023], 1033);
        assert_eq!(decoded.index[103].len(), 5);
        assert_eq!(
            decoded.index[103].get(b"key-103-4").map(|p| p.sequence_low),
            Some(5)
        );
        assert_eq!(decoded.index[103].deadline(b"key-103-4"), None);
        assert_eq!(
            decoded.index[103].deadline(b"key-103-3"),
            Some(1_700_000_000_003)
        );
        assert_eq!(decoded.index[103].expiring_len(), 2);
        assert!(decode_body(&body[..body.len() - 1], CHECKPOINT_VERSION).is_err());
        // Read as version 1, the deadline bit is a key length out of range.
        assert!(decode_body(&body, 1).is_err());
    }

    /// A version 1 body (no deadlines), byte by byte, still loads.
    #[test]
    fn a_version_1_body_still_decodes() {
        let mut body = Vec::new();
        begin_body(&mut body);
        for shard in 0..SHARD_COUNT {
            body.extend_from_slice(&u64::from(shard).to_le_bytes());
            let count: u32 = if shard == 7 { 1 } else { 0 };
            body.extend_from_slice(&count.to_le_bytes());
            if shard == 7 {
                body.extend_from_slice(&2u16.to_le_bytes());
                body.extend_from_slice(b"ab");
                for field in [3u32, 4096, 40, 9] {
                    body.extend_from_slice(&field.to_le_bytes());
                }
            }
        }
        encode_table(&mut body, &[]);
        let decoded = decode_body(&body, 1).expect("a version 1 body decodes");
        assert_eq!(decoded.index[7].get(b"ab").map(|p| p.length), Some(40));
        assert_eq!(decoded.index[7].deadline(b"ab"), None);
        // The same bytes are a valid version 2 body too: v2 only adds a bit.
        assert!(decode_body(&body, CHECKPOINT_VERSION).is_ok());
    }

    #[test]
    fn roots_of_version_1_are_read_and_newer_ones_refused() {
        let mut block = vec![0u8; 4096];
        let old = Root {
            version: 1,
            ..root()
        };
        old.encode(&mut block, 11);
        assert_eq!(Root::decode(&block, 11), Ok(old));
        let newer = Root {
            version: CHECKPOINT_VERSION + 1,
            ..root()
        };
        newer.encode(&mut block, 11);
        assert!(matches!(
            Root::decode(&block, 11),
            Err(DecodeError::NewerVersion { .. })
        ));
    }

    proptest! {
        #[test]
        fn root_bit_flips_are_rejected(bit in 0usize..(ROOT_FIXED_BYTES + 12) * 8) {
            let mut block = vec![0u8; 512];
            root().encode(&mut block, 3);
            block[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Root::decode(&block, 3).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Root::decode(&bytes, 1);
            let _ = decode_body(&bytes, 1);
            let _ = decode_body(&bytes, CHECKPOINT_VERSION);
        }
    }
}
