//! The audit log's entries: one line each, hash-chained and signed.
//!
//! A line is six tab-separated fields and a newline:
//!
//! ```text
//! seq  unix_ms  actor  action  detail  hash:signature
//! ```
//!
//! - `seq` counts from 1 with no gap;
//! - `unix_ms` is when the entry was written;
//! - `actor` (who: `admin-token`, `anonymous`, `user:NAME`, `veltrixd`),
//!   `action` (what: `login`, `admin POST /api/gc`, `start`, ...) and
//!   `detail` (from where, the outcome) are text with `%`, tab, newline,
//!   carriage return and other control bytes escaped as `%XX`;
//! - `hash` is SHA-256 (hex) of the domain `veltrix-audit-v1\0`, the
//!   previous entry's hash (32 zero bytes before the first), `seq` as u64
//!   little-endian, and the line's first five fields as written, tabs
//!   included;
//! - `signature` is Ed25519 (hex) over `veltrix-audit-sign-v1\0`, `seq` as
//!   u64 little-endian and the hash.
//!
//! So an edited entry breaks its own hash, a deleted or moved one breaks
//! the sequence, and a log rewritten with fresh hashes fails every
//! signature without the signing key (kept apart: `docs/security.md`).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

const HASH_DOMAIN: &[u8] = b"veltrix-audit-v1\0";
const SIGN_DOMAIN: &[u8] = b"veltrix-audit-sign-v1\0";

/// What happened, as the log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// One entry as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub unix_ms: u64,
    pub event: Event,
    pub hash: [u8; 32],
    pub signature: [u8; 64],
}

/// The line of entry `seq`, chained on `previous`, signed with `key`.
pub fn line(
    previous: &[u8; 32],
    seq: u64,
    unix_ms: u64,
    event: &Event,
    key: &SigningKey,
) -> (String, [u8; 32]) {
    let body = format!(
        "{seq}\t{unix_ms}\t{}\t{}\t{}",
        escape(&event.actor),
        escape(&event.action),
        escape(&event.detail)
    );
    let hash = chain(previous, seq, &body);
    let signature = key.sign(&signed_bytes(seq, &hash));
    let line = format!("{body}\t{}:{}\n", hex(&hash), hex(&signature.to_bytes()));
    (line, hash)
}

fn chain(previous: &[u8; 32], seq: u64, body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(previous);
    h.update(seq.to_le_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

fn signed_bytes(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut out = SIGN_DOMAIN.to_vec();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(hash);
    out
}

/// Why a line is not a valid entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("does not parse: {0}")]
    Parse(&'static str),
    #[error("its hash does not match its content and its predecessor's hash (edited)")]
    Hash,
    #[error("its signature does not verify with the public key (the log was rewritten, or the key is not this log's)")]
    Signature,
}

/// Reads one line (without its newline), checks that it chains on
/// `previous` and that `public` signed it.
pub fn check(text: &str, previous: &[u8; 32], public: &VerifyingKey) -> Result<Entry, LineError> {
    let (body, seal) = text.rsplit_once('\t').ok_or(LineError::Parse("fields"))?;
    let fields: Vec<&str> = body.split('\t').collect();
    let [seq, unix_ms, actor, action, detail] = fields[..] else {
        return Err(LineError::Parse("field count"));
    };
    let seq: u64 = seq.parse().map_err(|_| LineError::Parse("seq"))?;
    let unix_ms: u64 = unix_ms.parse().map_err(|_| LineError::Parse("time"))?;
    let (hash_hex, signature_hex) = seal.split_once(':').ok_or(LineError::Parse("seal"))?;
    let hash: [u8; 32] = unhex(hash_hex).ok_or(LineError::Parse("hash"))?;
    let signature: [u8; 64] = unhex(signature_hex).ok_or(LineError::Parse("signature"))?;
    let event = Event {
        actor: unescape(actor).ok_or(LineError::Parse("actor"))?,
        action: unescape(action).ok_or(LineError::Parse("action"))?,
        detail: unescape(detail).ok_or(LineError::Parse("detail"))?,
    };
    if chain(previous, seq, body) != hash {
        return Err(LineError::Hash);
    }
    public
        .verify(
            &signed_bytes(seq, &hash),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| LineError::Signature)?;
    Ok(Entry {
        seq,
        unix_ms,
        event,
        hash,
        signature,
    })
}

/// `%XX` for `%`, and every control byte (tab and newline among them).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || c.is_ascii_control() {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c.is_ascii_control() {
            return None;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let code: String = chars.by_ref().take(2).collect();
        let byte = u8::from_str_radix(&code, 16)
            .ok()
            .filter(|_| code.len() == 2)?;
        out.push(char::from(byte));
    }
    Some(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    proptest! {
        #[test]
        fn any_event_round_trips(actor: String, action: String, detail: String, seq: u64, ms: u64) {
            let event = Event { actor, action, detail };
            let previous = [3; 32];
            let (line, hash) = line(&previous, seq, ms, &event, &key());
            prop_assert!(line.ends_with('\n'));
            prop_assert_eq!(line.matches('\n').count(), 1);
            let entry = check(line.trim_end_matches('\n'), &previous, &key().verifying_key()).unwrap();
            prop_assert_eq!(entry.event, event);
            prop_assert_eq!((entry.seq, entry.unix_ms, entry.hash), (seq, ms, hash));
        }
    }

    #[test]
    fn a_changed_byte_or_predecessor_or_key_is_refused() {
        let event = Event {
            actor: "admin-token".into(),
            action: "admin POST /api/gc".into(),
            detail: "from 10.0.0.1".into(),
        };
        let public = key().verifying_key();
        let (text, _) = line(&[0; 32], 1, 5, &event, &key());
        let text = text.trim_end();
        assert!(check(text, &[0; 32], &public).is_ok());
        assert_eq!(check(text, &[1; 32], &public), Err(LineError::Hash));
        let edited = text.replacen("gc", "GC", 1);
        assert_eq!(check(&edited, &[0; 32], &public), Err(LineError::Hash));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(check(text, &[0; 32], &other), Err(LineError::Signature));
        assert!(matches!(
            check(&text[..text.len() - 1], &[0; 32], &public),
            Err(LineError::Parse(_))
        ));
    }
}
