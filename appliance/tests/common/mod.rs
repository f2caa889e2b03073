//! Helpers shared by the tests that run the real daemon: start it on a
//! temporary namespace with every port on 127.0.0.1:0, a RESP client, HTTP.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use appliance::resp::{encode, parse_reply, Reply};

/// A running veltrixd on a temporary namespace.
pub struct Daemon {
    pub child: Child,
    /// RESP port.
    pub port: u16,
    /// Native protocol port.
    pub native: u16,
    /// Admin port.
    pub admin: u16,
}

/// Runs the operator CLI, `veltrix`, to its end.
pub fn veltrix(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veltrix"))
        .args(args)
        .output()
        .unwrap()
}

impl Daemon {
    pub fn start(dir: &Path) -> Daemon {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veltrixd"))
            .args(["--data-dir", dir.to_str().unwrap()])
            .args(extra)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--native-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args([
                "--namespace-size",
                "256MiB",
                "--workers",
                "2",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "veltrixd X ready: RESP on 127.0.0.1:P, native on 127.0.0.1:N, admin on http://127.0.0.1:Q"
        // (a TLS port is followed by " (TLS)" or " (mutual TLS)", and the
        // admin port's scheme is then https)
        let port = port_after(&line, "RESP on 127.0.0.1:");
        let native = port_after(&line, "native on 127.0.0.1:");
        let admin = port_after(&line, "://127.0.0.1:");
        Daemon {
            child,
            port,
            native,
            admin,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn sigterm(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::forget(self);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RESP client.
pub struct Client {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        encode::command(&mut out, args);
        self.stream.write_all(&out).unwrap();
    }

    pub fn read(&mut self) -> Option<Reply> {
        loop {
            if let Some((reply, used)) = parse_reply(&self.buf).unwrap() {
                self.buf.drain(..used);
                return Some(reply);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn call(&mut self, args: &[&[u8]]) -> Reply {
        self.send(args);
        self.read().expect("connection closed")
    }

    /// Sends one command and returns its reply's bytes as they came.
    pub fn raw(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        loop {
            if let Some((_, used)) = parse_reply(&self.buf).unwrap() {
                return self.buf.drain(..used).collect();
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => panic!("connection closed"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// A real `redis-server` (no persistence) on a free loopback port, killed
/// on drop: the oracle the format tests compare against.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one with `extra` arguments; its working directory (where a
    /// cluster node writes its nodes.conf) is a temporary one.
    pub fn start(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let (reserved, port) = refusing_port();
        drop(reserved);
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("redis-server {extra:?} exited at start: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port number that follows `marker` in veltrixd's ready line.
fn port_after(line: &str, marker: &str) -> u16 {
    let rest = line
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker:?} in {line:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

pub fn bulk(v: &[u8]) -> Reply {
    Reply::Bulk(Some(v.to_vec()))
}

/// GETs `path` from the admin port; returns the whole response.
/// One HTTP request to the admin port: the status code and the body.
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Whether a tool is installed; prints a loud SKIPPED line when not (and
/// fails under CI=true: `.ci/run` installs every tool the tests use).
pub fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skipped(&format!(
            "{name} is not installed (.ci/run installs it: redis-tools, prometheus)"
        ));
    }
    found
}

/// Says loudly that a test (or part of one) skipped, and why; under
/// CI=true, where `.ci/run` provides what the tests need, a skip fails.
pub fn skipped(why: &str) {
    skip_or_fail(std::env::var("CI").as_deref() == Ok("true"), why);
}

/// [`skipped`] with the environment's answer given: under CI a skip is a
/// failure, before anything says it skipped.
pub fn skip_or_fail(ci: bool, why: &str) {
    assert!(
        !ci,
        "skipped under CI=true, where .ci/run provides it: {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// A loopback port with nothing listening on it, reserved for as long as
/// the returned socket lives: it is bound but never listens, so a connect
/// is refused, and no parallel test's daemon can take the port meanwhile
/// (binding a listener and dropping it leaves that race open).
#[allow(dead_code, reason = "not every test binary needs one")]
pub fn refusing_port() -> (socket2::Socket, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (socket, port)
}

/// `promtool check metrics` on an exposition, when promtool is installed.
pub fn promtool_check(dir: &Path, body: &str) {
    if !tool("promtool") {
        return;
    }
    let path = dir.join("metrics.txt");
    std::fs::write(&path, body).unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("promtool check metrics < {}", path.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
