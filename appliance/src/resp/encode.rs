//! Replies (and client commands) onto the wire.
//!
//! Every function appends one RESP value, or the header of an aggregate, to
//! `out`, and allocates nothing beyond `out`'s own growth. An aggregate
//! header is followed by its elements, written with further calls: `n` for
//! an array or set, `2 × n` (key, value, key, value…) for a map.
//!
//! Where RESP2 has no such type, the RESP2 form is the one Redis sends: a
//! double becomes a bulk string, a boolean an integer, a map a flat array.

use std::fmt::Write as _;

use super::ParseError;

/// The protocol version a connection speaks, chosen by `HELLO`. New
/// connections speak RESP2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// `+text\r\n`. A `\r` or `\n` in `text` is sent as a space, so a reply can
/// never break the framing.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    push_line(out, text);
}

/// `-message\r\n`. The message starts with its error code, as in
/// `ERR unknown command 'foo', with args beginning with: ` or
/// `WRONGTYPE ...`. A `\r` or `\n` in it is sent as a space, as Redis does.
pub fn error(out: &mut Vec<u8>, message: &str) {
    out.push(b'-');
    push_line(out, message);
}

/// The reply to a request that failed to parse: `-ERR Protocol error: ...`,
/// as Redis sends before closing the connection.
pub fn protocol_error(out: &mut Vec<u8>, parse_error: &ParseError) {
    out.extend_from_slice(b"-ERR ");
    let _infallible = write!(VecWriter(out), "{parse_error}");
    out.extend_from_slice(b"\r\n");
}

/// `:value\r\n`.
pub fn integer(out: &mut Vec<u8>, value: i64) {
    out.push(b':');
    push_i64(out, value);
    out.extend_from_slice(b"\r\n");
}

/// `$len\r\nbytes\r\n`.
pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    push_header(out, b'$', bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// The null value, as for a missing key: `$-1\r\n` (the null bulk string)
/// in RESP2, `_\r\n` in RESP3.
pub fn null(out: &mut Vec<u8>, protocol: Protocol) {
    out.extend_from_slice(match protocol {
        Protocol::Resp2 => b"$-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// The null array, as for a timed-out blocking command: `*-1\r\n` in RESP2,
/// `_\r\n` in RESP3.
pub fn null_array(out: &mut Vec<u8>, protocol: Protocol) {
    out.extend_from_slice(match protocol {
        Protocol::Resp2 => b"*-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// `*len\r\n`, to be followed by `len` values.
pub fn array_header(out: &mut Vec<u8>, len: usize) {
    push_header(out, b'*', len);
}

/// A map of `len` pairs, to be followed by `2 × len` values (key, value,
/// ...): `%len\r\n` in RESP3, `*(2 × len)\r\n` in RESP2.
pub fn map_header(out: &mut Vec<u8>, len: usize, protocol: Protocol) {
    match protocol {
        Protocol::Resp2 => push_header(out, b'*', len.saturating_mul(2)),
        Protocol::Resp3 => push_header(out, b'%', len),
    }
}

/// A set of `len` members, to be followed by `len` values: `~len\r\n` in
/// RESP3, `*len\r\n` in RESP2.
pub fn set_header(out: &mut Vec<u8>, len: usize, protocol: Protocol) {
    let kind = match protocol {
        Protocol::Resp2 => b'*',
        Protocol::Resp3 => b'~',
    };
    push_header(out, kind, len);
}

/// A double: `,text\r\n` in RESP3, the bulk string `text` in RESP2.
///
/// The text is the shortest that parses back to the same `f64`, in exponent form
/// when the magnitude is at least 1e16 or below 1e-5 (`1e300`,
/// `1.5e-7`), and `inf`, `-inf` or `nan` as Redis writes them.
pub fn double(out: &mut Vec<u8>, value: f64, protocol: Protocol) {
    match protocol {
        Protocol::Resp2 => {
            let mut text = DoubleText::new();
            let _infallible = write_double(&mut text, value);
            bulk(out, text.as_bytes());
        }
        Protocol::Resp3 => {
            out.push(b',');
            let _infallible = write_double(&mut VecWriter(out), value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A boolean: `#t\r\n` or `#f\r\n` in RESP3, the integer 1 or 0 in RESP2.
pub fn boolean(out: &mut Vec<u8>, value: bool, protocol: Protocol) {
    out.extend_from_slice(match (protocol, value) {
        (Protocol::Resp2, true) => b":1\r\n",
        (Protocol::Resp2, false) => b":0\r\n",
        (Protocol::Resp3, true) => b"#t\r\n",
        (Protocol::Resp3, false) => b"#f\r\n",
    });
}

/// A verbatim string, such as INFO's text: `=len\r\nfmt:text\r\n` in RESP3
/// (`format` is `txt` for plain text or `mkd` for markdown), the bulk
/// string `text` in RESP2.
pub fn verbatim(out: &mut Vec<u8>, format: [u8; 3], text: &[u8], protocol: Protocol) {
    match protocol {
        Protocol::Resp2 => bulk(out, text),
        Protocol::Resp3 => {
            push_header(out, b'=', text.len().saturating_add(4));
            out.extend_from_slice(&format);
            out.push(b':');
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A client command as a multibulk array of bulk strings, the form every
/// Redis client sends: `*N\r\n` then `$len\r\narg\r\n` for each argument.
pub fn command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    array_header(out, args.len());
    for arg in args {
        bulk(out, arg.as_ref());
    }
}

fn push_line(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().map(|byte| match byte {
        b'\r' | b'\n' => b' ',
        other => other,
    }));
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    // `usize` is at most 64 bits on every target Rust supports.
    push_u64(out, u64::try_from(len).unwrap_or(u64::MAX));
    out.extend_from_slice(b"\r\n");
}

fn push_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    push_u64(out, value.unsigned_abs());
}

/// Decimal digits of `value`, without the formatting machinery: lengths and
/// integers are on every reply's path.
fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start = start.saturating_sub(1);
        let digit = usize::try_from(value % 10).unwrap_or_default();
        if let (Some(slot), Some(&ascii)) = (digits.get_mut(start), b"0123456789".get(digit)) {
            *slot = ascii;
        }
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Writes `value` as described on [`double`].
pub(super) fn write_double(writer: &mut impl std::fmt::Write, value: f64) -> std::fmt::Result {
    if value.is_nan() {
        writer.write_str("nan")
    } else if value.is_infinite() {
        writer.write_str(if value > 0.0 { "inf" } else { "-inf" })
    } else if value != 0.0 && !(1e-5..1e16).contains(&value.abs()) {
        write!(writer, "{value:e}")
    } else {
        write!(writer, "{value}")
    }
}

/// Formatting into the output buffer, which cannot fail.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// A double's text on the stack, for RESP2, where its length precedes it.
/// The longest text `write_double` produces is 24 bytes
/// (`-2.2250738585072014e-308`).
struct DoubleText {
    bytes: [u8; 32],
    len: usize,
}

impl DoubleText {
    fn new() -> DoubleText {
        DoubleText {
            bytes: [0; 32],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for DoubleText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len.checked_add(text.len()).ok_or(std::fmt::Error)?;
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encoded(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn simple_strings_and_errors() {
        assert_eq!(encoded(|out| simple(out, "OK")), "+OK\r\n");
        assert_eq!(encoded(|out| simple(out, "a\r\nb")), "+a  b\r\n");
        assert_eq!(
            encoded(|out| error(out, "ERR unknown command 'foo', with args beginning with: ")),
            "-ERR unknown command 'foo', with args beginning with: \r\n"
        );
        assert_eq!(encoded(|out| error(out, "ERR x\ny")), "-ERR x y\r\n");
        assert_eq!(
            encoded(|out| protocol_error(out, &ParseError::InvalidBulkLength)),
            "-ERR Protocol error: invalid bulk length\r\n"
        );
        assert_eq!(
            encoded(|out| protocol_error(out, &ParseError::ExpectedDollar(b'\n'))),
            "-ERR Protocol error: expected '$', got ' '\r\n"
        );
    }

    #[test]
    fn integers() {
        assert_eq!(encoded(|out| integer(out, 0)), ":0\r\n");
        assert_eq!(encoded(|out| integer(out, 42)), ":42\r\n");
        assert_eq!(encoded(|out| integer(out, -7)), ":-7\r\n");
        assert_eq!(
            encoded(|out| integer(out, i64::MAX)),
            ":9223372036854775807\r\n"
        );
        assert_eq!(
            encoded(|out| integer(out, i64::MIN)),
            ":-9223372036854775808\r\n"
        );
    }

    #[test]
    fn bulk_strings_and_nulls() {
        assert_eq!(encoded(|out| bulk(out, b"hello")), "$5\r\nhello\r\n");
        assert_eq!(encoded(|out| bulk(out, b"")), "$0\r\n\r\n");
        assert_eq!(encoded(|out| bulk(out, b"a\r\nb")), "$4\r\na\r\nb\r\n");
        assert_eq!(encoded(|out| null(out, Protocol::Resp2)), "$-1\r\n");
        assert_eq!(encoded(|out| null(out, Protocol::Resp3)), "_\r\n");
        assert_eq!(encoded(|out| null_array(out, Protocol::Resp2)), "*-1\r\n");
        assert_eq!(encoded(|out| null_array(out, Protocol::Resp3)), "_\r\n");
    }

    #[test]
    fn aggregate_headers() {
        assert_eq!(encoded(|out| array_header(out, 3)), "*3\r\n");
        assert_eq!(encoded(|out| map_header(out, 3, Protocol::Resp2)), "*6\r\n");
        assert_eq!(encoded(|out| map_header(out, 3, Protocol::Resp3)), "%3\r\n");
        assert_eq!(encoded(|out| set_header(out, 2, Protocol::Resp2)), "*2\r\n");
        assert_eq!(encoded(|out| set_header(out, 2, Protocol::Resp3)), "~2\r\n");
    }

    #[test]
    fn doubles() {
        let resp3 = |value: f64| encoded(|out| double(out, value, Protocol::Resp3));
        assert_eq!(resp3(1.5), ",1.5\r\n");
        assert_eq!(resp3(-0.1), ",-0.1\r\n");
        assert_eq!(resp3(3.0), ",3\r\n");
        assert_eq!(resp3(0.0), ",0\r\n");
        assert_eq!(resp3(1e300), ",1e300\r\n");
        assert_eq!(resp3(1.5e-7), ",1.5e-7\r\n");
        assert_eq!(resp3(f64::INFINITY), ",inf\r\n");
        assert_eq!(resp3(f64::NEG_INFINITY), ",-inf\r\n");
        assert_eq!(resp3(f64::NAN), ",nan\r\n");
        assert_eq!(
            encoded(|out| double(out, 2.25, Protocol::Resp2)),
            "$4\r\n2.25\r\n"
        );
        assert_eq!(
            encoded(|out| double(out, -2.2250738585072014e-308, Protocol::Resp2)),
            "$24\r\n-2.2250738585072014e-308\r\n"
        );
        assert_eq!(
            encoded(|out| double(out, f64::NEG_INFINITY, Protocol::Resp2)),
            "$4\r\n-inf\r\n"
        );
    }

    #[test]
    fn booleans() {
        assert_eq!(encoded(|out| boolean(out, true, Protocol::Resp3)), "#t\r\n");
        assert_eq!(
            encoded(|out| boolean(out, false, Protocol::Resp3)),
            "#f\r\n"
        );
        assert_eq!(encoded(|out| boolean(out, true, Protocol::Resp2)), ":1\r\n");
        assert_eq!(
            encoded(|out| boolean(out, false, Protocol::Resp2)),
            ":0\r\n"
        );
    }

    #[test]
    fn verbatim_strings() {
        assert_eq!(
            encoded(|out| verbatim(out, *b"txt", b"# Server\r\n", Protocol::Resp3)),
            "=14\r\ntxt:# Server\r\n\r\n"
        );
        assert_eq!(
            encoded(|out| verbatim(out, *b"txt", b"# Server\r\n", Protocol::Resp2)),
            "$10\r\n# Server\r\n\r\n"
        );
    }

    #[test]
    fn commands() {
        assert_eq!(
            encoded(|out| command(out, &["SET", "k", ""])),
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
        assert_eq!(encoded(|out| command::<&[u8]>(out, &[])), "*0\r\n");
    }

    #[test]
    fn every_double_text_fits_and_round_trips() {
        for value in [
            f64::MIN,
            f64::MAX,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            1e16,
            9_999_999_999_999_998.0,
            1e-5,
            0.000_009_999_999_999_999_999,
            -0.0,
            std::f64::consts::PI,
        ] {
            let mut text = DoubleText::new();
            write_double(&mut text, value).unwrap();
            let text = std::str::from_utf8(text.as_bytes()).unwrap();
            assert!(!text.is_empty());
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                value.to_bits(),
                "{text}"
            );
        }
    }
}
