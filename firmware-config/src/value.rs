//! Turns a lexed [`Value`] into the type a key takes, checking its type,
//! range and form.

use core::net::SocketAddr;

use crate::error::{ErrorKind, Unit};
use crate::lexer::Value;
use crate::schema::{Backend, LogLevel, TlsMode};

const STRING: &str = "a string";
const INTEGER: &str = "an integer";
const INTEGER_UNQUOTED: &str = "an integer (without quotes)";
const BOOLEAN: &str = "`true` or `false`";
const BOOLEAN_UNQUOTED: &str = "`true` or `false` (without quotes)";
const SIZE: &str = "a size: a string such as \"4GiB\", or an integer of bytes";
const SIZE_FORM: &str =
    "a size: digits, then optionally B, K, KiB, M, MiB, G, GiB, T or TiB (binary units)";
const ADDRESS: &str = "a socket address \"IPv4:PORT\" or \"[IPv6]:PORT\"";
const LOG_LEVEL: &str = "one of \"error\", \"warn\", \"info\", \"debug\", \"trace\"";
const BACKEND: &str = "one of \"uring\", \"sync\", \"vfio\", \"sim\"";
const TLS_MODE: &str = "one of \"off\", \"tls\", \"mtls\"";

/// A string of at most `N` bytes once its escapes are resolved.
pub(crate) fn string<const N: usize>(
    value: Value<'_>,
) -> Result<heapless::String<N, u8>, ErrorKind> {
    let Value::String(raw) = value else {
        return Err(ErrorKind::WrongType { expected: STRING });
    };
    let mut out = heapless::String::new();
    let mut escaped = false;
    for c in raw.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c).map_err(|_| ErrorKind::TooLong {
            max: u32::try_from(N).unwrap_or(u32::MAX),
        })?;
    }
    Ok(out)
}

/// A non-empty string of at most `N` bytes.
pub(crate) fn non_empty_string<const N: usize>(
    value: Value<'_>,
    expected: &'static str,
) -> Result<heapless::String<N, u8>, ErrorKind> {
    let string = string::<N>(value)?;
    if string.is_empty() {
        return Err(ErrorKind::InvalidValue { expected });
    }
    Ok(string)
}

/// An integer in `min..=max`.
pub(crate) fn integer(value: Value<'_>, (min, max): (u64, u64)) -> Result<u64, ErrorKind> {
    match value {
        Value::Integer(n) => in_range(n, min, max, Unit::Number),
        Value::String(raw) if raw.parse::<i128>().is_ok() => Err(ErrorKind::WrongType {
            expected: INTEGER_UNQUOTED,
        }),
        _ => Err(ErrorKind::WrongType { expected: INTEGER }),
    }
}

/// [`integer`], converted to the field's type; `max` must fit in `T`.
pub(crate) fn integer_as<T: TryFrom<u64>>(
    value: Value<'_>,
    range: (u64, u64),
) -> Result<T, ErrorKind> {
    let n = integer(value, range)?;
    T::try_from(n).map_err(|_| out_of_range(range.0, range.1, Unit::Number))
}

/// A boolean.
pub(crate) fn boolean(value: Value<'_>) -> Result<bool, ErrorKind> {
    match value {
        Value::Boolean(b) => Ok(b),
        Value::String("true" | "false") => Err(ErrorKind::WrongType {
            expected: BOOLEAN_UNQUOTED,
        }),
        _ => Err(ErrorKind::WrongType { expected: BOOLEAN }),
    }
}

/// A size in bytes in `min..=max`: a string such as `"4GiB"` or an integer.
pub(crate) fn size(value: Value<'_>, (min, max): (u64, u64)) -> Result<u64, ErrorKind> {
    match value {
        Value::Integer(n) => in_range(n, min, max, Unit::Bytes),
        Value::String(raw) => match parse_size(raw) {
            Some(n) => in_range(i128::from(n), min, max, Unit::Bytes),
            None => Err(ErrorKind::InvalidValue {
                expected: SIZE_FORM,
            }),
        },
        Value::Boolean(_) => Err(ErrorKind::WrongType { expected: SIZE }),
    }
}

/// A socket address, parsed as `core::net` parses one.
pub(crate) fn socket_address(value: Value<'_>) -> Result<SocketAddr, ErrorKind> {
    let Value::String(raw) = value else {
        return Err(ErrorKind::WrongType { expected: ADDRESS });
    };
    // Escapes never occur in an address, so the raw text is the text.
    raw.parse()
        .map_err(|_| ErrorKind::InvalidValue { expected: ADDRESS })
}

/// A `log_level` name.
pub(crate) fn log_level(value: Value<'_>) -> Result<LogLevel, ErrorKind> {
    one_of(value, &LogLevel::ALL, |level| level.as_str(), LOG_LEVEL)
}

/// A `backend` name.
pub(crate) fn backend(value: Value<'_>) -> Result<Backend, ErrorKind> {
    one_of(value, &Backend::ALL, |backend| backend.as_str(), BACKEND)
}

/// A port's TLS mode (`resp`, `native`, `admin`).
pub(crate) fn tls_mode(value: Value<'_>) -> Result<TlsMode, ErrorKind> {
    one_of(value, &TlsMode::ALL, |mode| mode.as_str(), TLS_MODE)
}

fn one_of<T: Copy>(
    value: Value<'_>,
    all: &[T],
    name: impl Fn(T) -> &'static str,
    expected: &'static str,
) -> Result<T, ErrorKind> {
    let Value::String(raw) = value else {
        return Err(ErrorKind::WrongType { expected });
    };
    all.iter()
        .copied()
        .find(|&item| name(item) == raw)
        .ok_or(ErrorKind::InvalidValue { expected })
}

fn in_range(n: i128, min: u64, max: u64, unit: Unit) -> Result<u64, ErrorKind> {
    match u64::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(out_of_range(min, max, unit)),
    }
}

fn out_of_range(min: u64, max: u64, unit: Unit) -> ErrorKind {
    ErrorKind::OutOfRange { min, max, unit }
}

/// Parses `"4GiB"`, `"512 M"`, `"4_096"`: digits (with `_` between them),
/// optional spaces, then an optional unit, case-insensitively: `B`, `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB`, `T`/`TiB`, all binary. Saturates at `u64::MAX` on
/// overflow, which is out of every key's range. `None` if malformed.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(digits_end);
    let digits_well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__");
    if !digits_well_formed {
        return None;
    }
    let unit = rest.trim_start_matches(' ');
    let shift = [
        ("", 0),
        ("b", 0),
        ("k", 10),
        ("kib", 10),
        ("m", 20),
        ("mib", 20),
        ("g", 30),
        ("gib", 30),
        ("t", 40),
        ("tib", 40),
    ]
    .iter()
    .find(|(name, _)| name.eq_ignore_ascii_case(unit))
    .map(|&(_, shift)| shift)?;
    let number = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0_u64, |n, b| {
            n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
    Some(number.saturating_mul(1 << shift))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4_096"), Some(4096));
        assert_eq!(parse_size("4096B"), Some(4096));
        assert_eq!(parse_size("64KiB"), Some(64 << 10));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("512 M"), Some(512 << 20));
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size("4gib"), Some(4 << 30));
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("2TiB"), Some(2 << 40));
        assert_eq!(parse_size("2T"), Some(2 << 40));
        assert_eq!(parse_size("99999999999999999999999"), Some(u64::MAX));
        assert_eq!(parse_size("16777216TiB"), Some(u64::MAX));
        for bad in [
            "", "GiB", " 4GiB", "4GiB ", "4GB", "4 KB", "4Gi", "1.5GiB", "-1", "_4", "4_", "4__0",
            "4PiB", "0x10",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strings_unescape_and_bound() {
        assert_eq!(
            string::<8>(Value::String(r#"a\"b\\c"#)).as_deref(),
            Ok(r#"a"b\c"#)
        );
        assert_eq!(string::<2>(Value::String("ab")).as_deref(), Ok("ab"));
        assert_eq!(
            string::<2>(Value::String("abc")),
            Err(ErrorKind::TooLong { max: 2 })
        );
        // A two-byte character does not fit in the one byte left.
        assert_eq!(
            string::<2>(Value::String("a\u{e9}")),
            Err(ErrorKind::TooLong { max: 2 })
        );
        assert_eq!(
            string::<2>(Value::Integer(1)),
            Err(ErrorKind::WrongType { expected: STRING })
        );
    }

    #[test]
    fn integers() {
        assert_eq!(integer(Value::Integer(5), (1, 9)), Ok(5));
        assert_eq!(
            integer(Value::Integer(-1), (0, 9)),
            Err(out_of_range(0, 9, Unit::Number))
        );
        assert_eq!(
            integer(Value::Integer(i128::MAX), (0, 9)),
            Err(out_of_range(0, 9, Unit::Number))
        );
        assert_eq!(
            integer(Value::String("5"), (0, 9)),
            Err(ErrorKind::WrongType {
                expected: INTEGER_UNQUOTED
            })
        );
        assert_eq!(
            integer(Value::Boolean(true), (0, 9)),
            Err(ErrorKind::WrongType { expected: INTEGER })
        );
        assert_eq!(integer_as::<u8>(Value::Integer(90), (1, 90)), Ok(90_u8));
    }

    #[test]
    fn addresses_match_core_net() {
        for ok in [
            "127.0.0.1:6379",
            "0.0.0.0:0",
            "[::1]:6379",
            "[::]:65535",
            "[fe80::1%2]:80",
            "[::ffff:10.0.0.1]:1",
        ] {
            assert_eq!(
                socket_address(Value::String(ok)),
                Ok(ok.parse().unwrap()),
                "{ok}"
            );
        }
        for bad in [
            "localhost:6379",
            "127.0.0.1",
            "127.0.0.1:65536",
            "::1:6379",
            "[::1]",
            "127.000.0.1:1",
            "",
        ] {
            assert_eq!(
                socket_address(Value::String(bad)),
                Err(ErrorKind::InvalidValue { expected: ADDRESS }),
                "{bad}"
            );
        }
    }
}
