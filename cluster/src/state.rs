//! A group's applied state: its keys and values, and the last index
//! applied.
//!
//! This step of the cluster keeps the applied state in memory and rebuilds
//! it at start from the group's last snapshot and the committed entries
//! after it, as the engine rebuilds its index from the log. Wiring it to
//! the engine (an applied entry becomes an index update pointing at the
//! record the entry already is) is the next step; see `docs/cluster.md`.
//!
//! Snapshot image (little-endian), version 2: the marker `u64::MAX`, the
//! version byte `2`, the pair count (u64), then per pair key length (u32),
//! key, value length (u32), value, deadline (u64 milliseconds since the
//! Unix epoch; 0 for none); keys ascending. Version 1 (written before keys
//! could expire) has no marker: it starts with the pair count and has no
//! deadlines. Both are read.
//!
//! Deadlines are judged against a clock the caller passes (a read's, or
//! the one an entry carries), never the machine's: replicas applying the
//! same entries reach the same state, and the simulator controls time. A
//! key is live while the clock is at or before its deadline, as in the
//! engine.

use std::collections::BTreeMap;

use engine::modify::{Answer, Condition, Context, ModifyError, Write as ModifyWrite};
use engine::BatchOp;

use crate::bytes::{put_len_prefixed, Reader};
use crate::entry::{batch_key, Write};

/// A stored value and its deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    value: Vec<u8>,
    deadline: Option<u64>,
}

/// The applied key-value state of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvState {
    map: BTreeMap<Vec<u8>, Stored>,
}

/// What applying a write did, for its proposer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A put, a delete or a batch took effect.
    Written,
    /// A conditional batch's condition did not hold: nothing changed.
    NotApplied,
    /// A read-modify-write's answer (it took effect).
    Answer(Answer),
    /// A read-modify-write refused (a value that is not a number, ...):
    /// nothing changed.
    Refused(ModifyError),
}

/// A snapshot image that does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("snapshot image damaged at byte {at}: {what}")]
pub struct ImageError {
    pub at: usize,
    pub what: &'static str,
}

const IMAGE_MARKER: u64 = u64::MAX;
const IMAGE_VERSION: u8 = 2;

impl KvState {
    /// Applies one committed write.
    pub fn apply(&mut self, write: Write) -> Applied {
        match write {
            Write::Put { key, value } => {
                self.map.insert(
                    key,
                    Stored {
                        value,
                        deadline: None,
                    },
                );
                Applied::Written
            }
            Write::Delete { key } => {
                self.map.remove(&key);
                Applied::Written
            }
            Write::Modify { key, rmw } => {
                let now_ms = rmw.now_ms;
                let current = self.live(&key, now_ms).cloned();
                let target_exists = rmw
                    .modify
                    .other_key()
                    .is_some_and(|to| self.live(to, now_ms).is_some());
                let deadline = current.as_ref().and_then(|c| c.deadline);
                let context = Context {
                    value_bytes_max: usize::try_from(rmw.value_bytes_max).unwrap_or(usize::MAX),
                    target_exists,
                    deadline,
                    now_ms,
                };
                match rmw.modify.apply(&key, current.map(|c| c.value), context) {
                    Ok(outcome) => {
                        if let Some(write) = outcome.write {
                            self.modified(key, write, deadline);
                        }
                        Applied::Answer(outcome.answer)
                    }
                    Err(error) => Applied::Refused(error),
                }
            }
            Write::Batch {
                items,
                condition,
                now_ms,
            } => {
                let holds = |item: &BatchOp| {
                    let live = self.live(batch_key(item), now_ms).is_some();
                    match condition {
                        None => true,
                        Some(Condition::Absent) => !live,
                        Some(Condition::Present) => live,
                    }
                };
                if !items.iter().all(holds) {
                    return Applied::NotApplied;
                }
                for item in items {
                    match item {
                        BatchOp::Put(key, value) => self.set(key, value, None),
                        BatchOp::PutUntil(key, value, at) => self.set(key, value, Some(at)),
                        BatchOp::Delete(key) => {
                            self.map.remove(&key);
                        }
                    }
                }
                Applied::Written
            }
        }
    }

    /// A read-modify-write's outcome takes effect; `deadline` is the key's
    /// before it.
    fn modified(&mut self, key: Vec<u8>, write: ModifyWrite, deadline: Option<u64>) {
        match write {
            ModifyWrite::Put(value) => self.set(key, value, deadline),
            ModifyWrite::PutUntil(value, deadline) => self.set(key, value, deadline),
            ModifyWrite::Delete => {
                self.map.remove(&key);
            }
            ModifyWrite::Move { to, value } => {
                self.map.remove(&key);
                self.set(to, value, deadline);
            }
        }
    }

    fn set(&mut self, key: Vec<u8>, value: Vec<u8>, deadline: Option<u64>) {
        self.map.insert(key, Stored { value, deadline });
    }

    fn live(&self, key: &[u8], now_ms: u64) -> Option<&Stored> {
        self.map
            .get(key)
            .filter(|s| s.deadline.is_none_or(|d| now_ms <= d))
    }

    /// The value of `key` at the clock `now_ms`, if present and not
    /// expired.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&[u8]> {
        self.live(key, now_ms).map(|s| s.value.as_slice())
    }

    /// The deadline of `key` at the clock `now_ms` as `PEXPIRETIME`
    /// answers it: milliseconds since the Unix epoch, -1 when the key does
    /// not expire, -2 when it is missing or expired.
    pub fn deadline(&self, key: &[u8], now_ms: u64) -> i64 {
        match self.live(key, now_ms) {
            None => -2,
            Some(Stored { deadline: None, .. }) => -1,
            Some(Stored {
                deadline: Some(d), ..
            }) => i64::try_from(*d).unwrap_or(i64::MAX),
        }
    }

    /// Number of keys, expired ones not yet removed included.
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
        out.extend_from_slice(&IMAGE_MARKER.to_le_bytes());
        out.push(IMAGE_VERSION);
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (k, s) in &self.map {
            put_len_prefixed(&mut out, k);
            put_len_prefixed(&mut out, &s.value);
            out.extend_from_slice(&s.deadline.unwrap_or(0).to_le_bytes());
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
        let mut count = r.u64().ok_or_else(|| field(&r, "pair count"))?;
        let versioned = count == IMAGE_MARKER;
        if versioned {
            match r.u8() {
                Some(IMAGE_VERSION) => {}
                _ => return Err(field(&r, "image version")),
            }
            count = r.u64().ok_or_else(|| field(&r, "pair count"))?;
        }
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let key_len = r.u32().ok_or_else(|| field(&r, "key length"))? as usize;
            let key = r.take(key_len).ok_or_else(|| field(&r, "key"))?.to_vec();
            let value_len = r.u32().ok_or_else(|| field(&r, "value length"))? as usize;
            let value = r
                .take(value_len)
                .ok_or_else(|| field(&r, "value"))?
                .to_vec();
            let deadline = if versioned {
                let d = r.u64().ok_or_else(|| field(&r, "deadline"))?;
                (d != 0).then_some(d)
            } else {
                None
            };
            map.insert(key, Stored { value, deadline });
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
    use crate::entry::Rmw;
    use engine::modify::{ExpireIf, Modify};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn images_round_trip(pairs: BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>) {
            let map = pairs
                .into_iter()
                .map(|(k, (value, deadline))| (k, Stored { value, deadline: deadline.filter(|&d| d != 0) }))
                .collect();
            let state = KvState { map };
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
        assert_eq!(err.what, "deadline");
        let mut long = image;
        long.push(0);
        assert!(KvState::from_image(&long).is_err());
    }

    /// An image written before deadlines (no marker, no deadline field).
    #[test]
    fn a_version_1_image_is_read() {
        let mut v1 = 1u64.to_le_bytes().to_vec();
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.push(b'k');
        v1.extend_from_slice(&2u32.to_le_bytes());
        v1.extend_from_slice(b"vv");
        let state = KvState::from_image(&v1).unwrap();
        assert_eq!(state.get(b"k", u64::MAX), Some(&b"vv"[..]));
        let mut bad = IMAGE_MARKER.to_le_bytes().to_vec();
        bad.push(3);
        assert_eq!(KvState::from_image(&bad).unwrap_err().what, "image version");
    }

    fn rmw(key: &[u8], modify: Modify, now_ms: u64) -> Write {
        Write::Modify {
            key: key.to_vec(),
            rmw: Rmw {
                modify,
                now_ms,
                value_bytes_max: 1 << 20,
            },
        }
    }

    #[test]
    fn read_modify_writes_see_what_came_before_and_the_entry_clock() {
        let mut s = KvState::default();
        let answer = |n| Applied::Answer(Answer::Integer(n));
        assert_eq!(s.apply(rmw(b"n", Modify::IncrBy(5), 10)), answer(5));
        assert_eq!(s.apply(rmw(b"n", Modify::IncrBy(-7), 10)), answer(-2));
        s.apply(Write::Put {
            key: b"t".to_vec(),
            value: b"x".to_vec(),
        });
        assert_eq!(
            s.apply(rmw(b"t", Modify::IncrBy(1), 10)),
            Applied::Refused(ModifyError::NotAnInteger)
        );
        // A deadline: live through 100, gone at 101, judged by the clock
        // each entry or read carries.
        let expire = Modify::Expire {
            at: 100,
            condition: ExpireIf::default(),
        };
        assert_eq!(s.apply(rmw(b"n", expire, 50)), answer(1));
        assert_eq!(s.deadline(b"n", 100), 100);
        assert_eq!(s.get(b"n", 100), Some(&b"-2"[..]));
        assert_eq!(s.get(b"n", 101), None);
        assert_eq!(s.deadline(b"n", 101), -2);
        // INCR keeps the deadline; once expired the key counts from 0.
        assert_eq!(s.apply(rmw(b"n", Modify::IncrBy(1), 60)), answer(-1));
        assert_eq!(s.deadline(b"n", 60), 100);
        assert_eq!(s.apply(rmw(b"n", Modify::IncrBy(1), 101)), answer(1));
        assert_eq!(s.deadline(b"n", 101), -1);
    }

    #[test]
    fn a_conditional_batch_is_all_or_nothing() {
        let mut s = KvState::default();
        let batch = |condition| Write::Batch {
            items: vec![
                BatchOp::Put(b"a".to_vec(), b"1".to_vec()),
                BatchOp::PutUntil(b"b".to_vec(), b"2".to_vec(), 20),
            ],
            condition,
            now_ms: 10,
        };
        assert_eq!(
            s.apply(batch(Some(Condition::Present))),
            Applied::NotApplied
        );
        assert_eq!(s.get(b"a", 10), None);
        assert_eq!(s.apply(batch(Some(Condition::Absent))), Applied::Written);
        assert_eq!(s.get(b"a", 10), Some(&b"1"[..]));
        assert_eq!(s.deadline(b"b", 10), 20);
        assert_eq!(s.apply(batch(Some(Condition::Absent))), Applied::NotApplied);
        assert_eq!(s.apply(batch(Some(Condition::Present))), Applied::Written);
    }
}
