//! The release version of a slot and of a bundle: `MAJOR.MINOR.PATCH`,
//! compared as numbers, so that "older than installed" has one meaning.

use std::fmt;
use std::str::FromStr;

/// A release version. Ordered by major, then minor, then patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes (a format an older build cannot open).
    pub major: u32,
    /// Compatible additions.
    pub minor: u32,
    /// Fixes.
    pub patch: u32,
}

/// Why a version string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("version {text:?} is not MAJOR.MINOR.PATCH (three decimal numbers)")]
pub struct VersionError {
    /// The text refused.
    pub text: String,
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = || VersionError { text: text.into() };
        let mut parts = text.split('.');
        let mut number = || -> Result<u32, VersionError> {
            let part = parts.next().ok_or_else(refuse)?;
            // Digits only: no sign, no spaces, no leading zeros but "0".
            if part.is_empty()
                || !part.bytes().all(|b| b.is_ascii_digit())
                || (part.len() > 1 && part.starts_with('0'))
            {
                return Err(refuse());
            }
            part.parse().map_err(|_| refuse())
        };
        let version = Version {
            major: number()?,
            minor: number()?,
            patch: number()?,
        };
        if parts.next().is_some() {
            return Err(refuse());
        }
        Ok(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compares_and_prints() {
        let v: Version = "1.10.2".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.to_string(), "1.10.2");
        let older: Version = "1.9.30".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(older < v, "numbers, not text: 9 < 10");
    }

    #[test]
    fn refuses_what_is_not_three_numbers() {
        for text in [
            "", "1", "1.2", "1.2.3.4", "1.2.x", "01.2.3", "-1.2.3", "1.2.3 ", "1..3",
        ] {
            assert!(text.parse::<Version>().is_err(), "{text:?}");
        }
    }
}
