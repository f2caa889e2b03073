//! The one error type of the codec.

use std::fmt;

/// Why bytes from the wire are not valid RESP.
///
/// For a request this is fatal to the connection: the server replies with
/// [`encode::protocol_error`](super::encode::protocol_error)
/// (`-ERR <message>\r\n`) and closes, as Redis does, because the stream can
/// no longer be framed. `Display` gives the message: Redis's exact wording
/// where Redis has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `Protocol error: invalid multibulk length`: a `*` count that is not a
    /// canonical decimal, is negative other than `-1`, or exceeds
    /// [`Limits::array_len_max`](super::Limits::array_len_max). In a reply:
    /// a bad aggregate length.
    InvalidMultibulkLength,
    /// `Protocol error: invalid bulk length`: a `$` length that is not a
    /// canonical decimal, is negative, or exceeds
    /// [`Limits::bulk_bytes_max`](super::Limits::bulk_bytes_max). In a reply:
    /// a bad blob length.
    InvalidBulkLength,
    /// `Protocol error: expected '$', got 'x'`: a multibulk argument that
    /// does not start with `$`. Carries the byte found.
    ExpectedDollar(u8),
    /// `Protocol error: expected CRLF after bulk data`: the byte after a bulk
    /// string's declared length is not `\r\n`. (Redis skips two bytes there
    /// unchecked; we refuse, since the frame has lost sync.)
    BulkNotTerminated,
    /// `Protocol error: too big inline request`: an inline line longer than
    /// [`Limits::inline_bytes_max`](super::Limits::inline_bytes_max).
    TooBigInlineRequest,
    /// `Protocol error: unbalanced quotes in request`: an inline line with an
    /// unterminated quote, or a closing quote followed by something other
    /// than a space.
    UnbalancedQuotes,
    /// `Protocol error: too big request`: a command that would span more than
    /// [`Limits::request_bytes_max`](super::Limits::request_bytes_max) bytes.
    TooBigRequest,
    /// `Protocol error: invalid reply type byte 'x'` (replies only): a reply
    /// that starts with a byte no RESP type uses.
    InvalidReplyType(u8),
    /// `Protocol error: <what>` (replies only): a malformed reply, such as
    /// `invalid integer`.
    MalformedReply(&'static str),
}

impl ParseError {
    /// The message without a byte to show, and the byte if there is one.
    fn parts(&self) -> (&'static str, Option<(u8, &'static str)>) {
        match *self {
            ParseError::InvalidMultibulkLength => ("invalid multibulk length", None),
            ParseError::InvalidBulkLength => ("invalid bulk length", None),
            ParseError::ExpectedDollar(byte) => ("expected '$', got '", Some((byte, "'"))),
            ParseError::BulkNotTerminated => ("expected CRLF after bulk data", None),
            ParseError::TooBigInlineRequest => ("too big inline request", None),
            ParseError::UnbalancedQuotes => ("unbalanced quotes in request", None),
            ParseError::TooBigRequest => ("too big request", None),
            ParseError::InvalidReplyType(byte) => ("invalid reply type byte '", Some((byte, "'"))),
            ParseError::MalformedReply(what) => (what, None),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, byte) = self.parts();
        write!(f, "Protocol error: {text}")?;
        if let Some((byte, tail)) = byte {
            match byte {
                // As Redis does, so that the message stays on one line.
                b'\r' | b'\n' => f.write_str(" ")?,
                b' '..=b'~' => write!(f, "{}", char::from(byte))?,
                // Redis sends the raw byte; we keep the message UTF-8.
                _ => write!(f, "\\x{byte:02x}")?,
            }
            f.write_str(tail)?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::ParseError;

    #[test]
    fn messages_match_redis_wording() {
        let cases = [
            (
                ParseError::InvalidMultibulkLength,
                "Protocol error: invalid multibulk length",
            ),
            (
                ParseError::InvalidBulkLength,
                "Protocol error: invalid bulk length",
            ),
            (
                ParseError::ExpectedDollar(b'x'),
                "Protocol error: expected '$', got 'x'",
            ),
            (
                ParseError::ExpectedDollar(b'\r'),
                "Protocol error: expected '$', got ' '",
            ),
            (
                ParseError::ExpectedDollar(0xff),
                "Protocol error: expected '$', got '\\xff'",
            ),
            (
                ParseError::BulkNotTerminated,
                "Protocol error: expected CRLF after bulk data",
            ),
            (
                ParseError::TooBigInlineRequest,
                "Protocol error: too big inline request",
            ),
            (
                ParseError::UnbalancedQuotes,
                "Protocol error: unbalanced quotes in request",
            ),
            (ParseError::TooBigRequest, "Protocol error: too big request"),
            (
                ParseError::InvalidReplyType(b'?'),
                "Protocol error: invalid reply type byte '?'",
            ),
            (
                ParseError::MalformedReply("invalid integer"),
                "Protocol error: invalid integer",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
