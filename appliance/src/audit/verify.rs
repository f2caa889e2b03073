//! Checking a whole audit log: every entry's hash and signature, and the
//! sequence from 1 with no gap. The first failure is reported with the
//! sequence number where the log stops being trustworthy.

use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::format::{self, Entry, LineError};

/// A log that verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Also the number of entries: they count from 1 with no gap.
    pub last_seq: u64,
    pub last_hash: [u8; 32],
    /// Bytes of whole, verified entries.
    pub valid_bytes: u64,
    /// Bytes after the last newline: an entry cut short (a crash while it
    /// was written, or a truncation inside it).
    pub cut_tail_bytes: u64,
}

/// Why a log does not verify. Each names the entry where trust ends.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no audit log")]
    Missing,
    #[error("cannot read the audit log: {0}")]
    Io(String),
    #[error("entry {seq} (line {line}): {error}")]
    Entry {
        seq: u64,
        line: u64,
        error: LineError,
    },
    #[error("line {line} holds entry {found} where entry {expected} belongs: entries were deleted, reordered or inserted")]
    Sequence {
        line: u64,
        expected: u64,
        found: u64,
    },
    #[error("the log is not text (line {line}, after entry {after})")]
    NotText { line: u64, after: u64 },
}

/// Verifies the log at `path` with `public`.
pub fn verify_file(path: &Path, public: &VerifyingKey) -> Result<Report, VerifyError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(VerifyError::Missing),
        Err(e) => return Err(VerifyError::Io(e.to_string())),
    };
    verify_bytes(&bytes, public, |_| {})
}

/// Verifies `bytes`, calling `each` with every entry in order.
pub fn verify_bytes(
    bytes: &[u8],
    public: &VerifyingKey,
    mut each: impl FnMut(&Entry),
) -> Result<Report, VerifyError> {
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let (mut seq, mut hash) = (0u64, [0u8; 32]);
    for (i, raw) in bytes[..whole].split_inclusive(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let raw = &raw[..raw.len() - 1];
        let text =
            std::str::from_utf8(raw).map_err(|_| VerifyError::NotText { line, after: seq })?;
        let expected = seq + 1;
        let entry = format::check(text, &hash, public).map_err(|error| {
            // Name the entry by the number it claims when it has one.
            let claimed = text
                .split('\t')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(expected);
            match error {
                // A well-formed entry out of place is a sequence break, not
                // an edit: say which.
                LineError::Hash if claimed != expected => VerifyError::Sequence {
                    line,
                    expected,
                    found: claimed,
                },
                error => VerifyError::Entry {
                    seq: claimed,
                    line,
                    error,
                },
            }
        })?;
        if entry.seq != expected {
            return Err(VerifyError::Sequence {
                line,
                expected,
                found: entry.seq,
            });
        }
        each(&entry);
        seq = entry.seq;
        hash = entry.hash;
    }
    Ok(Report {
        last_seq: seq,
        last_hash: hash,
        valid_bytes: whole as u64,
        cut_tail_bytes: (bytes.len() - whole) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::format::{line, Event};
    use ed25519_dalek::SigningKey;

    fn log(n: u64) -> (Vec<String>, SigningKey) {
        let key = SigningKey::from_bytes(&[9; 32]);
        let mut hash = [0; 32];
        let lines = (1..=n)
            .map(|seq| {
                let event = Event {
                    actor: "admin-token".into(),
                    action: format!("action {seq}"),
                    detail: "from 127.0.0.1".into(),
                };
                let (text, h) = line(&hash, seq, 1000 + seq, &event, &key);
                hash = h;
                text
            })
            .collect();
        (lines, key)
    }

    fn check(lines: &[String], key: &SigningKey) -> Result<Report, VerifyError> {
        verify_bytes(lines.concat().as_bytes(), &key.verifying_key(), |_| {})
    }

    #[test]
    fn an_intact_log_verifies() {
        let (lines, key) = log(5);
        let report = check(&lines, &key).unwrap();
        assert_eq!((report.last_seq, report.cut_tail_bytes), (5, 0));
        assert_eq!(check(&[], &key).unwrap().last_seq, 0);
    }

    #[test]
    fn each_kind_of_tampering_names_its_entry() {
        let (lines, key) = log(6);
        // Edited: entry 3's action.
        let mut edited = lines.clone();
        edited[2] = edited[2].replacen("action 3", "action 9", 1);
        assert!(matches!(
            check(&edited, &key),
            Err(VerifyError::Entry {
                seq: 3,
                error: LineError::Hash,
                ..
            })
        ));
        // Deleted: entry 4.
        let mut deleted = lines.clone();
        deleted.remove(3);
        assert!(matches!(
            check(&deleted, &key),
            Err(VerifyError::Sequence {
                expected: 4,
                found: 5,
                ..
            })
        ));
        // Reordered: 2 and 3 swapped.
        let mut reordered = lines.clone();
        reordered.swap(1, 2);
        assert!(matches!(
            check(&reordered, &key),
            Err(VerifyError::Sequence {
                expected: 2,
                found: 3,
                ..
            })
        ));
        // Truncated inside entry 6.
        let mut cut = lines.concat().into_bytes();
        cut.truncate(cut.len() - 10);
        let report = verify_bytes(&cut, &key.verifying_key(), |_| {}).unwrap();
        assert_eq!(report.last_seq, 5);
        assert!(report.cut_tail_bytes > 0);
        // Rewritten from entry 4 on with fresh hashes, by another key.
        let other = SigningKey::from_bytes(&[10; 32]);
        let hash = check(&lines[..3], &key).unwrap().last_hash;
        let event = Event {
            actor: "admin-token".into(),
            action: "nothing happened".into(),
            detail: String::new(),
        };
        let (forged, _) = line(&hash, 4, 2000, &event, &other);
        let mut rewritten = lines[..3].to_vec();
        rewritten.push(forged);
        assert!(matches!(
            check(&rewritten, &key),
            Err(VerifyError::Entry {
                seq: 4,
                error: LineError::Signature,
                ..
            })
        ));
    }
}
