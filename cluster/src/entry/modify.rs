//! The bytes of a read-modify-write ([`engine::Modify`]) inside an entry.
//!
//! A replica evaluates the modification when it applies the entry, on its
//! own copy of the key, with the clock and limit the entry carries: so every
//! replica computes the same new value and the same answer.
//!
//! Layout (little-endian), after the entry's key: the proposer's clock
//! `now_ms` (u64), `value_bytes_max` (u64), a tag (u8), then the
//! modification's fields:
//!
//! | tag | modification | fields |
//! |---:|---|---|
//! | 1 | `IncrBy` | by (i64) |
//! | 2 | `IncrByFloat` | negative (u8 0/1), finite (u8 0/1), mantissa (u64), exponent (i64) |
//! | 3 | `Append` | the bytes (the rest) |
//! | 4 | `SetRange` | offset (u64), the bytes (the rest) |
//! | 5 | `GetDel` | none |
//! | 6 | `Exchange` | condition (u8: 0 none, 1 absent, 2 present), expiry, the value (the rest) |
//! | 7 | `Expire` | at (i64), conditions (u8: 1 NX, 2 XX, 4 GT, 8 LT) |
//! | 8 | `Persist` | none |
//! | 9 | `GetEx` | expiry |
//! | 10 | `Rename` | if_absent (u8 0/1), the new name (the rest) |
//!
//! An expiry is a u8 (0 clear, 1 keep, 2 at) followed, for "at", by the
//! deadline (u64 milliseconds since the Unix epoch).

use engine::modify::{Condition, ExpireIf, Expiry, Extended, Modify};

use crate::bytes::Reader;

/// A read-modify-write as an entry carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rmw {
    pub modify: Modify,
    /// The proposer's clock: deadlines are judged against it.
    pub now_ms: u64,
    /// The longest value the modification may leave.
    pub value_bytes_max: u64,
}

pub(super) fn encode(out: &mut Vec<u8>, rmw: &Rmw) {
    out.extend_from_slice(&rmw.now_ms.to_le_bytes());
    out.extend_from_slice(&rmw.value_bytes_max.to_le_bytes());
    match &rmw.modify {
        Modify::IncrBy(by) => {
            out.push(1);
            out.extend_from_slice(&by.to_le_bytes());
        }
        Modify::IncrByFloat(by) => {
            out.push(2);
            let (negative, finite) = by.to_parts();
            out.push(u8::from(negative));
            out.push(u8::from(finite.is_some()));
            let (mantissa, exponent) = finite.unwrap_or((0, 0));
            out.extend_from_slice(&mantissa.to_le_bytes());
            out.extend_from_slice(&exponent.to_le_bytes());
        }
        Modify::Append(bytes) => {
            out.push(3);
            out.extend_from_slice(bytes);
        }
        Modify::SetRange { offset, bytes } => {
            out.push(4);
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(bytes);
        }
        Modify::GetDel => out.push(5),
        Modify::Exchange {
            value,
            condition,
            expiry,
        } => {
            out.push(6);
            out.push(match condition {
                None => 0,
                Some(Condition::Absent) => 1,
                Some(Condition::Present) => 2,
            });
            encode_expiry(out, *expiry);
            out.extend_from_slice(value);
        }
        Modify::Expire { at, condition } => {
            out.push(7);
            out.extend_from_slice(&at.to_le_bytes());
            let flags = u8::from(condition.nx)
                | u8::from(condition.xx) << 1
                | u8::from(condition.gt) << 2
                | u8::from(condition.lt) << 3;
            out.push(flags);
        }
        Modify::Persist => out.push(8),
        Modify::GetEx(expiry) => {
            out.push(9);
            encode_expiry(out, *expiry);
        }
        Modify::Rename { to, if_absent } => {
            out.push(10);
            out.push(u8::from(*if_absent));
            out.extend_from_slice(to);
        }
    }
}

fn encode_expiry(out: &mut Vec<u8>, expiry: Expiry) {
    match expiry {
        Expiry::Clear => out.push(0),
        Expiry::Keep => out.push(1),
        Expiry::At(at) => {
            out.push(2);
            out.extend_from_slice(&at.to_le_bytes());
        }
    }
}

/// Reads the modification that fills the rest of `r`; `Err` names the
/// field that does not decode.
pub(super) fn decode(r: &mut Reader<'_>) -> Result<Rmw, &'static str> {
    let now_ms = r.u64().ok_or("clock")?;
    let value_bytes_max = r.u64().ok_or("value limit")?;
    let tag = r.u8().ok_or("modification tag")?;
    let modify = match tag {
        1 => Modify::IncrBy(i64(r).ok_or("increment")?),
        2 => {
            let negative = flag(r).ok_or("sign")?;
            let finite = flag(r).ok_or("finiteness")?;
            let mantissa = r.u64().ok_or("mantissa")?;
            let exponent = i64(r).ok_or("exponent")?;
            let parts = finite.then_some((mantissa, exponent));
            let by = Extended::from_parts(negative, parts).ok_or("float value")?;
            Modify::IncrByFloat(by)
        }
        3 => Modify::Append(r.rest().to_vec()),
        4 => {
            let offset = r.u64().ok_or("offset")?;
            Modify::SetRange {
                offset,
                bytes: r.rest().to_vec(),
            }
        }
        5 => Modify::GetDel,
        6 => {
            let condition = match r.u8().ok_or("condition")? {
                0 => None,
                1 => Some(Condition::Absent),
                2 => Some(Condition::Present),
                _ => return Err("condition"),
            };
            let expiry = decode_expiry(r)?;
            Modify::Exchange {
                value: r.rest().to_vec(),
                condition,
                expiry,
            }
        }
        7 => {
            let at = i64(r).ok_or("deadline")?;
            let flags = r.u8().ok_or("expire conditions")?;
            if flags > 0b1111 {
                return Err("expire conditions");
            }
            let condition = ExpireIf {
                nx: flags & 1 != 0,
                xx: flags & 2 != 0,
                gt: flags & 4 != 0,
                lt: flags & 8 != 0,
            };
            Modify::Expire { at, condition }
        }
        8 => Modify::Persist,
        9 => Modify::GetEx(decode_expiry(r)?),
        10 => {
            let if_absent = flag(r).ok_or("if_absent")?;
            Modify::Rename {
                to: r.rest().to_vec(),
                if_absent,
            }
        }
        _ => return Err("modification tag"),
    };
    // Only the variable-length fields above take the rest; any other
    // modification must end exactly here.
    let takes_rest = matches!(tag, 3 | 4 | 6 | 10);
    if !takes_rest && !r.rest().is_empty() {
        return Err("bytes after the modification");
    }
    Ok(Rmw {
        modify,
        now_ms,
        value_bytes_max,
    })
}

fn decode_expiry(r: &mut Reader<'_>) -> Result<Expiry, &'static str> {
    match r.u8().ok_or("expiry")? {
        0 => Ok(Expiry::Clear),
        1 => Ok(Expiry::Keep),
        2 => Ok(Expiry::At(r.u64().ok_or("expiry deadline")?)),
        _ => Err("expiry"),
    }
}

fn flag(r: &mut Reader<'_>) -> Option<bool> {
    match r.u8()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn i64(r: &mut Reader<'_>) -> Option<i64> {
    let mut a = [0u8; 8];
    a.copy_from_slice(r.take(8)?);
    Some(i64::from_le_bytes(a))
}
