//! A blocking client for the native protocol, with pipelining.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::protocol::{
    decode_hello, decode_response, encode_hello, encode_request, EncodeError, FrameError, Hello,
    Limits, Request, Response, Status, HELLO_BYTES, VERSION,
};
use crate::BatchOp;

/// Requests a [`Client::pipeline`] keeps in flight before reading replies,
/// so that neither side's buffers grow without bound.
pub const PIPELINE_WINDOW: usize = 256;
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {cause}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        cause: std::io::Error,
    },
    /// Reading or writing failed (a timeout included).
    #[error("I/O error talking to {addr}: {cause}")]
    Io {
        /// The server's address.
        addr: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The server closed the connection.
    #[error("{addr} closed the connection")]
    Closed {
        /// The server's address.
        addr: String,
    },
    /// The server refused the connection in its hello (e.g. `ERR_BUSY` at
    /// `connections_max`).
    #[error("{addr} refused the connection: {status}: {message}")]
    Refused {
        /// The server's address.
        addr: String,
        /// Why, as a status.
        status: Status,
        /// The server's message.
        message: String,
    },
    /// The peer's bytes are not the native protocol.
    #[error("{addr} does not speak the VeltrixDB native protocol: {detail}")]
    Protocol {
        /// The server's address.
        addr: String,
        /// What was wrong.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{status}: {message}")]
    Server {
        /// The status.
        status: Status,
        /// The server's message.
        message: String,
    },
    /// The request exceeds the protocol's limits and was not sent.
    #[error("request not sent: {0}")]
    Encode(#[from] EncodeError),
}

impl ClientError {
    /// The server's status, for [`ClientError::Server`] and
    /// [`ClientError::Refused`].
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Server { status, .. } | ClientError::Refused { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// What a [`Client`] talks over: a `TcpStream`, or anything that reads
/// and writes like one, such as a TLS stream over it (rustls's
/// `StreamOwned<ClientConnection, TcpStream>`; see [`Client::over`]).
pub trait Transport: Read + Write + Send {}

impl<T: Read + Write + Send> Transport for T {}

/// A connection to a veltrixd native port.
///
/// Simple calls (`get`, `put`, ...) send one request and wait for its
/// reply. For pipelining, [`send`](Client::send) any number of requests,
/// then [`recv`](Client::recv) or [`recv_for`](Client::recv_for) their
/// replies; replies carry their request's id, and the client matches them.
pub struct Client {
    addr: String,
    stream: Box<dyn Transport>,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    next_id: u64,
    /// Replies that arrived while waiting for another one.
    early: HashMap<u64, Response>,
    in_flight: usize,
    limits: Limits,
}

impl Client {
    /// Connects and performs the hello. Fails with a message naming the
    /// address when nothing listens there or it is not a veltrixd.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> Result<Client, ClientError> {
        Self::connect_timeout(addr, Duration::from_secs(10))
    }

    /// [`connect`](Client::connect) with a timeout for connecting and for
    /// every later read and write.
    pub fn connect_timeout<A: ToSocketAddrs>(
        addr: A,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|source| ClientError::Connect {
                addr: "(unresolved)".into(),
                cause: source,
            })?
            .collect();
        let name = addrs
            .first()
            .map_or_else(|| "(no address)".to_string(), ToString::to_string);
        let mut last = std::io::Error::new(ErrorKind::NotFound, "no address to connect to");
        let mut connected = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, timeout) {
                Ok(s) => {
                    connected = Some((s, a.to_string()));
                    break;
                }
                Err(e) => last = e,
            }
        }
        let Some((stream, addr)) = connected else {
            return Err(ClientError::Connect {
                addr: name,
                cause: last,
            });
        };
        let io = |source| ClientError::Io {
            addr: addr.clone(),
            cause: source,
        };
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        Self::over(stream, addr)
    }

    /// Performs the hello over `stream`, a connection already made to a
    /// native port, and returns the client. This is how to speak the
    /// protocol over TLS: connect a `TcpStream`, set its timeouts, wrap it
    /// in a TLS client stream (the crate itself has no TLS dependency),
    /// and pass that. `addr` names the server in errors.
    pub fn over<S: Transport + 'static>(
        stream: S,
        addr: impl Into<String>,
    ) -> Result<Client, ClientError> {
        let mut client = Client {
            addr: addr.into(),
            stream: Box::new(stream),
            read_buf: Vec::with_capacity(READ_CHUNK_BYTES),
            write_buf: Vec::new(),
            next_id: 1,
            early: HashMap::new(),
            in_flight: 0,
            limits: Limits::default(),
        };
        client.hello()?;
        Ok(client)
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn hello(&mut self) -> Result<(), ClientError> {
        let mut out = Vec::with_capacity(HELLO_BYTES);
        encode_hello(
            &mut out,
            Hello {
                version: VERSION,
                status: 0,
            },
        );
        self.write_all(&out)?;
        let hello = loop {
            match decode_hello(&self.read_buf) {
                Ok(Some(hello)) => break hello,
                Ok(None) => self.fill()?,
                Err(e) => return Err(self.protocol_error(&e)),
            }
        };
        self.read_buf.drain(..HELLO_BYTES);
        if hello.status != 0 {
            let status = u8::try_from(hello.status)
                .ok()
                .and_then(Status::from_byte)
                .unwrap_or(Status::Protocol);
            // An error frame with the reason follows; read it if it comes.
            let message = self
                .read_response()
                .map(|r| r.message())
                .unwrap_or_else(|_| "(no message)".into());
            return Err(ClientError::Refused {
                addr: self.addr.clone(),
                status,
                message,
            });
        }
        if hello.version != VERSION {
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                detail: format!(
                    "server speaks version {}, this client {VERSION}",
                    hello.version
                ),
            });
        }
        Ok(())
    }

    fn protocol_error(&self, e: &FrameError) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            detail: e.to_string(),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        // A TLS or buffered transport holds bytes until flushed; a
        // `TcpStream`'s flush does nothing.
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|source| ClientError::Io {
                addr: self.addr.clone(),
                cause: source,
            })
    }

    /// Reads more bytes into the read buffer.
    fn fill(&mut self) -> Result<(), ClientError> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(ClientError::Closed {
                        addr: self.addr.clone(),
                    })
                }
                Ok(n) => {
                    self.read_buf
                        .extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ClientError::Io {
                        addr: self.addr.clone(),
                        cause: source,
                    })
                }
            }
        }
    }

    fn read_response(&mut self) -> Result<Response, ClientError> {
        loop {
            match decode_response(&self.read_buf, &self.limits) {
                Ok(Some((response, used))) => {
                    self.read_buf.drain(..used);
                    return Ok(response);
                }
                Ok(None) => self.fill()?,
                Err(e) => return Err(self.protocol_error(&e)),
            }
        }
    }

    /// Queues a request without waiting; returns its id. It is sent by the
    /// next [`flush`](Client::flush) or receive.
    pub fn send(&mut self, request: &Request) -> Result<u64, ClientError> {
        let id = self.next_id;
        encode_request(&mut self.write_buf, id, request)?;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.in_flight = self.in_flight.saturating_add(1);
        Ok(id)
    }

    /// Sends every queued request.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.write_buf);
        let result = self.write_all(&out);
        self.write_buf = out;
        self.write_buf.clear();
        result
    }

    /// Flushes, then returns the next reply to arrive (or one that arrived
    /// earlier and was kept).
    pub fn recv(&mut self) -> Result<Response, ClientError> {
        self.flush()?;
        if let Some(&id) = self.early.keys().min() {
            if let Some(r) = self.early.remove(&id) {
                return Ok(r);
            }
        }
        let response = self.read_response()?;
        self.answered(&response)?;
        Ok(response)
    }

    /// Flushes, then waits for the reply to request `id`, keeping any other
    /// reply that arrives first for a later call.
    pub fn recv_for(&mut self, id: u64) -> Result<Response, ClientError> {
        self.flush()?;
        if let Some(r) = self.early.remove(&id) {
            return Ok(r);
        }
        loop {
            let response = self.read_response()?;
            self.answered(&response)?;
            if response.id == id {
                return Ok(response);
            }
            self.early.insert(response.id, response);
        }
    }

    fn answered(&mut self, response: &Response) -> Result<(), ClientError> {
        if response.id == 0 && response.status.is_error() {
            // A connection-level error: the server closes after it.
            return Err(ClientError::Server {
                status: response.status,
                message: response.message(),
            });
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        Ok(())
    }

    /// Requests sent whose replies have not been received.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Sends a request and waits for its reply.
    pub fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        let id = self.send(request)?;
        self.recv_for(id)
    }

    /// Runs `requests` pipelined (at most [`PIPELINE_WINDOW`] in flight) and
    /// returns their replies in request order.
    pub fn pipeline(&mut self, requests: &[Request]) -> Result<Vec<Response>, ClientError> {
        let mut ids = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        for request in requests {
            if ids.len().saturating_sub(replies.len()) >= PIPELINE_WINDOW {
                let id = ids.get(replies.len()).copied().unwrap_or(0);
                replies.push(self.recv_for(id)?);
            }
            ids.push(self.send(request)?);
        }
        while replies.len() < ids.len() {
            let id = ids.get(replies.len()).copied().unwrap_or(0);
            replies.push(self.recv_for(id)?);
        }
        Ok(replies)
    }

    /// Checks the server is alive.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        ok(self.call(&Request::Ping(b"veltrix".to_vec()))?).map(|_| ())
    }

    /// Reads a key: `None` when it does not exist.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let r = self.call(&Request::Get(key.to_vec()))?;
        found(r)
    }

    /// Sets a key. Returns once the write is durable.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        ok(self.call(&Request::Put(key.to_vec(), value.to_vec()))?).map(|_| ())
    }

    /// Removes a key; returns whether it existed. Durable when it returns.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, ClientError> {
        Ok(found(self.call(&Request::Delete(key.to_vec()))?)?.is_some())
    }

    /// Whether a key exists.
    pub fn exists(&mut self, key: &[u8]) -> Result<bool, ClientError> {
        Ok(found(self.call(&Request::Exists(key.to_vec()))?)?.is_some())
    }

    /// Applies puts and deletes atomically: all or none, even across a
    /// crash.
    pub fn batch(&mut self, ops: Vec<BatchOp>) -> Result<(), ClientError> {
        ok(self.call(&Request::Batch(ops))?).map(|_| ())
    }

    /// Adds `by` to the decimal integer a key holds (a missing key is 0),
    /// atomically, as Redis's INCRBY; returns the sum once it is durable.
    /// A value that is not an integer, or a sum past 64 bits, is
    /// `ERR_INVALID` and changes nothing.
    pub fn incr_by(&mut self, key: &[u8], by: i64) -> Result<i64, ClientError> {
        integer(ok(self.call(&Request::IncrBy(key.to_vec(), by))?)?)
    }

    /// Appends to a key's value (a missing key is empty), atomically;
    /// returns the new length once it is durable.
    pub fn append(&mut self, key: &[u8], bytes: &[u8]) -> Result<i64, ClientError> {
        integer(ok(
            self.call(&Request::Append(key.to_vec(), bytes.to_vec()))?
        )?)
    }
}

impl Client {
    /// Sets a key that expires once the server's clock passes
    /// `deadline_ms` (milliseconds since the Unix epoch): Redis's `SET key
    /// value PXAT deadline_ms`. Returns once the write is durable.
    pub fn put_until(
        &mut self,
        key: &[u8],
        value: &[u8],
        deadline_ms: u64,
    ) -> Result<(), ClientError> {
        let request = Request::PutUntil(key.to_vec(), value.to_vec(), deadline_ms);
        ok(self.call(&request)?).map(|_| ())
    }

    /// Sets a key's deadline (`PEXPIREAT`; at or before now, the key is
    /// deleted), or removes it with `None` (`PERSIST`). Returns whether it
    /// did (false for a missing key), once durable.
    pub fn expire_at(&mut self, key: &[u8], at_ms: Option<i64>) -> Result<bool, ClientError> {
        let answer = integer(ok(self.call(&Request::ExpireAt(key.to_vec(), at_ms))?)?)?;
        Ok(answer == 1)
    }

    /// A key's deadline in milliseconds since the Unix epoch, -1 when it
    /// does not expire, -2 when it is missing or expired (`PEXPIRETIME`).
    pub fn deadline(&mut self, key: &[u8]) -> Result<i64, ClientError> {
        integer(ok(self.call(&Request::Deadline(key.to_vec()))?)?)
    }
}

/// The body of an INCRBY or APPEND answer: an i64, little-endian.
fn integer(body: Vec<u8>) -> Result<i64, ClientError> {
    let bytes: [u8; 8] = body
        .try_into()
        .map_err(|body: Vec<u8>| ClientError::Server {
            status: Status::Internal,
            message: format!("an integer reply of {} bytes, not 8", body.len()),
        })?;
    Ok(i64::from_le_bytes(bytes))
}

/// The body of an `OK` reply, or the error.
pub fn ok(response: Response) -> Result<Vec<u8>, ClientError> {
    match response.status {
        Status::Ok => Ok(response.body),
        status => Err(ClientError::Server {
            status,
            message: response.message(),
        }),
    }
}

/// `Some(body)` for `OK`, `None` for `NOT_FOUND`, or the error.
pub fn found(response: Response) -> Result<Option<Vec<u8>>, ClientError> {
    match response.status {
        Status::Ok => Ok(Some(response.body)),
        Status::NotFound => Ok(None),
        status => Err(ClientError::Server {
            status,
            message: response.message(),
        }),
    }
}
