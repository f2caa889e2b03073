//! Inline commands: splitting a line into arguments with Redis's quote rules.

use std::ops::Range;

use super::ParseError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// Splits an inline command line (without its line ending) into arguments,
/// exactly as Redis's `sdssplitargs` does, and appends their ranges in
/// `line` to `args`.
///
/// - Arguments are separated by spaces, tabs, `\r` and `\n`; blanks
///   (those and `\v`, `\f`) before an argument are skipped.
/// - `"double quotes"` take the escapes `\xHH` (two hex digits), `\n`, `\r`,
///   `\t`, `\b`, `\a`, and `\` before any other byte stands for that byte.
/// - `'single quotes'` take only `\'`.
/// - A closing quote must be followed by a blank or the end of the line,
///   and an open quote must be closed: otherwise
///   [`ParseError::UnbalancedQuotes`].
/// - A quote may open in the middle of an argument (`a"b c"` is `ab c`).
/// - The line ends at its first NUL byte: Redis handles the line as a C
///   string, so it ignores what follows.
///
/// Unescaping happens in place: an argument's bytes are written over the
/// line, never past the byte being read, so every argument is a range of
/// `line`. On an error the line may have been partly rewritten.
pub(super) fn split_inline(
    line: &mut [u8],
    args: &mut Vec<Range<usize>>,
) -> Result<(), ParseError> {
    let end = line
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(line.len());
    let line = line.get_mut(..end).unwrap_or_default();
    let mut read = 0usize;
    let mut write = 0usize;
    loop {
        while line.get(read).copied().is_some_and(is_blank) {
            read = read.saturating_add(1);
        }
        if read >= line.len() {
            return Ok(());
        }
        let start = write;
        let mut quote = Quote::None;
        loop {
            let byte = byte_at(line, read);
            let next = byte_at(line, read.saturating_add(1));
            match quote {
                Quote::Double => match (byte, next) {
                    (b'\\', b'x') => {
                        let high = hex_value(byte_at(line, read.saturating_add(2)));
                        let low = hex_value(byte_at(line, read.saturating_add(3)));
                        if let (Some(high), Some(low)) = (high, low) {
                            put(line, &mut write, high << 4 | low);
                            read = read.saturating_add(4);
                        } else {
                            // Not a hex escape: `\x` stands for `x`.
                            put(line, &mut write, b'x');
                            read = read.saturating_add(2);
                        }
                    }
                    (b'\\', escaped) if escaped != 0 => {
                        put(line, &mut write, unescape(escaped));
                        read = read.saturating_add(2);
                    }
                    (b'"', _) => {
                        if !ends_argument(next) {
                            return Err(ParseError::UnbalancedQuotes);
                        }
                        read = read.saturating_add(1);
                        break;
                    }
                    (0, _) => return Err(ParseError::UnbalancedQuotes),
                    _ => {
                        put(line, &mut write, byte);
                        read = read.saturating_add(1);
                    }
                },
                Quote::Single => match (byte, next) {
                    (b'\\', b'\'') => {
                        put(line, &mut write, b'\'');
                        read = read.saturating_add(2);
                    }
                    (b'\'', _) => {
                        if !ends_argument(next) {
                            return Err(ParseError::UnbalancedQuotes);
                        }
                        read = read.saturating_add(1);
                        break;
                    }
                    (0, _) => return Err(ParseError::UnbalancedQuotes),
                    _ => {
                        put(line, &mut write, byte);
                        read = read.saturating_add(1);
                    }
                },
                Quote::None => match byte {
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        read = read.saturating_add(1);
                        break;
                    }
                    0 => break,
                    b'"' => {
                        quote = Quote::Double;
                        read = read.saturating_add(1);
                    }
                    b'\'' => {
                        quote = Quote::Single;
                        read = read.saturating_add(1);
                    }
                    _ => {
                        put(line, &mut write, byte);
                        read = read.saturating_add(1);
                    }
                },
            }
        }
        args.push(start..write);
    }
}

/// The byte at `index`, or NUL past the end, as a C string reads.
fn byte_at(line: &[u8], index: usize) -> u8 {
    line.get(index).copied().unwrap_or(0)
}

/// Writes an argument byte. `write` never passes the byte being read, so
/// this never overwrites a byte not yet read.
fn put(line: &mut [u8], write: &mut usize, byte: u8) {
    if let Some(slot) = line.get_mut(*write) {
        *slot = byte;
    }
    *write = write.saturating_add(1);
}

/// C's `isspace` in the "C" locale.
fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// What may follow a closing quote: a blank or the end of the line.
fn ends_argument(byte: u8) -> bool {
    byte == 0 || is_blank(byte)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

fn unescape(byte: u8) -> u8 {
    match byte {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<Vec<u8>>, ParseError> {
        split_bytes(line.as_bytes())
    }

    fn split_bytes(line: &[u8]) -> Result<Vec<Vec<u8>>, ParseError> {
        let mut buf = line.to_vec();
        let mut args = Vec::new();
        split_inline(&mut buf, &mut args)?;
        Ok(args.into_iter().map(|range| buf[range].to_vec()).collect())
    }

    fn strings(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|arg| arg.as_bytes().to_vec()).collect()
    }

    #[test]
    fn bare_words() {
        assert_eq!(split("SET a b"), Ok(strings(&["SET", "a", "b"])));
        assert_eq!(split("  \t GET \x0b k \x0c "), Ok(strings(&["GET", "k"])));
        assert_eq!(split(""), Ok(vec![]));
        assert_eq!(split(" \t "), Ok(vec![]));
        // Inside a word only space, tab, CR and LF separate.
        assert_eq!(split("a\x0bb"), Ok(strings(&["a\x0bb"])));
        assert_eq!(split("a\\nb"), Ok(strings(&["a\\nb"])));
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(split("SET \"a b\" \"\""), Ok(strings(&["SET", "a b", ""])));
        assert_eq!(
            split(r#""\x41\x62\xff\x00" "\n\r\t\b\a\"\\\q""#).unwrap(),
            vec![b"Ab\xff\0".to_vec(), b"\n\r\t\x08\x07\"\\q".to_vec()]
        );
        // Not two hex digits: `\x` is a plain `x`.
        assert_eq!(split(r#""\x4" "\xzz""#), Ok(strings(&["x4", "xzz"])));
        assert_eq!(split(r#"a"b c"d"#), Err(ParseError::UnbalancedQuotes));
        assert_eq!(split(r#"a"b c" d"#), Ok(strings(&["ab c", "d"])));
    }

    #[test]
    fn single_quotes() {
        assert_eq!(
            split(r"'a b' 'it\'s' '\n'"),
            Ok(strings(&["a b", "it's", "\\n"]))
        );
        assert_eq!(split("''"), Ok(strings(&[""])));
    }

    #[test]
    fn unbalanced_quotes() {
        for line in [
            "\"abc",
            "'abc",
            "\"abc\"def",
            "'abc'def",
            "\"abc\\\"",
            "'abc\\'",
            "\"\\",
        ] {
            assert_eq!(split(line), Err(ParseError::UnbalancedQuotes), "{line}");
        }
    }

    #[test]
    fn the_line_ends_at_nul() {
        assert_eq!(
            split_bytes(b"SET a b\0c d"),
            Ok(strings(&["SET", "a", "b"]))
        );
        assert_eq!(
            split_bytes(b"SET \"a\0\""),
            Err(ParseError::UnbalancedQuotes)
        );
    }
}
