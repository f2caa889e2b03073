//! Client requests: the resumable command parser.

use std::ops::Range;

use super::inline::split_inline;
use super::{Limits, ParseError};

/// A resumable parser of client commands, one per connection.
///
/// The connection keeps its unconsumed bytes at the front of a read buffer
/// and calls [`parse`](Parser::parse) after every read. The parser remembers
/// how far it got into an incomplete command, so that a command arriving in
/// many small reads is still parsed in time linear in its size. Between calls
/// the caller may append bytes and may move the buffer (only offsets from its
/// front are kept), but must not change the bytes already passed in.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// The arguments of the command in progress, swapped out to the caller
    /// when it completes, so neither side allocates in the steady state.
    pending: Vec<Range<usize>>,
}

/// Argument slots the parser keeps allocated between commands (16 KiB).
/// The caller's own vector is the caller's to shrink.
const PENDING_CAPACITY_KEPT: usize = 1024;

/// How far into the command at the front of the buffer the parser is.
/// Every offset is from the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing of the command is known yet. A partial `*N` line is parsed
    /// again from the front on the next call: it is at most ~23 bytes.
    Start,
    /// An inline command whose first `scanned` bytes hold no `\n`.
    Inline { scanned: usize },
    /// A multibulk command with `remaining` arguments still to parse. If
    /// `bulk_len` is `None`, the next argument's `$len\r\n` header starts at
    /// `pos`; otherwise it has been read and its data starts at `pos`.
    Multibulk {
        remaining: usize,
        pos: usize,
        bulk_len: Option<usize>,
    },
}

impl Parser {
    /// A parser that enforces `limits`.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            state: State::Start,
            pending: Vec::new(),
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets any partial command, as if the next buffer were new.
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.pending.clear();
    }

    /// Parses one command from the front of `buf`.
    ///
    /// - `Ok(Some(consumed))`: the first `consumed` bytes of `buf` are one
    ///   command, and `args` holds its arguments as ranges into `buf`. The
    ///   caller drops those bytes before the next call. If `args` is empty
    ///   the bytes were an empty line or an empty array (`*0`, `*-1`): Redis
    ///   skips those without a reply, and so should the caller.
    /// - `Ok(None)`: `buf` holds only part of a command (or nothing); call
    ///   again with more bytes appended. Incomplete input is never an error,
    ///   however long it stays incomplete; the connection's idle timeout
    ///   deals with a peer that stops half way.
    /// - `Err(_)`: the bytes are not RESP, or break a [`Limits`] bound. The
    ///   caller replies with the error and closes the connection. The parser
    ///   is reset.
    ///
    /// `args` is cleared first; it holds ranges only after `Ok(Some)`.
    ///
    /// `buf` is mutable for inline commands only: their quoted arguments
    /// are unescaped in place, inside the consumed line, so that they too
    /// are ranges of `buf`. Multibulk commands are never written to. On an
    /// error, the bytes of an inline line may have been rewritten.
    pub fn parse(
        &mut self,
        buf: &mut [u8],
        args: &mut Vec<Range<usize>>,
    ) -> Result<Option<usize>, ParseError> {
        args.clear();
        let result = self.step(buf);
        match result {
            Ok(Some(_)) => {
                // `args` is empty, so the parser keeps an empty buffer. It
                // does not keep a huge one a rare huge command left behind.
                std::mem::swap(args, &mut self.pending);
                self.pending.shrink_to(PENDING_CAPACITY_KEPT);
                self.state = State::Start;
            }
            Ok(None) => {}
            Err(_) => self.reset(),
        }
        result
    }

    fn step(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ParseError> {
        if self.state_outruns(buf.len()) {
            // The caller broke the contract and gave fewer bytes than last
            // time. Start over rather than look past the end.
            self.reset();
        }
        match self.state {
            State::Start => match buf.first() {
                None => Ok(None),
                Some(b'*') => self.start_multibulk(buf),
                Some(_) => self.continue_inline(buf, 0),
            },
            State::Inline { scanned } => self.continue_inline(buf, scanned),
            State::Multibulk {
                remaining,
                pos,
                bulk_len,
            } => self.continue_multibulk(buf, remaining, pos, bulk_len),
        }
    }

    fn state_outruns(&self, len: usize) -> bool {
        match self.state {
            State::Start => false,
            State::Inline { scanned } => scanned > len,
            State::Multibulk { pos, .. } => pos > len,
        }
    }

    fn start_multibulk(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let header = parse_length(
            buf,
            0,
            self.limits.array_len_max,
            true,
            ParseError::InvalidMultibulkLength,
        )?;
        match header {
            None => Ok(None),
            Some((Length::Null | Length::Bytes(0), next)) => Ok(Some(next)),
            Some((Length::Bytes(count), next)) => {
                // Every argument takes at least 6 bytes (`$0\r\n\r\n`), so a
                // count can show a request too big before any argument comes.
                let smallest = count
                    .checked_mul(6)
                    .and_then(|bytes| bytes.checked_add(next));
                if smallest.is_none_or(|bytes| bytes > self.limits.request_bytes_max) {
                    return Err(ParseError::TooBigRequest);
                }
                self.continue_multibulk(buf, count, next, None)
            }
        }
    }

    fn continue_multibulk(
        &mut self,
        buf: &[u8],
        mut remaining: usize,
        mut pos: usize,
        mut bulk_len: Option<usize>,
    ) -> Result<Option<usize>, ParseError> {
        while remaining > 0 {
            let len = match bulk_len {
                Some(len) => len,
                None => {
                    let header = match buf.get(pos) {
                        None => None,
                        Some(b'$') => parse_length(
                            buf,
                            pos,
                            self.limits.bulk_bytes_max,
                            false,
                            ParseError::InvalidBulkLength,
                        )?,
                        Some(&other) => return Err(ParseError::ExpectedDollar(other)),
                    };
                    let Some((Length::Bytes(len), data)) = header else {
                        // `Length::Null` is refused by `parse_length` here.
                        self.state = State::Multibulk {
                            remaining,
                            pos,
                            bulk_len,
                        };
                        return Ok(None);
                    };
                    let end = data.checked_add(len).and_then(|end| end.checked_add(2));
                    if end.is_none_or(|end| end > self.limits.request_bytes_max) {
                        return Err(ParseError::TooBigRequest);
                    }
                    pos = data;
                    bulk_len = Some(len);
                    len
                }
            };
            // `pos + len + 2` was checked against `request_bytes_max` above.
            let end = pos.saturating_add(len);
            match (buf.get(end), buf.get(end.saturating_add(1))) {
                (Some(b'\r'), Some(b'\n')) => {
                    self.pending.push(pos..end);
                    pos = end.saturating_add(2);
                    remaining = remaining.saturating_sub(1);
                    bulk_len = None;
                }
                (None, _) | (Some(b'\r'), None) => {
                    self.state = State::Multibulk {
                        remaining,
                        pos,
                        bulk_len,
                    };
                    return Ok(None);
                }
                _ => return Err(ParseError::BulkNotTerminated),
            }
        }
        Ok(Some(pos))
    }

    fn continue_inline(
        &mut self,
        buf: &mut [u8],
        scanned: usize,
    ) -> Result<Option<usize>, ParseError> {
        let line_max = self
            .limits
            .inline_bytes_max
            .min(self.limits.request_bytes_max);
        // The longest line allowed may still be followed by "\r\n", which
        // puts its '\n' at index `line_max + 1`: look no further than that.
        let search_end = buf.len().min(line_max.saturating_add(2));
        let window = buf.get(scanned..search_end).unwrap_or_default();
        let Some(offset) = window.iter().position(|&byte| byte == b'\n') else {
            if buf.len() >= line_max.saturating_add(2) {
                return Err(ParseError::TooBigInlineRequest);
            }
            self.state = State::Inline {
                scanned: search_end,
            };
            return Ok(None);
        };
        let newline = scanned.saturating_add(offset);
        let line_end = match newline.checked_sub(1) {
            Some(before) if buf.get(before) == Some(&b'\r') => before,
            _ => newline,
        };
        if line_end > line_max {
            return Err(ParseError::TooBigInlineRequest);
        }
        let line = buf.get_mut(..line_end).unwrap_or_default();
        split_inline(line, &mut self.pending)?;
        Ok(Some(newline.saturating_add(1)))
    }
}

/// Parses one command from the front of `buf`, without state between calls.
///
/// The same contract as [`Parser::parse`], for callers that always hold a
/// whole command (tests, tools). Calling it again as bytes trickle in costs
/// O(bytes) per call; a connection uses a [`Parser`].
pub fn parse_command(
    buf: &mut [u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ParseError> {
    // Parse into the caller's allocation.
    let mut pending = std::mem::take(args);
    pending.clear();
    let mut parser = Parser {
        limits: *limits,
        state: State::Start,
        pending,
    };
    let result = parser.parse(buf, args);
    if !matches!(result, Ok(Some(_))) {
        // Hand the caller's allocation back.
        std::mem::swap(args, &mut parser.pending);
        args.clear();
    }
    result
}

/// The bytes of each argument range that [`Parser::parse`] returned for
/// `buf`. A range outside `buf` (only if the caller mixed up buffers) gives
/// an empty slice.
pub fn arg_bytes<'b>(
    buf: &'b [u8],
    args: &'b [Range<usize>],
) -> impl ExactSizeIterator<Item = &'b [u8]> + 'b {
    args.iter()
        .map(move |range| buf.get(range.clone()).unwrap_or_default())
}

/// A decoded `*` or `$` length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    /// `-1`: a null array, accepted only where the caller allows it.
    Null,
    Bytes(usize),
}

/// Parses the `<len>\r\n` that follows the type byte at `buf[start]`.
///
/// The length must be canonical, as Redis's `string2ll` requires: decimal
/// digits, no sign, no leading zero; or exactly `-1` if `null_allowed`. It
/// fails with `error` as soon as a byte makes the line invalid or the digits
/// so far exceed `max`, without waiting for the line to end. Because of
/// that, it never examines more than about 23 bytes, and parsing the line
/// again from the start on every call costs O(1).
fn parse_length(
    buf: &[u8],
    start: usize,
    max: usize,
    null_allowed: bool,
    error: ParseError,
) -> Result<Option<(Length, usize)>, ParseError> {
    let mut at = start.saturating_add(1);
    if null_allowed && buf.get(at) == Some(&b'-') {
        for expected in *b"1\r\n" {
            at = at.saturating_add(1);
            match buf.get(at) {
                None => return Ok(None),
                Some(&byte) if byte == expected => {}
                Some(_) => return Err(error),
            }
        }
        return Ok(Some((Length::Null, at.saturating_add(1))));
    }
    let mut value: Option<usize> = None;
    loop {
        let Some(&byte) = buf.get(at) else {
            return Ok(None);
        };
        match (byte, value) {
            // A leading zero is allowed only as the whole number.
            (b'0'..=b'9', Some(0)) => return Err(error),
            (b'0'..=b'9', _) => {
                // The arm matched a digit, so this is its value.
                let digit = usize::from(byte.wrapping_sub(b'0'));
                let next = value
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|tens| tens.checked_add(digit))
                    .filter(|&next| next <= max)
                    .ok_or(error)?;
                value = Some(next);
            }
            (b'\r', Some(value)) => {
                return match buf.get(at.saturating_add(1)) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((Length::Bytes(value), at.saturating_add(2)))),
                    Some(_) => Err(error),
                };
            }
            _ => return Err(error),
        }
        at = at.saturating_add(1);
    }
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic
)]
mod tests {
    use super::*;

    /// A parse result with its arguments copied out.
    type Parsed = Result<Option<(Vec<Vec<u8>>, usize)>, ParseError>;

    /// Parses `input` in one call and returns the owned arguments.
    fn parse(input: &[u8]) -> Parsed {
        parse_with(input, &Limits::DEFAULT)
    }

    fn parse_with(input: &[u8], limits: &Limits) -> Parsed {
        let mut buf = input.to_vec();
        let mut args = Vec::new();
        let consumed = parse_command(&mut buf, limits, &mut args)?;
        Ok(consumed.map(|consumed| {
            assert!(consumed <= input.len());
            let owned = arg_bytes(&buf, &args).map(<[u8]>::to_vec).collect();
            (owned, consumed)
        }))
    }

    fn command(args: &[&str], consumed: usize) -> Option<(Vec<Vec<u8>>, usize)> {
        Some((
            args.iter().map(|arg| arg.as_bytes().to_vec()).collect(),
            consumed,
        ))
    }

    #[test]
    fn multibulk_command() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$5\r\nhello\r\n";
        assert_eq!(
            parse(input),
            Ok(command(&["SET", "a", "hello"], input.len()))
        );
    }

    #[test]
    fn multibulk_binary_and_empty_arguments() {
        let input = b"*3\r\n$0\r\n\r\n$4\r\n\r\n\0\xff\r\n$2\r\n*$\r\n";
        let expected = vec![b"".to_vec(), b"\r\n\0\xff".to_vec(), b"*$".to_vec()];
        assert_eq!(parse(input), Ok(Some((expected, input.len()))));
    }

    #[test]
    fn only_the_first_of_pipelined_commands_is_consumed() {
        let input = b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        assert_eq!(parse(input), Ok(command(&["PING"], 14)));
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let input = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
        for end in 0..input.len() {
            assert_eq!(parse(&input[..end]), Ok(None), "prefix of {end} bytes");
        }
        let inline = b"SET \"a b\" 'c'\r\n";
        for end in 0..inline.len() {
            assert_eq!(parse(&inline[..end]), Ok(None), "prefix of {end} bytes");
        }
    }

    #[test]
    fn empty_and_null_arrays_are_skipped() {
        assert_eq!(parse(b"*0\r\n"), Ok(Some((vec![], 4))));
        assert_eq!(parse(b"*-1\r\n*1\r\n"), Ok(Some((vec![], 5))));
        assert_eq!(parse(b"*-1\r"), Ok(None));
    }

    #[test]
    fn empty_lines_are_skipped() {
        assert_eq!(parse(b"\r\n"), Ok(Some((vec![], 2))));
        assert_eq!(parse(b"\n"), Ok(Some((vec![], 1))));
        assert_eq!(parse(b"  \t \r\nPING\r\n"), Ok(Some((vec![], 6))));
    }

    #[test]
    fn invalid_multibulk_lengths() {
        for input in [
            &b"*x\r\n"[..],
            b"*\r\n",
            b"*-2\r\n",
            b"*-0\r\n",
            b"*-\r\n",
            b"*01\r\n",
            b"*+1\r\n",
            b"*1 \r\n",
            b"*1\n",
            b"*1\rx",
            b"*99999999999999999999999",
        ] {
            assert_eq!(
                parse(input),
                Err(ParseError::InvalidMultibulkLength),
                "{}",
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn invalid_bulk_lengths() {
        for input in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$x\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$01\r\n",
            b"*1\r\n$1x",
            b"*1\r\n$1\n",
            b"*1\r\n$99999999999999999999999",
        ] {
            assert_eq!(
                parse(input),
                Err(ParseError::InvalidBulkLength),
                "{}",
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn oversized_lengths_fail_before_their_bytes_arrive() {
        let limits = Limits {
            bulk_bytes_max: 4 * 1024 * 1024,
            array_len_max: 1000,
            ..Limits::DEFAULT
        };
        // Neither line is even finished: the digits alone show the length is
        // too big.
        assert_eq!(
            parse_with(b"*1\r\n$999999999999", &limits),
            Err(ParseError::InvalidBulkLength)
        );
        assert_eq!(
            parse_with(b"*1001", &limits),
            Err(ParseError::InvalidMultibulkLength)
        );
        assert_eq!(parse_with(b"*1000\r\n", &limits), Ok(None));
        assert_eq!(parse_with(b"*1\r\n$4194304\r\n", &limits), Ok(None));
        assert_eq!(
            parse_with(b"*1\r\n$4194305", &limits),
            Err(ParseError::InvalidBulkLength)
        );
        // Redis's own default allows 512 MiB.
        assert_eq!(parse(b"*1\r\n$536870912\r\n"), Ok(None));
        assert_eq!(
            parse(b"*1\r\n$536870913"),
            Err(ParseError::InvalidBulkLength)
        );
    }

    #[test]
    fn request_bytes_max_bounds_the_whole_command() {
        let limits = Limits {
            request_bytes_max: 32,
            ..Limits::DEFAULT
        };
        // 4 + 4 + 10 + 2 = 20 bytes: fits.
        let fits = b"*1\r\n$10\r\n0123456789\r\n";
        assert_eq!(parse_with(fits, &limits).unwrap().unwrap().1, fits.len());
        // The second header shows the command needs 20 + 20 + 2 = 42 bytes.
        assert_eq!(
            parse_with(b"*2\r\n$5\r\nhello\r\n$20\r\n", &limits),
            Err(ParseError::TooBigRequest)
        );
        // Six arguments need at least 4 + 36 bytes.
        assert_eq!(
            parse_with(b"*6\r\n", &limits),
            Err(ParseError::TooBigRequest)
        );
        assert_eq!(parse_with(b"*4\r\n", &limits), Ok(None));
        // An inline line is bounded too.
        let long_line = [b'a'; 40];
        assert_eq!(
            parse_with(&long_line, &limits),
            Err(ParseError::TooBigInlineRequest)
        );
    }

    #[test]
    fn expected_dollar() {
        assert_eq!(
            parse(b"*1\r\n:1\r\n"),
            Err(ParseError::ExpectedDollar(b':'))
        );
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\nx"),
            Err(ParseError::ExpectedDollar(b'x'))
        );
        assert_eq!(parse(b"*1\r\n\r\n"), Err(ParseError::ExpectedDollar(b'\r')));
        assert_eq!(
            ParseError::ExpectedDollar(b'x').to_string(),
            "Protocol error: expected '$', got 'x'"
        );
    }

    #[test]
    fn bulk_data_must_end_in_crlf() {
        assert_eq!(
            parse(b"*1\r\n$1\r\nab\r\n"),
            Err(ParseError::BulkNotTerminated)
        );
        assert_eq!(
            parse(b"*1\r\n$1\r\na\rx"),
            Err(ParseError::BulkNotTerminated)
        );
        assert_eq!(parse(b"*1\r\n$1\r\na\r"), Ok(None));
    }

    #[test]
    fn inline_commands() {
        assert_eq!(parse(b"PING\r\n"), Ok(command(&["PING"], 6)));
        assert_eq!(parse(b"SET a b\n"), Ok(command(&["SET", "a", "b"], 8)));
        assert_eq!(parse(b"  GET\t k  \r\n"), Ok(command(&["GET", "k"], 12)));
        // Only a '\r' right before the '\n' is part of the line ending.
        assert_eq!(parse(b"a\rb\r\n"), Ok(command(&["a", "b"], 5)));
        // A line that starts with '$' is inline, as in Redis.
        assert_eq!(parse(b"$3\r\n"), Ok(command(&["$3"], 4)));
    }

    #[test]
    fn inline_length_limit() {
        let limits = Limits {
            inline_bytes_max: 8,
            ..Limits::DEFAULT
        };
        assert_eq!(parse_with(b"12345678\r\n", &limits).unwrap().unwrap().1, 10);
        assert_eq!(parse_with(b"12345678\n", &limits).unwrap().unwrap().1, 9);
        assert_eq!(parse_with(b"12345678\r", &limits), Ok(None));
        assert_eq!(
            parse_with(b"123456789\n", &limits),
            Err(ParseError::TooBigInlineRequest)
        );
        assert_eq!(parse_with(b"12345678x", &limits), Ok(None));
        assert_eq!(
            parse_with(b"12345678xy", &limits),
            Err(ParseError::TooBigInlineRequest)
        );
        // Redis's default: 64 KiB.
        let mut line = vec![b'a'; 64 * 1024];
        assert_eq!(parse(&line), Ok(None));
        line.extend_from_slice(b"\r\n");
        assert_eq!(parse(&line).unwrap().unwrap().1, 64 * 1024 + 2);
        line.insert(0, b'a');
        assert_eq!(parse(&line), Err(ParseError::TooBigInlineRequest));
    }

    #[test]
    fn resumes_where_it_stopped() {
        let input = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nPING\r\n";
        let mut buf = input.to_vec();
        let mut parser = Parser::new(Limits::DEFAULT);
        let mut args = Vec::new();
        let mut commands = Vec::new();
        let mut start = 0;
        for end in 1..=buf.len() {
            if let Some(consumed) = parser.parse(&mut buf[start..end], &mut args).unwrap() {
                let command: Vec<_> = arg_bytes(&buf[start..end], &args)
                    .map(<[u8]>::to_vec)
                    .collect();
                commands.push(command);
                start += consumed;
            } else {
                assert!(args.is_empty());
            }
        }
        assert_eq!(start, input.len());
        assert_eq!(
            commands,
            vec![
                vec![b"GET".to_vec(), b"key".to_vec()],
                vec![b"PING".to_vec()]
            ]
        );
    }

    #[test]
    fn errors_reset_the_parser() {
        let mut parser = Parser::new(Limits::DEFAULT);
        let mut args = Vec::new();
        assert_eq!(
            parser.parse(&mut b"*2\r\n$1\r\na\r\n".to_vec(), &mut args),
            Ok(None)
        );
        assert_eq!(
            parser.parse(&mut b"*2\r\n$1\r\na\r\n!".to_vec(), &mut args),
            Err(ParseError::ExpectedDollar(b'!'))
        );
        assert_eq!(
            parser.parse(&mut b"PING\r\n".to_vec(), &mut args),
            Ok(Some(6))
        );
        assert_eq!(args, vec![0..4]);
    }

    #[test]
    fn a_shorter_buffer_than_last_time_restarts_the_parse() {
        let mut parser = Parser::new(Limits::DEFAULT);
        let mut args = Vec::new();
        assert_eq!(
            parser.parse(&mut b"*2\r\n$1\r\na\r\n".to_vec(), &mut args),
            Ok(None)
        );
        assert_eq!(
            parser.parse(&mut b"PING\r\n".to_vec(), &mut args),
            Ok(Some(6))
        );
        assert_eq!(args, vec![0..4]);
    }

    /// Caught by the chunked-versus-whole property: `parse_command` reused
    /// the caller's vector without clearing it, so the previous command's
    /// arguments leaked into a following empty line.
    #[test]
    fn parse_command_ignores_stale_args() {
        let mut args = vec![0..1, 3..5];
        assert_eq!(
            parse_command(&mut b"\r\n".to_vec(), &Limits::DEFAULT, &mut args),
            Ok(Some(2))
        );
        assert_eq!(args, vec![]);
        let mut args = vec![0..1, 2..3];
        assert_eq!(
            parse_command(&mut b"*1\r\n".to_vec(), &Limits::DEFAULT, &mut args),
            Ok(None)
        );
        assert_eq!(args, vec![]);
    }

    #[test]
    fn args_buffers_are_reused() {
        // The caller's vector and the parser's swap on every command: after
        // both have grown, no command allocates.
        let mut parser = Parser::new(Limits::DEFAULT);
        let mut args = Vec::new();
        let mut buf = b"*2\r\n$1\r\na\r\n$1\r\nb\r\n".to_vec();
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..10 {
            assert_eq!(parser.parse(&mut buf, &mut args), Ok(Some(buf.len())));
            assert_eq!(args, vec![8..9, 15..16]);
            if round >= 2 {
                seen.insert(args.as_ptr() as usize);
            }
        }
        assert_eq!(seen.len(), 2);
    }
}
