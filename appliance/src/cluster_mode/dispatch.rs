//! What a cluster member's data port does with a command.
//!
//! Commands are parsed as on a single node (`commands::dispatch`, so the
//! argument checks and error texts are the same), then the key operations
//! go to the key's group through the node:
//!
//! - every key of a command must hash to one slot, or `-CROSSSLOT`;
//! - a key whose group this node does not lead (or, for a `READONLY`
//!   connection's read, does not host) is answered `-MOVED slot ip:port`
//!   with the leader's data address (or the group's preferred leader when
//!   this node hosts no replica of it);
//! - while a group has no leader (an election), the request is retried
//!   for up to two seconds, then answered `-CLUSTERDOWN`;
//! - a write whose outcome is unknown (its leader changed after it was
//!   proposed, or no answer in time) is answered `-UNCERTAIN`, saying so
//!   (not `-TRYAGAIN`, which clients retry as "not applied"): the client
//!   reads the key to learn what happened; a read not answered in time is
//!   `-TRYAGAIN`.
//!
//! Every key command of a single node runs, except SCAN, DBSIZE, KEYS and
//! RANDOMKEY (they span groups), refused with a clear error. A write is
//! one entry: a read-modify-write (INCR, APPEND, SET with NX/XX/GET/
//! KEEPTTL, EXPIRE, GETDEL, RENAME within a slot, ...) carries the
//! modification and the proposer's clock, and each replica evaluates it as
//! it applies the entry, so they all reach the same value and the same
//! answer; MSET and MSETNX (one slot) are one atomic batch entry. Reads
//! carry this node's clock: an expired key is missing from its first
//! millisecond past the deadline. MGET reads each key linearizably, but
//! not as one snapshot.

use std::time::{Duration, Instant};

use cluster::entry::{Rmw, Write};
use cluster::group::{Read, ReadOf, Reply as NodeReply};
use cluster::node::Request;
use engine::modify::{Answer, Condition, Expiry, Modify, ModifyError};
use engine::{BatchOp, EngineError, Op, Reply};

use super::Member;
use crate::cluster_reply;
use crate::commands::{self, Action};
use crate::resp::{encode, Protocol};

/// How long a request waits for its group to elect a leader.
const LEADERLESS_WAIT: Duration = Duration::from_secs(2);
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// The longest value a read-modify-write may leave: the engine's default
/// (a member does not read `[engine]`; its values live in its groups).
const VALUE_BYTES_MAX: u64 = 4 << 20;

/// A read-modify-write's answer as the engine would give it.
fn answer(result: Result<Answer, ModifyError>) -> Reply {
    match result {
        Ok(Answer::Integer(n)) => Reply::Integer(n),
        Ok(Answer::Value(v)) => Reply::Value(v),
        Err(error) => Reply::Failed(EngineError::Modify(error)),
    }
}

/// One client connection's state.
pub(super) struct Session<'m> {
    member: &'m Member,
    protocol: Protocol,
    name: Option<Vec<u8>>,
    /// `READONLY`: reads may be served by any replica, knowingly stale.
    readonly: bool,
}

impl<'m> Session<'m> {
    pub(super) fn new(member: &'m Member) -> Self {
        Self {
            member,
            protocol: Protocol::Resp2,
            name: None,
            readonly: false,
        }
    }

    /// Appends the reply to `args` to `out`; true when the connection
    /// closes after it (QUIT).
    pub(super) fn execute(&mut self, args: &[&[u8]], out: &mut Vec<u8>) -> bool {
        let name = args
            .first()
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default();
        let rest = args.get(1..).unwrap_or_default();
        match name.as_slice() {
            b"cluster" => self.cluster(rest, out),
            b"readonly" | b"readwrite" if rest.is_empty() => {
                self.readonly = name == b"readonly";
                encode::simple(out, "OK");
            }
            // No slot ever migrates alone (groups move whole, by Raft
            // membership), so ASKING changes nothing; it is accepted as
            // clients send it.
            b"asking" if rest.is_empty() => encode::simple(out, "OK"),
            b"info" => self.info(out),
            _ => return self.command(args, out),
        }
        false
    }

    fn command(&mut self, args: &[&[u8]], out: &mut Vec<u8>) -> bool {
        match commands::dispatch(args, self.protocol) {
            Action::Reply(bytes) => out.extend_from_slice(&bytes),
            Action::ReplyAndClose(bytes) => {
                out.extend_from_slice(&bytes);
                return true;
            }
            Action::Hello(protocol, name) => {
                self.protocol = protocol;
                if name.is_some() {
                    self.name = name;
                }
                self.hello(out);
            }
            Action::SetName(name) => {
                self.name = Some(name);
                encode::simple(out, "OK");
            }
            Action::GetName => match &self.name {
                Some(n) => encode::bulk(out, n),
                None => encode::null(out, self.protocol),
            },
            Action::Info => self.info(out),
            Action::ConfigGet(patterns) => {
                let settings = self.member.config_settings();
                commands::config_get(out, &settings, &patterns, self.protocol);
            }
            Action::Engine(ops, combine) => self.run(args, ops, &combine, out),
        }
        false
    }

    fn run(&self, args: &[&[u8]], ops: Vec<Op>, combine: &commands::Combine, out: &mut Vec<u8>) {
        let command =
            String::from_utf8_lossy(args.first().copied().unwrap_or_default()).to_ascii_uppercase();
        let unsupported = |out: &mut Vec<u8>| {
            encode::error(
                out,
                &format!("ERR {command} (in this form) is not supported in cluster mode yet"),
            )
        };
        let mut slot = None;
        for op in &ops {
            if matches!(op, Op::Scan(_) | Op::Count(_)) {
                return unsupported(out);
            }
            for key in op.keys() {
                let s = engine::shard::slot(key);
                if *slot.get_or_insert(s) != s {
                    return encode::error(
                        out,
                        "CROSSSLOT Keys in request don't hash to the same slot",
                    );
                }
            }
        }
        let Some(slot) = slot else {
            return unsupported(out);
        };
        // The clock deadlines are judged by, this node's: a read carries it
        // to the group; a write's entry carries it to every replica.
        let now_ms = engine::wall_clock_ms();
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops {
            match self.op(op, slot, now_ms) {
                Ok(Some(r)) => replies.push(Some(r)),
                Ok(None) => return unsupported(out),
                Err(error) => return encode::error(out, &error),
            }
        }
        commands::combine(out, combine, &mut replies, self.protocol);
    }

    /// One engine operation as the key's group runs it; `Ok(None)` for one
    /// cluster mode does not run.
    fn op(&self, op: Op, slot: u16, now_ms: u64) -> Result<Option<Reply>, String> {
        let stale = self.readonly;
        let value_read = |key| Read::value(key, now_ms);
        let reply = match op {
            Op::Get(key) => Reply::Value(self.read(value_read(key), slot, stale)?),
            Op::Exists(key) => Reply::Exists(self.read(value_read(key), slot, stale)?.is_some()),
            Op::Deadline(key) => {
                let read = Read {
                    key,
                    of: ReadOf::Deadline,
                    now_ms,
                };
                match self.call(Request::Get { read, stale }, slot)? {
                    NodeReply::Deadline(at) => Reply::Integer(at),
                    other => return Err(unexpected(&other)),
                }
            }
            Op::Put(key, value) => {
                self.write(Request::Write(Write::Put { key, value }), slot)?;
                Reply::Done
            }
            // One entry that reads and deletes where it is applied, so the
            // count is exact.
            Op::Delete(key) => match self.modify(key, Modify::GetDel, slot, now_ms)? {
                Ok(Answer::Value(old)) => Reply::Deleted(old.is_some()),
                other => return Err(format!("ERR unexpected answer to a delete: {other:?}")),
            },
            Op::PutIf(key, value, condition) => {
                let exchange = Modify::Exchange {
                    value,
                    condition: Some(condition),
                    expiry: Expiry::Clear,
                };
                match self.modify(key, exchange, slot, now_ms)? {
                    Ok(Answer::Value(old))
                        if old.is_some() == (condition == Condition::Present) =>
                    {
                        Reply::Done
                    }
                    Ok(Answer::Value(_)) => Reply::NotApplied,
                    other => return Err(format!("ERR unexpected answer to SET: {other:?}")),
                }
            }
            Op::PutGet(key, value) => {
                let exchange = Modify::Exchange {
                    value,
                    condition: None,
                    expiry: Expiry::Clear,
                };
                answer(self.modify(key, exchange, slot, now_ms)?)
            }
            Op::Modify(key, modify) => answer(self.modify(key, *modify, slot, now_ms)?),
            Op::Batch(items) => self.batch(items, None, slot, now_ms)?,
            Op::BatchIf(items, condition) => self.batch(items, Some(condition), slot, now_ms)?,
            Op::Scan(_) | Op::Count(_) => return Ok(None),
        };
        Ok(Some(reply))
    }

    /// A read of one key; `stale` (a `READONLY` connection's) from any
    /// replica, else linearizable from the leader.
    fn read(&self, read: Read, slot: u16, stale: bool) -> Result<Option<Vec<u8>>, String> {
        match self.call(Request::Get { read, stale }, slot)? {
            NodeReply::Value(v) => Ok(v),
            other => Err(unexpected(&other)),
        }
    }

    /// A read-modify-write: the group evaluates it where each replica
    /// applies it. `Err` is an error reply; `Ok(Err)` the modification's
    /// refusal, which the command answers as on a single node.
    fn modify(
        &self,
        key: Vec<u8>,
        modify: Modify,
        slot: u16,
        now_ms: u64,
    ) -> Result<Result<Answer, ModifyError>, String> {
        let rmw = Rmw {
            modify,
            now_ms,
            value_bytes_max: VALUE_BYTES_MAX,
        };
        match self.call(Request::Write(Write::Modify { key, rmw }), slot)? {
            NodeReply::Answer(answer) => Ok(Ok(answer)),
            NodeReply::Refused(error) => Ok(Err(error)),
            other => Err(unexpected(&other)),
        }
    }

    /// Puts and deletes of one slot's keys, all or nothing.
    fn batch(
        &self,
        items: Vec<BatchOp>,
        condition: Option<Condition>,
        slot: u16,
        now_ms: u64,
    ) -> Result<Reply, String> {
        let request = Request::Write(Write::Batch {
            items,
            condition,
            now_ms,
        });
        match self.call(request, slot)? {
            NodeReply::Written => Ok(Reply::Done),
            NodeReply::NotApplied => Ok(Reply::NotApplied),
            other => Err(unexpected(&other)),
        }
    }

    fn write(&self, request: Request, slot: u16) -> Result<(), String> {
        match self.call(request, slot)? {
            NodeReply::Written => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends a request to the node until it is answered, redirected or
    /// given up on; `Err` is the error reply's text.
    fn call(&self, request: Request, slot: u16) -> Result<NodeReply, String> {
        let member = self.member;
        let me = member.id();
        let moved = |node| match member.data_address(node) {
            Some(at) => format!("MOVED {slot} {at}"),
            None => "CLUSTERDOWN The cluster is down".to_string(),
        };
        let deadline = Instant::now() + LEADERLESS_WAIT;
        loop {
            let retry = match member.call(request.clone()) {
                Some(
                    reply @ (NodeReply::Written
                    | NodeReply::Value(_)
                    | NodeReply::NotApplied
                    | NodeReply::Answer(_)
                    | NodeReply::Refused(_)
                    | NodeReply::Deadline(_)),
                ) => return Ok(reply),
                Some(NodeReply::NotLeader { leader: Some(n) }) if n != me => return Err(moved(n)),
                // No leader known (an election), or a write another
                // leader's entry displaced (it never took effect): again.
                Some(NodeReply::NotLeader { .. } | NodeReply::Lost) => true,
                Some(NodeReply::WrongNode { .. }) => {
                    let group = member.group_of(request.key());
                    return match member.preferred_leader(group) {
                        Some(n) if n != me => Err(moved(n)),
                        _ => Err("CLUSTERDOWN The cluster is down".to_string()),
                    };
                }
                Some(NodeReply::Unknown) | None => {
                    // A read may be retried, so TRYAGAIN (clients do). A
                    // write may have taken effect: an error clients do not
                    // retry blindly, saying so.
                    return Err(if matches!(request, Request::Get { .. }) {
                        "TRYAGAIN the read was not answered in time".to_string()
                    } else {
                        "UNCERTAIN the write's outcome is unknown (its group's leader changed or \
                         did not answer in time): read the key to learn whether it took effect"
                            .to_string()
                    });
                }
                Some(NodeReply::Halted) => {
                    return Err(
                        "ERR the key's group stopped applying: an entry did not decode \
                                (see the node's log)"
                            .to_string(),
                    )
                }
            };
            if retry && Instant::now() >= deadline {
                return Err("CLUSTERDOWN The cluster is down".to_string());
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    fn cluster(&self, rest: &[&[u8]], out: &mut Vec<u8>) {
        let Some(sub) = rest.first() else {
            return encode::error(out, "ERR wrong number of arguments for 'cluster' command");
        };
        let protocol = self.protocol;
        match (sub.to_ascii_uppercase().as_slice(), &rest[1..]) {
            (b"SLOTS", []) => out.extend_from_slice(&cluster_reply::slots(&self.member.view(), protocol)),
            (b"SHARDS", []) => out.extend_from_slice(&cluster_reply::shards(&self.member.view(), protocol)),
            (b"NODES", []) => cluster_reply::text(out, &cluster_reply::nodes_text(&self.member.view()), protocol),
            (b"INFO", []) => cluster_reply::text(
                out,
                &cluster_reply::info_text(&self.member.view(), self.member.messages()),
                protocol,
            ),
            (b"MYID", []) => {
                let view = self.member.view();
                let name = view.node(view.myself).map(|n| n.name.clone()).unwrap_or_default();
                encode::bulk(out, name.as_bytes());
            }
            (b"KEYSLOT", [key]) => encode::integer(out, i64::from(engine::shard::slot(key))),
            _ => encode::error(
                out,
                &format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
                    String::from_utf8_lossy(sub)
                ),
            ),
        }
    }

    fn hello(&self, out: &mut Vec<u8>) {
        let protocol = self.protocol;
        encode::map_header(out, 7, protocol);
        for (k, v) in [
            ("server", "veltrixdb"),
            ("version", env!("CARGO_PKG_VERSION")),
        ] {
            encode::bulk(out, k.as_bytes());
            encode::bulk(out, v.as_bytes());
        }
        encode::bulk(out, b"proto");
        encode::integer(out, if protocol == Protocol::Resp3 { 3 } else { 2 });
        encode::bulk(out, b"id");
        encode::integer(out, 0);
        for (k, v) in [("mode", "cluster"), ("role", "master")] {
            encode::bulk(out, k.as_bytes());
            encode::bulk(out, v.as_bytes());
        }
        encode::bulk(out, b"modules");
        encode::array_header(out, 0);
    }

    fn info(&self, out: &mut Vec<u8>) {
        let status = self.member.status().groups;
        let leading = status.iter().filter(|s| s.is_leader).count();
        let text = format!(
            "# Server\r\nveltrixdb_version:{}\r\nredis_version:7.2.0\r\nredis_mode:cluster\r\n\r\n\
             # Cluster\r\ncluster_enabled:1\r\nveltrix_node:{}\r\nveltrix_groups_hosted:{}\r\n\
             veltrix_groups_led:{leading}\r\n",
            env!("CARGO_PKG_VERSION"),
            self.member.id(),
            status.len(),
        );
        cluster_reply::text(out, &text, self.protocol);
    }
}

fn unexpected(reply: &NodeReply) -> String {
    format!("ERR unexpected answer from the node: {reply:?}")
}
