//! What a group's Raft entries carry: one client write each.
//!
//! An entry names the node and request that proposed it, so the proposer
//! can tell, when the entry at the index it was given is applied, whether
//! that entry is its own (acknowledge) or another leader's (its proposal
//! was overwritten and never took effect).
//!
//! Layout (little-endian): version `1`, op (`1` put, `2` delete), proposer
//! node id (u64), request id (u64), key length (u32), key, then the value
//! (the rest of the entry; empty for a delete).

use crate::bytes::Reader;
use crate::placement::NodeId;

const VERSION: u8 = 1;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const HEADER: usize = 1 + 1 + 8 + 8 + 4;

/// A write to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &[u8] {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
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
}

impl Proposal {
    /// The entry's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (op, key, value): (u8, &[u8], &[u8]) = match &self.write {
            Write::Put { key, value } => (OP_PUT, key, value),
            Write::Delete { key } => (OP_DELETE, key, &[]),
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
            op => return Err(EntryError::Op(op)),
        };
        Ok(Proposal {
            proposer,
            request,
            write,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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
