//! `veltrix audit verify | tail`: the audit log read offline, from its
//! directory (`<data_dir>/audit`), with or without a running daemon.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context as _};
use ed25519_dalek::VerifyingKey;

use crate::audit::format::{hex, Entry};
use crate::audit::verify::{verify_bytes, Report};
use crate::audit::{LOG_FILE, PUBLIC_FILE};

/// The public key given (64 hex digits), else the one beside the log.
fn public_key(dir: &Path, given: Option<&str>) -> anyhow::Result<VerifyingKey> {
    let text = match given {
        Some(text) => text.to_string(),
        None => {
            let path = dir.join(PUBLIC_FILE);
            std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read the public key {} (give --public-key)",
                    path.display()
                )
            })?
        }
    };
    veltrix_update::bundle::decode_verifying_key(&text)
        .map_err(|e| anyhow::anyhow!("the public key: {e}"))
}

fn read(dir: &Path, public: Option<&str>, each: impl FnMut(&Entry)) -> anyhow::Result<Report> {
    let key = public_key(dir, public)?;
    let path = dir.join(LOG_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    verify_bytes(&bytes, &key, each)
        .map_err(|e| anyhow::anyhow!("{}: fails verification: {e}", path.display()))
}

/// Checks every entry; an error names where trust ends.
pub fn verify(dir: &Path, public: Option<&str>, out: &mut impl Write) -> anyhow::Result<()> {
    let report = read(dir, public, |_| {})?;
    writeln!(
        out,
        "audit log verifies: {} entries, the last {} (hash {})",
        report.last_seq,
        report.last_seq,
        hex(&report.last_hash)
    )?;
    if report.cut_tail_bytes > 0 {
        bail!(
            "{} bytes after entry {} are an entry cut short (a crash while it was written, or the log was truncated)",
            report.cut_tail_bytes,
            report.last_seq
        );
    }
    Ok(())
}

/// Prints the last `n` entries (verified first).
pub fn tail(dir: &Path, n: usize, out: &mut impl Write) -> anyhow::Result<()> {
    let mut entries = std::collections::VecDeque::with_capacity(n);
    read(dir, None, |e| {
        if entries.len() == n {
            entries.pop_front();
        }
        if n > 0 {
            entries.push_back(e.clone());
        }
    })?;
    for e in entries {
        writeln!(
            out,
            "{:>6}  {}  {}  {}  {}",
            e.seq, e.unix_ms, e.event.actor, e.event.action, e.event.detail
        )?;
    }
    Ok(())
}
