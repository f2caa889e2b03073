//! etcd v3's HTTP/JSON gateway as a load target: `POST /v3/kv/put` with
//! the key and value in base64 (etcd 3.4 serves `/v3/`; 3.3 had only
//! `/v3beta/`). One HTTP/1.1 keep-alive connection per client, one request
//! in flight, as the RESP clients do; a connection per request would
//! measure TCP handshakes, not etcd. The request and the answers are small
//! and fixed in shape, so this is hand-written, as the admin client is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The gateway's put path in etcd 3.4 and later.
pub const PUT_PATH: &str = "/v3/kv/put";

/// Largest answer header or body accepted (a put's answer is ~110 bytes).
const ANSWER_MAX: usize = 1 << 20;

/// One keep-alive connection to an etcd member's client port.
pub struct EtcdConn {
    stream: TcpStream,
    buf: Vec<u8>,
    addr: SocketAddr,
}

/// The request bytes of one put.
pub fn put_request(host: SocketAddr, key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = format!(
        "{{\"key\":\"{}\",\"value\":\"{}\"}}",
        STANDARD.encode(key),
        STANDARD.encode(value)
    );
    format!(
        "POST {PUT_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A whole HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Parses one answer from the front of `buf`: `Ok(None)` until it is all
/// there, then the answer and the bytes it took. Reads a `Content-Length`
/// or a chunked body (Go's server chunks a body it did not see whole).
pub fn parse_answer(buf: &[u8]) -> anyhow::Result<Option<(Answer, usize)>> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > ANSWER_MAX {
            bail!("an HTTP header longer than {ANSWER_MAX} bytes");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("an HTTP header is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP status line: `{status_line}`"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("a bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body_start = head_end + 4;
    if chunked {
        return parse_chunked(buf, body_start, status);
    }
    let length = length.context("an HTTP answer with neither Content-Length nor chunks")?;
    if length > ANSWER_MAX {
        bail!("an HTTP body of {length} bytes");
    }
    let end = body_start + length;
    if buf.len() < end {
        return Ok(None);
    }
    let body = buf[body_start..end].to_vec();
    Ok(Some((Answer { status, body }, end)))
}

fn parse_chunked(
    buf: &[u8],
    mut pos: usize,
    status: u16,
) -> anyhow::Result<Option<(Answer, usize)>> {
    let mut body = Vec::new();
    loop {
        let Some(line_len) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + line_len]).context("a bad chunk size")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("a bad chunk size `{line}`"))?;
        pos += line_len + 2;
        if size == 0 {
            // No trailers from etcd's gateway: the final CRLF ends it.
            if buf.len() < pos + 2 {
                return Ok(None);
            }
            if &buf[pos..pos + 2] != b"\r\n" {
                bail!("HTTP trailers are not expected here");
            }
            return Ok(Some((Answer { status, body }, pos + 2)));
        }
        if body.len() + size > ANSWER_MAX {
            bail!("an HTTP body over {ANSWER_MAX} bytes");
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether a put was done: 200 and no `error` in the JSON.
pub fn put_succeeded(answer: &Answer) -> bool {
    answer.status == 200 && find(&answer.body, b"\"error\"").is_none()
}

impl EtcdConn {
    pub fn open(addr: SocketAddr) -> anyhow::Result<EtcdConn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .with_context(|| format!("cannot connect to etcd at http://{addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(EtcdConn {
            stream,
            buf: Vec::new(),
            addr,
        })
    }

    /// Puts one key; `Ok(false)` when etcd answered with an error.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<bool> {
        self.stream
            .write_all(&put_request(self.addr, key, value))
            .with_context(|| format!("cannot write to etcd at {}", self.addr))?;
        loop {
            if let Some((answer, used)) = parse_answer(&self.buf)? {
                self.buf.drain(..used);
                return Ok(put_succeeded(&answer));
            }
            let mut chunk = [0u8; 16 << 10];
            let n = self
                .stream
                .read(&mut chunk)
                .with_context(|| format!("no answer from etcd at {}", self.addr))?;
            if n == 0 {
                bail!("etcd at {} closed the connection", self.addr);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_is_json_with_base64_key_and_value() {
        let request = put_request("127.0.0.1:2379".parse().unwrap(), b"foo", b"bar!");
        let text = String::from_utf8(request).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /v3/kv/put HTTP/1.1\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        // RFC 4648 test vectors: "foo" -> Zm9v, "bar!" -> YmFyIQ== (padded).
        assert_eq!(body, r#"{"key":"Zm9v","value":"YmFyIQ=="}"#);
    }

    // What etcd 3.4.23's gateway answered, byte for byte but the date.
    const PUT_OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\nContent-Length: 111\r\n\r\n{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"3319814642761637952\",\"revision\":\"2\",\"raft_term\":\"2\"}}";
    const PUT_BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 104\r\n\r\n{\"error\":\"illegal base64 data at input byte 4\",\"message\":\"illegal base64 data at input byte 4\",\"code\":3}";

    #[test]
    fn answers_parse_whole_and_wait_while_cut_short() {
        let (answer, used) = parse_answer(PUT_OK).unwrap().unwrap();
        assert_eq!(used, PUT_OK.len());
        assert!(put_succeeded(&answer));
        let (bad, _) = parse_answer(PUT_BAD).unwrap().unwrap();
        assert_eq!(bad.status, 400);
        assert!(!put_succeeded(&bad));
        for cut in 0..PUT_OK.len() {
            assert_eq!(parse_answer(&PUT_OK[..cut]).unwrap(), None, "cut at {cut}");
        }
        // Two answers back to back (keep-alive): the first takes only its own.
        let two = [PUT_OK, PUT_BAD].concat();
        let (_, used) = parse_answer(&two).unwrap().unwrap();
        assert_eq!(parse_answer(&two[used..]).unwrap().unwrap().0.status, 400);
    }

    #[test]
    fn chunked_answers_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        let (answer, used) = parse_answer(raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        assert_eq!(answer.body, b"{\"a\":1}");
        for cut in 0..raw.len() {
            assert_eq!(parse_answer(&raw[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_answer(b"garbage\r\n\r\n").is_err());
    }
}
