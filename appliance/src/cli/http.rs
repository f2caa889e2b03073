//! A minimal HTTP/1.0 client for the admin port: one request per
//! connection, the body read to the end. The admin API is small, local and
//! plain JSON, so a dependency would buy nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

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
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| {
        format!("cannot reach the admin port at http://{addr} (is veltrixd running? --admin ADDR)")
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("cannot send to http://{addr}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("no answer from http://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("http://{addr}{path} answered something that is not HTTP");
    };
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("http://{addr}{path} answered without a status line"))?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}
