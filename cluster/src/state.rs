//! A group's applied state: its keys and values, and the last index
//! applied.
//!
//! This step of the cluster keeps the applied state in memory and rebuilds
//! it at start from the group's last snapshot and the committed entries
//! after it, as the engine rebuilds its index from the log. Wiring it to
//! the engine (an applied entry becomes an index update pointing at the
//! record the entry already is) is the next step; see `docs/cluster.md`.
//!
//! Snapshot image (little-endian): pair count (u64), then per pair key
//! length (u32), key, value length (u32), value; keys ascending.

use std::collections::BTreeMap;

use crate::bytes::Reader;
use crate::entry::Write;

/// The applied key-value state of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvState {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A snapshot image that does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("snapshot image damaged at byte {at}: {what}")]
pub struct ImageError {
    pub at: usize,
    pub what: &'static str,
}

impl KvState {
    /// Applies one committed write.
    pub fn apply(&mut self, write: Write) {
        match write {
            Write::Put { key, value } => {
                self.map.insert(key, value);
            }
            Write::Delete { key } => {
                self.map.remove(&key);
            }
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the group holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The snapshot image of the whole state.
    pub fn image(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (k, v) in &self.map {
            // Keys and values are bounded far below 4 GiB by the protocols.
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    /// The state a snapshot image holds; an empty image is the empty state
    /// (the snapshot a group starts from).
    pub fn from_image(image: &[u8]) -> Result<Self, ImageError> {
        if image.is_empty() {
            return Ok(Self::default());
        }
        let mut r = Reader::new(image);
        let field = |r: &Reader, what| ImageError { at: r.at(), what };
        let count = r.u64().ok_or_else(|| field(&r, "pair count"))?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let key_len = r.u32().ok_or_else(|| field(&r, "key length"))? as usize;
            let key = r.take(key_len).ok_or_else(|| field(&r, "key"))?.to_vec();
            let value_len = r.u32().ok_or_else(|| field(&r, "value length"))? as usize;
            let value = r
                .take(value_len)
                .ok_or_else(|| field(&r, "value"))?
                .to_vec();
            map.insert(key, value);
        }
        if !r.rest().is_empty() {
            return Err(field(&r, "bytes after the last pair"));
        }
        Ok(Self { map })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn images_round_trip(pairs: BTreeMap<Vec<u8>, Vec<u8>>) {
            let state = KvState { map: pairs };
            prop_assert_eq!(KvState::from_image(&state.image()), Ok(state));
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes: Vec<u8>) {
            let _ = KvState::from_image(&bytes);
        }
    }

    #[test]
    fn a_truncated_image_is_refused() {
        let mut state = KvState::default();
        state.apply(Write::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        });
        let image = state.image();
        let err = KvState::from_image(&image[..image.len() - 1]).expect_err("truncated");
        assert_eq!(err.what, "value");
        let mut long = image;
        long.push(0);
        assert!(KvState::from_image(&long).is_err());
    }
}
