//! A minimal HTTP/1.0 GET for the admin port, with a hard timeout: a stalled
//! guest must make a probe fail, not hang it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Status code and body of `GET path`, or an error (refused, timed out...).
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let deadline = std::time::Instant::now() + timeout;
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "GET {path}: no complete answer within {} ms",
            timeout.as_millis()
        );
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(anyhow::anyhow!("GET {path}: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("GET {path}: not an HTTP answer: {head:.80}"))?;
    Ok((status, body.to_string()))
}

/// The value of an unlabelled Prometheus sample, or the sum over a
/// family's labelled samples.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        found = Some(found.unwrap_or(0.0) + value);
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_sums_labelled_samples_and_ignores_prefixes() {
        let text = "# HELP x\nveltrix_nvme_errors_total{kind=\"read\"} 2\nveltrix_nvme_errors_total{kind=\"write\"} 3\nveltrix_nvme_errors_totalx 9\nveltrix_workers 2\n";
        assert_eq!(super::metric(text, "veltrix_nvme_errors_total"), Some(5.0));
        assert_eq!(super::metric(text, "veltrix_workers"), Some(2.0));
        assert_eq!(super::metric(text, "veltrix_missing"), None);
    }
}
