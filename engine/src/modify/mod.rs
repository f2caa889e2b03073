//! Read-modify-write: the pure functions a worker applies to a key's
//! current value and deadline (`INCRBY`, `INCRBYFLOAT`, `APPEND`,
//! `SETRANGE`, `GETDEL`, `SET ... GET`, `SET ... KEEPTTL`, `RENAME`,
//! `EXPIRE` and its kin, `PERSIST`, `GETEX`).
//!
//! The worker that owns the key evaluates one between batches, on the
//! value the index holds once every earlier write of the key is durable;
//! requests of the key wait meanwhile (ARCHITECTURE.md, "Ordering per
//! key"). So two increments of one key never read the same value, and the
//! answer decided here goes out only once the write it implies is durable.
//! Everything here is a function of its arguments alone: no clock (the
//! worker passes the time it was given in [`Context::now_ms`]), no
//! randomness, no floating-point hardware.

pub mod extended;

pub use extended::Extended;

/// The condition of a conditional write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Only if the key does not exist (every key, for a batch).
    Absent,
    /// Only if the key exists (every key, for a batch).
    Present,
}

/// What a write does to the key's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The key no longer expires (a plain `SET`).
    Clear,
    /// The key keeps the deadline it had (`KEEPTTL`).
    Keep,
    /// The key expires once the clock passes this time, in milliseconds
    /// since the Unix epoch.
    At(u64),
}

/// `EXPIRE`'s conditions (Redis 7); several may hold at once (`XX GT`),
/// the appliance refuses the combinations Redis refuses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireIf {
    /// Only if the key has no deadline.
    pub nx: bool,
    /// Only if it has one.
    pub xx: bool,
    /// Only if the new deadline is later (no deadline is infinitely late).
    pub gt: bool,
    /// Only if the new deadline is earlier.
    pub lt: bool,
}

/// A read-modify-write of one key's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Modify {
    /// Adds to a decimal 64-bit integer (a missing key is 0); answers the
    /// sum (`INCR`, `DECR`, `INCRBY`, `DECRBY`).
    IncrBy(i64),
    /// Adds to a number in Redis's `long double` ([`Extended`]; a missing
    /// key is 0); answers the sum as Redis prints it (`INCRBYFLOAT`).
    IncrByFloat(Extended),
    /// Appends bytes (a missing key is empty); answers the new length.
    Append(Vec<u8>),
    /// Overwrites from `offset`, padding with zero bytes; answers the new
    /// length. Writing nothing changes nothing, not even a missing key.
    SetRange {
        /// Where the bytes go.
        offset: u64,
        /// What goes there.
        bytes: Vec<u8>,
    },
    /// Deletes the key; answers the value it held (`GETDEL`).
    GetDel,
    /// Sets the key when `condition` holds (always, when `None`); answers
    /// the value it held either way (`SET ... [NX|XX] GET`).
    Exchange {
        /// The new value.
        value: Vec<u8>,
        /// When to write it.
        condition: Option<Condition>,
        /// The deadline the key gets.
        expiry: Expiry,
    },
    /// Sets the key's deadline to `at` (milliseconds since the Unix epoch;
    /// at or before now, the key is deleted, as Redis does) when the key
    /// exists and `condition` holds; answers 1 when it did, else 0
    /// (`EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`).
    Expire {
        /// The new deadline; negative is long past.
        at: i64,
        /// `NX`, `XX`, `GT`, `LT`.
        condition: ExpireIf,
    },
    /// Removes the key's deadline; answers 1 when it had one (`PERSIST`).
    Persist,
    /// Answers the value and then changes the deadline (`GETEX`): a
    /// deadline at or before now deletes the key; `Clear` is `PERSIST`;
    /// `Keep` changes nothing.
    GetEx(Expiry),
    /// Moves the value to `to`, a key of the same shard, in one atomic
    /// write that deletes the key and sets `to` (`RENAME`, `RENAMENX` with
    /// `if_absent`). Answers 1 when moved, 0 when `if_absent` and `to`
    /// exists; a missing key is refused. Requests of `to` wait for it as
    /// for the key.
    Rename {
        /// The new name.
        to: Vec<u8>,
        /// Only if `to` does not exist.
        if_absent: bool,
    },
}

/// What a modification sees besides the key's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The longest value the engine stores.
    pub value_bytes_max: usize,
    /// Whether the other key a modification names (`Rename`'s `to`)
    /// exists; writes of it waited too.
    pub target_exists: bool,
    /// The current value's deadline (`None` for a missing key, or one
    /// that does not expire). An expired key is passed as missing.
    pub deadline: Option<u64>,
    /// The engine's clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// What a modification writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// The key's new value; it keeps its deadline (`APPEND`, `INCR`,
    /// `SETRANGE` keep the TTL in Redis).
    Put(Vec<u8>),
    /// The key's new value with this deadline (`None`: none).
    PutUntil(Vec<u8>, Option<u64>),
    /// The key is deleted.
    Delete,
    /// The key is deleted and `to` set to `value`, atomically; `to`
    /// takes the key's deadline.
    Move {
        /// The key set.
        to: Vec<u8>,
        /// Its value.
        value: Vec<u8>,
    },
}

/// What a modification answers, once its write (if any) is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A number: a sum, or a length.
    Integer(i64),
    /// A value, or `None` for a missing key.
    Value(Option<Vec<u8>>),
}

/// A modification's effect on the key's current value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What to write; `None` when the value stays as it is.
    pub write: Option<Write>,
    /// The answer.
    pub answer: Answer,
}

/// Why a modification was refused. Nothing is written. The texts are
/// Redis's own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModifyError {
    /// The value (or argument) is not a decimal 64-bit integer.
    #[error("value is not an integer or out of range")]
    NotAnInteger,
    /// The sum is outside the 64-bit range.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// The value (or argument) is not a number `INCRBYFLOAT` reads.
    #[error("value is not a valid float")]
    NotAFloat,
    /// The sum is infinite or NaN.
    #[error("increment would produce NaN or Infinity")]
    NotFinite,
    /// A rename to a key of another shard (RESP refuses it first, as
    /// Redis Cluster does across slots).
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossShard,
    /// The key to rename does not exist.
    #[error("no such key")]
    NoSuchKey,
    /// The new value would be longer than `value_bytes_max`.
    #[error("value length {len} exceeds {max}")]
    TooLong {
        /// The length it would have.
        len: u64,
        /// The limit.
        max: usize,
    },
}

impl Modify {
    /// Applies the modification to `current` (`None`: the key is
    /// missing).
    pub fn apply(
        self,
        key: &[u8],
        current: Option<Vec<u8>>,
        context: Context,
    ) -> Result<Outcome, ModifyError> {
        let value_bytes_max = context.value_bytes_max;
        match self {
            Modify::IncrBy(by) => incr_by(current.as_deref(), by),
            Modify::IncrByFloat(by) => incr_by_float(current.as_deref(), by),
            Modify::Append(bytes) => append(current, &bytes, value_bytes_max),
            Modify::SetRange { offset, bytes } => {
                set_range(current, offset, &bytes, value_bytes_max)
            }
            Modify::GetDel => Ok(Outcome {
                write: current.is_some().then_some(Write::Delete),
                answer: Answer::Value(current),
            }),
            Modify::Exchange {
                value,
                condition,
                expiry,
            } => Ok(exchange(current, value, condition, expiry, context)),
            Modify::Rename { to, if_absent } => {
                rename(key, current, to, if_absent, context.target_exists)
            }
            Modify::Expire { at, condition } => Ok(expire(current, at, condition, context)),
            Modify::Persist => {
                let had = current.is_some() && context.deadline.is_some();
                Ok(Outcome {
                    write: current
                        .filter(|_| had)
                        .map(|value| Write::PutUntil(value, None)),
                    answer: Answer::Integer(i64::from(had)),
                })
            }
            Modify::GetEx(expiry) => Ok(get_ex(current, expiry, context)),
        }
    }

    /// The other key the modification writes (`Rename`'s `to`), if any.
    pub fn other_key(&self) -> Option<&[u8]> {
        match self {
            Modify::Rename { to, .. } => Some(to),
            _ => None,
        }
    }

    /// The bytes the request carries, which count against
    /// `value_bytes_max` before anything is read.
    pub fn argument_bytes(&self) -> usize {
        match self {
            Modify::Append(bytes) | Modify::SetRange { bytes, .. } => bytes.len(),
            Modify::Exchange { value, .. } => value.len(),
            Modify::IncrBy(_)
            | Modify::IncrByFloat(_)
            | Modify::GetDel
            | Modify::Rename { .. }
            | Modify::Expire { .. }
            | Modify::Persist
            | Modify::GetEx(_) => 0,
        }
    }
}

/// A signed decimal integer as Redis's `string2ll` reads one: no sign-only,
/// no leading `+`, zero or a digit 1-9 first, no spaces, within 64 bits.
pub fn parse_integer(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = match digits {
        [b'0'] => text.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// The deadline `expiry` gives a key whose deadline is `deadline`.
fn deadline_after(expiry: Expiry, deadline: Option<u64>) -> Option<u64> {
    match expiry {
        Expiry::Clear => None,
        Expiry::Keep => deadline,
        Expiry::At(at) => Some(at),
    }
}

/// `SET ... [NX|XX] [GET] [EX ...|KEEPTTL]`: answers the old value; the
/// caller tells from it and the condition whether it wrote.
fn exchange(
    current: Option<Vec<u8>>,
    value: Vec<u8>,
    condition: Option<Condition>,
    expiry: Expiry,
    context: Context,
) -> Outcome {
    let holds = match condition {
        None => true,
        Some(Condition::Absent) => current.is_none(),
        Some(Condition::Present) => current.is_some(),
    };
    let deadline = deadline_after(expiry, context.deadline);
    Outcome {
        write: holds.then_some(Write::PutUntil(value, deadline)),
        answer: Answer::Value(current),
    }
}

/// Redis 7's `expireGenericCommand` after its argument checks: a missing
/// key answers 0, then the conditions, then a deadline at or before now
/// deletes the key (`checkAlreadyExpired`).
fn expire(current: Option<Vec<u8>>, at: i64, when: ExpireIf, context: Context) -> Outcome {
    let nothing = Outcome {
        write: None,
        answer: Answer::Integer(0),
    };
    let Some(value) = current else {
        return nothing;
    };
    let old = context
        .deadline
        .map(|d| i64::try_from(d).unwrap_or(i64::MAX));
    let refused = (when.nx && old.is_some())
        || (when.xx && old.is_none())
        || (when.gt && old.is_none_or(|old| at <= old))
        || (when.lt && old.is_some_and(|old| at >= old));
    if refused {
        return nothing;
    }
    let write = match u64::try_from(at) {
        Ok(at) if at > context.now_ms => Write::PutUntil(value, Some(at)),
        _ => Write::Delete,
    };
    Outcome {
        write: Some(write),
        answer: Answer::Integer(1),
    }
}

/// `GETEX`: the value, then the deadline changed (a past one deletes).
fn get_ex(current: Option<Vec<u8>>, expiry: Expiry, context: Context) -> Outcome {
    let write = match (&current, expiry) {
        (None, _) | (_, Expiry::Keep) => None,
        (Some(_), Expiry::At(at)) if at <= context.now_ms => Some(Write::Delete),
        (Some(value), Expiry::At(at)) => Some(Write::PutUntil(value.clone(), Some(at))),
        (Some(value), Expiry::Clear) => context
            .deadline
            .map(|_| Write::PutUntil(value.clone(), None)),
    };
    Outcome {
        write,
        answer: Answer::Value(current),
    }
}

fn incr_by(current: Option<&[u8]>, by: i64) -> Result<Outcome, ModifyError> {
    let value = match current {
        None => 0,
        Some(text) => parse_integer(text).ok_or(ModifyError::NotAnInteger)?,
    };
    let sum = value.checked_add(by).ok_or(ModifyError::Overflow)?;
    Ok(Outcome {
        write: Some(Write::Put(sum.to_string().into_bytes())),
        answer: Answer::Integer(sum),
    })
}

fn incr_by_float(current: Option<&[u8]>, by: Extended) -> Result<Outcome, ModifyError> {
    let value = match current {
        None => Extended::ZERO,
        Some(text) => Extended::parse(text).ok_or(ModifyError::NotAFloat)?,
    };
    let sum = value.checked_add(by).ok_or(ModifyError::NotFinite)?;
    let text = sum.to_redis_string().ok_or(ModifyError::NotFinite)?;
    let text = text.into_bytes();
    Ok(Outcome {
        write: Some(Write::Put(text.clone())),
        answer: Answer::Value(Some(text)),
    })
}

/// RENAME and RENAMENX, as Redis 7 orders its checks: a missing key first,
/// then a rename to itself (nothing to do), then `RENAMENX`'s target.
fn rename(
    key: &[u8],
    current: Option<Vec<u8>>,
    to: Vec<u8>,
    if_absent: bool,
    target_exists: bool,
) -> Result<Outcome, ModifyError> {
    let value = current.ok_or(ModifyError::NoSuchKey)?;
    let refused = if to == key {
        if_absent
    } else {
        if_absent && target_exists
    };
    let write = (to != key && !refused).then_some(Write::Move { to, value });
    Ok(Outcome {
        write,
        answer: Answer::Integer(i64::from(!refused)),
    })
}

fn append(current: Option<Vec<u8>>, bytes: &[u8], max: usize) -> Result<Outcome, ModifyError> {
    let existed = current.is_some();
    let mut value = current.unwrap_or_default();
    let len = value.len() as u64 + bytes.len() as u64;
    if len > max as u64 {
        return Err(ModifyError::TooLong { len, max });
    }
    // Appending nothing to an existing value changes nothing; to a missing
    // key it creates an empty value, as in Redis.
    let write = (!bytes.is_empty() || !existed).then(|| {
        value.extend_from_slice(bytes);
        Write::Put(value)
    });
    Ok(Outcome {
        write,
        answer: Answer::Integer(len as i64),
    })
}

fn set_range(
    current: Option<Vec<u8>>,
    offset: u64,
    bytes: &[u8],
    max: usize,
) -> Result<Outcome, ModifyError> {
    let current_len = current.as_ref().map_or(0, Vec::len);
    if bytes.is_empty() {
        // Redis answers the length and writes nothing, whatever the offset.
        return Ok(Outcome {
            write: None,
            answer: Answer::Integer(current_len as i64),
        });
    }
    let end = offset.saturating_add(bytes.len() as u64);
    if end > max as u64 {
        return Err(ModifyError::TooLong { len: end, max });
    }
    let end = end as usize;
    let mut value = current.unwrap_or_default();
    if value.len() < end {
        value.resize(end, 0);
    }
    value[offset as usize..end].copy_from_slice(bytes);
    Ok(Outcome {
        answer: Answer::Integer(value.len() as i64),
        write: Some(Write::Put(value)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;
    const NOW: u64 = 1_700_000_000_000;

    fn with_deadline(modify: Modify, current: Option<&[u8]>, deadline: Option<u64>) -> Outcome {
        let context = Context {
            value_bytes_max: MAX,
            target_exists: false,
            deadline,
            now_ms: NOW,
        };
        modify
            .apply(b"key", current.map(<[u8]>::to_vec), context)
            .unwrap()
    }

    #[test]
    fn expire_checks_its_conditions_as_redis_does() {
        let expire = |at: i64, condition| Modify::Expire { at, condition };
        let later = NOW as i64 + 10_000;
        let none = ExpireIf::default();
        let gt = ExpireIf { gt: true, ..none };
        let lt = ExpireIf { lt: true, ..none };
        let nx = ExpireIf { nx: true, ..none };
        let xx = ExpireIf { xx: true, ..none };
        // A missing key: 0, nothing written.
        let missing = with_deadline(expire(later, none), None, None);
        assert_eq!((missing.write, missing.answer), (None, Answer::Integer(0)));
        let set = with_deadline(expire(later, none), Some(b"v"), None);
        assert_eq!(
            set.write,
            Some(Write::PutUntil(b"v".to_vec(), Some(later as u64)))
        );
        assert_eq!(set.answer, Answer::Integer(1));
        // No deadline is an infinite one: GT fails, LT holds.
        assert_eq!(
            with_deadline(expire(later, gt), Some(b"v"), None).answer,
            Answer::Integer(0)
        );
        assert_eq!(
            with_deadline(expire(later, lt), Some(b"v"), None).answer,
            Answer::Integer(1)
        );
        let old = Some(NOW + 5_000);
        assert_eq!(
            with_deadline(expire(later, gt), Some(b"v"), old).answer,
            Answer::Integer(1)
        );
        assert_eq!(
            with_deadline(expire(later, lt), Some(b"v"), old).answer,
            Answer::Integer(0)
        );
        assert_eq!(
            with_deadline(expire(later, nx), Some(b"v"), old).answer,
            Answer::Integer(0)
        );
        assert_eq!(
            with_deadline(expire(later, xx), Some(b"v"), None).answer,
            Answer::Integer(0)
        );
        // At or before now (or negative): the key is deleted, answer 1.
        for at in [NOW as i64, -5, i64::MIN] {
            let past = with_deadline(expire(at, none), Some(b"v"), None);
            assert_eq!(
                (past.write, past.answer),
                (Some(Write::Delete), Answer::Integer(1))
            );
        }
    }

    #[test]
    fn persist_getex_and_keepttl_change_only_the_deadline() {
        let old = Some(NOW + 5_000);
        let persisted = with_deadline(Modify::Persist, Some(b"v"), old);
        assert_eq!(persisted.write, Some(Write::PutUntil(b"v".to_vec(), None)));
        assert_eq!(persisted.answer, Answer::Integer(1));
        let nothing = with_deadline(Modify::Persist, Some(b"v"), None);
        assert_eq!((nothing.write, nothing.answer), (None, Answer::Integer(0)));
        let past = with_deadline(Modify::GetEx(Expiry::At(NOW)), Some(b"v"), old);
        assert_eq!(past.write, Some(Write::Delete));
        assert_eq!(past.answer, Answer::Value(Some(b"v".to_vec())));
        let kept = with_deadline(Modify::GetEx(Expiry::Keep), Some(b"v"), old);
        assert_eq!(kept.write, None);
        let keep = Modify::Exchange {
            value: b"w".to_vec(),
            condition: None,
            expiry: Expiry::Keep,
        };
        let exchanged = with_deadline(keep, Some(b"v"), old);
        assert_eq!(exchanged.write, Some(Write::PutUntil(b"w".to_vec(), old)));
        // INCR and APPEND keep the deadline: their write is a plain Put.
        let incremented = with_deadline(Modify::IncrBy(1), Some(b"1"), old);
        assert_eq!(incremented.write, Some(Write::Put(b"2".to_vec())));
    }

    fn apply(modify: Modify, current: Option<&[u8]>) -> Result<Outcome, ModifyError> {
        let context = Context {
            value_bytes_max: MAX,
            target_exists: false,
            deadline: None,
            now_ms: NOW,
        };
        modify.apply(b"key", current.map(<[u8]>::to_vec), context)
    }

    #[test]
    fn renames_check_as_redis_does() {
        let rename = |to: &[u8], if_absent| Modify::Rename {
            to: to.to_vec(),
            if_absent,
        };
        assert_eq!(
            apply(rename(b"b", false), None),
            Err(ModifyError::NoSuchKey)
        );
        let moved = apply(rename(b"b", true), Some(b"v")).unwrap();
        let to = b"b".to_vec();
        let value = b"v".to_vec();
        assert_eq!(moved.write, Some(Write::Move { to, value }));
        assert_eq!(moved.answer, Answer::Integer(1));
        let itself = apply(rename(b"key", false), Some(b"v")).unwrap();
        assert_eq!((itself.write, itself.answer), (None, Answer::Integer(1)));
        let itself_nx = apply(rename(b"key", true), Some(b"v")).unwrap();
        assert_eq!(itself_nx.answer, Answer::Integer(0));
        let context = Context {
            value_bytes_max: MAX,
            target_exists: true,
            deadline: None,
            now_ms: NOW,
        };
        let taken = rename(b"b", true).apply(b"key", Some(b"v".to_vec()), context);
        assert_eq!(taken.unwrap().answer, Answer::Integer(0));
        let overwrite = rename(b"b", false).apply(b"key", Some(b"v".to_vec()), context);
        assert_eq!(overwrite.unwrap().answer, Answer::Integer(1));
    }

    fn put(value: &[u8], answer: Answer) -> Result<Outcome, ModifyError> {
        Ok(Outcome {
            write: Some(Write::Put(value.to_vec())),
            answer,
        })
    }

    #[test]
    fn increments_read_and_overflow_as_in_redis() {
        assert_eq!(
            apply(Modify::IncrBy(1), None),
            put(b"1", Answer::Integer(1))
        );
        assert_eq!(
            apply(Modify::IncrBy(-5), Some(b"3")),
            put(b"-2", Answer::Integer(-2))
        );
        for bad in [
            &b" 5"[..],
            b"5.0",
            b"",
            b"01",
            b"abc",
            b"9223372036854775808",
        ] {
            assert_eq!(
                apply(Modify::IncrBy(1), Some(bad)),
                Err(ModifyError::NotAnInteger)
            );
        }
        let max = i64::MAX.to_string();
        assert_eq!(
            apply(Modify::IncrBy(1), Some(max.as_bytes())),
            Err(ModifyError::Overflow)
        );
        let min = i64::MIN.to_string();
        assert_eq!(
            apply(Modify::IncrBy(-1), Some(min.as_bytes())),
            Err(ModifyError::Overflow)
        );
    }

    #[test]
    fn float_increments_refuse_what_redis_refuses() {
        let by = |s: &str| Modify::IncrByFloat(Extended::parse(s.as_bytes()).unwrap());
        assert_eq!(
            apply(by("0.2"), Some(b"0.1")),
            put(b"0.3", Answer::Value(Some(b"0.3".to_vec())))
        );
        assert_eq!(apply(by("1"), Some(b"x")), Err(ModifyError::NotAFloat));
        assert_eq!(apply(by("inf"), None), Err(ModifyError::NotFinite));
        assert_eq!(apply(by("1"), Some(b"-inf")), Err(ModifyError::NotFinite));
    }

    #[test]
    fn append_and_set_range_keep_redis_lengths_and_limits() {
        assert_eq!(
            apply(Modify::Append(b"bc".to_vec()), Some(b"a")),
            put(b"abc", Answer::Integer(3))
        );
        assert_eq!(
            apply(Modify::Append(Vec::new()), None),
            put(b"", Answer::Integer(0))
        );
        let unchanged = apply(Modify::Append(Vec::new()), Some(b"a")).unwrap();
        assert_eq!(unchanged.write, None);
        let range = |offset, bytes: &[u8]| Modify::SetRange {
            offset,
            bytes: bytes.to_vec(),
        };
        assert_eq!(
            apply(range(2, b"xy"), Some(b"a")),
            put(b"a\0xy", Answer::Integer(4))
        );
        assert_eq!(
            apply(range(1, b"x"), Some(b"abc")),
            put(b"axc", Answer::Integer(3))
        );
        let nothing = apply(range(u64::MAX, b""), Some(b"abc")).unwrap();
        assert_eq!((nothing.write, nothing.answer), (None, Answer::Integer(3)));
        assert_eq!(
            apply(range(MAX as u64, b"x"), None),
            Err(ModifyError::TooLong {
                len: MAX as u64 + 1,
                max: MAX
            })
        );
        assert!(matches!(
            apply(range(u64::MAX, b"x"), None),
            Err(ModifyError::TooLong { .. })
        ));
    }

    #[test]
    fn exchanges_and_getdel_answer_the_old_value() {
        let nx = Modify::Exchange {
            value: b"new".to_vec(),
            condition: Some(Condition::Absent),
            expiry: Expiry::Clear,
        };
        assert_eq!(
            apply(nx.clone(), Some(b"old")).unwrap(),
            Outcome {
                write: None,
                answer: Answer::Value(Some(b"old".to_vec()))
            }
        );
        assert_eq!(
            apply(nx, None).unwrap().write,
            Some(Write::PutUntil(b"new".to_vec(), None))
        );
        assert_eq!(
            apply(Modify::GetDel, Some(b"v")).unwrap().write,
            Some(Write::Delete)
        );
        assert_eq!(apply(Modify::GetDel, None).unwrap().write, None);
    }
}
