//! A cluster node: every group replica it hosts, driven as one state
//! machine.
//!
//! A loop (a worker thread in production, the simulator in tests) feeds a
//! node ticks, peers' envelopes and client requests, and calls
//! [`Node::step`], which returns the envelopes to send and the replies to
//! give. One step persists the Raft entries and hard states of all of the
//! node's groups with one flush, and batches all messages for one peer
//! into one envelope: heartbeats of many groups to the same node travel
//! together.

use std::collections::{BTreeMap, BTreeSet};

use raft::prelude::Message;

use crate::entry::Write;
use crate::group::{Group, Prepared, Read, Reply, Tuning};
use crate::layout::{GroupId, GroupLayout};
use crate::placement::{node_of, replica_id, NodeId, ReplicaId, Replicas};
use crate::storage::{Disk, GroupLog, LogWrite};

/// Messages from one node to another, all groups together.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub messages: Vec<(GroupId, Message)>,
    /// Groups whose leader (the sender) hibernates them, at this term.
    pub hibernate: Vec<(GroupId, u64)>,
}

/// A client request as the node sees it. Request ids are the caller's,
/// unique among the requests it has in flight on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A write to the key's group: proposed as one entry.
    Write(Write),
    /// `stale`: read this replica's applied state without confirming
    /// leadership (a `READONLY` connection's read).
    Get { read: Read, stale: bool },
}

impl Request {
    /// The key the request is about (a batch's first).
    pub fn key(&self) -> &[u8] {
        match self {
            Request::Write(write) => write.key(),
            Request::Get { read, .. } => &read.key,
        }
    }
}

/// What a step produced.
#[derive(Debug, Default)]
pub struct Output {
    pub envelopes: Vec<Envelope>,
    pub replies: Vec<(u64, Reply)>,
}

/// What a node is: its id, the layout and placement it serves, and how
/// its groups run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    pub layout: GroupLayout,
    /// The replicas of every group, indexed by group id.
    pub placement: Vec<Replicas>,
    pub tuning: Tuning,
    /// Seeds the election timeouts' jitter.
    pub seed: u64,
}

/// Why a node cannot open.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("placement names {placed} groups, the layout has {layout}")]
    PlacementSize { placed: usize, layout: u32 },
    #[error("group {group}: {source}")]
    Raft { group: GroupId, source: raft::Error },
}

/// One node of the cluster.
pub struct Node<D: Disk> {
    config: NodeConfig,
    groups: BTreeMap<GroupId, Group>,
    disk: D,
    /// Writes to persist with the next flush (commit indexes, compactions).
    deferred: Vec<LogWrite>,
    outbox: Vec<(NodeId, GroupId, Message)>,
    replies: Vec<(u64, Reply)>,
    /// Ticks since the node opened: its clock for peer silence.
    ticks: u64,
    /// The tick each peer was last heard from.
    last_heard: BTreeMap<NodeId, u64>,
    /// Hibernation notices to send: (peer, group, term).
    notices: Vec<(NodeId, GroupId, u64)>,
    /// A tick happened since the last step: every peer gets an envelope.
    keepalive: bool,
    /// Peers sent an envelope before this step's flush (their keepalive).
    sent_early: BTreeSet<NodeId>,
}

impl<D: Disk> Node<D> {
    /// Opens the node's groups from its disk; a group never stored starts
    /// from its bootstrap configuration (the placement's three replicas).
    pub fn open(config: NodeConfig, disk: D) -> Result<Self, NodeError> {
        if config.placement.len() != config.layout.groups() as usize {
            return Err(NodeError::PlacementSize {
                placed: config.placement.len(),
                layout: config.layout.groups(),
            });
        }
        let mut disk = disk;
        if disk.is_fresh() {
            // A new node: the groups the initial placement gives it, each
            // from its first configuration, durable in one flush before
            // it votes or appends anything.
            let bootstrap: Vec<LogWrite> = (0..)
                .zip(&config.placement)
                .filter(|(_, replicas)| replicas.contains(config.id))
                .map(|(group, replicas)| {
                    let voters = replicas.0.iter().map(|&n| replica_id(n, 1)).collect();
                    LogWrite {
                        group,
                        install: Some(GroupLog::bootstrap(voters).snapshot_ref().clone()),
                        create: Some(replica_id(config.id, 1)),
                        ..LogWrite::default()
                    }
                })
                .collect();
            disk.persist(&bootstrap);
        }
        let mut groups = BTreeMap::new();
        for group in disk.hosted() {
            let log = disk.load(group).unwrap_or_default();
            let mut opened = Group::open(group, config.id, log, config.tuning, config.seed)
                .map_err(|source| NodeError::Raft { group, source })?;
            // Until told otherwise, the initial placement's choice.
            let preferred = config
                .placement
                .get(group as usize)
                .and_then(Replicas::preferred_leader);
            opened.set_preferred(preferred.map(|n| replica_id(n, 1)));
            groups.insert(group, opened);
        }
        let deferred = Vec::new();
        Ok(Self {
            config,
            groups,
            disk,
            deferred,
            outbox: Vec::new(),
            replies: Vec::new(),
            ticks: 0,
            last_heard: BTreeMap::new(),
            notices: Vec::new(),
            keepalive: false,
            sent_early: BTreeSet::new(),
        })
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The groups hosted here.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// The node's disk (what survives a crash).
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// The node's disk, to change (the simulator arms a torn flush here).
    pub fn disk_mut(&mut self) -> &mut D {
        &mut self.disk
    }

    /// Gives up the node, keeping only its disk: a crash.
    pub fn into_disk(self) -> D {
        self.disk
    }

    /// Has each group this node is the preferred leader of campaign: how a
    /// new cluster gets its first leaders where placement put them.
    pub fn campaign_preferred(&mut self) {
        for (group, replicas) in (0..).zip(&self.config.placement) {
            if replicas.preferred_leader() == Some(self.config.id) {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.campaign(&mut self.replies);
                }
            }
        }
    }

    /// Advances every group's clock by one tick; leaders take the next
    /// step of any replica move.
    ///
    /// Idle groups hibernate (`Group::maybe_hibernate`): the leader stops
    /// heartbeating and tells the followers. What keeps that safe is this
    /// node's watch over its peers: every tick it sends each peer at least
    /// an empty envelope, and a sleeping group wakes as soon as a peer
    /// holding one of its replicas has been silent for an election timeout,
    /// so a dead leader is replaced and a leader cut from its quorum steps
    /// down as if it had never slept.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.keepalive = true;
        let (me, now, silence) = (
            self.config.id,
            self.ticks,
            self.config.tuning.election_ticks as u64,
        );
        let last_heard = &self.last_heard;
        let silent = |n: NodeId| n != me && last_heard.get(&n).is_none_or(|&t| now - t > silence);
        for group in self.groups.values_mut() {
            if group.is_hibernating() && group_peers(group).into_iter().any(silent) {
                group.wake();
            }
            group.tick(&mut self.replies);
            group.drive_membership(&mut self.replies);
            if group.maybe_hibernate() {
                let term = group.term();
                for peer in group_peers(group).into_iter().filter(|&n| n != me) {
                    self.notices.push((peer, group.id(), term));
                }
            }
        }
    }

    /// Starts hosting `group` as replica `replica` (a new incarnation's id,
    /// never one used before on this node): an empty replica that waits for
    /// the leader to add it and send it a snapshot. Remembered on disk at
    /// the next flush.
    pub fn host(&mut self, group: GroupId, replica: ReplicaId) -> Result<(), NodeError> {
        match self.groups.get(&group).map(Group::replica) {
            Some(hosted) if hosted == replica => return Ok(()),
            // An older incarnation left behind (its forget was lost with a
            // crash): the new one replaces it.
            Some(_) => self.forget(group),
            None => {}
        }
        let log = GroupLog::empty(replica);
        let opened = Group::open(
            group,
            self.config.id,
            log,
            self.config.tuning,
            self.config.seed,
        )
        .map_err(|source| NodeError::Raft { group, source })?;
        self.groups.insert(group, opened);
        self.deferred.push(LogWrite {
            group,
            create: Some(replica),
            ..LogWrite::default()
        });
        Ok(())
    }

    /// Stops hosting `group` (its replica was moved away): drops its log
    /// and answers what waited on it.
    pub fn forget(&mut self, group: GroupId) {
        if let Some(mut g) = self.groups.remove(&group) {
            g.abandon(&mut self.replies);
            self.deferred.retain(|w| w.group != group);
            self.deferred.push(LogWrite {
                group,
                destroy: true,
                ..LogWrite::default()
            });
        }
    }

    /// Where `group`'s replicas should be (replica ids); its leader moves
    /// them there.
    pub fn set_target(&mut self, group: GroupId, replicas: Vec<ReplicaId>) {
        if let Some(g) = self.groups.get_mut(&group) {
            g.set_target(replicas);
        }
    }

    /// The replica that should lead `group` when it can.
    pub fn set_preferred(&mut self, group: GroupId, replica: Option<ReplicaId>) {
        if let Some(g) = self.groups.get_mut(&group) {
            g.set_preferred(replica);
        }
    }

    /// The group hosted here, if any.
    pub fn group(&self, group: GroupId) -> Option<&Group> {
        self.groups.get(&group)
    }

    /// Hands over an envelope from a peer. Messages for groups not hosted
    /// here are dropped (a stale sender's view).
    pub fn receive(&mut self, envelope: Envelope) {
        self.last_heard.insert(envelope.from, self.ticks);
        for (group, message) in envelope.messages {
            // A message to another incarnation of the replica (one removed
            // from here, and maybe added back since) is stale.
            if let Some(g) = self
                .groups
                .get_mut(&group)
                .filter(|g| g.replica() == message.to)
            {
                g.step(message, &mut self.replies);
            }
        }
        for (group, term) in envelope.hibernate {
            if let Some(g) = self.groups.get_mut(&group) {
                g.hibernate_notice(envelope.from, term);
            }
        }
    }

    /// Takes a client request; its reply comes out of a later
    /// [`Node::step`] (or this one's, if it is refused at once).
    pub fn submit(&mut self, request_id: u64, request: Request) {
        let group = self.config.layout.group_of_key(request.key());
        let Some(g) = self.groups.get_mut(&group) else {
            // No hint: the initial placement may be stale (replicas move),
            // and a wrong hint sends the client in circles.
            self.replies
                .push((request_id, Reply::WrongNode { leader: None }));
            return;
        };
        let replies = &mut self.replies;
        match request {
            Request::Write(write) => g.propose(request_id, write, replies),
            Request::Get { read, stale } => g.read(request_id, read, stale, replies),
        }
    }

    /// Runs every group's ready: [`Node::begin_step`], then
    /// [`Node::finish_step`], with the envelopes of both returned together.
    /// For callers that send nothing before the flush (which costs the
    /// overlap of the leader's flush with its followers'); the runtime and
    /// the simulator send the first part before the flush.
    pub fn step(&mut self) -> Output {
        let (early, flush) = self.begin_step();
        let mut out = self.finish_step(flush);
        let mut envelopes = early;
        envelopes.append(&mut out.envelopes);
        out.envelopes = envelopes;
        out
    }

    /// The first half of a step: every group's ready up to the flush. The
    /// envelopes returned may leave before the flush (a leader's appends:
    /// Raft §10.2.1, the leader writes its log in parallel with
    /// replicating, and its own entry counts towards the commit only once
    /// `finish_step` has persisted it); send them, then hand the [`Flush`]
    /// to [`Node::finish_step`]. Nothing that waits on the flush (a vote, a
    /// follower's acknowledgement) is in them.
    pub fn begin_step(&mut self) -> (Vec<Envelope>, Flush) {
        assert!(self.outbox.is_empty(), "a step began with messages unsent");
        let mut prepared = Vec::new();
        for group in self.groups.values_mut() {
            if let Some(p) = group.prepare(&mut self.outbox, &mut self.replies) {
                prepared.push((group.id(), p));
            }
        }
        let early = self.batch_outbox(&mut BTreeMap::new());
        self.sent_early = early.iter().map(|e| e.to).collect();
        (early, Flush { prepared })
    }

    /// The second half of a step: one flush for every group's writes, then
    /// what waited on it. Returns what to send and whom to answer.
    pub fn finish_step(&mut self, flush: Flush) -> Output {
        let prepared = flush.prepared;
        let mut writes = std::mem::take(&mut self.deferred);
        writes.extend(
            prepared
                .iter()
                .map(|(_, p)| p.write.clone())
                .filter(|w| !w.is_empty()),
        );
        if !writes.is_empty() {
            self.disk.persist(&writes);
        }
        for (id, p) in prepared {
            if let Some(group) = self.groups.get_mut(&id) {
                if let Some(later) = group.finish(p, &mut self.outbox, &mut self.replies) {
                    self.deferred.push(later);
                }
            }
        }
        for group in self.groups.values_mut() {
            group.answer_reads(&mut self.replies);
        }
        Output {
            envelopes: self.envelopes(),
            replies: std::mem::take(&mut self.replies),
        }
    }

    /// The outbox's messages, one envelope per destination.
    fn batch_outbox(&mut self, by_peer: &mut BTreeMap<NodeId, Envelope>) -> Vec<Envelope> {
        let me = self.config.id;
        for (to, group, message) in self.outbox.drain(..) {
            by_peer
                .entry(to)
                .or_insert_with(|| empty_envelope(me, to))
                .messages
                .push((group, message));
        }
        std::mem::take(by_peer).into_values().collect()
    }

    /// The outbox batched per destination, with the hibernation notices,
    /// and on a tick an empty envelope to every peer that would otherwise
    /// get nothing in this step (the keepalive sleeping groups rely on).
    fn envelopes(&mut self) -> Vec<Envelope> {
        let me = self.config.id;
        let mut by_peer: BTreeMap<NodeId, Envelope> = BTreeMap::new();
        for (to, group, term) in self.notices.drain(..) {
            by_peer
                .entry(to)
                .or_insert_with(|| empty_envelope(me, to))
                .hibernate
                .push((group, term));
        }
        let sent_early = std::mem::take(&mut self.sent_early);
        if std::mem::take(&mut self.keepalive) {
            for peer in self
                .groups
                .values()
                .flat_map(group_peers)
                .filter(|&n| n != me && !sent_early.contains(&n))
            {
                by_peer
                    .entry(peer)
                    .or_insert_with(|| empty_envelope(me, peer));
            }
        }
        self.batch_outbox(&mut by_peer)
    }
}

/// What a step must still flush: every group's ready between
/// [`Node::begin_step`] and [`Node::finish_step`].
#[must_use = "a step's flush must be finished (or the node dropped: a crash)"]
pub struct Flush {
    prepared: Vec<(GroupId, Prepared)>,
}

fn empty_envelope(from: NodeId, to: NodeId) -> Envelope {
    Envelope {
        from,
        to,
        messages: Vec::new(),
        hibernate: Vec::new(),
    }
}

/// The nodes holding a replica of `group`, as its configuration says.
fn group_peers(group: &Group) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = group
        .configuration()
        .members()
        .into_iter()
        .map(node_of)
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}
