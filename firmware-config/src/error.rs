//! The error [`parse`](crate::parse) returns: where, which key, and what was expected.

use core::fmt;

use crate::limits::ERROR_NAME_BYTES_MAX;
use crate::render::write_size;

/// Why a configuration was rejected, and where.
///
/// Every error names a position in the input: `line` and `column` are 1-based,
/// and `column` counts characters (Unicode scalar values), not bytes. The
/// position is always inside the input: `line` is at most the number of lines,
/// and `column` at most one past the last character of that line.
///
/// `Display` renders one line, for example:
///
/// ```text
/// line 7, column 1: key `comit_interval_us` in [engine]: unknown key; did you mean `commit_interval_us`?
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the offending key, value or section header.
    pub line: u32,
    /// 1-based column, in characters, of the offending token.
    pub column: u32,
    /// The section the offending key is in: `"[server]"`, `"[tls]"`,
    /// `"[engine]"` or `"[[namespace]]"`; `None` at the top level and for
    /// errors about a section header itself.
    pub section: Option<&'static str>,
    /// The offending key as written; for errors about a section header, the
    /// header as written with its brackets (`"[engin]"`); empty when the error
    /// is about no particular key (a line that does not parse as far as its
    /// key, a line or input that is too long). Names longer than
    /// [`ERROR_NAME_BYTES_MAX`] bytes are cut short.
    pub key: heapless::String<ERROR_NAME_BYTES_MAX, u8>,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong with a configuration. `Display` renders the message that
/// follows the position and key in [`ConfigError`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is longer than `max` bytes.
    InputTooLong {
        /// [`INPUT_BYTES_MAX`](crate::INPUT_BYTES_MAX).
        max: u32,
    },
    /// A line is longer than `max` bytes, not counting its line ending.
    LineTooLong {
        /// [`LINE_BYTES_MAX`](crate::LINE_BYTES_MAX).
        max: u32,
    },
    /// The text is not in the supported TOML subset.
    Syntax {
        /// What the parser expected at this column.
        expected: &'static str,
    },
    /// A section header names no known section.
    UnknownSection {
        /// The closest known header, with its brackets, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A key is not in its section's schema.
    UnknownKey {
        /// The closest known key, if one is close (in any section).
        suggestion: Option<&'static str>,
        /// The section of `suggestion` when it is not the section the key
        /// was found in.
        suggested_section: Option<&'static str>,
    },
    /// A key, or a section other than `[[namespace]]`, is given twice.
    Duplicate {
        /// The line where it was first given.
        first_line: u32,
    },
    /// The value has the wrong type (a string where an integer belongs, ...).
    WrongType {
        /// The type the key takes.
        expected: &'static str,
    },
    /// The value has the right type but is not one of the accepted values.
    InvalidValue {
        /// What the key accepts.
        expected: &'static str,
    },
    /// A number or size is outside the key's range.
    OutOfRange {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
        /// Whether the bounds count bytes (and so render as `4KiB`).
        unit: Unit,
    },
    /// A string is longer than the key allows.
    TooLong {
        /// Most bytes the key takes, after escapes are resolved.
        max: u32,
    },
    /// More `[[namespace]]` tables than allowed.
    TooMany {
        /// [`NAMESPACES_MAX`](crate::NAMESPACES_MAX).
        max: u32,
    },
    /// A key that another key makes necessary is absent (or empty).
    Missing {
        /// When it is required, e.g. "when `enabled = true`".
        required: &'static str,
    },
    /// Two keys that exclude each other are both given.
    Conflict {
        /// The other key.
        with: &'static str,
    },
    /// Values that are each in range do not fit together.
    Inconsistent {
        /// The relation that must hold, e.g. "`batch_bytes_max` <= `segment_bytes`".
        requires: &'static str,
    },
}

/// The unit of an [`ErrorKind::OutOfRange`] bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A plain number: a count, microseconds, seconds, a percentage.
    Number,
    /// Bytes; rendered with the largest binary unit that divides them.
    Bytes,
}

impl ConfigError {
    /// Builds an error, cutting `key` short at a character boundary if it is
    /// longer than [`ERROR_NAME_BYTES_MAX`] bytes.
    pub(crate) fn new(
        line: u32,
        column: u32,
        section: Option<&'static str>,
        key: &str,
        kind: ErrorKind,
    ) -> Self {
        let mut end = key.len().min(ERROR_NAME_BYTES_MAX);
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        let mut name = heapless::String::new();
        // Cannot fail: `end` is at most the capacity.
        let pushed = name.push_str(&key[..end]);
        debug_assert!(pushed.is_ok());
        Self {
            line,
            column,
            section,
            key: name,
            kind,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: ", self.line, self.column)?;
        if self.key.starts_with('[') {
            write!(f, "section `{}`: ", self.key)?;
        } else if !self.key.is_empty() {
            write!(f, "key `{}` ", self.key)?;
            match self.section {
                Some(section) => write!(f, "in {section}: ")?,
                None => f.write_str("at top level: ")?,
            }
        }
        write!(f, "{}", self.kind)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InputTooLong { max } => write!(f, "input is longer than {max} bytes"),
            Self::LineTooLong { max } => write!(f, "line is longer than {max} bytes"),
            Self::Syntax { expected } => write!(f, "syntax error: expected {expected}"),
            Self::UnknownSection { suggestion } => {
                f.write_str("unknown section")?;
                if let Some(suggestion) = suggestion {
                    write!(f, "; did you mean `{suggestion}`?")?;
                }
                Ok(())
            }
            Self::UnknownKey {
                suggestion,
                suggested_section,
            } => {
                f.write_str("unknown key")?;
                match (suggestion, suggested_section) {
                    (Some(key), Some(section)) => {
                        write!(f, "; did you mean `{key}` in {section}?")
                    }
                    (Some(key), None) => write!(f, "; did you mean `{key}`?"),
                    (None, _) => Ok(()),
                }
            }
            Self::Duplicate { first_line } => {
                write!(f, "given twice; first given on line {first_line}")
            }
            Self::WrongType { expected } => write!(f, "wrong type: expected {expected}"),
            Self::InvalidValue { expected } => write!(f, "invalid value: expected {expected}"),
            Self::OutOfRange { min, max, unit } => {
                f.write_str("out of range: expected ")?;
                match unit {
                    Unit::Number => write!(f, "{min}..={max}"),
                    Unit::Bytes => {
                        write_size(f, min)?;
                        f.write_str("..=")?;
                        write_size(f, max)
                    }
                }
            }
            Self::TooLong { max } => write!(f, "string is longer than {max} bytes"),
            Self::TooMany { max } => write!(f, "too many tables: at most {max} are allowed"),
            Self::Missing { required } => write!(f, "missing: required {required}"),
            Self::Conflict { with } => write!(f, "cannot be combined with `{with}`"),
            Self::Inconsistent { requires } => write!(f, "inconsistent: requires {requires}"),
        }
    }
}

/// `ConfigError` is `std::error::Error` too: since Rust 1.81 that trait is
/// `core::error::Error`, so no `std` feature is needed for this.
impl core::error::Error for ConfigError {}

// Small enough to return by value everywhere (clippy's `result_large_err`
// draws the line at 128 bytes); there is no allocator to box it into.
const _: () = assert!(core::mem::size_of::<ConfigError>() <= 128);
