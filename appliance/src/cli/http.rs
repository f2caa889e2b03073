//! A minimal HTTP/1.0 client for the admin port: one request per
//! connection, the body read to the end, over TCP or (once [`use_tls`] is
//! called) TLS. The admin API is small, local and plain JSON, so a
//! dependency would buy nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context};

use super::tls::TlsClient;

/// The TLS every request of this process uses, if any: the CLI sets it
/// once from its flags.
static TLS: OnceLock<TlsClient> = OnceLock::new();

/// The admin token every request of this process carries, if any.
static TOKEN: OnceLock<String> = OnceLock::new();

/// Makes every later request carry `Authorization: Bearer TOKEN`.
pub fn use_token(token: String) {
    let _ = TOKEN.set(token);
}

/// Makes every later request speak TLS with `client`.
pub fn use_tls(client: TlsClient) {
    let _ = TLS.set(client);
}

/// `https` once [`use_tls`] was called, else `http`: for messages.
pub fn scheme() -> &'static str {
    if TLS.get().is_some() {
        "https"
    } else {
        "http"
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// An admin port's answer.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// Sends `method path` to the admin port at `addr`. Errors name the
/// address, so an unreachable daemon is obvious.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<Answer> {
    let timeout = Duration::from_secs(10);
    let scheme = scheme();
    let unreachable = || {
        format!(
            "cannot reach the admin port at {scheme}://{addr} (is veltrixd running? --admin ADDR)"
        )
    };
    let mut stream: Box<dyn ReadWrite> = match TLS.get() {
        Some(tls) => Box::new(tls.connect(addr, timeout).with_context(unreachable)?),
        None => {
            let stream = TcpStream::connect_timeout(&addr, timeout).with_context(unreachable)?;
            stream.set_read_timeout(Some(Duration::from_secs(120)))?;
            stream.set_write_timeout(Some(timeout))?;
            Box::new(stream)
        }
    };
    let authorization = TOKEN.get().map_or_else(String::new, |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .and_then(|()| stream.flush())
    .with_context(|| format!("cannot send to {scheme}://{addr}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("no answer from {scheme}://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("{scheme}://{addr}{path} answered something that is not HTTP");
    };
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{scheme}://{addr}{path} answered without a status line"))?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}
