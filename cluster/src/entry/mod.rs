//! What a group's Raft entries carry: one client write each.
//!
//! An entry names the node and request that proposed it, so the proposer
//! can tell, when the entry at the index it was given is applied, whether
//! that entry is its own (acknowledge) or another leader's (its proposal
//! was overwritten and never took effect).
//!
//! Layout (little-endian): version `1`, op, proposer node id (u64),
//! request id (u64), key length (u32), key, then what the op carries (the
//! rest of the entry):
//!
//! | op | write | after the key |
//! |---:|---|---|
//! | 1 | put | the value |
//! | 2 | delete | nothing |
//! | 3 | read-modify-write | the modification ([`modify`]'s layout) |
//! | 4 | batch | (key empty) the clock `now_ms` (u64), condition (u8: 0 none, 1 all absent, 2 all present), item count (u32), then per item: kind (u8: 1 put, 2 put with deadline, 3 delete), key length (u32), key, and for a put value length (u32), value, and for a deadline the deadline (u64) |
//!
//! Ops 3 and 4 came with read-modify-writes in cluster mode; a build that
//! knows only 1 and 2 stops applying at the first of them, naming it.

pub mod modify;

use engine::modify::Condition;
use engine::BatchOp;

use crate::bytes::{put_len_prefixed, Reader};
use crate::placement::NodeId;
pub use modify::Rmw;

const VERSION: u8 = 1;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_MODIFY: u8 = 3;
const OP_BATCH: u8 = 4;
const HEADER: usize = 1 + 1 + 8 + 8 + 4;

/// A write to one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Sets a key; it no longer expires.
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// A read-modify-write of one key, evaluated where the entry is
    /// applied.
    Modify {
        key: Vec<u8>,
        rmw: Rmw,
    },
    /// Puts and deletes of the group's keys, all or nothing: with a
    /// condition, only if every key meets it at the clock `now_ms`.
    Batch {
        items: Vec<BatchOp>,
        condition: Option<Condition>,
        now_ms: u64,
    },
}

impl Write {
    /// The key written (a batch's first).
    pub fn key(&self) -> &[u8] {
        match self {
            Write::Put { key, .. } | Write::Delete { key } | Write::Modify { key, .. } => key,
            Write::Batch { items, .. } => items.first().map_or(&[], batch_key),
        }
    }
}

/// The key a batch item writes.
pub fn batch_key(item: &BatchOp) -> &[u8] {
    match item {
        BatchOp::Put(key, _) | BatchOp::PutUntil(key, _, _) | BatchOp::Delete(key) => key,
    }
}

/// A client write as proposed: who asked, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub proposer: NodeId,
    pub request: u64,
    pub write: Write,
}

/// An entry that does not decode: it came from a newer version, or the
/// bytes are damaged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("entry of {0} bytes is shorter than its {HEADER}-byte header")]
    Short(usize),
    #[error("entry version {0} is not known (this build reads version {VERSION})")]
    Version(u8),
    #[error("entry op {0} is not known")]
    Op(u8),
    #[error("entry key of {key} bytes runs past the entry's {len} bytes")]
    KeyPastEnd { key: usize, len: usize },
    #[error("a delete entry carries {0} value bytes")]
    DeleteWithValue(usize),
    #[error("entry's {0} does not decode")]
    Field(&'static str),
}

impl Proposal {
    /// The entry's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (op, key, value): (u8, &[u8], &[u8]) = match &self.write {
            Write::Put { key, value } => (OP_PUT, key, value),
            Write::Delete { key } => (OP_DELETE, key, &[]),
            Write::Modify { key, .. } => (OP_MODIFY, key, &[]),
            Write::Batch { .. } => (OP_BATCH, &[], &[]),
        };
        let mut out = Vec::with_capacity(HEADER + key.len() + value.len());
        out.push(VERSION);
        out.push(op);
        out.extend_from_slice(&self.proposer.to_le_bytes());
        out.extend_from_slice(&self.request.to_le_bytes());
        // Keys are bounded far below 4 GiB by the protocols' limits.
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        match &self.write {
            Write::Modify { rmw, .. } => modify::encode(&mut out, rmw),
            Write::Batch {
                items,
                condition,
                now_ms,
            } => encode_batch(&mut out, items, *condition, *now_ms),
            Write::Put { .. } | Write::Delete { .. } => {}
        }
        out
    }

    /// Reads an entry's bytes; never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() < HEADER {
            return Err(EntryError::Short(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        // The length check above covers every header field.
        let short = || EntryError::Short(bytes.len());
        let version = r.u8().ok_or_else(short)?;
        if version != VERSION {
            return Err(EntryError::Version(version));
        }
        let op = r.u8().ok_or_else(short)?;
        let proposer = r.u64().ok_or_else(short)?;
        let request = r.u64().ok_or_else(short)?;
        let key_len = r.u32().ok_or_else(short)? as usize;
        let key = r.take(key_len).ok_or(EntryError::KeyPastEnd {
            key: key_len,
            len: bytes.len(),
        })?;
        let value = r.rest();
        let write = match op {
            OP_PUT => Write::Put {
                key: key.to_vec(),
                value: value.to_vec(),
            },
            OP_DELETE if value.is_empty() => Write::Delete { key: key.to_vec() },
            OP_DELETE => return Err(EntryError::DeleteWithValue(value.len())),
            OP_MODIFY => Write::Modify {
                key: key.to_vec(),
                rmw: modify::decode(&mut r).map_err(EntryError::Field)?,
            },
            OP_BATCH if key.is_empty() => decode_batch(&mut r).map_err(EntryError::Field)?,
            OP_BATCH => return Err(EntryError::Field("batch key")),
            op => return Err(EntryError::Op(op)),
        };
        Ok(Proposal {
            proposer,
            request,
            write,
        })
    }
}

fn encode_batch(out: &mut Vec<u8>, items: &[BatchOp], condition: Option<Condition>, now: u64) {
    out.extend_from_slice(&now.to_le_bytes());
    out.push(match condition {
        None => 0,
        Some(Condition::Absent) => 1,
        Some(Condition::Present) => 2,
    });
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for item in items {
        let (kind, key, value, deadline) = match item {
            BatchOp::Put(k, v) => (1, k, Some(v), None),
            BatchOp::PutUntil(k, v, at) => (2, k, Some(v), Some(*at)),
            BatchOp::Delete(k) => (3, k, None, None),
        };
        out.push(kind);
        put_len_prefixed(out, key);
        if let Some(v) = value {
            put_len_prefixed(out, v);
        }
        if let Some(at) = deadline {
            out.extend_from_slice(&at.to_le_bytes());
        }
    }
}

fn decode_batch(r: &mut Reader<'_>) -> Result<Write, &'static str> {
    let now_ms = r.u64().ok_or("batch clock")?;
    let condition = match r.u8().ok_or("batch condition")? {
        0 => None,
        1 => Some(Condition::Absent),
        2 => Some(Condition::Present),
        _ => return Err("batch condition"),
    };
    let count = r.u32().ok_or("batch item count")?;
    // Each item takes at least 5 bytes: never trust the count further.
    let mut items = Vec::with_capacity((count as usize).min(r.rest().len() / 5));
    for _ in 0..count {
        let kind = r.u8().ok_or("batch item kind")?;
        let key_len = r.u32().ok_or("batch key length")? as usize;
        let key = r.take(key_len).ok_or("batch key")?.to_vec();
        let mut value = || -> Result<Vec<u8>, &'static str> {
            let len = r.u32().ok_or("batch value length")? as usize;
            Ok(r.take(len).ok_or("batch value")?.to_vec())
        };
        items.push(match kind {
            1 => BatchOp::Put(key, value()?),
            2 => {
                let value = value()?;
                BatchOp::PutUntil(key, value, r.u64().ok_or("batch deadline")?)
            }
            3 => BatchOp::Delete(key),
            _ => return Err("batch item kind"),
        });
    }
    if !r.rest().is_empty() {
        return Err("bytes after the batch");
    }
    Ok(Write::Batch {
        items,
        condition,
        now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::modify::{ExpireIf, Expiry, Extended, Modify};
    use proptest::prelude::*;

    fn expiry() -> impl Strategy<Value = Expiry> {
        prop_oneof![
            Just(Expiry::Clear),
            Just(Expiry::Keep),
            any::<u64>().prop_map(Expiry::At)
        ]
    }

    fn condition() -> impl Strategy<Value = Option<Condition>> {
        prop_oneof![
            Just(None),
            Just(Some(Condition::Absent)),
            Just(Some(Condition::Present))
        ]
    }

    fn modification() -> impl Strategy<Value = Modify> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..8);
        prop_oneof![
            any::<i64>().prop_map(Modify::IncrBy),
            prop_oneof![
                Just("1.5"),
                Just("-0"),
                Just("inf"),
                Just("3e-4950"),
                Just("0.1")
            ]
            .prop_map(|t| Modify::IncrByFloat(Extended::parse(t.as_bytes()).unwrap())),
            bytes().prop_map(Modify::Append),
            (any::<u64>(), bytes()).prop_map(|(offset, bytes)| Modify::SetRange { offset, bytes }),
            Just(Modify::GetDel),
            (bytes(), condition(), expiry()).prop_map(|(value, condition, expiry)| {
                Modify::Exchange {
                    value,
                    condition,
                    expiry,
                }
            }),
            (any::<i64>(), any::<[bool; 4]>()).prop_map(|(at, [nx, xx, gt, lt])| Modify::Expire {
                at,
                condition: ExpireIf { nx, xx, gt, lt },
            }),
            Just(Modify::Persist),
            expiry().prop_map(Modify::GetEx),
            (bytes(), any::<bool>()).prop_map(|(to, if_absent)| Modify::Rename { to, if_absent }),
        ]
    }

    fn item() -> impl Strategy<Value = BatchOp> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..8);
        prop_oneof![
            (bytes(), bytes()).prop_map(|(k, v)| BatchOp::Put(k, v)),
            (bytes(), bytes(), any::<u64>()).prop_map(|(k, v, at)| BatchOp::PutUntil(k, v, at)),
            bytes().prop_map(BatchOp::Delete),
        ]
    }

    fn write() -> impl Strategy<Value = Write> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..8);
        prop_oneof![
            (bytes(), bytes()).prop_map(|(key, value)| Write::Put { key, value }),
            bytes().prop_map(|key| Write::Delete { key }),
            (bytes(), modification(), any::<u64>(), any::<u64>()).prop_map(
                |(key, modify, now_ms, value_bytes_max)| Write::Modify {
                    key,
                    rmw: Rmw {
                        modify,
                        now_ms,
                        value_bytes_max
                    },
                }
            ),
            (
                proptest::collection::vec(item(), 0..4),
                condition(),
                any::<u64>()
            )
                .prop_map(|(items, condition, now_ms)| Write::Batch {
                    items,
                    condition,
                    now_ms
                }),
        ]
    }

    proptest! {
        #[test]
        fn every_write_round_trips(proposer: u64, request: u64, write in write()) {
            let p = Proposal { proposer, request, write };
            let bytes = p.encode();
            prop_assert_eq!(Proposal::decode(&bytes), Ok(p));
            // Cut anywhere, an entry is refused, never misread (a put's or
            // a modification's trailing bytes are its value: those cuts
            // decode as another write, which the journal's checksums
            // guard against; here only the fixed fields are cut).
            for cut in 0..HEADER {
                prop_assert!(Proposal::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn round_trips(proposer: u64, request: u64, key: Vec<u8>, value: Option<Vec<u8>>) {
            let write = match value {
                Some(value) => Write::Put { key, value },
                None => Write::Delete { key },
            };
            let p = Proposal { proposer, request, write };
            prop_assert_eq!(Proposal::decode(&p.encode()), Ok(p));
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes: Vec<u8>) {
            let _ = Proposal::decode(&bytes);
        }
    }

    #[test]
    fn damage_is_named() {
        let p = Proposal {
            proposer: 1,
            request: 2,
            write: Write::Delete { key: b"k".to_vec() },
        };
        let bytes = p.encode();
        assert_eq!(Proposal::decode(&bytes[..5]), Err(EntryError::Short(5)));
        let mut v = bytes.clone();
        v[0] = 9;
        assert_eq!(Proposal::decode(&v), Err(EntryError::Version(9)));
        let mut v = bytes.clone();
        v[1] = 7;
        assert_eq!(Proposal::decode(&v), Err(EntryError::Op(7)));
        let mut v = bytes.clone();
        v.push(1);
        assert_eq!(Proposal::decode(&v), Err(EntryError::DeleteWithValue(1)));
        let mut v = bytes;
        v[18] = 200;
        assert!(matches!(
            Proposal::decode(&v),
            Err(EntryError::KeyPastEnd { .. })
        ));
    }
}
