//! The admin API of updates (`docs/upgrades.md`):
//!
//! - `GET /api/update`: the running slot and version, the boot-state record,
//!   and what each slot holds;
//! - `POST /api/update/install` with a bundle as the body: verified, written
//!   into the slot that is not the last good one, read back, and put on
//!   trial for the next boot;
//! - `POST /api/update/rollback`: give up a slot on trial, or put the other
//!   slot's release on trial.
//!
//! Available when veltrixd runs from an A/B slot (the init sets
//! `VELTRIX_SLOT`); elsewhere every route says why not (409).

pub mod slots;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use veltrix_update::boot_state::Slot;
use veltrix_update::bundle;

/// The largest body `install` reads (a slot partition is 48 MiB).
pub const BUNDLE_BYTES_MAX: usize = 64 << 20;
const SYS_BLOCK: &str = "/sys/block";
const VERSION_FILE: &str = "/etc/veltrix/version";
const TRUSTED_KEYS_DIR: &str = "/etc/veltrix/update-keys";

/// The block device of the GPT partition named `name` (by `PARTNAME` in
/// sysfs, never by kernel name).
fn find_partition(sys_block: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for disk in std::fs::read_dir(sys_block)? {
        let disk = disk?.path();
        for entry in std::fs::read_dir(&disk)? {
            let uevent = entry?.path().join("uevent");
            let Ok(text) = std::fs::read_to_string(&uevent) else {
                continue;
            };
            if text
                .lines()
                .any(|l| l.strip_prefix("PARTNAME=") == Some(name))
            {
                if let Some(dev) = text.lines().find_map(|l| l.strip_prefix("DEVNAME=")) {
                    return Ok(Path::new("/dev").join(dev));
                }
            }
        }
    }
    anyhow::bail!("no partition named {name}")
}

/// This appliance's update disk, when it runs from a slot.
fn disk() -> anyhow::Result<slots::Disk> {
    let running = match std::env::var("VELTRIX_SLOT").as_deref() {
        Ok("a") => Slot::A,
        Ok("b") => Slot::B,
        _ => anyhow::bail!(
            "this veltrixd was not started from an A/B slot (no VELTRIX_SLOT): updates need the appliance image"
        ),
    };
    let installed = std::fs::read_to_string(VERSION_FILE)
        .context("cannot read the installed version")?
        .trim()
        .parse()?;
    let mut trusted = Vec::new();
    for entry in std::fs::read_dir(TRUSTED_KEYS_DIR).context("no trusted update keys")? {
        let text = std::fs::read_to_string(entry?.path())?;
        trusted.push(bundle::decode_verifying_key(&text).map_err(|e| anyhow::anyhow!(e))?);
    }
    let sys = Path::new(SYS_BLOCK);
    Ok(slots::Disk {
        boot_state: find_partition(sys, "veltrix-boot-state")?,
        slots: [
            find_partition(sys, "veltrix-slot-a")?,
            find_partition(sys, "veltrix-slot-b")?,
        ],
        running,
        installed,
        trusted,
    })
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn status_json(status: &slots::Status) -> String {
    let state = status.loaded.state;
    let slots: Vec<String> = status
        .slots
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                json_string(s.slot.name()),
                s.version
                    .map_or("null".into(), |v| json_string(&v.to_string()))
            )
        })
        .collect();
    format!(
        "{{\"running\":{},\"version\":{},\"active\":{},\"tries_left\":{},\"last_good\":{},\"on_trial\":{},\"sequence\":{},\"slots\":{{{}}}}}\n",
        json_string(status.running.name()),
        json_string(&status.installed.to_string()),
        json_string(state.active.name()),
        state.tries_left,
        json_string(state.last_good.name()),
        state.on_trial(),
        status.loaded.sequence,
        slots.join(",")
    )
}

fn error_json(e: &anyhow::Error) -> String {
    format!("{{\"error\":{}}}\n", json_string(&format!("{e:#}")))
}

/// Answers one `/api/update*` request.
pub fn respond(mut request: tiny_http::Request, path: &str) {
    let method = request.method().clone();
    let (status, body) = match (method, path) {
        (tiny_http::Method::Get, "/api/update") => match disk().and_then(|d| slots::status(&d)) {
            Ok(s) => (200, status_json(&s)),
            Err(e) => (409, error_json(&e)),
        },
        (tiny_http::Method::Post, "/api/update/install") => {
            let mut bytes = Vec::new();
            let read = request
                .as_reader()
                .take(BUNDLE_BYTES_MAX as u64 + 1)
                .read_to_end(&mut bytes);
            match (read, disk()) {
                (Err(e), _) => (400, error_json(&anyhow::anyhow!("cannot read the bundle: {e}"))),
                (_, _) if bytes.len() > BUNDLE_BYTES_MAX => (
                    413,
                    error_json(&anyhow::anyhow!("a bundle is at most {BUNDLE_BYTES_MAX} bytes")),
                ),
                (_, Err(e)) => (409, error_json(&e)),
                (Ok(_), Ok(disk)) => match slots::install(&disk, &bytes) {
                    Ok((slot, version)) => (
                        200,
                        format!(
                            "{{\"installed\":{},\"slot\":{},\"tries\":{},\"next\":\"reboot to boot it on trial\"}}\n",
                            json_string(&version.to_string()),
                            json_string(slot.name()),
                            veltrix_update::boot_state::TRIES_DEFAULT
                        ),
                    ),
                    Err(e) => (400, error_json(&e)),
                },
            }
        }
        (tiny_http::Method::Post, "/api/update/rollback") => {
            match disk().and_then(|d| slots::rollback(&d)) {
                Ok(slot) => (
                    200,
                    format!(
                        "{{\"next_boot\":{},\"next\":\"reboot to take effect\"}}\n",
                        json_string(slot.name())
                    ),
                ),
                Err(e) => (409, error_json(&e)),
            }
        }
        _ => (404, "{\"error\":\"not found\"}\n".to_string()),
    };
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        response = response.with_header(h);
    }
    let _ = request.respond(response);
}
