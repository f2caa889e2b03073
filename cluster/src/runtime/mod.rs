//! A node on a thread, talking to its peers over TCP.
//!
//! The loop (`mio`, epoll) owns the [`Node`] and its connections: it
//! ticks the node every `tick`, feeds it what peers send, hands it client
//! requests from [`Handle::call`], steps it, and sends what it says. One
//! connection per node pair: the node with the lower id dials, the other
//! accepts; a broken connection is redialled at the next tick. Each
//! peer's outgoing queue is bounded (`queue_limit`); an envelope that does
//! not fit is dropped, as a lossy network would drop it, and Raft sends
//! again. Delay and loss can be injected here (`LinkFaults`): this kernel
//! has no netem.

mod peer;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::group::Reply;
use crate::node::{Envelope, Node, NodeConfig, Request};
use crate::placement::NodeId;
use crate::storage::Disk;
use peer::Conn;

/// The hello a node sends first on a peer connection (for tests that play
/// a peer).
pub fn hello_bytes(cluster: u128, node: NodeId) -> Vec<u8> {
    peer::hello(cluster, node)
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// Faults injected on the way out: each envelope is lost with chance
/// `drop_ppm` in a million, and held `delay` before it is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkFaults {
    pub drop_ppm: u32,
    pub delay: Duration,
}

/// How a node runs and whom it talks to.
pub struct RuntimeConfig {
    pub node: NodeConfig,
    /// Peers of another cluster are refused at the hello.
    pub cluster: u128,
    /// The listener for peers (bound by the caller, so tests can use port 0).
    pub listener: std::net::TcpListener,
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub tick: Duration,
    pub queue_limit: usize,
    pub faults: LinkFaults,
}

enum Command {
    Submit {
        request: Request,
        reply: mpsc::Sender<Reply>,
    },
    Faults(LinkFaults),
    Stop,
}

/// Counters of a running node's transport.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub envelopes_sent: std::sync::atomic::AtomicU64,
    pub envelopes_received: std::sync::atomic::AtomicU64,
    /// Dropped: a full queue, no connection, or an injected loss.
    pub envelopes_dropped: std::sync::atomic::AtomicU64,
}

/// One group replica as its node last saw it (refreshed every tick).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: crate::layout::GroupId,
    pub replica: crate::placement::ReplicaId,
    pub is_leader: bool,
    /// The leader this replica knows of.
    pub leader: Option<NodeId>,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    /// On the leader: entries the furthest-behind replica lacks.
    pub lag: Option<u64>,
    /// Times the known leader changed since the node started.
    pub leader_changes: u64,
    pub snapshots_sent: u64,
    pub snapshots_installed: u64,
    pub hibernating: bool,
    pub configuration: crate::group::Configuration,
}

/// What a node's loop last published.
#[derive(Clone, Debug, Default)]
pub struct NodeStatus {
    pub groups: Vec<GroupStatus>,
    /// The disk's bytes written and flushes (`Disk::written`).
    pub disk_bytes: u64,
    pub disk_flushes: u64,
}

/// A running node.
pub struct Handle<D> {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<D>>,
    pub stats: Arc<TransportStats>,
    status: Arc<std::sync::Mutex<NodeStatus>>,
}

impl<D: Disk + Send + 'static> Handle<D> {
    /// Opens the node from `disk` and starts its loop on a new thread.
    pub fn start(config: RuntimeConfig, disk: D, campaign: bool) -> std::io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (commands, inbox) = mpsc::channel();
        let stats = Arc::new(TransportStats::default());
        let status = Arc::default();
        let mut node = Node::open(config.node.clone(), disk).map_err(std::io::Error::other)?;
        if campaign {
            node.campaign_preferred();
        }
        config.listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(config.listener.try_clone()?);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut looped = Loop {
            node,
            poll,
            listener,
            inbox,
            config,
            conns: BTreeMap::new(),
            next_token: FIRST_CONN,
            waiting: BTreeMap::new(),
            next_request: 1,
            delayed: Vec::new(),
            rng: 0x2545_f491_4f6c_dd1d,
            stats: Arc::clone(&stats),
            status: Arc::clone(&status),
            leaders: BTreeMap::new(),
        };
        looped.publish_status();
        let thread = std::thread::Builder::new()
            .name(format!("veltrix-node-{}", looped.node.id()))
            .spawn(move || looped.run())?;
        Ok(Self {
            commands,
            waker,
            thread: Some(thread),
            stats,
            status,
        })
    }

    /// Every hosted group replica and the disk's counters, as of the
    /// node's last tick.
    pub fn status(&self) -> NodeStatus {
        self.status
            .lock()
            .expect("the status lock is never poisoned")
            .clone()
    }

    /// Whether the node's loop has stopped (it panics on a failed flush:
    /// what it wrote since the last good one cannot be trusted).
    pub fn is_stopped(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Sends a request and waits up to `timeout` for its reply; `None` on
    /// a timeout (the request may still take effect) or a stopped node.
    pub fn call(&self, request: Request, timeout: Duration) -> Option<Reply> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::Submit { request, reply })
            .ok()?;
        self.waker.wake().ok()?;
        answer.recv_timeout(timeout).ok()
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, faults: LinkFaults) {
        let _ = self.commands.send(Command::Faults(faults));
        let _ = self.waker.wake();
    }

    /// Stops the loop and returns the node's disk (what a restart reopens).
    pub fn stop(mut self) -> Option<D> {
        let _ = self.commands.send(Command::Stop);
        let _ = self.waker.wake();
        self.thread.take()?.join().ok()
    }
}

impl<D> Drop for Handle<D> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.commands.send(Command::Stop);
            let _ = self.waker.wake();
        }
    }
}

struct Loop<D: Disk> {
    node: Node<D>,
    poll: Poll,
    listener: TcpListener,
    inbox: mpsc::Receiver<Command>,
    config: RuntimeConfig,
    conns: BTreeMap<Token, Conn>,
    next_token: usize,
    waiting: BTreeMap<u64, mpsc::Sender<Reply>>,
    next_request: u64,
    delayed: Vec<(Instant, Envelope)>,
    rng: u64,
    stats: Arc<TransportStats>,
    status: Arc<std::sync::Mutex<NodeStatus>>,
    /// Per group: the leader last published and how often it changed.
    leaders: BTreeMap<crate::layout::GroupId, (Option<NodeId>, u64)>,
}

impl<D: Disk> Loop<D> {
    fn publish_status(&mut self) {
        let leaders = &mut self.leaders;
        let groups: Vec<GroupStatus> = self
            .node
            .groups()
            .map(|g| {
                let seen = leaders.entry(g.id()).or_insert((g.leader(), 0));
                if seen.0 != g.leader() {
                    *seen = (g.leader(), seen.1 + 1);
                }
                let (snapshots_sent, snapshots_installed) = g.snapshot_counts();
                GroupStatus {
                    group: g.id(),
                    replica: g.replica(),
                    is_leader: g.is_leader(),
                    leader: g.leader(),
                    term: g.term(),
                    commit: g.commit_index(),
                    applied: g.applied(),
                    lag: g.replication_lag(),
                    leader_changes: seen.1,
                    snapshots_sent,
                    snapshots_installed,
                    hibernating: g.is_hibernating(),
                    configuration: g.configuration(),
                }
            })
            .collect();
        let (disk_bytes, disk_flushes) = self.node.disk().written();
        // Only this thread writes it and readers only clone it, so a
        // poisoned lock means a bug: stop rather than publish nothing.
        *self
            .status
            .lock()
            .expect("the status lock is never poisoned") = NodeStatus {
            groups,
            disk_bytes,
            disk_flushes,
        };
    }

    fn run(mut self) -> D {
        let mut events = Events::with_capacity(256);
        let mut next_tick = Instant::now() + self.config.tick;
        self.dial_missing();
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            if self.poll.poll(&mut events, Some(wait)).is_err() {
                continue;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => self.on_conn(token),
                }
            }
            if !self.commands() {
                return self.node.into_disk();
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick += self.config.tick;
                self.dial_missing();
                self.publish_status();
            }
            // A leader's appends leave before its flush, so its fdatasync
            // and its followers' overlap (Raft §10.2.1); what must wait for
            // the flush (votes, acknowledgements) comes out of finish_step.
            let (early, flush) = self.node.begin_step();
            for envelope in early {
                self.send(envelope);
            }
            let out = self.node.finish_step(flush);
            for (request, reply) in out.replies {
                if let Some(waiter) = self.waiting.remove(&request) {
                    let _ = waiter.send(reply);
                }
            }
            for envelope in out.envelopes {
                self.send(envelope);
            }
            self.send_due();
        }
    }

    /// Client requests and control; false once told to stop.
    fn commands(&mut self) -> bool {
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Submit { request, reply } => {
                    let id = self.next_request;
                    self.next_request += 1;
                    self.waiting.insert(id, reply);
                    self.node.submit(id, request);
                }
                Command::Faults(faults) => self.config.faults = faults,
                Command::Stop => return false,
            }
        }
        true
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let hello = peer::hello(self.config.cluster, self.node.id());
            self.register(Conn::new(stream, None, hello));
        }
    }

    fn register(&mut self, mut conn: Conn) {
        let token = Token(self.next_token);
        self.next_token += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if registry(&self.poll)
            .register(&mut conn.stream, token, interest)
            .is_ok()
        {
            self.conns.insert(token, conn);
        }
    }

    /// Dials every peer with a higher id that has no connection.
    fn dial_missing(&mut self) {
        let me = self.node.id();
        let connected: Vec<NodeId> = self.conns.values().filter_map(|c| c.peer).collect();
        let to_dial: Vec<(NodeId, SocketAddr)> = self
            .config
            .peers
            .iter()
            .filter(|(&id, _)| id > me && !connected.contains(&id))
            .map(|(&id, &addr)| (id, addr))
            .collect();
        for (id, addr) in to_dial {
            if let Ok(stream) = TcpStream::connect(addr) {
                let hello = peer::hello(self.config.cluster, me);
                self.register(Conn::new(stream, Some(id), hello));
            }
        }
    }

    fn on_conn(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let result = conn.flush().and_then(|()| conn.read(self.config.cluster));
        match result {
            Ok(envelopes) => {
                let from = conn.peer;
                for envelope in envelopes {
                    if Some(envelope.from) == from && envelope.to == self.node.id() {
                        self.stats
                            .envelopes_received
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.node.receive(envelope);
                    }
                }
                self.drop_duplicates(token);
            }
            Err(_) => self.close(token),
        }
    }

    /// A peer that reconnected leaves its old connection behind: keep the
    /// newest per peer.
    fn drop_duplicates(&mut self, token: Token) {
        let Some(peer) = self.conns.get(&token).and_then(|c| c.peer) else {
            return;
        };
        let older: Vec<Token> = self
            .conns
            .iter()
            .filter(|(&t, c)| t < token && c.peer == Some(peer))
            .map(|(&t, _)| t)
            .collect();
        for t in older {
            self.close(t);
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = registry(&self.poll).deregister(&mut conn.stream);
        }
    }

    fn send(&mut self, envelope: Envelope) {
        let faults = self.config.faults;
        if faults.drop_ppm > 0 && self.random() % 1_000_000 < u64::from(faults.drop_ppm) {
            self.stats
                .envelopes_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        if faults.delay.is_zero() {
            self.write(envelope);
        } else {
            self.delayed.push((Instant::now() + faults.delay, envelope));
        }
    }

    fn send_due(&mut self) {
        if self.delayed.is_empty() {
            return;
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.delayed = later;
        for (_, envelope) in due {
            self.write(envelope);
        }
    }

    fn write(&mut self, envelope: Envelope) {
        use std::sync::atomic::Ordering::Relaxed;
        let limit = self.config.queue_limit;
        let conn = self
            .conns
            .iter_mut()
            .rev()
            .find(|(_, c)| c.peer == Some(envelope.to))
            .map(|(&t, c)| (t, c));
        let Some((token, conn)) = conn else {
            self.stats.envelopes_dropped.fetch_add(1, Relaxed);
            return;
        };
        if !conn.queue(&envelope, limit) {
            self.stats.envelopes_dropped.fetch_add(1, Relaxed);
            return;
        }
        self.stats.envelopes_sent.fetch_add(1, Relaxed);
        if conn.flush().is_err() {
            self.close(token);
        }
    }

    /// xorshift64: the loss injection's random source.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

fn registry(poll: &Poll) -> &Registry {
    poll.registry()
}
