//! The admin port's token (`[auth] admin_token_file`): read at start,
//! failing closed, and compared in constant time.

use std::os::unix::fs::PermissionsExt;

use anyhow::{anyhow, bail};

/// Shortest token accepted, in bytes.
pub const TOKEN_BYTES_MIN: usize = 16;

/// The admin token, or `None` when `[auth]` names no file (no token is
/// asked). A file that is missing, readable by group or others, or holds a
/// token shorter than [`TOKEN_BYTES_MIN`] stops the start.
pub fn load_admin_token(auth: &firmware_config::Auth) -> anyhow::Result<Option<Vec<u8>>> {
    let path = auth.admin_token_file.as_str();
    if path.is_empty() {
        return Ok(None);
    }
    let setting = format!("[auth] admin_token_file = {path:?}");
    let metadata = std::fs::metadata(path).map_err(|e| anyhow!("{setting}: cannot read: {e}"))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!("{setting}: readable by group or others (mode {mode:o}); chmod 600 it");
    }
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{setting}: cannot read: {e}"))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < TOKEN_BYTES_MIN {
        bail!("{setting}: the token (its first line) is shorter than {TOKEN_BYTES_MIN} bytes");
    }
    Ok(Some(token.as_bytes().to_vec()))
}

/// Whether `given` is `expected`, taking the same time wherever they
/// differ (only the length shows).
pub fn token_matches(expected: &[u8], given: &[u8]) -> bool {
    let differ = expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    expected.len() == given.len() && differ == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_whole() {
        assert!(token_matches(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!token_matches(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!token_matches(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!token_matches(b"0123456789abcdef", b"0123456789abcdef0"));
        assert!(!token_matches(b"0123456789abcdef", b""));
    }
}
