//! Key files: an Ed25519 key as 64 hexadecimal digits and a newline. The
//! signing key (secret) stays with whoever builds releases; the verifying
//! key goes into every image (`/etc/veltrix/update-keys/`).

use ed25519_dalek::{SigningKey, VerifyingKey};

fn hex(bytes: &[u8; 32]) -> String {
    let mut text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    text
}

fn unhex(text: &str) -> Result<[u8; 32], String> {
    let digits = text.trim();
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "a key file holds 64 hexadecimal digits; this one holds {} characters",
            digits.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A signing key's file text.
pub fn encode_signing_key(key: &SigningKey) -> String {
    hex(&key.to_bytes())
}

/// A verifying key's file text.
pub fn encode_verifying_key(key: &VerifyingKey) -> String {
    hex(key.as_bytes())
}

/// Reads a signing key file's text.
pub fn decode_signing_key(text: &str) -> Result<SigningKey, String> {
    Ok(SigningKey::from_bytes(&unhex(text)?))
}

/// Reads a verifying key file's text; refuses bytes that are not a point
/// of the curve.
pub fn decode_verifying_key(text: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&unhex(text)?).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_garbage_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let text = encode_signing_key(&key);
        assert_eq!(text.len(), 65);
        let back = decode_signing_key(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.to_bytes(), key.to_bytes());
        let public = encode_verifying_key(&key.verifying_key());
        let back = decode_verifying_key(&public).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, key.verifying_key());
        assert!(decode_signing_key("abc").is_err());
        assert!(decode_verifying_key(&"zz".repeat(32)).is_err());
    }
}
