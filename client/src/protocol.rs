//! The native protocol's wire codec: the handshake, request frames and
//! response frames. The byte layout is specified in `docs/protocol.md`.
//!
//! Every input is untrusted. Decoding never panics, and never allocates
//! before the length that sizes the allocation has been checked against
//! [`Limits`] *and* the bytes it describes are in the buffer: a header that
//! claims a 4 GiB body is refused as soon as its 16 bytes have arrived.
// Zero-panic is a promise of this module, so the compiler checks it.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::unreachable
)]

/// The first four bytes of both hellos: "VXNP".
pub const MAGIC: [u8; 4] = *b"VXNP";
/// The protocol version this build speaks (and the newest it accepts).
pub const VERSION: u16 = 1;
/// Bytes of a hello (either direction).
pub const HELLO_BYTES: usize = 8;
/// Bytes of a frame header (requests and responses alike).
pub const HEADER_BYTES: usize = 16;
/// Longest key the protocol carries (the engine's limit, `docs/config.md`).
pub const KEY_BYTES_MAX: usize = 1024;
/// Longest value the protocol carries (the engine's default limit).
pub const VALUE_BYTES_MAX: usize = 4 << 20;
/// Most operations in one BATCH (the same as RESP's MSET).
pub const BATCH_OPS_MAX: usize = 4096;
/// Largest frame body: the largest PUT with room to spare for a batch of
/// small operations.
pub const BODY_BYTES_MAX: usize = VALUE_BYTES_MAX + KEY_BYTES_MAX + (64 << 10);

const _: () = assert!(BODY_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(2 + KEY_BYTES_MAX + VALUE_BYTES_MAX <= BODY_BYTES_MAX);
const _: () = assert!(KEY_BYTES_MAX <= u16::MAX as usize);

/// Batch operation kinds on the wire.
const BATCH_PUT: u8 = 1;
const BATCH_DELETE: u8 = 2;
/// Bytes of a batch operation's fixed part: kind, key length, value length.
const BATCH_OP_HEADER_BYTES: usize = 7;

/// The limits a decoder enforces. A server may set them lower than the
/// protocol's maxima (never higher).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body accepted.
    pub body_bytes_max: usize,
    /// Most operations in one BATCH.
    pub batch_ops_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: BODY_BYTES_MAX,
            batch_ops_max: BATCH_OPS_MAX,
        }
    }
}

/// Request opcodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// Echo the body.
    Ping = 1,
    /// Read a key.
    Get = 2,
    /// Set a key (durable when answered).
    Put = 3,
    /// Remove a key.
    Delete = 4,
    /// Whether a key exists.
    Exists = 5,
    /// Puts and deletes applied atomically.
    Batch = 6,
    /// Add to a decimal integer value, atomically (durable when answered).
    IncrBy = 7,
    /// Append to a value, atomically (durable when answered).
    Append = 8,
    /// Set a key that expires at a deadline (durable when answered).
    PutUntil = 9,
    /// Set or remove a key's deadline, atomically (durable when answered).
    ExpireAt = 10,
    /// A key's deadline.
    Deadline = 11,
}

impl Opcode {
    /// The opcode for a wire byte.
    pub fn from_byte(byte: u8) -> Option<Opcode> {
        Some(match byte {
            1 => Opcode::Ping,
            2 => Opcode::Get,
            3 => Opcode::Put,
            4 => Opcode::Delete,
            5 => Opcode::Exists,
            6 => Opcode::Batch,
            7 => Opcode::IncrBy,
            8 => Opcode::Append,
            9 => Opcode::PutUntil,
            10 => Opcode::ExpireAt,
            11 => Opcode::Deadline,
            _ => return None,
        })
    }
}

/// Response status codes. Codes below 16 are successes; 16 and above are
/// errors whose body is a UTF-8 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Done; the body is the result (a value for GET, the payload for PING).
    Ok = 0,
    /// GET, DELETE, EXISTS: the key does not exist.
    NotFound = 1,
    /// The bytes are not this protocol. The server closes the connection
    /// after sending it.
    Protocol = 16,
    /// A key, value, batch or frame over the limits.
    TooLarge = 17,
    /// A request that is well formed but invalid (an empty key), or an
    /// INCRBY of a value that is not a decimal integer or would overflow.
    Invalid = 18,
    /// An opcode this server does not know; the connection stays usable.
    Unsupported = 19,
    /// Backpressure: the server is at a limit (connections, queues). Retry
    /// later.
    Busy = 20,
    /// The namespace is full.
    Full = 21,
    /// Stored data failed verification; the message names the location.
    Corrupt = 22,
    /// An I/O error or an internal failure.
    Internal = 23,
    /// The server is shutting down.
    ShuttingDown = 24,
    /// The hello asked for a protocol version the server does not speak.
    Version = 25,
}

impl Status {
    /// The status for a wire byte.
    pub fn from_byte(byte: u8) -> Option<Status> {
        Some(match byte {
            0 => Status::Ok,
            1 => Status::NotFound,
            16 => Status::Protocol,
            17 => Status::TooLarge,
            18 => Status::Invalid,
            19 => Status::Unsupported,
            20 => Status::Busy,
            21 => Status::Full,
            22 => Status::Corrupt,
            23 => Status::Internal,
            24 => Status::ShuttingDown,
            25 => Status::Version,
            _ => return None,
        })
    }

    /// Whether this is an error status.
    pub fn is_error(self) -> bool {
        (self as u8) >= 16
    }

    /// The name used in `docs/protocol.md`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NotFound => "NOT_FOUND",
            Status::Protocol => "ERR_PROTOCOL",
            Status::TooLarge => "ERR_TOO_LARGE",
            Status::Invalid => "ERR_INVALID",
            Status::Unsupported => "ERR_UNSUPPORTED",
            Status::Busy => "ERR_BUSY",
            Status::Full => "ERR_FULL",
            Status::Corrupt => "ERR_CORRUPT",
            Status::Internal => "ERR_INTERNAL",
            Status::ShuttingDown => "ERR_SHUTTING_DOWN",
            Status::Version => "ERR_VERSION",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One operation of a BATCH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Set key to value.
    Put(Vec<u8>, Vec<u8>),
    /// Remove key.
    Delete(Vec<u8>),
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// PING with a payload the server echoes.
    Ping(Vec<u8>),
    /// GET key.
    Get(Vec<u8>),
    /// PUT key value.
    Put(Vec<u8>, Vec<u8>),
    /// DELETE key.
    Delete(Vec<u8>),
    /// EXISTS key.
    Exists(Vec<u8>),
    /// BATCH: all or nothing.
    Batch(Vec<BatchOp>),
    /// INCRBY key by: the sum, as Redis's INCRBY.
    IncrBy(Vec<u8>, i64),
    /// APPEND key bytes: the new length, as Redis's APPEND.
    Append(Vec<u8>, Vec<u8>),
    /// PUTUNTIL key value deadline: `SET key value PXAT deadline`
    /// (milliseconds since the Unix epoch).
    PutUntil(Vec<u8>, Vec<u8>, u64),
    /// EXPIREAT key deadline: `PEXPIREAT key deadline`, or `PERSIST key`
    /// for `None`; 1 when done, 0 for a missing key (or no deadline to
    /// remove).
    ExpireAt(Vec<u8>, Option<i64>),
    /// DEADLINE key: `PEXPIRETIME key` (-2 missing, -1 no deadline).
    Deadline(Vec<u8>),
}

impl Request {
    /// The request's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Ping(_) => Opcode::Ping,
            Request::Get(_) => Opcode::Get,
            Request::Put(..) => Opcode::Put,
            Request::Delete(_) => Opcode::Delete,
            Request::Exists(_) => Opcode::Exists,
            Request::Batch(_) => Opcode::Batch,
            Request::IncrBy(..) => Opcode::IncrBy,
            Request::Append(..) => Opcode::Append,
            Request::PutUntil(..) => Opcode::PutUntil,
            Request::ExpireAt(..) => Opcode::ExpireAt,
            Request::Deadline(_) => Opcode::Deadline,
        }
    }
}

/// A response frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The id of the request it answers (0 for a connection-level error).
    pub id: u64,
    /// The request's opcode byte, echoed (0 for a connection-level error).
    pub opcode: u8,
    /// The outcome.
    pub status: Status,
    /// The result, or an error message.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as an error message.
    pub fn message(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A hello: the first 8 bytes each side sends. The client's carries the
/// version it wants and a zero status; the server's the version it will
/// speak and a status (0: go ahead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// 0, or a [`Status`] code refusing the connection.
    pub status: u16,
}

/// Why bytes could not be decoded. After any of these the stream has lost
/// (or never had) framing: the connection must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The hello does not start with the magic bytes.
    #[error("not the VeltrixDB native protocol (bad magic {found:02x?})")]
    BadMagic {
        /// The first four bytes received.
        found: [u8; 4],
    },
    /// A frame header declares a body over the limit.
    #[error("frame body of {bytes} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The frame's request id.
        id: u64,
        /// The declared body length.
        bytes: u64,
        /// The limit.
        max: usize,
    },
    /// The frame is not well formed.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// The frame's request id, once its header was read.
        id: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

impl FrameError {
    /// The request id to answer with (0 when none was read).
    pub fn request_id(&self) -> u64 {
        match self {
            FrameError::BadMagic { .. } => 0,
            FrameError::TooLarge { id, .. } | FrameError::Malformed { id, .. } => *id,
        }
    }

    /// The status to answer with.
    pub fn status(&self) -> Status {
        match self {
            FrameError::TooLarge { .. } => Status::TooLarge,
            FrameError::BadMagic { .. } | FrameError::Malformed { .. } => Status::Protocol,
        }
    }
}

/// A request that is well framed but refused without reaching the engine;
/// the connection stays usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An opcode this build does not know.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    /// A batch with more operations than the limit.
    #[error("batch of {count} operations exceeds the limit of {max}")]
    TooManyOps {
        /// Operations declared.
        count: u32,
        /// The limit.
        max: usize,
    },
}

impl Refusal {
    /// The status to answer with.
    pub fn status(&self) -> Status {
        match self {
            Refusal::UnknownOpcode(_) => Status::Unsupported,
            Refusal::TooManyOps { .. } => Status::TooLarge,
        }
    }
}

/// A decoded request frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Its request id.
    pub id: u64,
    /// Its opcode byte (echoed in the response).
    pub opcode: u8,
    /// The request, or why it is refused.
    pub request: Result<Request, Refusal>,
}

/// Why a frame could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A key longer than [`KEY_BYTES_MAX`].
    #[error("key of {len} bytes exceeds the protocol's {max}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A body over [`BODY_BYTES_MAX`], or a batch over [`BATCH_OPS_MAX`].
    #[error("request of {bytes} bytes ({ops} operations) exceeds the protocol's limits")]
    TooLarge {
        /// Encoded body bytes.
        bytes: usize,
        /// Batch operations.
        ops: usize,
    },
}

/// Appends a hello.
pub fn encode_hello(out: &mut Vec<u8>, hello: Hello) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&hello.version.to_le_bytes());
    out.extend_from_slice(&hello.status.to_le_bytes());
}

/// Decodes a hello from the front of `buf`: `None` until 8 bytes are there.
pub fn decode_hello(buf: &[u8]) -> Result<Option<Hello>, FrameError> {
    let Some(bytes) = buf.get(..HELLO_BYTES) else {
        // Refuse garbage as soon as its first bytes show it.
        let seen = buf.len().min(MAGIC.len());
        if buf.get(..seen) != MAGIC.get(..seen) {
            return Err(FrameError::BadMagic { found: first4(buf) });
        }
        return Ok(None);
    };
    if bytes.get(..4) != Some(&MAGIC[..]) {
        return Err(FrameError::BadMagic {
            found: first4(bytes),
        });
    }
    Ok(Some(Hello {
        version: u16_at(bytes, 4),
        status: u16_at(bytes, 6),
    }))
}

fn first4(buf: &[u8]) -> [u8; 4] {
    let mut found = [0u8; 4];
    for (slot, byte) in found.iter_mut().zip(buf) {
        *slot = *byte;
    }
    found
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = at.checked_add(2).and_then(|end| b.get(at..end)) {
        x.copy_from_slice(s);
    }
    u16::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = at.checked_add(4).and_then(|end| b.get(at..end)) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = at.checked_add(8).and_then(|end| b.get(at..end)) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

fn header(out: &mut Vec<u8>, body_bytes: usize, id: u64, code: u8, opcode: u8) -> bool {
    let Ok(body_bytes) = u32::try_from(body_bytes) else {
        return false;
    };
    out.extend_from_slice(&body_bytes.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.push(code);
    out.push(opcode);
    out.extend_from_slice(&[0, 0]);
    true
}

fn key_len(key: &[u8]) -> Result<u16, EncodeError> {
    if key.len() > KEY_BYTES_MAX {
        return Err(EncodeError::KeyTooLong {
            len: key.len(),
            max: KEY_BYTES_MAX,
        });
    }
    u16::try_from(key.len()).map_err(|_| EncodeError::KeyTooLong {
        len: key.len(),
        max: KEY_BYTES_MAX,
    })
}

/// Appends a request frame. Checks the protocol's limits, so a request the
/// server would refuse as malformed is never sent.
pub fn encode_request(out: &mut Vec<u8>, id: u64, request: &Request) -> Result<(), EncodeError> {
    let mut body = Vec::new();
    match request {
        Request::Ping(payload) => body.extend_from_slice(payload),
        Request::Get(key)
        | Request::Delete(key)
        | Request::Exists(key)
        | Request::Deadline(key) => {
            key_len(key)?;
            body.extend_from_slice(key);
        }
        Request::Put(key, value) | Request::Append(key, value) => {
            body.extend_from_slice(&key_len(key)?.to_le_bytes());
            body.extend_from_slice(key);
            body.extend_from_slice(value);
        }
        Request::IncrBy(key, by) => {
            key_len(key)?;
            body.extend_from_slice(&by.to_le_bytes());
            body.extend_from_slice(key);
        }
        Request::PutUntil(key, value, deadline) => {
            body.extend_from_slice(&deadline.to_le_bytes());
            body.extend_from_slice(&key_len(key)?.to_le_bytes());
            body.extend_from_slice(key);
            body.extend_from_slice(value);
        }
        Request::ExpireAt(key, at) => {
            key_len(key)?;
            // A flag byte: 1 with a deadline, 0 to remove it (PERSIST).
            body.push(u8::from(at.is_some()));
            body.extend_from_slice(&at.unwrap_or(0).to_le_bytes());
            body.extend_from_slice(key);
        }
        Request::Batch(ops) => {
            let count = u32::try_from(ops.len())
                .ok()
                .filter(|&n| n as usize <= BATCH_OPS_MAX)
                .ok_or(EncodeError::TooLarge {
                    bytes: 0,
                    ops: ops.len(),
                })?;
            body.extend_from_slice(&count.to_le_bytes());
            for op in ops {
                let (kind, key, value) = match op {
                    BatchOp::Put(k, v) => (BATCH_PUT, k, v.as_slice()),
                    BatchOp::Delete(k) => (BATCH_DELETE, k, &[][..]),
                };
                let value_len = u32::try_from(value.len()).map_err(|_| EncodeError::TooLarge {
                    bytes: value.len(),
                    ops: ops.len(),
                })?;
                body.push(kind);
                body.extend_from_slice(&key_len(key)?.to_le_bytes());
                body.extend_from_slice(&value_len.to_le_bytes());
                body.extend_from_slice(key);
                body.extend_from_slice(value);
                if body.len() > BODY_BYTES_MAX {
                    break;
                }
            }
        }
    }
    if body.len() > BODY_BYTES_MAX {
        let ops = match request {
            Request::Batch(ops) => ops.len(),
            _ => 1,
        };
        return Err(EncodeError::TooLarge {
            bytes: body.len(),
            ops,
        });
    }
    out.reserve(HEADER_BYTES.saturating_add(body.len()));
    if !header(out, body.len(), id, request.opcode() as u8, 0) {
        return Err(EncodeError::TooLarge {
            bytes: body.len(),
            ops: 1,
        });
    }
    out.extend_from_slice(&body);
    Ok(())
}

/// Appends a response frame. A body over [`BODY_BYTES_MAX`] is replaced by
/// an `ERR_TOO_LARGE` message (the server never produces one: values are
/// limited on the way in).
pub fn encode_response(out: &mut Vec<u8>, id: u64, opcode: u8, status: Status, body: &[u8]) {
    if body.len() > BODY_BYTES_MAX {
        let message = b"response body exceeds the protocol's limit";
        encode_response(out, id, opcode, Status::TooLarge, message);
        return;
    }
    out.reserve(HEADER_BYTES.saturating_add(body.len()));
    if header(out, body.len(), id, status as u8, opcode) {
        out.extend_from_slice(body);
    }
}

/// The header fields and the complete frame, once it is all in `buf`.
struct Frame<'a> {
    id: u64,
    code: u8,
    opcode: u8,
    body: &'a [u8],
    used: usize,
}

fn frame<'a>(
    buf: &'a [u8],
    limits: &Limits,
    response: bool,
) -> Result<Option<Frame<'a>>, FrameError> {
    let Some(head) = buf.get(..HEADER_BYTES) else {
        return Ok(None);
    };
    let body_bytes = u32_at(head, 0);
    let id = u64_at(head, 4);
    let code = head.get(12).copied().unwrap_or(0);
    let opcode = head.get(13).copied().unwrap_or(0);
    if u16_at(head, 14) != 0 || (!response && opcode != 0) {
        return Err(FrameError::Malformed {
            id,
            reason: "reserved header bytes are not zero",
        });
    }
    let max = limits.body_bytes_max.min(BODY_BYTES_MAX);
    if body_bytes as usize > max {
        return Err(FrameError::TooLarge {
            id,
            bytes: u64::from(body_bytes),
            max,
        });
    }
    let used = HEADER_BYTES.saturating_add(body_bytes as usize);
    let Some(body) = buf.get(HEADER_BYTES..used) else {
        return Ok(None);
    };
    Ok(Some(Frame {
        id,
        code,
        opcode,
        body,
        used,
    }))
}

/// A cursor over a frame body that refuses to read past its end.
struct Body<'a> {
    bytes: &'a [u8],
    id: u64,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.bytes.len() {
            return Err(FrameError::Malformed {
                id: self.id,
                reason: "a length runs past the end of the frame",
            });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16_at(self.take(2)?, 0))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32_at(self.take(4)?, 0))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

/// Decodes the request frame at the front of `buf`. `Ok(None)`: more bytes
/// are needed. On success, returns the frame and how many bytes it used.
pub fn decode_request(buf: &[u8], limits: &Limits) -> Result<Option<(Decoded, usize)>, FrameError> {
    let Some(frame) = frame(buf, limits, false)? else {
        return Ok(None);
    };
    let id = frame.id;
    let mut body = Body {
        bytes: frame.body,
        id,
    };
    let request = match Opcode::from_byte(frame.code) {
        None => Err(Refusal::UnknownOpcode(frame.code)),
        Some(Opcode::Ping) => Ok(Request::Ping(body.rest().to_vec())),
        Some(Opcode::Get) => Ok(Request::Get(body.rest().to_vec())),
        Some(Opcode::Delete) => Ok(Request::Delete(body.rest().to_vec())),
        Some(Opcode::Exists) => Ok(Request::Exists(body.rest().to_vec())),
        Some(opcode @ (Opcode::Put | Opcode::Append)) => {
            let key_len = usize::from(body.u16()?);
            let key = body.take(key_len)?.to_vec();
            let value = body.rest().to_vec();
            match opcode {
                Opcode::Append => Ok(Request::Append(key, value)),
                _ => Ok(Request::Put(key, value)),
            }
        }
        Some(Opcode::IncrBy) => {
            let by = u64_at(body.take(8)?, 0) as i64;
            Ok(Request::IncrBy(body.rest().to_vec(), by))
        }
        Some(Opcode::Batch) => batch(&mut body, limits)?,
        Some(Opcode::Deadline) => Ok(Request::Deadline(body.rest().to_vec())),
        Some(Opcode::PutUntil) => {
            let deadline = u64_at(body.take(8)?, 0);
            let key_len = usize::from(body.u16()?);
            let key = body.take(key_len)?.to_vec();
            Ok(Request::PutUntil(key, body.rest().to_vec(), deadline))
        }
        Some(Opcode::ExpireAt) => {
            let flag = body.u8()?;
            let at = u64_at(body.take(8)?, 0) as i64;
            if flag > 1 {
                return Err(FrameError::Malformed {
                    id,
                    reason: "EXPIREAT's flag is neither 0 nor 1",
                });
            }
            let key = body.rest().to_vec();
            Ok(Request::ExpireAt(key, (flag == 1).then_some(at)))
        }
    };
    if !body.bytes.is_empty() {
        return Err(FrameError::Malformed {
            id,
            reason: "bytes left over after the request",
        });
    }
    Ok(Some((
        Decoded {
            id,
            opcode: frame.code,
            request,
        },
        frame.used,
    )))
}

fn batch(body: &mut Body<'_>, limits: &Limits) -> Result<Result<Request, Refusal>, FrameError> {
    let count = body.u32()?;
    let max = limits.batch_ops_max.min(BATCH_OPS_MAX);
    if count as usize > max {
        body.rest();
        return Ok(Err(Refusal::TooManyOps { count, max }));
    }
    // `count` is checked, and each operation takes at least 7 body bytes,
    // so this allocation is bounded twice over.
    let mut ops =
        Vec::with_capacity((count as usize).min(body.bytes.len() / BATCH_OP_HEADER_BYTES));
    for _ in 0..count {
        ops.push(batch_op(body)?);
    }
    Ok(Ok(Request::Batch(ops)))
}

fn batch_op(body: &mut Body<'_>) -> Result<BatchOp, FrameError> {
    let kind = body.u8()?;
    let key_len = usize::from(body.u16()?);
    let value_len = body.u32()? as usize;
    let key = body.take(key_len)?.to_vec();
    let value = body.take(value_len)?;
    match kind {
        BATCH_PUT => Ok(BatchOp::Put(key, value.to_vec())),
        BATCH_DELETE if value_len == 0 => Ok(BatchOp::Delete(key)),
        _ => Err(FrameError::Malformed {
            id: body.id,
            reason: "bad batch operation",
        }),
    }
}

/// Decodes the response frame at the front of `buf`. `Ok(None)`: more bytes
/// are needed.
pub fn decode_response(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Response, usize)>, FrameError> {
    let Some(frame) = frame(buf, limits, true)? else {
        return Ok(None);
    };
    let status = Status::from_byte(frame.code).ok_or(FrameError::Malformed {
        id: frame.id,
        reason: "unknown status code",
    })?;
    Ok(Some((
        Response {
            id: frame.id,
            opcode: frame.opcode,
            status,
            body: frame.body.to_vec(),
        },
        frame.used,
    )))
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..40)
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300)
    }

    fn request() -> impl Strategy<Value = Request> {
        let op = prop_oneof![
            (key(), value()).prop_map(|(k, v)| BatchOp::Put(k, v)),
            key().prop_map(BatchOp::Delete),
        ];
        prop_oneof![
            value().prop_map(Request::Ping),
            key().prop_map(Request::Get),
            (key(), value()).prop_map(|(k, v)| Request::Put(k, v)),
            key().prop_map(Request::Delete),
            key().prop_map(Request::Exists),
            proptest::collection::vec(op, 0..20).prop_map(Request::Batch),
            (key(), any::<i64>()).prop_map(|(k, by)| Request::IncrBy(k, by)),
            (key(), value()).prop_map(|(k, v)| Request::Append(k, v)),
            (key(), value(), any::<u64>()).prop_map(|(k, v, d)| Request::PutUntil(k, v, d)),
            (key(), proptest::option::of(any::<i64>()))
                .prop_map(|(k, at)| Request::ExpireAt(k, at)),
            key().prop_map(Request::Deadline),
        ]
    }

    fn status() -> impl Strategy<Value = Status> {
        (0u8..=255).prop_filter_map("a status", Status::from_byte)
    }

    proptest! {
        #[test]
        fn requests_round_trip(id: u64, request in request()) {
            let mut out = Vec::new();
            encode_request(&mut out, id, &request).unwrap();
            let (decoded, used) = decode_request(&out, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(decoded.id, id);
            prop_assert_eq!(decoded.opcode, request.opcode() as u8);
            prop_assert_eq!(decoded.request, Ok(request));
        }

        #[test]
        fn pipelined_requests_decode_one_by_one(requests in proptest::collection::vec(request(), 1..10)) {
            let mut out = Vec::new();
            for (i, r) in requests.iter().enumerate() {
                encode_request(&mut out, i as u64, r).unwrap();
            }
            let mut at = 0;
            for (i, r) in requests.iter().enumerate() {
                let (decoded, used) = decode_request(&out[at..], &Limits::default()).unwrap().unwrap();
                prop_assert_eq!(decoded.id, i as u64);
                prop_assert_eq!(&decoded.request, &Ok(r.clone()));
                at += used;
            }
            prop_assert_eq!(at, out.len());
        }

        #[test]
        fn a_prefix_is_incomplete_never_an_error(request in request(), cut in any::<prop::sample::Index>()) {
            let mut out = Vec::new();
            encode_request(&mut out, 7, &request).unwrap();
            let cut = cut.index(out.len());
            prop_assert_eq!(decode_request(&out[..cut], &Limits::default()), Ok(None));
        }

        #[test]
        fn responses_round_trip(id: u64, opcode: u8, status in status(), body in value()) {
            let mut out = Vec::new();
            encode_response(&mut out, id, opcode, status, &body);
            let (decoded, used) = decode_response(&out, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(decoded, Response { id, opcode, status, body });
        }

        #[test]
        fn hellos_round_trip(version: u16, status: u16) {
            let mut out = Vec::new();
            encode_hello(&mut out, Hello { version, status });
            prop_assert_eq!(decode_hello(&out), Ok(Some(Hello { version, status })));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let limits = Limits::default();
            let _ = decode_hello(&bytes);
            if let Ok(Some((_, used))) = decode_request(&bytes, &limits) {
                prop_assert!(used <= bytes.len());
            }
            if let Ok(Some((_, used))) = decode_response(&bytes, &limits) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn mutated_frames_never_panic(request in request(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
            let mut out = Vec::new();
            encode_request(&mut out, 1, &request).unwrap();
            for (at, byte) in flips {
                let at = at.index(out.len());
                out[at] = byte;
            }
            if let Ok(Some((decoded, used))) = decode_request(&out, &Limits::default()) {
                prop_assert!(used <= out.len());
                if let Ok(Request::Batch(ops)) = decoded.request {
                    prop_assert!(ops.len() <= BATCH_OPS_MAX);
                }
            }
        }

        #[test]
        fn a_declared_length_over_the_limit_is_refused_from_the_header_alone(declared in (BODY_BYTES_MAX as u32 + 1)..=u32::MAX, id: u64) {
            // Only the header has arrived: the decoder must refuse without
            // waiting for (or reserving room for) the body it declares.
            let mut head = Vec::new();
            head.extend_from_slice(&declared.to_le_bytes());
            head.extend_from_slice(&id.to_le_bytes());
            head.extend_from_slice(&[Opcode::Put as u8, 0, 0, 0]);
            let expected = Some(FrameError::TooLarge { id, bytes: u64::from(declared), max: BODY_BYTES_MAX });
            prop_assert_eq!(decode_request(&head, &Limits::default()).err(), expected.clone());
            prop_assert_eq!(decode_response(&head, &Limits::default()).err(), expected);
        }
    }

    #[test]
    fn a_server_may_set_lower_limits() {
        let limits = Limits {
            body_bytes_max: 100,
            batch_ops_max: 2,
        };
        let mut out = Vec::new();
        encode_request(&mut out, 3, &Request::Put(b"k".to_vec(), vec![0; 200])).unwrap();
        assert!(matches!(
            decode_request(&out, &limits),
            Err(FrameError::TooLarge { id: 3, .. })
        ));
        let ops = (0..3).map(|i| BatchOp::Delete(vec![i])).collect();
        out.clear();
        encode_request(&mut out, 4, &Request::Batch(ops)).unwrap();
        let (decoded, _) = decode_request(&out, &limits).unwrap().unwrap();
        assert_eq!(
            decoded.request,
            Err(Refusal::TooManyOps { count: 3, max: 2 })
        );
    }

    #[test]
    fn a_batch_count_larger_than_its_body_is_malformed_not_an_allocation() {
        let mut out = Vec::new();
        let mut body = Vec::new();
        body.extend_from_slice(&4096u32.to_le_bytes());
        header(&mut out, body.len(), 9, Opcode::Batch as u8, 0);
        out.extend_from_slice(&body);
        assert!(matches!(
            decode_request(&out, &Limits::default()),
            Err(FrameError::Malformed { id: 9, .. })
        ));
    }

    #[test]
    fn garbage_is_refused_at_its_first_byte() {
        assert!(matches!(
            decode_hello(b"GET"),
            Err(FrameError::BadMagic { .. })
        ));
        assert_eq!(decode_hello(b"VX"), Ok(None));
        assert!(matches!(
            decode_hello(b"*1\r\n$4\r\nPING\r\n"),
            Err(FrameError::BadMagic { .. })
        ));
    }

    #[test]
    fn unknown_opcodes_and_reserved_bits() {
        let mut out = Vec::new();
        header(&mut out, 0, 5, 99, 0);
        let (decoded, used) = decode_request(&out, &Limits::default()).unwrap().unwrap();
        assert_eq!(used, HEADER_BYTES);
        assert_eq!(decoded.request, Err(Refusal::UnknownOpcode(99)));
        out.clear();
        header(&mut out, 0, 5, Opcode::Ping as u8, 1);
        assert!(matches!(
            decode_request(&out, &Limits::default()),
            Err(FrameError::Malformed { id: 5, .. })
        ));
    }

    #[test]
    fn oversized_requests_are_not_encoded() {
        let mut out = Vec::new();
        assert!(encode_request(&mut out, 1, &Request::Get(vec![0; KEY_BYTES_MAX + 1])).is_err());
        assert!(encode_request(
            &mut out,
            1,
            &Request::Put(b"k".to_vec(), vec![0; BODY_BYTES_MAX])
        )
        .is_err());
        let ops = (0..=BATCH_OPS_MAX)
            .map(|_| BatchOp::Delete(b"k".to_vec()))
            .collect();
        assert!(encode_request(&mut out, 1, &Request::Batch(ops)).is_err());
        assert!(out.is_empty());
    }
}
