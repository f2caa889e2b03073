//! `veltrix update status | install BUNDLE | rollback`: the admin API of
//! updates (`appliance/src/update/`, `docs/upgrades.md`). `install` sends
//! the bundle with a progress line; the appliance verifies it before it
//! writes a byte to a slot, and refuses with the reason.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::http;

/// What the operator asked.
#[derive(Debug)]
pub enum Action<'a> {
    /// Show the running slot, the boot state and each slot's release.
    Status,
    /// Send a bundle to be installed into the inactive slot.
    Install(&'a Path),
    /// Give up a slot on trial, or go back to the other slot's release.
    Rollback,
}

fn ensure_ok(addr: SocketAddr, path: &str, status: u16, body: &str) -> anyhow::Result<()> {
    if status != 200 {
        bail!("http://{addr}{path} answered {status}: {}", body.trim());
    }
    Ok(())
}

/// POSTs `body` to `path`, printing the upload's progress to stderr.
fn post_with_progress(addr: SocketAddr, path: &str, body: &[u8]) -> anyhow::Result<http::Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .with_context(|| format!("cannot reach the admin port at http://{addr}"))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    // Verifying, writing and reading back a slot takes a while under TCG.
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    let chunk = 1 << 20;
    for (i, part) in body.chunks(chunk).enumerate() {
        stream.write_all(part)?;
        let sent = (i * chunk + part.len()) as u64;
        eprint!(
            "\rveltrix: sent {} of {} MiB ({}%)",
            sent >> 20,
            (body.len() as u64) >> 20,
            sent * 100 / (body.len() as u64).max(1)
        );
    }
    eprintln!("\nveltrix: sent; the appliance verifies and writes the slot");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, answer) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("http://{addr}{path} answered something that is not HTTP"))?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .context("no status line")?;
    Ok(http::Answer {
        status,
        body: answer.to_string(),
    })
}

/// Runs `action` against the admin port at `addr`, writing the answer.
pub fn run(addr: SocketAddr, action: &Action<'_>, out: &mut dyn Write) -> anyhow::Result<()> {
    let (path, answer) = match action {
        Action::Status => ("/api/update", http::request(addr, "GET", "/api/update")?),
        Action::Rollback => (
            "/api/update/rollback",
            http::request(addr, "POST", "/api/update/rollback")?,
        ),
        Action::Install(bundle) => {
            let bytes = std::fs::read(bundle)
                .with_context(|| format!("cannot read {}", bundle.display()))?;
            let path = "/api/update/install";
            (path, post_with_progress(addr, path, &bytes)?)
        }
    };
    ensure_ok(addr, path, answer.status, &answer.body)?;
    write!(out, "{}", answer.body)?;
    Ok(())
}
