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
//! Supported key operations in this step: GET, SET (without options),
//! DEL/UNLINK, EXISTS, MGET (each key read linearizably, but not as one
//! snapshot), STRLEN, GETRANGE, TYPE. Others are refused with a clear
//! error until they replicate (they need read-modify-write entries).

use std::time::{Duration, Instant};

use cluster::group::Reply as NodeReply;
use cluster::node::Request;
use engine::{Op, Reply};

use super::Member;
use crate::cluster_reply;
use crate::commands::{self, Action};
use crate::resp::{encode, Protocol};

/// How long a request waits for its group to elect a leader.
const LEADERLESS_WAIT: Duration = Duration::from_secs(2);
const RETRY_PAUSE: Duration = Duration::from_millis(20);

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
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops {
            let reply = match op {
                Op::Get(key) => self.read(key, slot, self.readonly).map(Reply::Value),
                Op::Exists(key) => self
                    .read(key, slot, self.readonly)
                    .map(|v| Reply::Exists(v.is_some())),
                Op::Put(key, value) => self
                    .write(Request::Put { key, value }, slot)
                    .map(|()| Reply::Done),
                Op::Delete(key) => {
                    // The count DEL answers comes from a linearizable read
                    // just before the delete: another client's write in
                    // between can make it one off.
                    let existed = self.read(key.clone(), slot, false);
                    existed.and_then(|v| {
                        self.write(Request::Delete { key }, slot)
                            .map(|()| Reply::Deleted(v.is_some()))
                    })
                }
                _ => return unsupported(out),
            };
            match reply {
                Ok(r) => replies.push(Some(r)),
                Err(error) => return encode::error(out, &error),
            }
        }
        commands::combine(out, combine, &mut replies, self.protocol);
    }

    /// A read of `key`; `stale` (a `READONLY` connection's) from any
    /// replica, else linearizable from the leader.
    fn read(&self, key: Vec<u8>, slot: u16, stale: bool) -> Result<Option<Vec<u8>>, String> {
        match self.call(Request::Get { key, stale }, slot)? {
            NodeReply::Value(v) => Ok(v),
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
                Some(reply @ (NodeReply::Written | NodeReply::Value(_))) => return Ok(reply),
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
