//! The client side: parsing a server's replies.

use super::ParseError;

/// Aggregates nested deeper than this are refused, so a hostile server
/// cannot exhaust the client's stack. Redis's own replies nest a handful of
/// levels at most.
pub const REPLY_DEPTH_MAX: usize = 128;

/// One RESP2 or RESP3 reply, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`, or a RESP3 blob error (`!len`). The text starts with the
    /// error code.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$len` bulk string; `None` for RESP2's null bulk string (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*len` array; `None` for RESP2's null array (`*-1`).
    Array(Option<Vec<Reply>>),
    /// RESP3's null (`_`).
    Null,
    /// RESP3's double (`,1.5`, `,inf`, `,nan`).
    Double(f64),
    /// RESP3's boolean (`#t`, `#f`).
    Boolean(bool),
    /// RESP3's big number (`(1234...`), as its decimal text.
    BigNumber(String),
    /// RESP3's verbatim string (`=len\r\ntxt:...`): its three-byte format
    /// (`txt`, `mkd`) and its text.
    Verbatim {
        /// The format, such as `*b"txt"`.
        format: [u8; 3],
        /// The text after `fmt:`.
        text: Vec<u8>,
    },
    /// RESP3's map (`%len`), pairs in wire order.
    Map(Vec<(Reply, Reply)>),
    /// RESP3's set (`~len`), members in wire order.
    Set(Vec<Reply>),
    /// RESP3's out-of-band push (`>len`), such as a pub/sub message.
    Push(Vec<Reply>),
    /// RESP3's attribute (`|len`): metadata pairs, and the reply they
    /// annotate, which follows them on the wire.
    Attribute {
        /// The metadata pairs.
        attributes: Vec<(Reply, Reply)>,
        /// The reply that follows them.
        reply: Box<Reply>,
    },
}

/// Parses one reply from the front of `buf`.
///
/// `Ok(Some((reply, consumed)))`: a whole reply, the first `consumed` bytes.
/// `Ok(None)`: `buf` holds only part of a reply; call again with more
/// bytes. `Err(_)`: the bytes are not RESP. Nothing is allocated in
/// proportion to a declared length before the bytes it announces are in
/// `buf`.
///
/// A client reads whole replies, so this keeps no state: calling it again
/// after more bytes arrive parses the reply again from the start.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ParseError> {
    parse_at(buf, 0, 0)
}

type Parsed<T> = Result<Option<(T, usize)>, ParseError>;

/// Turns `Ok(None)` into an early `return Ok(None)`.
macro_rules! need {
    ($parsed:expr) => {
        match $parsed? {
            Some(parsed) => parsed,
            None => return Ok(None),
        }
    };
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Parsed<Reply> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let (line, next) = need!(line_at(buf, pos.saturating_add(1)));
    let reply = match kind {
        b'+' => Reply::Simple(text(line)),
        b'-' => Reply::Error(text(line)),
        b':' => Reply::Integer(parse_integer(line).ok_or(INVALID_INTEGER)?),
        b'_' if line.is_empty() => Reply::Null,
        b'_' => return Err(ParseError::MalformedReply("invalid null")),
        b',' => Reply::Double(parse_double(line)?),
        b'#' => match line {
            b"t" => Reply::Boolean(true),
            b"f" => Reply::Boolean(false),
            _ => return Err(ParseError::MalformedReply("invalid boolean")),
        },
        b'(' => Reply::BigNumber(parse_big_number(line)?),
        b'$' => match length(line, true, ParseError::InvalidBulkLength)? {
            None => Reply::Bulk(None),
            Some(len) => {
                let (bytes, next) = need!(blob_at(buf, next, len));
                return Ok(Some((Reply::Bulk(Some(bytes.to_vec())), next)));
            }
        },
        b'!' => {
            let len = length(line, false, ParseError::InvalidBulkLength)?.unwrap_or(0);
            let (bytes, next) = need!(blob_at(buf, next, len));
            return Ok(Some((Reply::Error(text(bytes)), next)));
        }
        b'=' => {
            let len = length(line, false, ParseError::InvalidBulkLength)?.unwrap_or(0);
            let (bytes, next) = need!(blob_at(buf, next, len));
            let (format, text) = match bytes {
                [a, b, c, b':', text @ ..] => ([*a, *b, *c], text.to_vec()),
                _ => return Err(ParseError::MalformedReply("invalid verbatim string")),
            };
            return Ok(Some((Reply::Verbatim { format, text }, next)));
        }
        b'*' => match length(line, true, ParseError::InvalidMultibulkLength)? {
            None => Reply::Array(None),
            Some(len) => {
                let (items, next) = need!(items_at(buf, next, len, depth));
                return Ok(Some((Reply::Array(Some(items)), next)));
            }
        },
        b'~' | b'>' => {
            let len = length(line, false, ParseError::InvalidMultibulkLength)?.unwrap_or(0);
            let (items, next) = need!(items_at(buf, next, len, depth));
            let reply = if kind == b'~' {
                Reply::Set(items)
            } else {
                Reply::Push(items)
            };
            return Ok(Some((reply, next)));
        }
        b'%' => {
            let len = length(line, false, ParseError::InvalidMultibulkLength)?.unwrap_or(0);
            let (pairs, next) = need!(pairs_at(buf, next, len, depth));
            return Ok(Some((Reply::Map(pairs), next)));
        }
        b'|' => {
            let len = length(line, false, ParseError::InvalidMultibulkLength)?.unwrap_or(0);
            let (attributes, next) = need!(pairs_at(buf, next, len, depth));
            let (reply, next) = need!(parse_at(buf, next, deeper(depth)?));
            let reply = Box::new(reply);
            return Ok(Some((Reply::Attribute { attributes, reply }, next)));
        }
        other => return Err(ParseError::InvalidReplyType(other)),
    };
    Ok(Some((reply, next)))
}

const INVALID_INTEGER: ParseError = ParseError::MalformedReply("invalid integer");

fn deeper(depth: usize) -> Result<usize, ParseError> {
    let deeper = depth.saturating_add(1);
    if deeper > REPLY_DEPTH_MAX {
        return Err(ParseError::MalformedReply("reply nested too deeply"));
    }
    Ok(deeper)
}

/// The bytes from `start` to the next `\r\n`, and the position after it.
fn line_at(buf: &[u8], start: usize) -> Parsed<&[u8]> {
    let rest = buf.get(start..).unwrap_or_default();
    let Some(end) = rest.iter().position(|&byte| byte == b'\r') else {
        return Ok(None);
    };
    let line = rest.get(..end).unwrap_or_default();
    match rest.get(end.saturating_add(1)) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((line, start.saturating_add(end).saturating_add(2)))),
        Some(_) => Err(ParseError::MalformedReply("line not terminated by CRLF")),
    }
}

/// `len` bytes at `start` followed by `\r\n`, and the position after them.
fn blob_at(buf: &[u8], start: usize, len: usize) -> Parsed<&[u8]> {
    let end = start
        .checked_add(len)
        .ok_or(ParseError::InvalidBulkLength)?;
    match (buf.get(end), buf.get(end.saturating_add(1))) {
        (Some(b'\r'), Some(b'\n')) => {
            let bytes = buf.get(start..end).unwrap_or_default();
            Ok(Some((bytes, end.saturating_add(2))))
        }
        (None, _) | (Some(b'\r'), None) => Ok(None),
        _ => Err(ParseError::BulkNotTerminated),
    }
}

/// `len` replies from `start`, one level below `depth`.
fn items_at(buf: &[u8], start: usize, len: usize, depth: usize) -> Parsed<Vec<Reply>> {
    let depth = deeper(depth)?;
    // Every reply takes at least 3 bytes (`_\r\n`): a count the buffer
    // cannot hold yet is incomplete, and allocates nothing.
    if len > buf.len().saturating_sub(start) / 3 {
        return Ok(None);
    }
    let mut items = Vec::with_capacity(len);
    let mut pos = start;
    for _ in 0..len {
        let (item, next) = need!(parse_at(buf, pos, depth));
        items.push(item);
        pos = next;
    }
    Ok(Some((items, pos)))
}

/// `len` key-value pairs from `start`, one level below `depth`.
fn pairs_at(buf: &[u8], start: usize, len: usize, depth: usize) -> Parsed<Vec<(Reply, Reply)>> {
    let depth = deeper(depth)?;
    if len > buf.len().saturating_sub(start) / 6 {
        return Ok(None);
    }
    let mut pairs = Vec::with_capacity(len);
    let mut pos = start;
    for _ in 0..len {
        let (key, next) = need!(parse_at(buf, pos, depth));
        let (value, next) = need!(parse_at(buf, next, depth));
        pairs.push((key, value));
        pos = next;
    }
    Ok(Some((pairs, pos)))
}

/// A length: decimal digits, or `-1` (null) where `null_allowed`.
fn length(line: &[u8], null_allowed: bool, error: ParseError) -> Result<Option<usize>, ParseError> {
    match line {
        b"-1" if null_allowed => Ok(None),
        [b'0'..=b'9', ..] => parse_integer(line)
            .and_then(|len| usize::try_from(len).ok())
            .map(Some)
            .ok_or(error),
        _ => Err(error),
    }
}

/// An optionally signed decimal `i64`.
fn parse_integer(line: &[u8]) -> Option<i64> {
    let (negative, digits) = match line {
        [b'-', digits @ ..] => (true, digits),
        [b'+', digits @ ..] | digits => (false, digits),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate towards the sign, so that i64::MIN parses.
    digits.iter().try_fold(0i64, |value, &byte| {
        let digit = i64::from(char::from(byte).to_digit(10)?);
        let value = value.checked_mul(10)?;
        if negative {
            value.checked_sub(digit)
        } else {
            value.checked_add(digit)
        }
    })
}

fn parse_double(line: &[u8]) -> Result<f64, ParseError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .ok_or(ParseError::MalformedReply("invalid double"))
}

fn parse_big_number(line: &[u8]) -> Result<String, ParseError> {
    let digits = match line {
        [b'-' | b'+', digits @ ..] | digits => digits,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::MalformedReply("invalid big number"));
    }
    Ok(text(line))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used
)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Reply {
        let (reply, consumed) = parse_reply(input).unwrap().unwrap();
        assert_eq!(consumed, input.len(), "{}", input.escape_ascii());
        for end in 0..input.len() {
            assert_eq!(
                parse_reply(&input[..end]),
                Ok(None),
                "prefix of {end} bytes"
            );
        }
        reply
    }

    fn bulk(bytes: &[u8]) -> Reply {
        Reply::Bulk(Some(bytes.to_vec()))
    }

    #[test]
    fn resp2_types() {
        assert_eq!(whole(b"+OK\r\n"), Reply::Simple("OK".into()));
        assert_eq!(whole(b"+\r\n"), Reply::Simple(String::new()));
        assert_eq!(whole(b"-ERR no\r\n"), Reply::Error("ERR no".into()));
        assert_eq!(whole(b":0\r\n"), Reply::Integer(0));
        assert_eq!(whole(b":-42\r\n"), Reply::Integer(-42));
        assert_eq!(whole(b":+7\r\n"), Reply::Integer(7));
        assert_eq!(
            whole(b":-9223372036854775808\r\n"),
            Reply::Integer(i64::MIN)
        );
        assert_eq!(whole(b"$5\r\nhe\r\no\r\n"), bulk(b"he\r\no"));
        assert_eq!(whole(b"$0\r\n\r\n"), bulk(b""));
        assert_eq!(whole(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(whole(b"*-1\r\n"), Reply::Array(None));
        assert_eq!(whole(b"*0\r\n"), Reply::Array(Some(vec![])));
        assert_eq!(
            whole(b"*3\r\n:1\r\n$1\r\na\r\n*1\r\n+x\r\n"),
            Reply::Array(Some(vec![
                Reply::Integer(1),
                bulk(b"a"),
                Reply::Array(Some(vec![Reply::Simple("x".into())])),
            ]))
        );
    }

    #[test]
    fn resp3_types() {
        assert_eq!(whole(b"_\r\n"), Reply::Null);
        assert_eq!(whole(b",1.5\r\n"), Reply::Double(1.5));
        assert_eq!(whole(b",-1e300\r\n"), Reply::Double(-1e300));
        assert_eq!(whole(b",inf\r\n"), Reply::Double(f64::INFINITY));
        assert_eq!(whole(b",-inf\r\n"), Reply::Double(f64::NEG_INFINITY));
        assert!(matches!(whole(b",nan\r\n"), Reply::Double(value) if value.is_nan()));
        assert_eq!(whole(b"#t\r\n"), Reply::Boolean(true));
        assert_eq!(whole(b"#f\r\n"), Reply::Boolean(false));
        assert_eq!(
            whole(b"(-3492890328409238509324850943850943825024385\r\n"),
            Reply::BigNumber("-3492890328409238509324850943850943825024385".into())
        );
        assert_eq!(
            whole(b"!9\r\nSYNTAX no\r\n"),
            Reply::Error("SYNTAX no".into())
        );
        assert_eq!(
            whole(b"=15\r\ntxt:Some string\r\n"),
            Reply::Verbatim {
                format: *b"txt",
                text: b"Some string".to_vec()
            }
        );
        assert_eq!(
            whole(b"%2\r\n+a\r\n:1\r\n+b\r\n_\r\n"),
            Reply::Map(vec![
                (Reply::Simple("a".into()), Reply::Integer(1)),
                (Reply::Simple("b".into()), Reply::Null),
            ])
        );
        assert_eq!(
            whole(b"~2\r\n#t\r\n,2\r\n"),
            Reply::Set(vec![Reply::Boolean(true), Reply::Double(2.0)])
        );
        assert_eq!(
            whole(b">2\r\n+message\r\n$2\r\nhi\r\n"),
            Reply::Push(vec![Reply::Simple("message".into()), bulk(b"hi")])
        );
        assert_eq!(
            whole(b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n"),
            Reply::Attribute {
                attributes: vec![(Reply::Simple("ttl".into()), Reply::Integer(3))],
                reply: Box::new(bulk(b"v")),
            }
        );
    }

    #[test]
    fn pipelined_replies_are_read_one_at_a_time() {
        let input = b"+OK\r\n:1\r\n";
        assert_eq!(
            parse_reply(input),
            Ok(Some((Reply::Simple("OK".into()), 5)))
        );
        assert_eq!(parse_reply(&input[5..]), Ok(Some((Reply::Integer(1), 4))));
    }

    #[test]
    fn malformed_replies() {
        let cases: [(&[u8], ParseError); 20] = [
            (b"?x\r\n", ParseError::InvalidReplyType(b'?')),
            (b":\r\n", INVALID_INTEGER),
            (b":12a\r\n", INVALID_INTEGER),
            (b":9223372036854775808\r\n", INVALID_INTEGER),
            (
                b"+a\rb\r\n",
                ParseError::MalformedReply("line not terminated by CRLF"),
            ),
            (b"_x\r\n", ParseError::MalformedReply("invalid null")),
            (b",x\r\n", ParseError::MalformedReply("invalid double")),
            (b",\r\n", ParseError::MalformedReply("invalid double")),
            (b"#x\r\n", ParseError::MalformedReply("invalid boolean")),
            (
                b"(12a\r\n",
                ParseError::MalformedReply("invalid big number"),
            ),
            (b"$-2\r\n", ParseError::InvalidBulkLength),
            (b"$x\r\n", ParseError::InvalidBulkLength),
            (b"!-1\r\n", ParseError::InvalidBulkLength),
            (b"$1\r\nab\r\n", ParseError::BulkNotTerminated),
            (
                b"=3\r\ntxt\r\n",
                ParseError::MalformedReply("invalid verbatim string"),
            ),
            (
                b"=4\r\ntxt-\r\n",
                ParseError::MalformedReply("invalid verbatim string"),
            ),
            (b"*-2\r\n", ParseError::InvalidMultibulkLength),
            (b"%-1\r\n", ParseError::InvalidMultibulkLength),
            (b"~\r\n", ParseError::InvalidMultibulkLength),
            (b"*1\r\n?\r\n", ParseError::InvalidReplyType(b'?')),
        ];
        for (input, error) in cases {
            assert_eq!(parse_reply(input), Err(error), "{}", input.escape_ascii());
        }
    }

    #[test]
    fn huge_declared_lengths_wait_without_allocating() {
        assert_eq!(parse_reply(b"*4611686018427387903\r\n"), Ok(None));
        assert_eq!(parse_reply(b"%4611686018427387903\r\n"), Ok(None));
        assert_eq!(parse_reply(b"$4611686018427387903\r\n"), Ok(None));
        assert_eq!(
            parse_reply(b"$99999999999999999999\r\n"),
            Err(ParseError::InvalidBulkLength)
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |levels: usize| {
            let mut input = b"*1\r\n".repeat(levels);
            input.extend_from_slice(b":1\r\n");
            input
        };
        assert!(matches!(parse_reply(&deep(REPLY_DEPTH_MAX)), Ok(Some(_))));
        assert_eq!(
            parse_reply(&deep(REPLY_DEPTH_MAX + 1)),
            Err(ParseError::MalformedReply("reply nested too deeply"))
        );
        assert_eq!(
            parse_reply(&deep(100_000)),
            Err(ParseError::MalformedReply("reply nested too deeply"))
        );
    }
}
