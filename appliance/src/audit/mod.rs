//! The audit log: who did what to the appliance, appended and made durable
//! before the action is acknowledged, each entry hash-chained on the one
//! before and signed ([`format`] has the layout).
//!
//! It lives in `<data_dir>/audit/`: `audit.log`, and the Ed25519 key pair
//! that signs it, made at the first start (`signing.key`, mode 0600, and
//! `signing.pub`). `veltrix audit verify` checks a log with the public key
//! (pin it with `--public-key`: whoever can rewrite the log may replace
//! `signing.pub` too); `veltrix audit tail` shows the last entries.
//!
//! What is recorded: the daemon's start (with the configuration's SHA-256)
//! and clean stop, every request to the admin port that changes state (or
//! is refused for want of the token), every login on the RESP port, and
//! every reload of certificates (SIGHUP).

pub mod format;
pub mod verify;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use veltrix_update::bundle::{decode_signing_key, encode_signing_key, encode_verifying_key};

pub use format::Event;

pub const LOG_FILE: &str = "audit.log";
pub const KEY_FILE: &str = "signing.key";
pub const PUBLIC_FILE: &str = "signing.pub";

/// An open audit log, appended to from any thread.
pub struct AuditLog {
    inner: Mutex<Tail>,
    key: SigningKey,
    dir: PathBuf,
}

struct Tail {
    file: File,
    seq: u64,
    hash: [u8; 32],
}

impl AuditLog {
    /// Opens (or starts) the log in `dir`. A log that fails verification
    /// is kept aside as `audit.log.broken-<unix ms>` and a new one starts,
    /// its first entry naming the old one and why: the appliance keeps
    /// running, and nothing of the old log is lost. A last line cut short
    /// (a crash while it was written: never acknowledged) is cut off.
    pub fn open(dir: &Path) -> anyhow::Result<AuditLog> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the audit directory {}", dir.display()))?;
        let key = signing_key(dir)?;
        let path = dir.join(LOG_FILE);
        let mut broken = None;
        let (seq, hash) = match verify::verify_file(&path, &key.verifying_key()) {
            Ok(report) => {
                if report.cut_tail_bytes > 0 {
                    tracing::warn!(
                        "audit log: a last entry cut short ({} bytes after entry {}) is cut off",
                        report.cut_tail_bytes,
                        report.last_seq
                    );
                    let file = OpenOptions::new().write(true).open(&path)?;
                    file.set_len(report.valid_bytes)?;
                    file.sync_all()?;
                }
                (report.last_seq, report.last_hash)
            }
            Err(verify::VerifyError::Missing) => (0, [0; 32]),
            Err(error) => {
                let aside = dir.join(format!("{LOG_FILE}.broken-{}", engine::wall_clock_ms()));
                std::fs::rename(&path, &aside)?;
                tracing::error!(
                    "audit log {} fails verification ({error}); kept as {} and a new log starts",
                    path.display(),
                    aside.display()
                );
                broken = Some(format!("{} ({error})", aside.display()));
                (0, [0; 32])
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        if seq == 0 {
            sync_dir(dir)?;
        }
        let log = AuditLog {
            inner: Mutex::new(Tail { file, seq, hash }),
            key,
            dir: dir.to_path_buf(),
        };
        if let Some(what) = broken {
            log.append(Event {
                actor: "veltrixd".into(),
                action: "audit log replaced".into(),
                detail: format!("the previous log failed verification: {what}"),
            })?;
        }
        Ok(log)
    }

    /// Appends `event` and makes it durable; returns its sequence number.
    /// The caller acknowledges the action only after this returns `Ok`.
    pub fn append(&self, event: Event) -> std::io::Result<u64> {
        let mut tail = self.inner.lock().expect("an audit append panicked");
        let seq = tail.seq + 1;
        let (line, hash) =
            format::line(&tail.hash, seq, engine::wall_clock_ms(), &event, &self.key);
        tail.file.write_all(line.as_bytes())?;
        tail.file.sync_data()?;
        tail.seq = seq;
        tail.hash = hash;
        Ok(seq)
    }

    /// Appends `event`; a failure is logged, not returned (for events whose
    /// action cannot be refused any more, such as a stop).
    pub fn record(&self, event: Event) {
        if let Err(e) = self.append(event) {
            tracing::error!("audit log {}: append failed: {e}", self.dir.display());
        }
    }

    /// The last entry's sequence number.
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().expect("an audit append panicked").seq
    }

    /// The public key that verifies this log.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

/// The signing key in `dir`, made (with its public half) at the first
/// open. An existing key file readable by group or others is refused.
fn signing_key(dir: &Path) -> anyhow::Result<SigningKey> {
    let path = dir.join(KEY_FILE);
    match File::open(&path) {
        Ok(mut file) => {
            let mode = file.metadata()?.permissions().mode();
            anyhow::ensure!(
                mode & 0o077 == 0,
                "the audit signing key {} is readable by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            );
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            decode_signing_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            let key = SigningKey::from_bytes(&seed);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(encode_signing_key(&key).as_bytes())?;
            file.sync_all()?;
            let public = dir.join(PUBLIC_FILE);
            std::fs::write(&public, encode_verifying_key(&key.verifying_key()))?;
            File::open(&public)?.sync_all()?;
            sync_dir(dir)?;
            tracing::info!(
                "audit log: a new signing key; its public key is {} (record it apart from this machine)",
                format::hex(key.verifying_key().as_bytes())
            );
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
