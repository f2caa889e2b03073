//! One replication group on one node: a raft-rs `RawNode`, the group's
//! applied state, and the client requests waiting on it.
//!
//! The node drives every group it hosts through the same three phases per
//! step ([`Group::prepare`], then one flush for all groups, then
//! [`Group::finish`]), which is raft-rs's `Ready` protocol split around
//! the shared flush.

use std::collections::BTreeMap;

use prost::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    Message, MessageType, Snapshot,
};
use raft::{RawNode, Ready, SnapshotStatus, StateRole};

use crate::entry::{Proposal, Write};
use crate::layout::GroupId;
use crate::membership::{hand_over_to, next_step, Current, Step};
use crate::placement::{node_of, NodeId, ReplicaId};
use crate::state::{Applied, KvState};
use crate::storage::{GroupLog, LogWrite};
use engine::modify::{Answer, ModifyError};

/// How a group's Raft runs, in ticks of the node's clock.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Ticks without a leader's word before a follower campaigns (each
    /// group waits a deterministic draw in `[election, 2 × election)`).
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Applied entries after which the group snapshots its state and drops
    /// the entries the snapshot covers.
    pub snapshot_every: u64,
    pub max_message_bytes: u64,
    pub max_inflight_messages: usize,
    /// Idle ticks after which a leader hibernates its group (0: never).
    pub hibernate_after_ticks: u64,
}

impl Tuning {
    /// These settings with an election timeout of `election_ticks`, and a
    /// heartbeat every fifth of it (at least every tick), the defaults'
    /// ratio.
    pub fn with_election_ticks(self, election_ticks: usize) -> Self {
        Self {
            election_ticks,
            heartbeat_ticks: (election_ticks / 5).max(1),
            ..self
        }
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_every: 1024,
            max_message_bytes: 1 << 20,
            max_inflight_messages: 256,
            hibernate_after_ticks: 20,
        }
    }
}

/// What a node tells a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The write is committed on a majority and applied here.
    Written,
    /// A read's answer.
    Value(Option<Vec<u8>>),
    /// Refused before anything was proposed: this node does not lead the
    /// group. `leader` is who does, if known.
    NotLeader { leader: Option<NodeId> },
    /// This node holds no replica of the key's group; `leader` is the
    /// group's preferred leader.
    WrongNode { leader: Option<NodeId> },
    /// The write was proposed, but another leader's entry took its index:
    /// it never took effect.
    Lost,
    /// The write was proposed, and a snapshot overtook it before this node
    /// saw its index applied: it may or may not have taken effect.
    Unknown,
    /// The group met an entry it cannot decode and stopped applying.
    Halted,
    /// A conditional batch was applied, but its condition did not hold:
    /// nothing changed.
    NotApplied,
    /// A read-modify-write is committed on a majority and applied here;
    /// its answer.
    Answer(Answer),
    /// A read-modify-write is committed and applied, and was refused
    /// there (nothing changed).
    Refused(ModifyError),
    /// A deadline read's answer, as `PEXPIRETIME` gives it.
    Deadline(i64),
}

impl Reply {
    /// The reply to a proposer whose entry was applied with this outcome.
    fn applied(applied: Applied) -> Self {
        match applied {
            Applied::Written => Reply::Written,
            Applied::NotApplied => Reply::NotApplied,
            Applied::Answer(answer) => Reply::Answer(answer),
            Applied::Refused(error) => Reply::Refused(error),
        }
    }
}

/// What a read asks of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOf {
    /// Its value.
    Value,
    /// Its deadline.
    Deadline,
}

/// A read of one key, at a clock: keys whose deadline the clock has passed
/// are missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub key: Vec<u8>,
    pub of: ReadOf,
    /// Milliseconds since the Unix epoch.
    pub now_ms: u64,
}

impl Read {
    /// A read of `key`'s value at the clock `now_ms`.
    pub fn value(key: Vec<u8>, now_ms: u64) -> Self {
        Self {
            key,
            of: ReadOf::Value,
            now_ms,
        }
    }

    /// The answer from `kv`.
    fn answer(&self, kv: &KvState) -> Reply {
        match self.of {
            ReadOf::Value => Reply::Value(kv.get(&self.key, self.now_ms).map(<[u8]>::to_vec)),
            ReadOf::Deadline => Reply::Deadline(kv.deadline(&self.key, self.now_ms)),
        }
    }
}

/// A group's applied configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Configuration {
    pub voters: Vec<NodeId>,
    /// The old voters while the configuration is joint.
    pub outgoing: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

impl Configuration {
    /// Every node the configuration names.
    pub fn members(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self
            .voters
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners)
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

struct PendingRead {
    request: u64,
    read: Read,
    /// The commit index the read must wait for, once ReadIndex gave it.
    index: Option<u64>,
}

/// One group hosted on one node.
pub struct Group {
    id: GroupId,
    node: NodeId,
    /// This replica's id in the group's Raft (`placement::replica_id`).
    replica: ReplicaId,
    raw: RawNode<GroupLog>,
    kv: KvState,
    applied: u64,
    /// Proposed writes by the index they were given.
    writes: BTreeMap<u64, u64>,
    reads: Vec<PendingRead>,
    jitter: Jitter,
    /// (term, role) when last seen; raft-rs redraws its election timeout
    /// from a thread-local random source whenever it changes, and we
    /// replace that draw with ours so a seed replays exactly.
    seen: (u64, StateRole),
    tuning: Tuning,
    halted: bool,
    /// Where the replicas should be (None: where they are).
    target: Option<Vec<NodeId>>,
    /// The replica that should lead (leader balancing), if any.
    preferred: Option<ReplicaId>,
    /// Ticks led in the current term.
    leader_ticks: u64,
    /// Asleep: not ticking (`maybe_hibernate`).
    hibernating: bool,
    /// Consecutive idle ticks as leader.
    idle_ticks: u64,
    /// Peers sent a snapshot this step (reported after `advance`).
    snapshots_sent: Vec<NodeId>,
    /// A configuration change was applied since the last compaction.
    conf_changed: bool,
    /// Snapshots sent to followers, and installed here (for metrics).
    snapshots_sent_total: u64,
    snapshots_installed_total: u64,
}

/// The phase-one result for a group: what it must persist, and the ready
/// to finish once the flush is done.
pub struct Prepared {
    pub write: LogWrite,
    ready: Ready,
}

impl Group {
    /// Opens a group from its stored log (or a bootstrap log).
    pub fn open(
        id: GroupId,
        node: NodeId,
        log: GroupLog,
        tuning: Tuning,
        seed: u64,
    ) -> Result<Self, raft::Error> {
        let replica = log.replica();
        if node_of(replica) != node {
            return Err(raft::Error::ConfigInvalid(format!(
                "group {id}: the stored replica id {replica:#x} is not node {node}'s"
            )));
        }
        // raft-rs panics on a hard state its log does not cover; a log that
        // lost entries (a damaged or truncated disk) is refused here, with
        // a message, instead.
        let (commit, last) = (log.hard_state().commit, raft::Storage::last_index(&log)?);
        if commit > last {
            return Err(raft::Error::ConfigInvalid(format!(
                "group {id}: the stored commit index {commit} is past the stored log's last \
                 entry {last}: entries that were committed are missing from the disk"
            )));
        }
        let snapshot = log.snapshot_ref();
        let applied = snapshot.get_metadata().index;
        let kv = KvState::from_image(&snapshot.data)
            .map_err(|e| raft::Error::ConfigInvalid(format!("group {id}: stored snapshot: {e}")))?;
        let config = raft::Config {
            id: replica,
            election_tick: tuning.election_ticks,
            heartbeat_tick: tuning.heartbeat_ticks,
            min_election_tick: tuning.election_ticks,
            max_election_tick: 2 * tuning.election_ticks,
            applied,
            max_size_per_msg: tuning.max_message_bytes,
            max_inflight_msgs: tuning.max_inflight_messages,
            check_quorum: true,
            pre_vote: true,
            read_only_option: raft::ReadOnlyOption::Safe,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, log, &logger)?;
        let mut group = Self {
            id,
            node,
            replica,
            seen: (u64::MAX, StateRole::Follower),
            raw,
            kv,
            applied,
            writes: BTreeMap::new(),
            reads: Vec::new(),
            jitter: Jitter::new(seed ^ (u64::from(id) << 32) ^ replica),
            tuning,
            halted: false,
            target: None,
            snapshots_sent: Vec::new(),
            conf_changed: false,
            snapshots_sent_total: 0,
            snapshots_installed_total: 0,
            preferred: None,
            leader_ticks: 0,
            hibernating: false,
            idle_ticks: 0,
        };
        group.after_raft_call(&mut Vec::new());
        Ok(group)
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// Whether this replica leads the group now.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The node of the leader this replica knows of.
    pub fn leader(&self) -> Option<NodeId> {
        Some(self.raw.raft.leader_id)
            .filter(|&l| l != 0)
            .map(node_of)
    }

    /// This replica's id in the group's Raft.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// One line on the replica's Raft state, for logs and failure messages.
    pub fn describe(&self) -> String {
        let r = &self.raw.raft;
        format!(
            "group {} on node {}: {:?} term {} vote {} leader {} commit {} last {} applied {} elapsed {}/{} promotable {} {:?}",
            self.id,
            self.node,
            r.state,
            r.term,
            r.vote,
            r.leader_id,
            r.raft_log.committed,
            r.raft_log.last_index(),
            self.applied,
            r.election_elapsed,
            r.randomized_election_timeout(),
            r.promotable(),
            self.configuration()
        )
    }

    /// The highest index applied here.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The highest index known committed.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// On a leader, how many entries the furthest-behind voter or learner
    /// lacks; `None` on a follower.
    pub fn replication_lag(&self) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        let last = self.raw.raft.raft_log.last_index();
        Some(
            self.raw
                .raft
                .prs()
                .iter()
                .map(|(_, p)| last.saturating_sub(p.matched))
                .max()
                .unwrap_or(0),
        )
    }

    /// Snapshots sent to followers and installed here since the group
    /// opened.
    pub fn snapshot_counts(&self) -> (u64, u64) {
        (self.snapshots_sent_total, self.snapshots_installed_total)
    }

    /// The applied state (for checks and stale reads).
    pub fn state(&self) -> &KvState {
        &self.kv
    }

    /// Advances the group's clock by one tick.
    pub fn tick(&mut self, replies: &mut Vec<(u64, Reply)>) {
        if self.hibernating {
            return;
        }
        if self.is_leader() {
            self.leader_ticks += 1;
        }
        self.raw.tick();
        self.after_raft_call(replies);
    }

    /// On the leader, after its tick: whether the group has been idle long
    /// enough to hibernate. It then stops ticking (no heartbeats), and the
    /// node tells the followers, which stop too. Anything that happens to
    /// the group wakes it: a message, a request, a new target, or the node
    /// noticing that a peer holding a replica went silent.
    pub fn maybe_hibernate(&mut self) -> bool {
        let after = self.tuning.hibernate_after_ticks;
        if after == 0 || self.hibernating || !self.is_idle() {
            self.idle_ticks = 0;
            return false;
        }
        self.idle_ticks += 1;
        if self.idle_ticks < after {
            return false;
        }
        self.hibernating = true;
        true
    }

    /// Where the group is, for `membership`'s decisions.
    fn current<'a>(
        &self,
        conf: &'a Configuration,
        caught_up: &'a dyn Fn(ReplicaId) -> bool,
    ) -> Current<'a> {
        let raft = &self.raw.raft;
        Current {
            leader: self.replica,
            voters: &conf.voters,
            learners: &conf.learners,
            settling: !conf.outgoing.is_empty() || raft.pending_conf_index > raft.raft_log.applied,
            caught_up,
        }
    }

    /// Whether a replica has matched the leader's commit index.
    fn caught_up(&self) -> impl Fn(ReplicaId) -> bool + '_ {
        let raft = &self.raw.raft;
        let committed = raft.raft_log.committed;
        move |n| raft.prs().get(n).is_some_and(|p| p.matched >= committed)
    }

    /// Ticks a leader leads before it hands over or sleeps (two election
    /// timeouts), so leadership does not flap.
    fn tenure(&self) -> u64 {
        2 * self.tuning.election_ticks as u64
    }

    /// A leader with nothing to do: nothing waiting, every replica holding
    /// the whole log, applied, no configuration step or hand-over due.
    fn is_idle(&self) -> bool {
        let raft = &self.raw.raft;
        let last = raft.raft_log.last_index();
        if !self.is_leader()
            || self.halted
            || self.leader_ticks <= self.tenure()
            || !self.writes.is_empty()
        {
            return false;
        }
        if !self.reads.is_empty() || raft.raft_log.committed != last || self.applied != last {
            return false;
        }
        let conf = self.configuration();
        let all_matched = conf
            .members()
            .iter()
            .all(|&r| raft.prs().get(r).is_some_and(|p| p.matched == last));
        let caught_up = self.caught_up();
        let current = self.current(&conf, &caught_up);
        let moving = self
            .target
            .as_ref()
            .is_some_and(|t| next_step(&current, t).is_some());
        all_matched
            && !current.settling
            && !moving
            && hand_over_to(&current, self.preferred).is_none()
    }

    /// A follower told by `from` that it hibernates the group at `term`:
    /// if that is the leader it follows, it stops ticking too.
    pub fn hibernate_notice(&mut self, from: NodeId, term: u64) {
        if !self.is_leader() && self.raw.raft.term == term && self.leader() == Some(from) {
            self.hibernating = true;
        }
    }

    /// Resumes ticking.
    pub fn wake(&mut self) {
        self.hibernating = false;
        self.idle_ticks = 0;
    }

    /// Whether the group sleeps.
    pub fn is_hibernating(&self) -> bool {
        self.hibernating
    }

    /// Starts an election (used when a new cluster starts, by each group's
    /// preferred leader, so the first leaders are spread as placed).
    pub fn campaign(&mut self, replies: &mut Vec<(u64, Reply)>) {
        // Fails only if this node is not a voter; then there is nothing to do.
        let _ = self.raw.campaign();
        self.after_raft_call(replies);
    }

    /// Hands the group a message from a peer. Messages raft-rs refuses (a
    /// stale peer, a local message type from the wire) are dropped: the
    /// protocol tolerates any loss.
    ///
    /// A sleeping group wakes for any message but the routine ones of its
    /// current term: heartbeats and their responses (late ones, or a read's
    /// round) are answered without waking it, so they cannot keep an idle
    /// group from sleeping.
    pub fn step(&mut self, message: Message, replies: &mut Vec<(u64, Reply)>) {
        let routine = matches!(
            message.get_msg_type(),
            MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResponse
        ) && message.term == self.raw.raft.term;
        if !routine {
            self.wake();
        }
        let _ = self.raw.step(message);
        self.after_raft_call(replies);
    }

    /// Proposes a client write; the reply comes when its index is applied.
    pub fn propose(&mut self, request: u64, write: Write, replies: &mut Vec<(u64, Reply)>) {
        self.wake();
        if self.halted {
            return replies.push((request, Reply::Halted));
        }
        if !self.is_leader() {
            return replies.push((
                request,
                Reply::NotLeader {
                    leader: self.leader(),
                },
            ));
        }
        let index = self.raw.raft.raft_log.last_index() + 1;
        let data = Proposal {
            proposer: self.node,
            request,
            write,
        }
        .encode();
        let accepted = self.raw.propose(Vec::new(), data).is_ok()
            && self.raw.raft.raft_log.last_index() == index;
        self.after_raft_call(replies);
        if accepted {
            self.writes.insert(index, request);
        } else {
            // raft-rs drops proposals while a leadership transfer is on.
            replies.push((
                request,
                Reply::NotLeader {
                    leader: self.leader(),
                },
            ));
        }
    }

    /// Reads `key`: `stale` reads this replica's applied state as it is;
    /// otherwise the leader confirms with a quorum that it still leads
    /// (ReadIndex) and answers once it has applied that far.
    pub fn read(&mut self, request: u64, read: Read, stale: bool, replies: &mut Vec<(u64, Reply)>) {
        if self.halted {
            return replies.push((request, Reply::Halted));
        }
        if stale {
            return replies.push((request, read.answer(&self.kv)));
        }
        if !self.is_leader() {
            return replies.push((
                request,
                Reply::NotLeader {
                    leader: self.leader(),
                },
            ));
        }
        // ReadIndex needs a round of heartbeats: a sleeping group wakes.
        self.wake();
        self.raw.read_index(request.to_le_bytes().to_vec());
        self.reads.push(PendingRead {
            request,
            read,
            index: None,
        });
        self.after_raft_call(replies);
    }

    /// Phase one of a step: sends what may go before the flush, applies
    /// what is committed, and says what to persist. `None` when raft-rs
    /// has nothing for this group.
    pub fn prepare(
        &mut self,
        out: &mut Vec<(NodeId, GroupId, Message)>,
        replies: &mut Vec<(u64, Reply)>,
    ) -> Option<Prepared> {
        if !self.raw.has_ready() {
            return None;
        }
        let mut ready = self.raw.ready();
        self.send(ready.take_messages(), out);
        let mut write = LogWrite {
            group: self.id,
            ..LogWrite::default()
        };
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.install(&snapshot, replies);
            write.install = Some(snapshot);
        }
        self.apply(ready.take_committed_entries(), replies);
        for state in ready.take_read_states() {
            self.read_state(&state.request_ctx, state.index);
        }
        write.entries = ready.take_entries();
        write.hard_state = ready.hs().cloned();
        self.raw.mut_store().apply(&write);
        Some(Prepared { write, ready })
    }

    /// Phase three, after the flush: sends what needed the flush first,
    /// advances raft-rs, applies what that committed, answers reads.
    /// Returns a write to persist with the next flush (the new commit
    /// index, a compaction), if any.
    pub fn finish(
        &mut self,
        mut prepared: Prepared,
        out: &mut Vec<(NodeId, GroupId, Message)>,
        replies: &mut Vec<(u64, Reply)>,
    ) -> Option<LogWrite> {
        self.send(prepared.ready.take_persisted_messages(), out);
        let mut light = self.raw.advance(prepared.ready);
        let mut later = LogWrite {
            group: self.id,
            ..LogWrite::default()
        };
        if let Some(commit) = light.commit_index() {
            let mut hs = self.raw.store().hard_state().clone();
            hs.commit = commit;
            later.hard_state = Some(hs);
        }
        self.send(light.take_messages(), out);
        self.apply(light.take_committed_entries(), replies);
        self.raw.advance_apply();
        self.report_snapshots();
        self.after_raft_call(replies);
        later.compact = self.compaction();
        if later.is_empty() {
            return None;
        }
        self.raw.mut_store().apply(&later);
        Some(later)
    }

    /// Serves the reads whose ReadIndex has been applied.
    pub fn answer_reads(&mut self, replies: &mut Vec<(u64, Reply)>) {
        let applied = self.applied;
        let kv = &self.kv;
        self.reads.retain(|read| match read.index {
            Some(index) if index <= applied => {
                replies.push((read.request, read.read.answer(kv)));
                false
            }
            _ => true,
        });
    }

    fn send(&mut self, messages: Vec<Message>, out: &mut Vec<(NodeId, GroupId, Message)>) {
        for m in messages {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots_sent.push(m.to);
                self.snapshots_sent_total += 1;
            }
            out.push((node_of(m.to), self.id, m));
        }
    }

    /// raft-rs holds a follower it sent a snapshot to until told how the
    /// sending went, and a lost snapshot would hold it forever. We report
    /// every snapshot as delivered once it is handed to the network: if it
    /// was lost, the follower refuses the next append and the leader sends
    /// the snapshot again.
    fn report_snapshots(&mut self) {
        for to in std::mem::take(&mut self.snapshots_sent) {
            self.raw.report_snapshot(to, SnapshotStatus::Finish);
        }
    }

    fn read_state(&mut self, ctx: &[u8], index: u64) {
        let Ok(bytes) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        let request = u64::from_le_bytes(bytes);
        if let Some(read) = self.reads.iter_mut().find(|r| r.request == request) {
            read.index = Some(index);
        }
    }

    fn install(&mut self, snapshot: &Snapshot, replies: &mut Vec<(u64, Reply)>) {
        let index = snapshot.get_metadata().index;
        self.snapshots_installed_total += 1;
        match KvState::from_image(&snapshot.data) {
            Ok(kv) => self.kv = kv,
            Err(_) => self.halted = true,
        }
        self.applied = index;
        // Writes proposed here whose index the snapshot covers: this node
        // cannot tell whether its entry or another leader's won there.
        let overtaken: Vec<u64> = self.writes.range(..=index).map(|(&i, _)| i).collect();
        for i in overtaken {
            if let Some(request) = self.writes.remove(&i) {
                replies.push((request, Reply::Unknown));
            }
        }
    }

    fn apply(&mut self, entries: Vec<Entry>, replies: &mut Vec<(u64, Reply)>) {
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            self.applied = entry.index;
            let applied = self.apply_entry(&entry);
            if let Some(request) = self.writes.remove(&entry.index) {
                let reply = match applied {
                    Some((node, req, applied)) if node == self.node && req == request => {
                        Reply::applied(applied)
                    }
                    _ => Reply::Lost,
                };
                replies.push((request, reply));
            }
        }
    }

    /// Applies one committed entry; returns who proposed it, and what it
    /// did.
    fn apply_entry(&mut self, entry: &Entry) -> Option<(NodeId, u64, Applied)> {
        match entry.get_entry_type() {
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                self.apply_conf_change(entry);
                return None;
            }
            EntryType::EntryNormal => {}
        }
        if entry.data.is_empty() || self.halted {
            return None;
        }
        match Proposal::decode(&entry.data) {
            Ok(p) => {
                let applied = self.kv.apply(p.write);
                Some((p.proposer, p.request, applied))
            }
            Err(_) => {
                self.halted = true;
                None
            }
        }
    }

    /// A committed configuration change takes effect. (raft-rs leaves a
    /// joint configuration with an empty V2 change: that one too.)
    fn apply_conf_change(&mut self, entry: &Entry) {
        let applied = if entry.get_entry_type() == EntryType::EntryConfChangeV2 {
            ConfChangeV2::decode(&entry.data[..]).map(|cc| self.raw.apply_conf_change(&cc))
        } else {
            ConfChange::decode(&entry.data[..]).map(|cc| self.raw.apply_conf_change(&cc))
        };
        self.conf_changed = true;
        match applied {
            Ok(Ok(conf)) => self.step_down_if_removed(&conf),
            // A change raft-rs refuses was refused on every replica alike.
            Ok(Err(_)) => {}
            Err(_) => self.halted = true,
        }
    }

    /// A leader whose own removal was just applied steps down. We never
    /// propose removing the leader (it hands over first), but leadership
    /// can move between a change's proposal and its application (and
    /// leaving a joint configuration is proposed by raft-rs itself), and
    /// raft-rs keeps such a leader leading with no progress of its own,
    /// then panics at the next persisted append.
    fn step_down_if_removed(&mut self, conf: &ConfState) {
        let me = self.replica;
        if self.is_leader() && !conf.voters.contains(&me) && !conf.voters_outgoing.contains(&me) {
            let term = self.raw.raft.term;
            self.raw.raft.become_follower(term, 0);
        }
    }

    /// The applied configuration: voters (both halves while joint) and
    /// learners.
    pub fn configuration(&self) -> Configuration {
        let conf = self.raw.raft.prs().conf().to_conf_state();
        Configuration {
            voters: conf.voters,
            outgoing: conf.voters_outgoing,
            learners: conf.learners,
        }
    }

    /// Where the group's replicas should be; the leader moves them there.
    pub fn set_target(&mut self, replicas: Vec<ReplicaId>) {
        if self.target.as_ref() != Some(&replicas) {
            self.wake();
        }
        self.target = Some(replicas);
    }

    /// The replica that should lead when it can (leader balancing).
    pub fn set_preferred(&mut self, replica: Option<ReplicaId>) {
        if self.preferred != replica {
            self.wake();
        }
        self.preferred = replica;
    }

    /// On the leader: the next step of a replica move, if one is due, or
    /// else leadership handed to the preferred replica (after the leader
    /// has led for two election timeouts, so leadership does not flap).
    pub fn drive_membership(&mut self, replies: &mut Vec<(u64, Reply)>) {
        if !self.is_leader() {
            return;
        }
        let (step, heir) = {
            let conf = self.configuration();
            let caught_up = self.caught_up();
            let current = self.current(&conf, &caught_up);
            let step = self
                .target
                .as_ref()
                .and_then(|target| next_step(&current, target));
            let tenured = self.leader_ticks > self.tenure();
            (
                step,
                hand_over_to(&current, self.preferred).filter(|_| tenured),
            )
        };
        let Some(step) = step else {
            if let Some(heir) = heir {
                self.raw.transfer_leader(heir);
                self.after_raft_call(replies);
            }
            return;
        };
        let change = |changes: Vec<ConfChangeSingle>| ConfChangeV2 {
            changes,
            ..ConfChangeV2::default()
        };
        let single = |node_id, kind: ConfChangeType| {
            let mut one = ConfChangeSingle {
                node_id,
                ..ConfChangeSingle::default()
            };
            one.set_change_type(kind);
            one
        };
        // A refused proposal (a transfer in progress) is retried next tick.
        let _ = match step {
            Step::AddLearner(node) => self.raw.propose_conf_change(
                Vec::new(),
                change(vec![single(node, ConfChangeType::AddLearnerNode)]),
            ),
            Step::Swap { add, remove } => {
                let mut changes: Vec<ConfChangeSingle> = add
                    .iter()
                    .map(|&n| single(n, ConfChangeType::AddNode))
                    .collect();
                changes.extend(
                    remove
                        .iter()
                        .map(|&n| single(n, ConfChangeType::RemoveNode)),
                );
                self.raw.propose_conf_change(Vec::new(), change(changes))
            }
            Step::DropLearners(nodes) => self.raw.propose_conf_change(
                Vec::new(),
                change(
                    nodes
                        .iter()
                        .map(|&n| single(n, ConfChangeType::RemoveNode))
                        .collect(),
                ),
            ),
            Step::TransferLeader(node) => {
                self.raw.transfer_leader(node);
                Ok(())
            }
        };
        self.after_raft_call(replies);
    }

    /// The node stops hosting the group: what waits on it is answered
    /// (writes as unknown: they may still commit elsewhere).
    pub fn abandon(&mut self, replies: &mut Vec<(u64, Reply)>) {
        for (_, request) in std::mem::take(&mut self.writes) {
            replies.push((request, Reply::Unknown));
        }
        let leader = self.leader();
        for read in self.reads.drain(..) {
            replies.push((read.request, Reply::NotLeader { leader }));
        }
    }

    /// A snapshot of the applied state, when enough was applied since the
    /// last one.
    fn compaction(&mut self) -> Option<Snapshot> {
        let last = self.raw.store().snapshot_index();
        // After a configuration change, at once: a replica added since the
        // last snapshot is brought up by a snapshot, and raft-rs refuses
        // one whose configuration does not name the receiver.
        let conf_changed = std::mem::take(&mut self.conf_changed);
        if self.applied <= last
            || (self.applied < last + self.tuning.snapshot_every && !conf_changed)
        {
            return None;
        }
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = self.applied;
        meta.term = self.raw.raft.raft_log.term(self.applied).ok()?;
        meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        snapshot.data = self.kv.image();
        Some(snapshot)
    }

    /// After every call into raft-rs: replace its election timeout draw
    /// with ours when it made one, and fail the reads a lost leadership
    /// dropped.
    fn after_raft_call(&mut self, replies: &mut Vec<(u64, Reply)>) {
        let now = (self.raw.raft.term, self.raw.raft.state);
        if now == self.seen {
            return;
        }
        let election = self.tuning.election_ticks;
        let timeout = election + self.jitter.below(election as u64) as usize;
        self.raw.raft.set_randomized_election_timeout(timeout);
        self.leader_ticks = 0;
        if self.seen.1 == StateRole::Leader && now.1 != StateRole::Leader {
            let leader = self.leader();
            for read in self.reads.drain(..) {
                replies.push((read.request, Reply::NotLeader { leader }));
            }
        }
        self.seen = now;
    }
}

/// A small deterministic random source (SplitMix64) for election timeouts.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}
