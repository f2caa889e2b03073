//! Splits one line of the TOML subset into a header, a key and value, or
//! nothing. Knows the syntax, not the schema.

use crate::error::ErrorKind;

/// One line, lexed. Offsets are bytes into the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// Whitespace and comments only.
    Blank,
    /// `[name]`, or `[[name]]` when `array`.
    Header {
        name: &'a str,
        array: bool,
        at: usize,
    },
    /// `key = value`.
    KeyValue {
        key: &'a str,
        key_at: usize,
        value: Value<'a>,
        value_at: usize,
    },
}

/// A value as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// A double-quoted string's contents, escapes not yet resolved (but
    /// checked: only `\"` and `\\` occur).
    String(&'a str),
    /// A decimal integer. Saturates far outside any key's range rather than
    /// overflowing.
    Integer(i128),
    /// `true` or `false`.
    Boolean(bool),
}

/// A line that is not in the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError<'a> {
    /// Byte offset into the line.
    pub at: usize,
    /// The key the line assigns, if the lexer got that far.
    pub key: &'a str,
    pub kind: ErrorKind,
}

const END_OF_LINE: &str = "end of line or a `# comment`";
const VALUE: &str = "a value: a \"string\", an integer, `true` or `false`";

/// Lexes one line, without its line ending.
pub(crate) fn lex(line: &str) -> Result<Line<'_>, SyntaxError<'_>> {
    if let Some(at) = line.find(is_forbidden_control) {
        return Err(syntax(at, "", "no control characters other than tab"));
    }
    let bytes = line.as_bytes();
    let start = skip_space(bytes, 0);
    match bytes.get(start) {
        None | Some(b'#') => Ok(Line::Blank),
        Some(b'[') => header(line, start),
        Some(&byte) if is_bare(byte) => key_value(line, start),
        Some(b'"' | b'\'') => Err(syntax(
            start,
            "",
            "a bare key of letters, digits, `_` and `-` (quoted keys are not supported)",
        )),
        Some(_) => Err(syntax(
            start,
            "",
            "a key, a `[section]` header or a `# comment`",
        )),
    }
}

/// TOML allows no control characters outside strings but tab, and none
/// inside basic strings either; a lone carriage return is one of them.
fn is_forbidden_control(c: char) -> bool {
    (c.is_ascii_control() && c != '\t') || c == '\u{7f}'
}

fn header(line: &str, at: usize) -> Result<Line<'_>, SyntaxError<'_>> {
    let bytes = line.as_bytes();
    let array = bytes.get(at + 1) == Some(&b'[');
    let name_start = skip_space(bytes, at + if array { 2 } else { 1 });
    let name_end = skip_bare(bytes, name_start);
    let name = &line[name_start..name_end];
    if name.is_empty() {
        let expected = match bytes.get(name_start) {
            Some(b'"' | b'\'') => "a bare section name (quoted names are not supported)",
            _ => "a section name",
        };
        return Err(syntax(name_start, "", expected));
    }
    let close = skip_space(bytes, name_end);
    let closing: &[u8] = if array { b"]]" } else { b"]" };
    if !bytes[close..].starts_with(closing) {
        let expected = match (bytes.get(close), array) {
            (Some(b'.'), _) => "`]` (dotted section names are not supported)",
            (_, true) => "`]]`",
            (_, false) => "`]`",
        };
        return Err(syntax(close, "", expected));
    }
    end_of_line(bytes, close + closing.len(), "")?;
    Ok(Line::Header { name, array, at })
}

fn key_value(line: &str, key_at: usize) -> Result<Line<'_>, SyntaxError<'_>> {
    let bytes = line.as_bytes();
    let key_end = skip_bare(bytes, key_at);
    let key = &line[key_at..key_end];
    let equals = skip_space(bytes, key_end);
    match bytes.get(equals) {
        Some(b'=') => {}
        Some(b'.') => {
            return Err(syntax(equals, key, "`=` (dotted keys are not supported)"));
        }
        _ => return Err(syntax(equals, key, "`=` after the key")),
    }
    let value_at = skip_space(bytes, equals + 1);
    let (value, value_end) = value(line, value_at, key)?;
    end_of_line(bytes, value_end, key)?;
    Ok(Line::KeyValue {
        key,
        key_at,
        value,
        value_at,
    })
}

/// Lexes the value starting at `at`; returns it and the offset just past it.
fn value<'a>(
    line: &'a str,
    at: usize,
    key: &'a str,
) -> Result<(Value<'a>, usize), SyntaxError<'a>> {
    let bytes = line.as_bytes();
    match bytes.get(at) {
        None | Some(b'#') => Err(syntax(at, key, "a value after `=`")),
        Some(b'"') => string(line, at, key),
        Some(b'\'') => Err(syntax(
            at,
            key,
            "a double-quoted string (literal strings are not supported)",
        )),
        Some(b'[' | b'{') => Err(syntax(
            at,
            key,
            "a string, an integer or a boolean (arrays and inline tables are not supported)",
        )),
        Some(b'0'..=b'9' | b'+' | b'-') => integer(line, at, key),
        Some(_) => {
            let end = token_end(bytes, at);
            match &line[at..end] {
                "true" => Ok((Value::Boolean(true), end)),
                "false" => Ok((Value::Boolean(false), end)),
                _ => Err(syntax(at, key, VALUE)),
            }
        }
    }
}

/// A basic string: `"`, then anything but `"` and `\`, or the escapes `\"`
/// and `\\`, then `"`.
fn string<'a>(
    line: &'a str,
    at: usize,
    key: &'a str,
) -> Result<(Value<'a>, usize), SyntaxError<'a>> {
    let bytes = line.as_bytes();
    if bytes[at..].starts_with(b"\"\"\"") {
        return Err(syntax(
            at,
            key,
            "a single-line string (multi-line strings are not supported)",
        ));
    }
    let mut index = at + 1;
    loop {
        match bytes.get(index) {
            None => return Err(syntax(index, key, "a closing `\"`")),
            Some(b'"') => return Ok((Value::String(&line[at + 1..index]), index + 1)),
            Some(b'\\') => match bytes.get(index + 1) {
                Some(b'"' | b'\\') => index += 2,
                _ => {
                    return Err(syntax(
                        index,
                        key,
                        "`\\\"` or `\\\\` (the only escapes supported)",
                    ))
                }
            },
            Some(_) => index += 1,
        }
    }
}

/// A decimal integer with an optional sign and `_` between digits, without
/// leading zeros, as TOML has it.
fn integer<'a>(
    line: &'a str,
    at: usize,
    key: &'a str,
) -> Result<(Value<'a>, usize), SyntaxError<'a>> {
    let bytes = line.as_bytes();
    let end = token_end(bytes, at);
    let token = &bytes[at..end];
    let (negative, digits) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, token),
    };
    if !digits.iter().all(|b| b.is_ascii_digit() || *b == b'_') || digits.is_empty() {
        // `4GiB`, `512M`: digits, then letters only.
        let unit_start = digits
            .iter()
            .position(|b| !b.is_ascii_digit() && *b != b'_')
            .unwrap_or(digits.len());
        let looks_like_size =
            unit_start > 0 && digits[unit_start..].iter().all(u8::is_ascii_alphabetic);
        let expected = if looks_like_size {
            "an integer; a size with a unit is a quoted string, e.g. \"4GiB\""
        } else {
            "an integer: decimal digits (floats, hex, octal and binary are not supported)"
        };
        return Err(syntax(at, key, expected));
    }
    let underscores_between_digits = digits.windows(2).all(|w| w != b"__")
        && digits.first() != Some(&b'_')
        && digits.last() != Some(&b'_');
    if !underscores_between_digits {
        return Err(syntax(at, key, "an integer with `_` only between digits"));
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(syntax(at, key, "an integer without leading zeros"));
    }
    let magnitude = digits
        .iter()
        .filter(|b| b.is_ascii_digit())
        .fold(0_i128, |n, b| {
            n.saturating_mul(10).saturating_add(i128::from(b - b'0'))
        });
    let value = if negative { -magnitude } else { magnitude };
    Ok((Value::Integer(value), end))
}

/// Requires nothing but space and an optional comment from `at` on.
fn end_of_line<'a>(bytes: &[u8], at: usize, key: &'a str) -> Result<(), SyntaxError<'a>> {
    let rest = skip_space(bytes, at);
    match bytes.get(rest) {
        None | Some(b'#') => Ok(()),
        Some(_) => Err(syntax(rest, key, END_OF_LINE)),
    }
}

fn syntax<'a>(at: usize, key: &'a str, expected: &'static str) -> SyntaxError<'a> {
    SyntaxError {
        at,
        key,
        kind: ErrorKind::Syntax { expected },
    }
}

fn is_bare(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    at
}

fn skip_bare(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).copied().is_some_and(is_bare) {
        at += 1;
    }
    at
}

/// The end of an unquoted token: the next space, tab or `#`.
fn token_end(bytes: &[u8], mut at: usize) -> usize {
    while !matches!(bytes.get(at), None | Some(b' ' | b'\t' | b'#')) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(line: &str) -> (usize, &'static str) {
        match lex(line) {
            Err(SyntaxError {
                at,
                kind: ErrorKind::Syntax { expected },
                ..
            }) => (at, expected),
            other => panic!("{line:?} lexed as {other:?}"),
        }
    }

    #[test]
    fn blank_lines_and_comments() {
        for line in ["", "   ", "\t", "# x", "  # [server] = 1", "#\u{e9}"] {
            assert_eq!(lex(line), Ok(Line::Blank), "{line:?}");
        }
    }

    #[test]
    fn headers() {
        assert_eq!(
            lex("[server]"),
            Ok(Line::Header {
                name: "server",
                array: false,
                at: 0
            })
        );
        assert_eq!(
            lex("  [[ namespace ]] # x"),
            Ok(Line::Header {
                name: "namespace",
                array: true,
                at: 2
            })
        );
        assert_eq!(expected("[]"), (1, "a section name"));
        assert_eq!(
            expected("[a.b]"),
            (2, "`]` (dotted section names are not supported)")
        );
        assert_eq!(expected("[[a]"), (3, "`]]`"));
        assert_eq!(expected("[a"), (2, "`]`"));
        assert_eq!(expected("[a] x"), (4, END_OF_LINE));
        assert_eq!(expected("[a]]"), (3, END_OF_LINE));
        assert_eq!(
            expected("[\"a\"]"),
            (1, "a bare section name (quoted names are not supported)")
        );
        // `[[` must not be split.
        assert_eq!(expected("[ [a]]").0, 2);
    }

    #[test]
    fn values() {
        let value = |line| match lex(line) {
            Ok(Line::KeyValue { value, .. }) => value,
            other => panic!("{line:?} lexed as {other:?}"),
        };
        assert_eq!(value("a = \"x\""), Value::String("x"));
        assert_eq!(value("a=\"\""), Value::String(""));
        assert_eq!(value(r#"a = "q\"b\\" # c"#), Value::String(r#"q\"b\\"#));
        assert_eq!(value("a = \"#\""), Value::String("#"));
        assert_eq!(value("a = 0"), Value::Integer(0));
        assert_eq!(value("a = -0"), Value::Integer(0));
        assert_eq!(value("a = +12"), Value::Integer(12));
        assert_eq!(value("a = -1_000"), Value::Integer(-1000));
        assert_eq!(value("a = 1_2_3#x"), Value::Integer(123));
        assert_eq!(
            value("a = 99999999999999999999999999999999999999999999999"),
            Value::Integer(i128::MAX)
        );
        assert_eq!(value("a = true"), Value::Boolean(true));
        assert_eq!(value("a-b_C9\t=\tfalse\t"), Value::Boolean(false));
    }

    #[test]
    fn key_value_offsets() {
        assert_eq!(
            lex("  key =  7"),
            Ok(Line::KeyValue {
                key: "key",
                key_at: 2,
                value: Value::Integer(7),
                value_at: 9
            })
        );
    }

    #[test]
    fn malformed_values() {
        assert_eq!(expected("a"), (1, "`=` after the key"));
        assert_eq!(
            expected("a.b = 1"),
            (1, "`=` (dotted keys are not supported)")
        );
        assert_eq!(expected("a ="), (3, "a value after `=`"));
        assert_eq!(expected("a = # x"), (4, "a value after `=`"));
        assert_eq!(expected("a = \"x"), (6, "a closing `\"`"));
        assert_eq!(expected("a = \"x\\\""), (8, "a closing `\"`"));
        assert_eq!(
            expected("a = \"\\n\""),
            (5, "`\\\"` or `\\\\` (the only escapes supported)")
        );
        assert_eq!(
            expected("a = \"\"\"x\"\"\""),
            (
                4,
                "a single-line string (multi-line strings are not supported)"
            )
        );
        assert_eq!(
            expected("a = 'x'"),
            (
                4,
                "a double-quoted string (literal strings are not supported)"
            )
        );
        assert_eq!(expected("a = [1]").0, 4);
        assert_eq!(expected("a = {b = 1}").0, 4);
        assert_eq!(expected("a = yes"), (4, VALUE));
        assert_eq!(expected("a = True"), (4, VALUE));
        assert_eq!(expected("a = \"x\" y"), (8, END_OF_LINE));
        assert_eq!(expected("a = 1 2"), (6, END_OF_LINE));
        assert_eq!(
            expected("a = 4GiB"),
            (
                4,
                "an integer; a size with a unit is a quoted string, e.g. \"4GiB\""
            )
        );
        for float in ["1.5", "0x10", "1e3", "-", "+", "--1"] {
            assert_eq!(
                expected(&format_line(float)),
                (
                    4,
                    "an integer: decimal digits (floats, hex, octal and binary are not supported)"
                ),
                "{float}"
            );
        }
        // A leading `_` makes it a bare word, not a number.
        assert_eq!(expected("a = _1"), (4, VALUE));
        for bad in ["1_", "1__0", "-_1", "+1_"] {
            assert_eq!(
                expected(&format_line(bad)),
                (4, "an integer with `_` only between digits"),
                "{bad}"
            );
        }
        assert_eq!(expected("a = 01"), (4, "an integer without leading zeros"));
        assert_eq!(expected("a = -00"), (4, "an integer without leading zeros"));
    }

    fn format_line(value: &str) -> heapless::String<64> {
        let mut line = heapless::String::new();
        line.push_str("a = ").unwrap();
        line.push_str(value).unwrap();
        line
    }

    #[test]
    fn keys_and_stray_characters() {
        assert_eq!(
            expected("\"a\" = 1"),
            (
                0,
                "a bare key of letters, digits, `_` and `-` (quoted keys are not supported)"
            )
        );
        assert_eq!(
            expected(" = 1"),
            (1, "a key, a `[section]` header or a `# comment`")
        );
        assert_eq!(
            expected("\u{e9} = 1"),
            (0, "a key, a `[section]` header or a `# comment`")
        );
    }

    #[test]
    fn control_characters() {
        assert_eq!(
            expected("a = 1\r"),
            (5, "no control characters other than tab")
        );
        assert_eq!(
            expected("# \u{0}"),
            (2, "no control characters other than tab")
        );
        assert_eq!(
            expected("a = \"\u{7f}\""),
            (5, "no control characters other than tab")
        );
        assert!(lex("a = \"\tx\"").is_ok());
    }
}
