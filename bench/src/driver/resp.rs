//! Servers over loopback (veltrixd, Redis) and the harness's own RESP
//! client, which drives both alike: one connection per load thread, one
//! request in flight per connection, except the bulk load, which pipelines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::{Session, Store, StoreOptions};
use crate::measure::Pid;

/// How long a server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A server process the harness started; killed on drop.
pub struct ServerStore {
    child: Child,
    address: SocketAddr,
    data_file: Option<PathBuf>,
}

fn free_port() -> Result<u16> {
    // The port is free when asked; another process could take it before
    // the server binds, in which case the start fails loudly.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

impl ServerStore {
    /// veltrixd on the embedded default namespace (a file in `dir`, io_uring,
    /// O_DIRECT), with the configured cache and workers.
    pub fn veltrixd(options: &StoreOptions) -> Result<ServerStore> {
        let port = free_port()?;
        let config = options.dir.join("veltrix.toml");
        std::fs::write(
            &config,
            format!("[engine]\ncache_bytes = {}\n", options.cache_bytes),
        )?;
        let data_dir = options.dir.join("veltrix-data");
        let mut command = Command::new(&options.veltrixd);
        command
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--native-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--workers", &options.workers.to_string()])
            .args(["--namespace-size", &options.namespace_bytes.to_string()])
            .args(["--log-level", "warn"]);
        let mut store = ServerStore::start(command, port, &options.dir.join("veltrixd.log"))?;
        store.data_file = std::fs::read_dir(&data_dir)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(|entry| entry.ok())
            .map(|entry| entry.path());
        Ok(store)
    }

    /// redis-server with the append-only file on, fsynced per `appendfsync`.
    pub fn redis(options: &StoreOptions, appendfsync: &str) -> Result<ServerStore> {
        let port = free_port()?;
        let mut command = Command::new(&options.redis_server);
        command
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&options.dir)
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", appendfsync])
            .args(["--save", ""])
            .args(["--daemonize", "no"]);
        ServerStore::start(command, port, &options.dir.join("redis.log"))
    }

    fn start(mut command: Command, port: u16, log: &Path) -> Result<ServerStore> {
        let log_file = std::fs::File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {command:?}"))?;
        let mut store = ServerStore {
            child,
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            data_file: None,
        };
        let started = Instant::now();
        loop {
            if let Ok(mut client) = RespClient::connect(store.address) {
                if client.command(&[b"PING"]).is_ok() {
                    return Ok(store);
                }
            }
            if let Some(status) = store.child.try_wait()? {
                bail!(
                    "server exited with {status} before answering; see {}",
                    log.display()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "server did not answer PING in {START_TIMEOUT:?}; see {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerStore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Store for ServerStore {
    fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(RespClient::connect(self.address)?))
    }

    fn pid(&self) -> Pid {
        Pid::Child(self.child.id())
    }

    fn data_file(&self) -> Option<PathBuf> {
        self.data_file.clone()
    }
}

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

/// A blocking RESP2 client.
pub struct RespClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    buffer: Vec<u8>,
}

impl RespClient {
    pub fn connect(address: SocketAddr) -> Result<RespClient> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        Ok(RespClient {
            reader: BufReader::with_capacity(64 << 10, stream.try_clone()?),
            writer: stream,
            buffer: Vec::with_capacity(8 << 10),
        })
    }

    fn encode(&mut self, args: &[&[u8]]) {
        self.buffer
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            self.buffer
                .extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            self.buffer.extend_from_slice(arg);
            self.buffer.extend_from_slice(b"\r\n");
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.writer.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Sends one command and reads its reply; an error reply is an error.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.encode(args);
        self.flush()?;
        self.read_reply()
    }

    fn read_line(&mut self) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            bail!("connection closed mid-reply");
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn read_reply(&mut self) -> Result<Reply> {
        let line = self.read_line()?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| anyhow!("empty reply line"))?;
        let text = std::str::from_utf8(rest)?;
        match kind {
            b'+' => Ok(Reply::Simple(text.to_string())),
            b'-' => bail!("server error: {text}"),
            b':' => Ok(Reply::Integer(text.parse()?)),
            b'$' => {
                let length: i64 = text.parse()?;
                if length < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut data = vec![0u8; usize::try_from(length)? + 2];
                self.reader.read_exact(&mut data)?;
                data.truncate(data.len() - 2);
                Ok(Reply::Bulk(Some(data)))
            }
            b'*' => {
                let count: i64 = text.parse()?;
                let mut items = Vec::new();
                for _ in 0..count.max(0) {
                    items.push(self.read_reply()?);
                }
                Ok(Reply::Array(items))
            }
            other => bail!("unknown reply type {:?}", char::from(*other)),
        }
    }
}

impl Session for RespClient {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        match self.command(&[b"SET", key, value])? {
            Reply::Simple(ok) if ok == "OK" => Ok(()),
            other => bail!("SET answered {other:?}"),
        }
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.command(&[b"GET", key])? {
            Reply::Bulk(value) => Ok(value),
            other => bail!("GET answered {other:?}"),
        }
    }

    /// Pipelined: every SET is sent, then every reply read.
    fn put_many(&mut self, items: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        for (key, value) in items {
            self.encode(&[b"SET", key, value]);
        }
        self.flush()?;
        for _ in items {
            match self.read_reply()? {
                Reply::Simple(ok) if ok == "OK" => {}
                other => bail!("SET answered {other:?}"),
            }
        }
        Ok(())
    }
}
