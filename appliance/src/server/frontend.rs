//! The per-worker event loop of the data port (mio: epoll): RESP and, on a
//! second listener, the native protocol. A connection speaks the protocol of
//! the listener that accepted it.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::{Frontend, Op, Reply, Submitter};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::connection::{Connection, Slot};
use super::native;
use crate::auth::{self, Gate, Inbox, Submitted, Then, Verifier};
use crate::commands::{self, Action};
use crate::resp::{self, encode, Limits, Parser, Protocol};
use crate::tls::{PortsTls, Transport};

/// The answer to a login when the verifier's queue is full.
const LOGINS_BUSY: &str = "ERR too many logins in progress, try again";

/// Why the native port refuses every client while users are configured.
const NATIVE_WITH_USERS: &str =
    "authentication required: the native protocol has no login yet; use the RESP port";

const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const NATIVE_LISTENER: Token = Token(2);
const FIRST_CONNECTION: usize = 3;
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Commands a connection may have in flight before its reads pause.
const PIPELINE_MAX: usize = 1024;
/// Unsent reply bytes a connection may hold before its reads pause.
const WRITE_BACKLOG_BYTES_MAX: usize = 64 << 20;

/// Limits of the data port.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Connections across every worker.
    pub connections_max: usize,
    /// Largest bulk string (a value): the engine's value limit plus slack.
    pub bulk_bytes_max: usize,
    /// Largest command in bytes.
    pub request_bytes_max: usize,
}

/// Counters of the data port, shared by every worker's frontend.
#[derive(Default, Debug)]
pub struct ServerStats {
    /// Connections open now.
    pub connections: AtomicUsize,
    /// Connections accepted.
    pub connections_accepted: AtomicU64,
    /// Connections refused past `connections_max`.
    pub connections_refused: AtomicU64,
    /// Commands executed.
    pub commands: AtomicU64,
    /// Protocol errors (connection closed).
    pub protocol_errors: AtomicU64,
    /// TLS connections refused by the handshake or a bad record: plain
    /// text on a TLS port, a missing, untrusted or revoked client
    /// certificate.
    pub tls_refused: AtomicU64,
    /// Logins refused: a wrong password or an unknown user (alike), or the
    /// verifier's queue full.
    pub auth_failures: AtomicU64,
    /// Of those, logins refused unchecked because their source had failed
    /// too often lately.
    pub auth_throttled: AtomicU64,
    /// Bytes read from clients.
    pub bytes_read: AtomicU64,
    /// Bytes written to clients.
    pub bytes_written: AtomicU64,
}

/// Binds a listening socket with SO_REUSEPORT, so that every worker can
/// have its own and the kernel spreads connections over them.
/// A TCP socket of `addr`'s family, not bound yet.
fn tcp_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
}

/// Fails when another process listens on `addr`. Each worker binds the
/// data ports with `SO_REUSEPORT`, which a second veltrixd (of the same
/// user) would share silently, the kernel splitting the clients between
/// two daemons with different data: so a plain bind is tried first, which
/// any listener on the address refuses. Port 0 is never in use.
pub fn ensure_free(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = tcp_socket(addr)?;
    // Not SO_REUSEPORT; SO_REUSEADDR only lets a restart bind past its old
    // connections in TIME_WAIT.
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("{addr} is in use by another process (another veltrixd?): {e}"),
        )
    })
}

pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = tcp_socket(addr)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// One worker's share of the data port: RESP and native connections.
pub struct RespFrontend {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    native_listener: Option<TcpListener>,
    /// Each listener's TLS configuration; `None` serves plain text.
    tls: PortsTls,
    /// Checks RESP clients' passwords; `None`: nobody logs in.
    verifier: Option<Arc<Verifier>>,
    /// Where the verifier's outcomes for this worker's connections arrive.
    logins: Arc<Inbox>,
    native_limits: veltrix_client::protocol::Limits,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    generations: Vec<u16>,
    limits: ServerLimits,
    stats: Arc<ServerStats>,
    started: std::time::Instant,
    /// Connections with unparsed input left after a pause.
    backlog: Vec<usize>,
    /// Commands that run in rounds (FLUSHDB) with their next round's
    /// operations, to submit at the next poll: connection, generation,
    /// sequence number, operations.
    rounds: Vec<(usize, u16, u32, Vec<Op>)>,
    args: Vec<std::ops::Range<usize>>,
    /// What CONFIG GET answers (`commands::config_settings`).
    config: Arc<Vec<(String, String)>>,
}

impl RespFrontend {
    /// A frontend on `listener` (RESP) and `native` (the native protocol),
    /// each with TLS as `tls` says and logins checked by `verifier`, and
    /// the waker the engine uses to interrupt its poll.
    pub fn new(
        listener: std::net::TcpListener,
        native: Option<std::net::TcpListener>,
        tls: PortsTls,
        verifier: Option<Arc<Verifier>>,
        limits: ServerLimits,
        stats: Arc<ServerStats>,
        config: Arc<Vec<(String, String)>>,
    ) -> std::io::Result<(RespFrontend, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let login_waker = Arc::clone(&waker);
        let logins = Inbox::new(Box::new(move || {
            let _ = login_waker.wake();
        }));
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let native_listener = match native {
            Some(l) => {
                let mut l = TcpListener::from_std(l);
                poll.registry()
                    .register(&mut l, NATIVE_LISTENER, Interest::READABLE)?;
                Some(l)
            }
            None => None,
        };
        let native_limits = veltrix_client::protocol::Limits {
            body_bytes_max: limits
                .request_bytes_max
                .min(veltrix_client::protocol::BODY_BYTES_MAX),
            batch_ops_max: commands::KEYS_PER_COMMAND_MAX,
        };
        Ok((
            RespFrontend {
                poll,
                events: Events::with_capacity(1024),
                listener: Some(listener),
                native_listener,
                tls,
                verifier,
                logins,
                native_limits,
                connections: Vec::new(),
                free: Vec::new(),
                generations: Vec::new(),
                limits,
                stats,
                started: std::time::Instant::now(),
                backlog: Vec::new(),
                rounds: Vec::new(),
                args: Vec::new(),
                config,
            },
            waker,
        ))
    }

    fn accept(&mut self, native: bool) {
        let listener = if native {
            self.native_listener.as_ref()
        } else {
            self.listener.as_ref()
        };
        let Some(listener) = listener else {
            return;
        };
        let tls = if native {
            self.tls.native.clone()
        } else {
            self.tls.resp.clone()
        };
        loop {
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            };
            let open = self.stats.connections.fetch_add(1, Ordering::Relaxed);
            if open >= self.limits.connections_max {
                self.stats.connections.fetch_sub(1, Ordering::Relaxed);
                self.stats
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                if tls.is_some() {
                    // The client expects a TLS handshake; plain text would
                    // be garbage to it. Closing says enough.
                } else if native {
                    let mut out = Vec::new();
                    native::hello_refusal(
                        &mut out,
                        veltrix_client::Status::Busy,
                        "max number of clients reached",
                    );
                    let _ = stream.write(&out);
                } else {
                    let _ = stream.write(b"-ERR max number of clients reached\r\n");
                }
                continue;
            }
            self.stats
                .connections_accepted
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let mut stream = match &tls {
                None => Transport::plain(stream),
                Some(config) => match Transport::tls(stream, config) {
                    Ok(transport) => transport,
                    Err(e) => {
                        tracing::warn!("cannot start a TLS connection: {e}");
                        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                },
            };
            let index = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.connections.push(None);
                    self.generations.push(0);
                    self.connections.len() - 1
                }
            };
            let generation = self.generations[index].wrapping_add(1);
            self.generations[index] = generation;
            let token = Token(index + FIRST_CONNECTION);
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!("cannot register connection: {e}");
                self.stats.connections.fetch_sub(1, Ordering::Relaxed);
                self.free.push(index);
                continue;
            }
            self.connections[index] = Some(Connection {
                stream,
                generation,
                read: Vec::with_capacity(4096),
                write: Vec::new(),
                parser: Parser::new(Limits {
                    bulk_bytes_max: self.limits.bulk_bytes_max,
                    array_len_max: commands::KEYS_PER_COMMAND_MAX * 2 + 8,
                    inline_bytes_max: 64 << 10,
                    request_bytes_max: self.limits.request_bytes_max,
                }),
                protocol: Protocol::Resp2,
                name: None,
                slots: Default::default(),
                next_seq: 0,
                closing: false,
                peer_closed: false,
                read_capped: false,
                native: native.then(|| native::Session {
                    handshaken: false,
                    refusal: self.verifier.as_ref().map(|_| NATIVE_WITH_USERS),
                }),
                login: Default::default(),
                peer: peer.ip(),
            });
        }
    }

    fn close(&mut self, index: usize) {
        if let Some(mut conn) = self.connections[index].take() {
            conn.stream.close_notify();
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.stats.connections.fetch_sub(1, Ordering::Relaxed);
            self.free.push(index);
        }
    }

    /// Reads what is available; returns false when the connection is gone.
    fn read(&mut self, index: usize) -> bool {
        let Some(conn) = self.connections[index].as_mut() else {
            return false;
        };
        conn.read_capped = false;
        loop {
            if conn.read.len() >= self.limits.request_bytes_max + READ_CHUNK_BYTES {
                // A full buffer holds a complete command or the parser has
                // refused it; stop reading until it is consumed.
                conn.read_capped = true;
                return true;
            }
            let start = conn.read.len();
            conn.read.resize(start + READ_CHUNK_BYTES, 0);
            match conn.stream.read(&mut conn.read[start..]) {
                Ok(0) => {
                    conn.read.truncate(start);
                    conn.peer_closed = true;
                    return true;
                }
                Ok(n) => {
                    conn.read.truncate(start + n);
                    self.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.read.truncate(start);
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => conn.read.truncate(start),
                Err(e) => {
                    conn.read.truncate(start);
                    if e.kind() == ErrorKind::InvalidData && conn.stream.is_tls() {
                        self.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("TLS connection refused: {e}");
                    }
                    return false;
                }
            }
        }
    }

    /// Parses and starts as many commands as the pipeline allows.
    fn process(&mut self, index: usize, submitter: &mut Submitter<'_>) {
        if self.connections[index]
            .as_ref()
            .is_some_and(|c| c.native.is_some())
        {
            self.process_native(index, submitter);
            return;
        }
        let mut consumed_total = 0;
        loop {
            let Some(conn) = self.connections[index].as_mut() else {
                return;
            };
            if let Some(come_back) = paused(conn, consumed_total) {
                if come_back {
                    self.backlog.push(index);
                }
                break;
            }
            let mut args = std::mem::take(&mut self.args);
            let parsed = conn
                .parser
                .parse(&mut conn.read[consumed_total..], &mut args);
            match parsed {
                Ok(None) => {
                    self.args = args;
                    break;
                }
                Err(error) => {
                    self.args = args;
                    self.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    let mut out = Vec::new();
                    encode::protocol_error(&mut out, &error);
                    let seq = conn.next_seq;
                    conn.next_seq = conn.next_seq.wrapping_add(1);
                    conn.slots.push_back(Slot {
                        seq,
                        ready: Some(out),
                        combine: None,
                        parts: Vec::new(),
                        outstanding: 0,
                        close_after: true,
                        native: None,
                    });
                    conn.closing = true;
                    break;
                }
                Ok(Some(used)) => {
                    let base = consumed_total;
                    consumed_total += used;
                    if args.is_empty() {
                        self.args = args;
                        continue;
                    }
                    let buf = &conn.read[base..base + used];
                    let words: Vec<&[u8]> = resp::arg_bytes(buf, &args).collect();
                    let gate = match &self.verifier {
                        Some(_) => auth::gate(&conn.login, &words),
                        None => Gate::Pass,
                    };
                    let action = match gate {
                        Gate::Pass => commands::dispatch(&words, conn.protocol),
                        Gate::Answer(action) => action,
                        Gate::Verify(login) => {
                            let ticket = login_ticket(index, conn.generation);
                            let submitted = match &self.verifier {
                                Some(verifier) => verifier.submit(
                                    login.user.clone(),
                                    login.password,
                                    conn.peer,
                                    ticket,
                                    &self.logins,
                                ),
                                None => Submitted::Busy,
                            };
                            if submitted == Submitted::Queued {
                                // The connection pauses until the outcome.
                                conn.login.start(login.user, login.then);
                                self.args = args;
                                self.stats.commands.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            self.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                            let message = if submitted == Submitted::Throttled {
                                self.stats.auth_throttled.fetch_add(1, Ordering::Relaxed);
                                auth::WRONGPASS
                            } else {
                                LOGINS_BUSY
                            };
                            let mut out = Vec::new();
                            encode::error(&mut out, message);
                            Action::Reply(out)
                        }
                    };
                    self.args = args;
                    self.stats.commands.fetch_add(1, Ordering::Relaxed);
                    self.start(index, action, submitter);
                }
            }
        }
        self.consumed(index, consumed_total);
    }

    /// Drops the bytes the parser consumed. A connection whose last read
    /// stopped at the buffer's cap, and that can take more now, goes to the
    /// backlog to read the rest: the socket will not say again that it has
    /// bytes waiting.
    fn consumed(&mut self, index: usize, consumed: usize) {
        if let Some(conn) = self.connections[index].as_mut() {
            conn.read.drain(..consumed);
            if conn.read_capped && paused(conn, 0).is_none() {
                self.backlog.push(index);
            }
        }
    }

    /// The native protocol's [`process`](Self::process): decodes frames and
    /// starts their operations, under the same pipeline and backlog bounds.
    fn process_native(&mut self, index: usize, submitter: &mut Submitter<'_>) {
        let mut consumed_total = 0;
        loop {
            let Some(conn) = self.connections[index].as_mut() else {
                return;
            };
            if let Some(come_back) = paused(conn, consumed_total) {
                if come_back {
                    self.backlog.push(index);
                }
                break;
            }
            let Some(session) = conn.native.as_mut() else {
                break;
            };
            let step = native::next(&conn.read[consumed_total..], session, &self.native_limits);
            let seq = conn.next_seq;
            let mut slot = Slot {
                seq,
                ready: None,
                combine: None,
                parts: Vec::new(),
                outstanding: 0,
                close_after: false,
                native: None,
            };
            let op = match step {
                native::Step::NeedMore => break,
                native::Step::Reply { used, bytes, close } => {
                    consumed_total += used;
                    if close {
                        self.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        conn.closing = true;
                    }
                    slot.ready = Some(bytes);
                    slot.close_after = close;
                    None
                }
                native::Step::Engine {
                    used,
                    id,
                    opcode,
                    op,
                } => {
                    consumed_total += used;
                    self.stats.commands.fetch_add(1, Ordering::Relaxed);
                    slot.native = Some(native::Pending { id, opcode });
                    slot.outstanding = 1;
                    slot.parts = vec![None];
                    Some(op)
                }
            };
            conn.next_seq = conn.next_seq.wrapping_add(1);
            conn.slots.push_back(slot);
            if let Some(op) = op {
                submitter.submit(token(index, conn.generation, seq, 0), op);
            }
        }
        self.consumed(index, consumed_total);
    }

    fn start(&mut self, index: usize, action: Action, submitter: &mut Submitter<'_>) {
        let Some(conn) = self.connections[index].as_mut() else {
            return;
        };
        let seq = conn.next_seq;
        conn.next_seq = conn.next_seq.wrapping_add(1);
        let mut slot = Slot {
            seq,
            ready: None,
            combine: None,
            parts: Vec::new(),
            outstanding: 0,
            close_after: false,
            native: None,
        };
        let mut ops = Vec::new();
        match action {
            Action::Reply(bytes) => slot.ready = Some(bytes),
            Action::ReplyAndClose(bytes) => {
                slot.ready = Some(bytes);
                slot.close_after = true;
                conn.closing = true;
            }
            Action::Hello(protocol, name) => {
                conn.protocol = protocol;
                if name.is_some() {
                    conn.name = name;
                }
                let mut out = Vec::new();
                encode::map_header(&mut out, 7, protocol);
                for (k, v) in [
                    ("server", "veltrixdb"),
                    ("version", env!("CARGO_PKG_VERSION")),
                ] {
                    encode::bulk(&mut out, k.as_bytes());
                    encode::bulk(&mut out, v.as_bytes());
                }
                encode::bulk(&mut out, b"proto");
                encode::integer(&mut out, if protocol == Protocol::Resp3 { 3 } else { 2 });
                encode::bulk(&mut out, b"id");
                encode::integer(&mut out, (index as i64) << 16 | i64::from(conn.generation));
                for (k, v) in [("mode", "standalone"), ("role", "master")] {
                    encode::bulk(&mut out, k.as_bytes());
                    encode::bulk(&mut out, v.as_bytes());
                }
                encode::bulk(&mut out, b"modules");
                encode::array_header(&mut out, 0);
                slot.ready = Some(out);
            }
            Action::SetName(name) => {
                conn.name = Some(name);
                let mut out = Vec::new();
                encode::simple(&mut out, "OK");
                slot.ready = Some(out);
            }
            Action::GetName => {
                let mut out = Vec::new();
                match &conn.name {
                    Some(n) => encode::bulk(&mut out, n),
                    None => encode::null(&mut out, conn.protocol),
                }
                slot.ready = Some(out);
            }
            Action::ConfigGet(patterns) => {
                let mut out = Vec::new();
                commands::config_get(&mut out, &self.config, &patterns, conn.protocol);
                slot.ready = Some(out);
            }
            Action::Info => {
                let stats = submitter.stats();
                let text = format!(
                    "# Server\r\nveltrixdb_version:{}\r\nredis_version:7.2.0\r\nredis_mode:standalone\r\nuptime_in_seconds:{}\r\n\r\n# Clients\r\nconnected_clients:{}\r\n\r\n# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\r\n# Persistence\r\nveltrix_group_commits:{}\r\nveltrix_flushes:{}\r\nveltrix_records_written:{}\r\nveltrix_corruption_detected:{}\r\n\r\n# Keyspace\r\ndb0:keys={},expires={}\r\n",
                    env!("CARGO_PKG_VERSION"),
                    self.started.elapsed().as_secs(),
                    self.stats.connections.load(Ordering::Relaxed),
                    self.stats.connections_accepted.load(Ordering::Relaxed),
                    self.stats.commands.load(Ordering::Relaxed),
                    stats.batches.load(Ordering::Relaxed),
                    stats.flushes.load(Ordering::Relaxed),
                    stats.records.load(Ordering::Relaxed),
                    stats.corruption_detected.load(Ordering::Relaxed),
                    stats.keys.load(Ordering::Relaxed),
                    stats.expiring_keys.load(Ordering::Relaxed),
                );
                let mut out = Vec::new();
                encode::verbatim(&mut out, *b"txt", text.as_bytes(), conn.protocol);
                slot.ready = Some(out);
            }
            Action::Engine(engine_ops, combine) => {
                slot.outstanding = engine_ops.len();
                slot.parts = (0..engine_ops.len()).map(|_| None).collect();
                slot.combine = Some(combine);
                ops = engine_ops;
            }
        }
        let generation = conn.generation;
        conn.slots.push_back(slot);
        for (part, op) in ops.into_iter().enumerate() {
            submitter.submit(token(index, generation, seq, part), op);
        }
    }

    /// Writes what it can; returns false when the connection should close.
    fn flush(&mut self, index: usize) -> bool {
        let Some(conn) = self.connections[index].as_mut() else {
            return false;
        };
        let close_after = conn.collect_ready();
        let mut written = 0;
        while written < conn.write.len() {
            match conn.stream.write(&conn.write[written..]) {
                Ok(0) => return false,
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.stats
            .bytes_written
            .fetch_add(written as u64, Ordering::Relaxed);
        conn.write.drain(..written);
        // TLS records rustls still holds; the socket's next writable event
        // brings the connection back here for the rest.
        match conn.stream.flush() {
            Err(e) if e.kind() != ErrorKind::WouldBlock => return false,
            _ => {}
        }
        let sent = !conn.output_pending();
        let done = sent && conn.slots.is_empty();
        !(close_after && sent || (conn.peer_closed || conn.closing) && done)
    }

    /// A login's outcome: answer it in command order, then resume the
    /// connection's pipelined commands under the new login.
    fn finish_login(
        &mut self,
        ticket: u64,
        role: Option<auth::Role>,
        submitter: &mut Submitter<'_>,
    ) {
        let index = (ticket >> 16) as usize;
        let Some(Some(conn)) = self.connections.get_mut(index) else {
            return;
        };
        if u64::from(conn.generation) != ticket & 0xFFFF {
            return;
        }
        if role.is_none() {
            self.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        }
        let action = match conn.login.finish(role) {
            Ok(Then::Auth) => {
                let mut out = Vec::new();
                encode::simple(&mut out, "OK");
                Action::Reply(out)
            }
            Ok(Then::Hello(words)) => {
                let words: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
                commands::dispatch(&words, conn.protocol)
            }
            Err(answer) => answer,
        };
        self.start(index, action, submitter);
        self.backlog.push(index);
    }

    fn service(&mut self, index: usize, submitter: &mut Submitter<'_>) {
        if !self.read(index) {
            self.close(index);
            return;
        }
        self.process(index, submitter);
        if !self.flush(index) {
            self.close(index);
        }
    }
}

/// A reply token: connection slot, its generation (so a reply for a closed
/// connection is dropped), the command's sequence number and the part.
fn token(index: usize, generation: u16, seq: u32, part: usize) -> u64 {
    ((index as u64) << 44)
        | (u64::from(generation) << 28)
        | (u64::from(seq & 0xFFFF) << 12)
        | part as u64
}

fn untoken(token: u64) -> (usize, u16, u32, usize) {
    (
        (token >> 44) as usize,
        ((token >> 28) & 0xFFFF) as u16,
        ((token >> 12) & 0xFFFF) as u32,
        (token & 0xFFF) as usize,
    )
}

const _: () = assert!(commands::KEYS_PER_COMMAND_MAX <= 0x1000);
const _: () = assert!(PIPELINE_MAX < 0x10000);

impl Frontend for RespFrontend {
    fn poll(&mut self, submitter: &mut Submitter<'_>, timeout: Option<Duration>) -> bool {
        let mut progressed = false;
        for (index, generation, seq, ops) in std::mem::take(&mut self.rounds) {
            progressed = true;
            for (part, op) in ops.into_iter().enumerate() {
                submitter.submit(token(index, generation, seq, part), op);
            }
        }
        for (ticket, role) in self.logins.take() {
            progressed = true;
            self.finish_login(ticket, role, submitter);
        }
        // Connections paused by backpressure whose replies have since drained.
        let backlog = std::mem::take(&mut self.backlog);
        for index in backlog {
            progressed = true;
            let capped = self.connections[index]
                .as_ref()
                .is_some_and(|c| c.read_capped);
            if capped {
                // Bytes wait in the socket that no readiness event will
                // announce again.
                self.service(index, submitter);
                continue;
            }
            self.process(index, submitter);
            if !self.flush(index) {
                self.close(index);
            }
        }
        let timeout = if progressed {
            Some(Duration::ZERO)
        } else {
            timeout.or(Some(Duration::ZERO))
        };
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != ErrorKind::Interrupted {
                tracing::warn!("poll failed: {e}");
            }
            return progressed;
        }
        let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
        for token in tokens {
            progressed = true;
            match token {
                WAKER => {}
                LISTENER => self.accept(false),
                NATIVE_LISTENER => self.accept(true),
                Token(t) => self.service(t - FIRST_CONNECTION, submitter),
            }
        }
        progressed
    }

    fn reply(&mut self, token: u64, reply: Reply) {
        let (index, generation, seq, part) = untoken(token);
        let Some(Some(conn)) = self.connections.get_mut(index) else {
            return;
        };
        if conn.generation != generation {
            return;
        }
        let protocol = conn.protocol;
        let Some(slot) = conn
            .slots
            .iter_mut()
            .find(|s| s.seq & 0xFFFF == seq && s.ready.is_none())
        else {
            return;
        };
        if let Some(p) = slot.parts.get_mut(part) {
            *p = Some(reply);
        }
        slot.outstanding = slot.outstanding.saturating_sub(1);
        if slot.outstanding == 0 {
            let mut out = Vec::new();
            if let Some(pending) = slot.native.take() {
                let reply = slot.parts.first_mut().and_then(Option::take);
                native::encode_reply(&mut out, &pending, reply);
            } else if let Some(combine) = slot.combine.take() {
                if let Some((ops, next)) = commands::next_round(&combine, &mut slot.parts) {
                    slot.outstanding = ops.len();
                    slot.parts = (0..ops.len()).map(|_| None).collect();
                    slot.combine = Some(next);
                    let seq = slot.seq;
                    self.rounds.push((index, generation, seq, ops));
                    return;
                }
                commands::combine(&mut out, &combine, &mut slot.parts, protocol);
            }
            slot.parts.clear();
            slot.ready = Some(out);
            if !self.flush(index) {
                self.close(index);
            } else if self.connections[index]
                .as_ref()
                .is_some_and(|c| !c.read.is_empty() || c.read_capped)
            {
                self.backlog.push(index);
            }
        }
    }

    fn shutdown(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        if let Some(mut listener) = self.native_listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for index in 0..self.connections.len() {
            if let Some(conn) = self.connections[index].as_mut() {
                conn.closing = true;
                if conn.slots.is_empty() && !conn.output_pending() {
                    self.close(index);
                }
            }
        }
    }

    fn draining(&self) -> bool {
        self.listener.is_none()
            && self
                .connections
                .iter()
                .flatten()
                .any(|c| !c.slots.is_empty() || c.output_pending())
    }
}

/// Whether a connection must stop taking requests for now: it is closing,
/// its pipeline is full, or its replies are backed up. `Some(true)` when
/// unparsed input is left and it must be processed again once replies drain.
/// A connection waiting for its login's outcome is paused too, but not
/// sent back: the outcome resumes it.
fn paused(conn: &Connection, consumed: usize) -> Option<bool> {
    let login = conn.login.is_pending();
    let stop = conn.closing
        || login
        || conn.slots.len() >= PIPELINE_MAX
        || conn.write.len() >= WRITE_BACKLOG_BYTES_MAX;
    stop.then_some(!conn.closing && !login && (consumed < conn.read.len() || conn.read_capped))
}

/// Names a connection to the login verifier: slot and generation.
fn login_ticket(index: usize, generation: u16) -> u64 {
    ((index as u64) << 16) | u64::from(generation)
}
